"""A loopback HTTP proxy in front of an S3 server (moto) that answers a seeded share of PUTs
with an S3 error (503 SlowDown by default, as S3 does under load), without forwarding them.

It also makes conditional writes atomic, as S3's are: moto checks `If-None-Match: *` and then
writes, so two threads can both pass the check; the proxy forwards such PUTs one at a time.

usage: faulty_s3_proxy.py UPSTREAM_URL FAULT_RATE SEED [STATUS CODE MESSAGE]
With STATUS CODE MESSAGE, the faults are that S3 error instead of 503 SlowDown (for instance 403
AccessDenied with the text S3 forwards from KMS when the bucket's key refuses the caller).
Prints `listening on http://127.0.0.1:PORT` first, then serves until killed; on stderr, at exit,
nothing. The count of injected faults is served at GET /_faults.
"""
import contextlib
import http.client
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

UPSTREAM = urlparse(sys.argv[1])
RATE = float(sys.argv[2])
RNG = random.Random(int(sys.argv[3]))
LOCK = threading.Lock()
NO_LOCK = contextlib.nullcontext()
CONDITIONAL = threading.Lock()  # one create-only PUT at a time (S3's conditional writes are atomic)
FAULTS = [0]
STATUS, CODE, MESSAGE = (int(sys.argv[4]), sys.argv[5], sys.argv[6]) if len(sys.argv) > 6 else (
    503, "SlowDown", "Please reduce your request rate.")
FAULT_BODY = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{CODE}</Code>'
              f'<Message>{MESSAGE}</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>').encode()


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        if self.path == "/_faults":
            body = str(FAULTS[0]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.command == "PUT":
            with LOCK:
                fault = RNG.random() < RATE
                FAULTS[0] += fault
            if fault:
                self.send_response(STATUS)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(FAULT_BODY)))
                self.end_headers()
                self.wfile.write(FAULT_BODY)
                return
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        conditional = self.command == "PUT" and "If-None-Match" in self.headers
        with CONDITIONAL if conditional else NO_LOCK:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        # HEAD keeps the upstream length: it is the object's size.
        self.send_header("Content-Length", resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
