#!/usr/bin/env python3
"""The API's list pages over a long history (issue 22, item 5): measured, never asserted.

    cargo build --release && python3 benches/history_lists.py [target/release/herald] [events]

Starts Herald once on a fresh SQLite file so it writes its schema, fills it with EVENTS
(default 1,000,000) delivered events to two endpoints, one delivery in 1,000 failed, with
one attempt each (a success in its delivery row, a failure in an attempts row, as the
recorder writes them, and the hourly rollups beside them) (straight into the file with Python's sqlite3, which is how a history
this long is made in seconds), starts Herald on it again and times each request on a
keep-alive connection, best of 7, client side (the request over loopback included). The history ends now, 100 ms apart, so the
admin overview's 24-hour and 7-day charts span most of it.

Then publish -> arrival over that history: a third endpoint on a receiver this script
runs (Python's threading HTTP server, keep-alive), single publishes at 200 and at 1,000
events/s from one keep-alive client, each event's latency from just before its publish
request to its arrival at the receiver (p50, p99, max; the receiver's own parsing
included).
Only loopback is used; the two history endpoints' URLs are never called (they subscribe
to `order.*`, and nothing of theirs is pending).
"""

import http.client
import http.server
import json
import threading
import os
import re
import sqlite3
import urllib.parse
import subprocess
import sys
import tempfile
import time

TOKEN = "bench-history-admin-token-0123456789abcdef"
PORT = 18_000 + os.getpid() % 1000


def start(binary, db):
    env = dict(os.environ, HERALD_ADMIN_TOKEN=TOKEN, HERALD_ALLOW_PRIVATE_TARGETS="true")
    p = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{PORT}", "--db", db],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit("herald did not become ready")


