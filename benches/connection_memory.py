#!/usr/bin/env python3
"""Measures the memory Herald holds per open connection (issue 23, item 4).

Starts the herald binary on a fresh SQLite file, opens CONNECTIONS connections from
ADDRESSES loopback addresses (127.0.0.2, 127.0.0.3, ...), each left in one worst case, and
prints the process's RSS before, while they are held, and after they are closed, with the
difference per connection and per address. Loopback only; standard library only.

    python3 benches/connection_memory.py target/release/herald [connections] [addresses]

The cases (one run each):
  login-body   an anonymous login-page session posting a login form: head, and the 4 KiB
               body all but its last byte (held by the body deadline)
  login-big    the same with a 256 KiB login form sent in full (refused 413 unread)
  big-body     a 256 KiB form body sent in full to a page that needs a session (refused
               before reading; the body waits in buffers)
  api-body     a publish with a wrong token announcing 1 MiB, 64 KiB of it sent
  half-head    a request head sent up to 8 KiB and no end (held by the idle deadline)
"""

import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time

ADMIN = "m" * 40


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start(binary, db):
    env = dict(os.environ, HERALD_ADMIN_TOKEN=ADMIN, HERALD_LOG="error", HERALD_DURABILITY="normal")
    env.pop("HERALD_LISTEN", None)
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--db", db],
        env=env, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        m = re.match(r"Herald listening on http://(\S+)", line)
        if m:
            host, port = m.group(1).rsplit(":", 1)
            return proc, (host, int(port))
    raise RuntimeError("herald did not start")


def anon_cookie(addr):
    s = socket.create_connection(addr)
    s.sendall(b"GET /portal/login HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    m = re.search(rb"(?i)set-cookie: ([^;\r\n]+)", data)
    return m.group(1).decode()


def request(case, cookie):
    if case == "login-body":
        body = b"csrf_token=x&token=" + b"t" * (4096 - 19)
        head = (f"POST /portal/login HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
        return head.encode() + body[:-1]
    if case == "login-big":
        body = b"csrf_token=x&token=" + b"t" * (256 * 1024 - 19)
        head = (f"POST /portal/login HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
        return head.encode() + body
    if case == "big-body":
        body = b"csrf_token=x&name=" + b"n" * (256 * 1024 - 18)
        head = (f"POST /portal/webhooks HTTP/1.1\r\nHost: h\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
        return head.encode() + body
    if case == "api-body":
        head = ("POST /api/v1/events HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer hk_wrong\r\n"
                f"Content-Type: application/json\r\nContent-Length: {1024 * 1024}\r\n\r\n")
        return head.encode() + b" " * (64 * 1024)
    if case == "half-head":
        return b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * 8000
    raise ValueError(case)


def run(binary, case, connections, addresses):
    with tempfile.TemporaryDirectory() as tmp:
        proc, addr = start(binary, os.path.join(tmp, "herald.db"))
        try:
            time.sleep(1)
            cookie = anon_cookie(addr)
            before = rss_kib(proc.pid)
            payload = request(case, cookie)
            held = []
            started = time.time()
            for i in range(connections):
                s = socket.socket()
                s.bind((f"127.0.0.{2 + i % addresses}", 0))
                s.setblocking(True)
                s.connect(addr)
                s.setblocking(False)
                try:
                    s.send(payload)
                except BlockingIOError:
                    pass
                held.append(s)
            time.sleep(max(0.5, 2 - (time.time() - started)))
            during = rss_kib(proc.pid)
            alive = 0
            for s in held:
                try:
                    if s.recv(1, socket.MSG_PEEK) == b"":
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    continue
                alive += 1
            opened = time.time() - started
            for s in held:
                s.close()
            time.sleep(3)
            after = rss_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
    per_conn = (during - before) / connections
    print(f"{case:11} {connections} conns / {addresses} addrs in {opened:.1f}s, "
          f"{alive} still open when measured: RSS {before // 1024} -> {during // 1024} MiB "
          f"held -> {after // 1024} MiB after; {per_conn:.1f} KiB/conn, "
          f"{(during - before) / addresses / 1024:.1f} MiB/address")


def main():
    binary = sys.argv[1]
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    addresses = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cases = sys.argv[4].split(",") if len(sys.argv) > 4 else ["login-body", "login-big", "big-body", "api-body", "half-head"]
    for case in cases:
        run(binary, case, connections, addresses)


if __name__ == "__main__":
    main()
