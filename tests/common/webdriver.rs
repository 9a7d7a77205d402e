//! A small WebDriver client: headless Chromium driven through chromedriver's JSON-over-HTTP
//! protocol (W3C WebDriver), spoken with `ureq`. Enough for the browser tests: navigate,
//! find, type, click, read text and source, cookies, screenshots.
//!
//! `Browser::start` runs its own chromedriver on a free loopback port and a fresh profile
//! directory; dropping the `Browser` ends the session and kills the driver. Chromium may
//! only reach IP literals (every host name resolves to nothing), and the tests only use
//! 127.0.0.1, so nothing leaves the machine.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .chain([Path::new("/usr/bin").join(name)])
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

pub struct Browser {
    driver: Child,
    endpoint: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `size`. Panics with what to
    /// install when either program is missing: these tests must fail, never skip.
    pub fn start(size: (u32, u32)) -> Browser {
        let missing = "the browser tests need Chromium and ChromeDriver: \
                       `apt-get install chromium chromium-driver` (or set HERALD_TEST_CHROMIUM / HERALD_TEST_CHROMEDRIVER)";
        let chromium = find_program(
            "HERALD_TEST_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .unwrap_or_else(|| panic!("Chromium not found; {missing}"));
        let chromedriver = find_program("HERALD_TEST_CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found; {missing}"));
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {missing}", chromedriver.display()));
        // A fresh connection per command: a pooled one that chromedriver has closed while
        // it sat idle fails the next command with "Peer disconnected" (seen once in CI, on a
        // click), and a click cannot be retried blindly. Loopback connections cost nothing.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into();
        let profile = tempfile::tempdir().expect("profile dir");
        let mut browser = Browser {
            driver,
            endpoint: format!("http://127.0.0.1:{port}"),
            agent,
            _profile: profile,
        };
        browser.wait_ready();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--disable-default-apps".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--password-store=basic".into(),
            // Every host name fails to resolve; only 127.0.0.1 is reachable.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".into(),
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={},{}", size.0, size.1),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        }}});
        let value = browser
            .raw("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("new session: {e}"));
        let id = value["sessionId"].as_str().expect("session id").to_string();
        browser.endpoint = format!("{}/session/{id}", browser.endpoint);
        browser
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = self.raw("GET", "/status", None) {
                if v["ready"] == true {
                    return;
                }
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One WebDriver command; `Err` carries the protocol's error text.
    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.endpoint);
        let request = ureq::http::Request::builder().method(method).uri(&url);
        let result = match body {
            Some(b) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(b.to_string())
                    .unwrap(),
            ),
            None => self.agent.run(request.body(()).unwrap()),
        };
        let mut response = result.map_err(|e| format!("{method} {path}: {e}"))?;
        let ok = response.status().is_success();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if ok {
            Ok(json["value"].clone())
        } else {
            Err(format!(
                "{method} {path}: {} {}",
                json["value"]["error"], json["value"]["message"]
            ))
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let v = self
            .raw(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .ok()?;
        Some(Element {
            browser: self,
            id: v[ELEMENT].as_str()?.to_string(),
        })
    }

    /// The element, or a panic that shows where the browser is and what it sees.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css).unwrap_or_else(|| {
            let body = self.try_find("body").map(|b| b.text()).unwrap_or_default();
            panic!(
                "no element `{css}` on {}; the page says:\n{body}",
                self.current_url()
            )
        })
    }

    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str())
            .map(|id| Element {
                browser: self,
                id: id.to_string(),
            })
            .collect()
    }

    pub fn text(&self, css: &str) -> String {
        self.find(css).text()
    }

    /// Replaces the value of a form field.
    pub fn fill(&self, css: &str, value: &str) {
        let field = self.find(css);
        field.clear();
        field.send_keys(value);
    }

    /// Clicks a link or a submit button and waits until the next page has replaced this
    /// one. (WebDriver's click can return before a form's navigation starts; a command sent
    /// then would still see the old page.)
    pub fn click(&self, css: &str) {
        let old_page = self.find("html").id;
        self.find(css).click();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .raw("GET", &format!("/element/{old_page}/name"), None)
            .is_ok()
        {
            assert!(
                Instant::now() < deadline,
                "clicking `{css}` on {} did not load a page",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Picks the `<option>` with `value` in a `<select>` (no navigation).
    pub fn select(&self, css: &str, value: &str) {
        self.find(&format!("{css} option[value=\"{value}\"]"))
            .click();
    }

    pub fn set_size(&self, (width, height): (u32, u32)) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        let v = self.raw("GET", &format!("/cookie/{name}"), None).ok()?;
        v["value"].as_str().map(str::to_string)
    }

    /// Whether a JavaScript alert is showing (an injected script would open one).
    pub fn alert_open(&self) -> bool {
        self.raw("GET", "/alert/text", None).is_ok()
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Reloads until `check` holds (for state the server changes in the background).
    pub fn reload_until(&self, timeout: Duration, what: &str, check: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if check(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what} on {}",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(150));
            self.cmd("POST", "/refresh", Some(json!({})));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.raw("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    fn path(&self, tail: &str) -> String {
        format!("/element/{}{tail}", self.id)
    }

    pub fn click(&self) {
        self.browser
            .cmd("POST", &self.path("/click"), Some(json!({})));
    }

    pub fn clear(&self) {
        self.browser
            .cmd("POST", &self.path("/clear"), Some(json!({})));
    }

    pub fn send_keys(&self, text: &str) {
        self.browser
            .cmd("POST", &self.path("/value"), Some(json!({ "text": text })));
    }

    pub fn text(&self) -> String {
        self.browser
            .cmd("GET", &self.path("/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn attr(&self, name: &str) -> Option<String> {
        self.browser
            .cmd("GET", &self.path(&format!("/attribute/{name}")), None)
            .as_str()
            .map(str::to_string)
    }

    /// A DOM property (e.g. `textContent`, which reads an SVG `<title>`).
    pub fn property(&self, name: &str) -> Option<String> {
        self.browser
            .cmd("GET", &self.path(&format!("/property/{name}")), None)
            .as_str()
            .map(str::to_string)
    }

    /// Position and size on the page: (x, y, width, height) in CSS pixels.
    pub fn rect(&self) -> (f64, f64, f64, f64) {
        let r = self.browser.cmd("GET", &self.path("/rect"), None);
        let n = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        (n("x"), n("y"), n("width"), n("height"))
    }
}