def call(c, method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body else None,
              headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    return r.status, data


def admin_session(c):
    """Logs in to the admin pages as a browser does: the login form's cookie and CSRF
    token, then the token; returns the session cookie."""
    c.request("GET", "/admin/login")
    r = c.getresponse()
    page = r.read().decode()
    cookie = r.getheader("set-cookie").split(";")[0]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": csrf, "next": "/admin", "token": TOKEN})
    c.request("POST", "/admin/login", body=form, headers={
        "content-type": "application/x-www-form-urlencoded", "cookie": cookie})
    r = c.getresponse()
    r.read()
    assert r.status == 303, r.status
    return r.getheader("set-cookie").split(";")[0]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/herald"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    tmp = tempfile.mkdtemp(prefix="herald-history-")
    db = os.path.join(tmp, "herald.db")
    p = start(binary, db)
    c = http.client.HTTPConnection("127.0.0.1", PORT)
    for _ in range(2):
        status, _ = call(c, "POST", "/api/v1/webhooks", {"url": "https://example.com/h", "events": ["order.*"]})
        assert status == 201, status
    p.terminate()
    p.wait()

    started = time.time()
    # Ending now, 100 ms apart: the overview's 24 h and 7 d charts cover most of it.
    t0 = int(time.time() * 1000) - n * 100
    s = sqlite3.connect(db)
    s.executescript(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
        INSERT INTO events (seq, id, tenant_id, event_type, body, created_at)
        SELECT i, 'evt_' || printf('%026d', i), 'default', 'order.paid',
               '{{"event":"order.paid","i":' || i || '}}', {t0} + i * 100 FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
        INSERT INTO deliveries (id, event_seq, endpoint_id, tenant_id, status, attempts,
                                created_at, updated_at, last_status_code,
                                sent_at, sent_duration_ms, sent_status_code)
        SELECT i, i, 1 + i % 2, 'default',
               CASE WHEN i % 1000 = 7 THEN 'failed' ELSE 'succeeded' END, 1,
               {t0} + i * 100, {t0} + i * 100 + 5,
               CASE WHEN i % 1000 = 7 THEN 500 ELSE 200 END,
               CASE WHEN i % 1000 = 7 THEN NULL ELSE {t0} + i * 100 + 2 END,
               CASE WHEN i % 1000 = 7 THEN NULL ELSE 3 END,
               CASE WHEN i % 1000 = 7 THEN NULL ELSE 200 END FROM n;
        -- As the recorder writes them: a first attempt that succeeded lives in its
        -- delivery row; the failures are attempts rows.
        WITH RECURSIVE n(i) AS (SELECT 7 UNION ALL SELECT i + 1000 FROM n WHERE i + 1000 <= {n})
        INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code)
        SELECT i, {t0} + i * 100 + 2, 3, 500 FROM n;
        -- And the rollups the recorder keeps beside them: every first attempt 2 ms after
        -- its publish (bucket 2).
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
        INSERT INTO activity_hours (hour, succeeded, failed)
        SELECT ({t0} + i * 100 + 2) / 3600000 * 3600000 AS h,
               sum(i % 1000 != 7), sum(i % 1000 = 7) FROM n GROUP BY h;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
        INSERT INTO latency_hours (hour, bucket, count)
        SELECT ({t0} + i * 100 + 2) / 3600000 * 3600000 AS h, 2, count(*) FROM n GROUP BY h;
    """)
    s.close()
    size = os.path.getsize(db) / 2**20
    print(f"history: {n:,} delivered events, {size:.0f} MiB, made in {time.time() - started:.1f} s")

    p = start(binary, db)
    c = http.client.HTTPConnection("127.0.0.1", PORT)
    middle = "evt_%026d" % (n // 2)
    old = t0 + (n // 10) * 100
    recent = t0 + (n - 500) * 100
    rows = [
        ("GET /deliveries?limit=100", "/api/v1/deliveries?limit=100"),
        ("GET /deliveries?status=failed", "/api/v1/deliveries?status=failed"),
        ("GET /deliveries?endpoint_id=2", "/api/v1/deliveries?endpoint_id=2"),
        ("GET /deliveries?event_id=<one event>", f"/api/v1/deliveries?event_id={middle}"),
        ("GET /deliveries?since=<recent>", f"/api/v1/deliveries?since={recent // 1000}"),
        ("GET /deliveries?until=<old>", f"/api/v1/deliveries?until={old // 1000}"),
        ("GET /events", "/api/v1/events"),
        ("GET /events?event=order.paid", "/api/v1/events?event=order.paid"),
        ("GET /metrics", "/metrics"),
        ("admin overview (GET /admin)", "/admin"),
        ("endpoint page (GET /admin/tenants/default/endpoints/2)",
         "/admin/tenants/default/endpoints/2"),
    ]
    cookie = admin_session(c)
    print(f"{'request':<42} {'best of 7':>10} {'median':>10}  status")
    for label, path in rows:
        times = []
        for _ in range(7):
            t = time.perf_counter()
            if path.startswith("/admin"):
                c.request("GET", path, headers={"cookie": cookie})
                r = c.getresponse()
                r.read()
                status = r.status
            else:
                status, _ = call(c, "GET", path)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"{label:<42} {times[0]:>8.2f} ms {times[3]:>7.2f} ms  {status}")
    arrivals(c)
    p.terminate()
    p.wait()


def arrivals(c):
    """Publish -> arrival at 200 and 1,000 events/s on the history (module comment)."""
    arrived = {}
    lock = threading.Lock()

    class Receiver(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            at = time.perf_counter()
            k = int(re.search(rb'"k":\s*(\d+)', body).group(1))
            with lock:
                arrived[k] = at
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/arrive"
    status, _ = call(c, "POST", "/api/v1/webhooks", {"url": url, "events": ["probe.*"]})
    assert status == 201, status
    k = 0
    for rate, count in ((200, 600), (1000, 1500)):
        sent = {}
        start = time.perf_counter()
        for j in range(count):
            due = start + j / rate
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.0005, due - time.perf_counter())))
            k += 1
            sent[k] = time.perf_counter()
            status, _ = call(c, "POST", "/api/v1/events", {"event": "probe.tick", "k": k})
            assert status == 202, status
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            with lock:
                if all(i in arrived for i in sent):
                    break
            time.sleep(0.05)
        with lock:
            lat = sorted((arrived[i] - sent[i]) * 1000 for i in sent if i in arrived)
        missing = len(sent) - len(lat)
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"publish -> arrival at {rate:,} events/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
              f"max {lat[-1]:.2f} ms  [n={len(sent)}, {missing} not arrived]")
    server.shutdown()


if __name__ == "__main__":
    main()
