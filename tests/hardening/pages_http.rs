//! A browser's part played over plain HTTP: cookies and CSRF tokens carried by hand,
//! redirects not followed, so a test can replay exactly what it kept.

use std::time::Duration;

use crate::common::TestApp;

pub struct Pages<'a> {
    app: &'a TestApp,
    agent: ureq::Agent,
}

pub struct Answer {
    pub status: u16,
    pub location: String,
    pub cookie: Option<String>,
    pub body: String,
}

impl Answer {
    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self.body.find(marker).expect("csrf field") + marker.len();
        let end = start + self.body[start..].find('"').expect("end of csrf value");
        self.body[start..end].to_string()
    }
}

impl<'a> Pages<'a> {
    pub fn new(app: &'a TestApp) -> Pages<'a> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Pages { app, agent }
    }

    fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut response = result.expect("request to herald");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location").unwrap_or_default();
        let cookie = header("set-cookie").map(|c| c.split(';').next().unwrap().to_owned());
        Answer {
            status: response.status().as_u16(),
            location,
            cookie,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&self, path: &str, cookie: &str) -> Answer {
        Self::answer(
            self.agent
                .get(&self.app.url(path))
                .header("cookie", cookie)
                .call(),
        )
    }

    pub fn post(&self, path: &str, cookie: &str, form: &str) -> Answer {
        self.post_with(path, cookie, form, &[])
    }

    pub fn post_with(
        &self,
        path: &str,
        cookie: &str,
        form: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let request = headers.iter().fold(
            self.agent
                .post(&self.app.url(path))
                .header("cookie", cookie),
            |r, (k, v)| r.header(*k, *v),
        );
        Self::answer(
            request
                .content_type("application/x-www-form-urlencoded")
                .send(form),
        )
    }

    /// Logs into `area` (`admin` or `portal`) with `token`; returns the session cookie.
    pub fn login(&self, area: &str, token: &str) -> String {
        let form = self.get(&format!("/{area}/login"), "");
        let anon = form.cookie.clone().expect("anonymous session");
        let done = self.post(
            &format!("/{area}/login"),
            &anon,
            &format!("csrf_token={}&token={token}", form.csrf()),
        );
        assert_eq!(done.status, 303, "login: {}", done.body);
        done.cookie.expect("session cookie")
    }
}
