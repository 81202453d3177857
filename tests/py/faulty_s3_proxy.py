"""A loopback HTTP proxy in front of an S3 server (moto) that fails writes the ways S3 and S3
look-alikes fail them.

usage: faulty_s3_proxy.py UPSTREAM_URL FAULT_RATE SEED [STATUS CODE MESSAGE] [options]

By default a seeded FAULT_RATE share of PUTs is answered with an S3 error (503 SlowDown, as S3 does
under load, or STATUS CODE MESSAGE: for instance 403 AccessDenied with the text S3 forwards from KMS)
without being forwarded. Options:
  --after-apply          forward the PUT first, then answer the error: the write lands, its answer
                         is lost (what a 503 or a dropped connection after S3 applied it looks like)
  --only REGEX           faults only for PUTs whose path matches REGEX (e.g. /_patchtrail/chain/)
  --once                 fault each object at most once (its retries then go through)
  --hold DIR             before answering a fault, write DIR/applied-<n> (the n-th fault) and wait
                         until DIR/release-<n> exists: lets a test make other writes land meanwhile
  --ignore-if-none-match drop `If-None-Match` from every PUT, as some gateways and older S3
                         look-alikes do (a create-only write then overwrites)
  --check-then-write S   emulate `If-None-Match: *` the way some look-alikes do, by a HEAD of the key
                         and, S seconds later, an unconditional PUT if it was absent: two creates
                         racing within S seconds both succeed and the second overwrites the first
  --honour-if-none-match-only REGEX
                         keep `If-None-Match` only on PUTs whose path matches REGEX (a gateway that
                         special-cases a probe key) and drop it from every other PUT
  --object-lock          refuse, as S3 refuses them in a bucket with a default Object Lock retention,
                         uploads of object data (PutObject, UploadPart) that carry neither
                         `Content-MD5` nor an `x-amz-checksum-*` header (nor a trailer naming one):
                         400 InvalidRequest with S3's own text (S3 API Reference, PutObject: "The
                         Content-MD5 or x-amz-sdk-checksum-algorithm header is required for any
                         request to upload an object with a retention period configured using Amazon
                         S3 Object Lock"). moto checks this for its Object Lock buckets, but only for
                         Content-MD5 and x-amz-sdk-checksum-algorithm: it refuses an upload with
                         x-amz-checksum-sha256 alone, which S3 takes.
Control: POST /_arm?kill_at=N&pidfile=F makes the N-th PUT from then on land and then kills the
process whose pid F holds (SIGKILL; the file may be written after arming) before it hears the
answer. GET /_faults is the number of faults injected; GET /_refused of uploads refused for want of
a checksum, GET /_uploads of uploads let through (--object-lock); GET /_stats is
{"puts", "faults", "kills", "refused", "uploads"} as JSON.

It also makes conditional writes atomic, as S3's are: moto checks `If-None-Match: *` and then
writes, so two threads can both pass the check; the proxy forwards such PUTs one at a time.
Prints `listening on http://127.0.0.1:PORT` first, then serves until killed.
"""
import argparse
import contextlib
import http.client
import json
import os
import random
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ap = argparse.ArgumentParser()
ap.add_argument("upstream")
ap.add_argument("rate", type=float)
ap.add_argument("seed", type=int)
ap.add_argument("error", nargs="*")
ap.add_argument("--after-apply", action="store_true")
ap.add_argument("--only")
ap.add_argument("--once", action="store_true")
ap.add_argument("--hold")
ap.add_argument("--ignore-if-none-match", action="store_true")
ap.add_argument("--object-lock", action="store_true")
ap.add_argument("--check-then-write", type=float)
ap.add_argument("--honour-if-none-match-only")
ARGS = ap.parse_args()

UPSTREAM = urlparse(ARGS.upstream)
RNG = random.Random(ARGS.seed)
ONLY = re.compile(ARGS.only) if ARGS.only else None
HONOUR_ONLY = re.compile(ARGS.honour_if_none_match_only) if ARGS.honour_if_none_match_only else None
LOCK = threading.Lock()
NO_LOCK = contextlib.nullcontext()
CONDITIONAL = threading.Lock()  # one create-only PUT at a time (S3's conditional writes are atomic)
STATS = {"puts": 0, "faults": 0, "kills": 0, "refused": 0, "uploads": 0}
ARMED = {"kill_at": 0, "pidfile": "", "count": 0}
FAULTED = set()  # paths faulted once (--once)
STATUS, CODE, MESSAGE = (int(ARGS.error[0]), ARGS.error[1], ARGS.error[2]) if len(ARGS.error) >= 3 else (
    503, "SlowDown", "Please reduce your request rate.")


