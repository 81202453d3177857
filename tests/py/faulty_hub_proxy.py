"""A loopback HTTP proxy in front of a Security Hub endpoint (moto) that fails BatchImportFindings
the ways Security Hub does.

usage: faulty_hub_proxy.py UPSTREAM_URL [--throttle N] [--refuse ID:TIMES ...] [--disabled REGION ...] [--lose N]

  --throttle N        answer the first N BatchImportFindings calls with 429 and Security Hub's
                      throttling error (`TooManyRequestsException`), without forwarding them
  --refuse ID:TIMES   refuse the finding ID in the first TIMES calls that carry it: it is taken out
                      of the request before it is forwarded (so it is not stored) and named in the
                      answer's FailedFindings with ErrorCode `InvalidInput`, FailedCount and
                      SuccessCount adjusted: the shape of a partial failure in the API reference
                      (BatchImportFindings response: FailedCount, SuccessCount, FailedFindings of
                      Id, ErrorCode, ErrorMessage). TIMES `always` refuses it every time.
  --disabled REGION   answer every BatchImportFindings call signed for REGION (the credential
                      scope of its Authorization header) as Security Hub does where it is not
                      enabled: 401 with `X-Amzn-ErrorType: InvalidAccessException` (restJson1)
  --lose N            forward the first N calls that get through, so Security Hub applies them,
                      then lose the answer: 500 `InternalException` instead of what it said

Other requests are forwarded unchanged (signatures stay valid: the proxy re-sends the client's
headers, and moto does not check signatures). GET /_stats is {"calls", "throttled", "refused", "disabled", "lost"}.
Prints `listening on http://127.0.0.1:PORT` first, then serves until killed.
"""
import argparse
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ap = argparse.ArgumentParser()
ap.add_argument("upstream")
ap.add_argument("--throttle", type=int, default=0)
ap.add_argument("--refuse", action="append", default=[])
ap.add_argument("--disabled", action="append", default=[])
ap.add_argument("--lose", type=int, default=0)
args = ap.parse_args()
up = urlparse(args.upstream)
refuse = {}
for item in args.refuse:
    fid, times = item.rsplit(":", 1)
    refuse[fid] = None if times == "always" else int(times)
lock = threading.Lock()
stats = {"calls": 0, "throttled": 0, "refused": 0, "disabled": 0, "lost": 0}


def forward(method, path, headers, body):
    conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
    headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
    headers["Content-Length"] = str(len(body))
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.getheaders(), resp.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_stats":
            with lock:
                return self.reply(200, json.dumps(stats).encode())
        self.relay("GET", b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/findings/import":
            return self.relay("POST", body)
        scope = self.headers.get("Authorization", "").split("Credential=")[-1].split("/")
        region = scope[2] if len(scope) > 2 else ""
        with lock:
            stats["calls"] += 1
            if region in args.disabled:
                stats["disabled"] += 1
                message = f"Account is not subscribed to AWS Security Hub in {region}"
                body = json.dumps({"Code": "InvalidAccessException", "Message": message}).encode()
                self.send_response(401)
                self.send_header("X-Amzn-ErrorType", "InvalidAccessException:http://internal.amazon.com/coral/")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if stats["throttled"] < args.throttle:
                stats["throttled"] += 1
                return self.reply(
                    429,
                    json.dumps({"__type": "TooManyRequestsException", "Message": "Rate exceeded"}).encode(),
                )
            request = json.loads(body)
            kept, failed = [], []
            for f in request.get("Findings", []):
                fid = f.get("Id")
                if fid in refuse and (refuse[fid] is None or refuse[fid] > 0):
                    if refuse[fid] is not None:
                        refuse[fid] -= 1
                    stats["refused"] += 1
                    failed.append({"Id": fid, "ErrorCode": "InvalidInput", "ErrorMessage": "Finding refused"})
                else:
                    kept.append(f)
        answer = {"FailedCount": 0, "SuccessCount": 0, "FailedFindings": []}
        if kept:
            status, _, data = forward("POST", self.path, dict(self.headers), json.dumps({"Findings": kept}).encode())
            if status != 200:
                return self.reply(status, data)
            answer = json.loads(data)
            with lock:
                lose = stats["lost"] < args.lose
                stats["lost"] += int(lose)
            if lose:
                body = json.dumps({"Code": "InternalException", "Message": "Internal service error"}).encode()
                self.send_response(500)
                self.send_header("X-Amzn-ErrorType", "InternalException")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        answer["FailedFindings"] = answer.get("FailedFindings", []) + failed
        answer["FailedCount"] = answer.get("FailedCount", 0) + len(failed)
        self.reply(200, json.dumps(answer).encode())

    def relay(self, method, body):
        status, headers, data = forward(method, self.path, dict(self.headers), body)
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
