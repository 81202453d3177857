"""A loopback HTTP proxy in front of an S3 server (moto) that answers a seeded share of PUTs
with an S3 error (503 SlowDown by default, as S3 does under load), without forwarding them.

It also makes conditional writes atomic, as S3's are: moto checks `If-None-Match: *` and then
writes, so two threads can both pass the check; the proxy forwards such PUTs one at a time.

With --object-lock it also refuses, as S3 refuses them in a bucket with a default Object Lock
retention, uploads of object data (PutObject, UploadPart) that carry neither `Content-MD5` nor an
`x-amz-checksum-*` header (nor a trailer naming one): 400 InvalidRequest, "Content-MD5 OR
x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters", S3's
own answer (S3 API Reference, PutObject: "The Content-MD5 or x-amz-sdk-checksum-algorithm header is
required for any request to upload an object with a retention period configured using Amazon S3
Object Lock"). moto checks this for its Object Lock buckets, but only for Content-MD5 and
x-amz-sdk-checksum-algorithm: it refuses an upload with x-amz-checksum-sha256 alone, which S3 takes.

usage: faulty_s3_proxy.py UPSTREAM_URL FAULT_RATE SEED [STATUS CODE MESSAGE] [--object-lock]
With STATUS CODE MESSAGE, the faults are that S3 error instead of 503 SlowDown (for instance 403
AccessDenied with the text S3 forwards from KMS when the bucket's key refuses the caller).
Prints `listening on http://127.0.0.1:PORT` first, then serves until killed; on stderr, at exit,
nothing. The count of injected faults is served at GET /_faults, of refused uploads at GET /_refused,
of uploads it let through at GET /_uploads.
"""
import contextlib
import http.client
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ARGS = [a for a in sys.argv[1:] if a != "--object-lock"]
OBJECT_LOCK = "--object-lock" in sys.argv[1:]
UPSTREAM = urlparse(ARGS[0])
RATE = float(ARGS[1])
RNG = random.Random(int(ARGS[2]))
LOCK = threading.Lock()
NO_LOCK = contextlib.nullcontext()
CONDITIONAL = threading.Lock()  # one create-only PUT at a time (S3's conditional writes are atomic)
COUNTS = {"/_faults": 0, "/_refused": 0, "/_uploads": 0}
STATUS, CODE, MESSAGE = (int(ARGS[3]), ARGS[4], ARGS[5]) if len(ARGS) > 5 else (
    503, "SlowDown", "Please reduce your request rate.")


def error_body(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f'<Message>{message}</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>').encode()


FAULT_BODY = error_body(CODE, MESSAGE)
LOCKED_BODY = error_body("InvalidRequest", "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters")


def uploads_data(command, path, headers):
    """PutObject or UploadPart: a PUT to a key, with no sub-resource but a part's."""
    if command != "PUT" or "x-amz-copy-source" in headers:
        return False
    target, _, query = path.partition("?")
    has_key = len([p for p in target.split("/") if p]) >= 2
    return has_key and (not query or "partNumber=" in query)


def has_checksum(headers):
    names = {k.lower(): v for k, v in headers.items()}
    return ("content-md5" in names
            or any(k.startswith("x-amz-checksum-") and k != "x-amz-checksum-algorithm" for k in names)
            or names.get("x-amz-trailer", "").lower().startswith("x-amz-checksum-"))


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        if self.path in COUNTS:
            body = str(COUNTS[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if OBJECT_LOCK and uploads_data(self.command, self.path, self.headers):
            refused = not has_checksum(self.headers)
            with LOCK:
                COUNTS["/_refused" if refused else "/_uploads"] += 1
            if refused:
                self._reply(400, LOCKED_BODY)
                return
        if self.command == "PUT":
            with LOCK:
                fault = RNG.random() < RATE
                COUNTS["/_faults"] += fault
            if fault:
                self._reply(STATUS, FAULT_BODY)
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

    def _reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