def error_body(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f'<Message>{message}</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>').encode()


FAULT_BODY = error_body(CODE, MESSAGE)
LOCKED_BODY = error_body("InvalidRequest", "Content-MD5 OR x-amz-checksum- HTTP header is required for Put "
                         "Object requests with Object Lock parameters")


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

    def _answer(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _control(self):
        url = urlparse(self.path)
        if url.path in ("/_faults", "/_refused", "/_uploads"):
            self._answer(200, str(STATS[url.path[2:]]).encode())
        elif url.path == "/_stats":
            self._answer(200, json.dumps(STATS).encode(), "application/json")
        elif url.path == "/_arm":
            q = parse_qs(url.query)
            with LOCK:
                ARMED.update(kill_at=int(q["kill_at"][0]), pidfile=q["pidfile"][0], count=0)
            self._answer(200, b"armed")
        else:
            return False
        return True

    def _exists_upstream(self):
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("host", "authorization", "x-amz-date", "x-amz-content-sha256",
                                    "x-amz-security-token")}
        conn.request("HEAD", self.path.partition("?")[0], headers=headers)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status == 200

    def _upstream(self, body):
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        asks_create = self.command == "PUT" and any(k.lower() == "if-none-match" for k in headers)
        path = urlparse(self.path).path
        drop = ARGS.ignore_if_none_match or ARGS.check_then_write is not None or (
            HONOUR_ONLY is not None and not HONOUR_ONLY.search(path))
        if self.command == "PUT" and drop:
            headers = {k: v for k, v in headers.items() if k.lower() != "if-none-match"}
        if asks_create and ARGS.check_then_write is not None:
            if self._exists_upstream():
                conn.close()
                return None, error_body("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
            time.sleep(ARGS.check_then_write)
        conditional = self.command == "PUT" and any(k.lower() == "if-none-match" for k in headers)
        with CONDITIONAL if conditional else NO_LOCK:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        conn.close()
        return resp, data

    def _fault(self, n):
        if ARGS.hold:
            with open(os.path.join(ARGS.hold, f"applied-{n}"), "w") as f:
                f.write(self.path)
            release = os.path.join(ARGS.hold, f"release-{n}")
            while not os.path.exists(release):
                time.sleep(0.02)
        self._answer(STATUS, FAULT_BODY, "application/xml")

    def _forward(self):
        if self.path.startswith("/_") and self._control():
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if ARGS.object_lock and uploads_data(self.command, self.path, self.headers):
            refused = not has_checksum(self.headers)
            with LOCK:
                STATS["refused" if refused else "uploads"] += 1
            if refused:
                self._answer(400, LOCKED_BODY, "application/xml")
                return
        fault, kill = 0, None
        if self.command == "PUT":
            with LOCK:
                STATS["puts"] += 1
                if ARMED["kill_at"]:
                    ARMED["count"] += 1
                    if ARMED["count"] == ARMED["kill_at"]:
                        kill, ARMED["kill_at"] = ARMED["pidfile"], 0
                path = urlparse(self.path).path
                eligible = (ONLY is None or ONLY.search(path)) and not (ARGS.once and path in FAULTED)
                if not kill and eligible and RNG.random() < ARGS.rate:
                    FAULTED.add(path)
                    STATS["faults"] += 1
                    fault = STATS["faults"]
        if fault and not ARGS.after_apply:
            self._fault(fault)
            return
        resp, data = self._upstream(body)
        if resp is None:
            self._answer(412, data, "application/xml")
            return
        if kill:
            deadline = time.time() + 10
            while not os.path.exists(kill) and time.time() < deadline:
                time.sleep(0.01)
            with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError):
                os.kill(int(open(kill).read().strip()), signal.SIGKILL)
            with LOCK:
                STATS["kills"] += 1
            self._answer(503, FAULT_BODY, "application/xml")
            return
        if fault:
            self._fault(fault)
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        # HEAD keeps the upstream length: it is the object's size.
        self.send_header("Content-Length", resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A writer killed (or giving up) mid-answer closes its connection: not the proxy's fault.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    server = Server(("127.0.0.1", 0), Proxy)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
