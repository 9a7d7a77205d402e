#!/usr/bin/env python3
"""The API's list pages over a long history (issue 22, item 5): measured, never asserted.

    cargo build --release && python3 benches/history_lists.py [target/release/herald] [events]

Starts Herald once on a fresh SQLite file so it writes its schema, fills it with EVENTS
(default 1,000,000) delivered events to two endpoints, one delivery in 1,000 failed, with
one attempt each (straight into the file with Python's sqlite3, which is how a history
this long is made in seconds), starts Herald on it again and times each request on a
keep-alive connection, best of 7, client side (the request over loopback included).
Only loopback is used; the endpoints' URLs are never called (nothing is pending).
"""

import http.client
import json
import os
import sqlite3
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


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/herald"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    tmp = tempfile.mkdtemp(prefix="herald-history-")
    db = os.path.join(tmp, "herald.db")
    p = start(binary, db)
    c = http.client.HTTPConnection("127.0.0.1", PORT)
    for _ in range(2):
        status, _ = call(c, "POST", "/api/v1/webhooks", {"url": "https://example.com/h", "events": ["*"]})
        assert status == 201, status
    p.terminate()
    p.wait()

    started = time.time()
    t0 = 1_764_000_000_000
    s = sqlite3.connect(db)
    s.executescript(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
        INSERT INTO events (seq, id, tenant_id, event_type, body, created_at)
        SELECT i, 'evt_' || printf('%026d', i), 'default', 'order.paid',
               '{{"event":"order.paid","i":' || i || '}}', {t0} + i * 100 FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
        INSERT INTO deliveries (id, event_seq, endpoint_id, tenant_id, status, attempts,
                                created_at, updated_at, last_status_code)
        SELECT i, i, 1 + i % 2, 'default',
               CASE WHEN i % 1000 = 7 THEN 'failed' ELSE 'succeeded' END, 1,
               {t0} + i * 100, {t0} + i * 100 + 5,
               CASE WHEN i % 1000 = 7 THEN 500 ELSE 200 END FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
        INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code)
        SELECT i, {t0} + i * 100 + 2, 3, CASE WHEN i % 1000 = 7 THEN 500 ELSE 200 END FROM n;
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
    ]
    print(f"{'request':<42} {'best of 7':>10} {'median':>10}  status")
    for label, path in rows:
        times = []
        for _ in range(7):
            t = time.perf_counter()
            status, _ = call(c, "GET", path)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"{label:<42} {times[0]:>8.2f} ms {times[3]:>7.2f} ms  {status}")
    p.terminate()
    p.wait()


if __name__ == "__main__":
    main()
