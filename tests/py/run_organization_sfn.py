"""Runs the organization state machine of deploy/patchtrail-organization.yaml, unchanged, in moto's Step
Functions interpreter (a port of LocalStack's), with the real patchtrail Lambda binary behind it.

- moto serves S3 and Step Functions on a loopback port (ThreadedMotoServer), with state machines executed
  for real (`execute_state_machine`); JSONata is evaluated by jsonata-python, which moto leaves unset.
- The Lambda service is a small loopback adapter written here: it answers the Lambda Invoke API (what the
  state machine's `lambda:invoke` tasks call, through boto3) and serves the Lambda Runtime API
  (`/2018-06-01/runtime/invocation/next`, `/response`, `/error`) to WORKERS real `patchtrail-lambda`
  processes, as the Lambda service does for warm containers.
- Every SDK integration of the interpreter goes to those loopback servers; the Lambda processes reach the
  simulator (EC2, SSM, STS, Organizations) and moto S3 through the standard AWS environment variables.

usage: run_organization_sfn.py TEMPLATE LAMBDA_BIN SIM_URL INPUT_JSON [--workers N] [--timeout S] [--download DIR]
(--timeout: the function's timeout, 900 s as deployed: each invocation's deadline is that far from when a
process takes it, and an answer after it is counted as late, where Lambda would have stopped the process.
--download: copy the history
the execution wrote from moto S3 into DIR, a local store, afterwards)
Prints JSON: {status, output, error, cause, outcome (the recorded object), map_runs, lambda_invocations,
              suspended (answers with status "suspended"), late}.
"""
import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import boto3
import jsonata

# The CloudFormation reader of deploy/check_policies.py (short-form tags to long form).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))
from check_policies import load_template  # noqa: E402

REGION, ACCOUNT = "us-east-1", "123456789012"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:patchtrail-collector"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the template's definition

def definition(template, substitutions):
    """The state machine's Definition with its DefinitionSubstitutions put in, as CloudFormation does."""
    doc = load_template(template)
    machine = next(r for r in doc["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    text = json.dumps(machine["Properties"]["Definition"])
    names = machine["Properties"]["DefinitionSubstitutions"].keys()
    for name in names:
        value = substitutions[name]
        # A number substituted where the template holds "${X}" alone becomes a JSON number.
        text = text.replace(f'"${{{name}}}"', json.dumps(value)).replace(f"${{{name}}}", str(value))
    return text


# ------------------------------------------------------------------ the Lambda service on loopback

class LambdaService:
    """Invoke API for the state machine, Runtime API for the function's processes."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.pending = queue.Queue()  # (request id, payload bytes)
        self.results = {}  # request id -> (error type or None, body bytes)
        self.done = threading.Condition()
        self.invocations = 0
        self.suspended = 0
        self.deadlines = {}  # request id -> its deadline (ms), from when a process took it
        self.late = 0  # answers after their deadline (Lambda would have stopped the process)

    def invoke(self, payload: bytes):
        rid = str(uuid.uuid4())
        self.invocations += 1
        self.pending.put((rid, payload))
        with self.done:
            # The deadline runs from when a process takes the invocation; allow for the wait.
            self.done.wait_for(lambda: rid in self.results, timeout=self.timeout + 60)
            return self.results.pop(rid, ("Sandbox.Timedout", b'{"errorType":"Sandbox.Timedout"}'))

    def finish(self, rid, error, body):
        with self.done:
            if time.time() * 1000 > self.deadlines.pop(rid, float("inf")):
                self.late += 1
            if error is None:
                try:
                    self.suspended += json.loads(body or b"{}").get("status") == "suspended"
                except (ValueError, AttributeError):
                    pass
            self.results[rid] = (error, body)
            self.done.notify_all()


def handler_for(service: LambdaService):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/2018-06-01/runtime/invocation/next":
                rid, payload = service.pending.get()
                deadline = int((time.time() + service.timeout) * 1000)
                service.deadlines[rid] = deadline
                self.reply(200, payload, [("Lambda-Runtime-Aws-Request-Id", rid),
                                          ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                                          ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION),
                                          ("Lambda-Runtime-Trace-Id", f"Root=1-{rid[:8]}-{rid[9:13]}"),
                                          ("Content-Type", "application/json")])
            else:
                self.reply(404)

        def do_POST(self):
            path = self.path.split("?")[0]
            body = self.body()
            if path.startswith("/2018-06-01/runtime/invocation/"):
                rid, kind = path.split("/")[-2:]
                error = None
                if kind == "error":
                    error = json.loads(body or b"{}").get("errorType", "Unhandled")
                service.finish(rid, error, body)
                self.reply(202, b"{}")
            elif path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
                name = unquote(path[len("/2015-03-31/functions/"):-len("/invocations")])
                if name not in (FUNCTION, "patchtrail-collector"):
                    self.reply(404, json.dumps({"Type": "User", "message": f"Function not found: {name}"}).encode(),
                               [("x-amzn-ErrorType", "ResourceNotFoundException")])
                    return
                error, result = service.invoke(body)
                headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
                if error:
                    headers.append(("X-Amz-Function-Error", "Unhandled"))
                self.reply(200, result, headers)
            else:
                self.reply(404)

    return Handler


def start_functions(binary, runtime_api, sim_url, s3_url, workers):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": runtime_api, "AWS_LAMBDA_FUNCTION_NAME": "patchtrail-collector",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/patchtrail-collector", "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_ENDPOINT_URL": sim_url, "AWS_ENDPOINT_URL_S3": s3_url, "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "PATCHTRAIL_LOG": "warn",
    })
    return [subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)
            for _ in range(workers)]


# ------------------------------------------------------------------ moto, with its interpreter wired up

def wire_moto(lambda_url, s3_url):
    from moto.core.config import default_user_config
    default_user_config["stepfunctions"]["execute_state_machine"] = True
    import moto.stepfunctions.parser.asl.jsonata.jsonata as mj
    mj._eval_jsonata = lambda expression: jsonata.Jsonata(expression).evaluate(None)
    import moto.stepfunctions.parser.asl.utils.boto_client as bc
    original = bc.boto_client_for

    def boto_client_for(region, service, state_credentials=None):
        endpoint = lambda_url if service == "lambda" else s3_url
        return boto3.client(service, region_name=region, endpoint_url=endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    bc.boto_client_for = boto_client_for
    import moto.stepfunctions.parser.models  # noqa: F401  (loads every module that imported the original)
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("moto.stepfunctions") and \
                getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("template")
    ap.add_argument("lambda_bin")
    ap.add_argument("sim_url")
    ap.add_argument("input")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--download")
    args = ap.parse_args()

    service = LambdaService(args.timeout)
    lambda_port = free_port()
    ThreadingHTTPServer.daemon_threads = True
    lambda_server = ThreadingHTTPServer(("127.0.0.1", lambda_port), handler_for(service))
    threading.Thread(target=lambda_server.serve_forever, daemon=True).start()
    lambda_url = f"http://127.0.0.1:{lambda_port}"

    from moto.server import ThreadedMotoServer
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    s3_url = f"http://127.0.0.1:{moto_port}"
    wire_moto(lambda_url, s3_url)

    request = json.loads(args.input)
    bucket, prefix = request["s3_bucket"].rstrip("/"), request["s3_path"]
    client = lambda name, url: boto3.client(name, region_name=REGION, endpoint_url=url,
                                            aws_access_key_id="testing", aws_secret_access_key="testing")
    s3, sfn = client("s3", s3_url), client("stepfunctions", s3_url)
    s3.create_bucket(Bucket=bucket)
    functions = start_functions(args.lambda_bin, f"127.0.0.1:{lambda_port}", args.sim_url, s3_url, args.workers)
    try:
        text = definition(args.template, {"CollectorFunctionArn": FUNCTION, "HistoryBucket": bucket,
                                          # moto's grammar takes a percentage only as a decimal number
                                          # (a bare 40 is a syntax error there; AWS takes both).
                                          "Prefix": prefix, "MaxConcurrency": 3, "ToleratedFailurePercentage": 40.0})
        machine = sfn.create_state_machine(name="patchtrail-organization", definition=text,
                                           roleArn=f"arn:aws:iam::{ACCOUNT}:role/patchtrail-sfn")["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name="weekly-1", input=args.input)["executionArn"]
        deadline = time.time() + 600
        while True:
            d = sfn.describe_execution(executionArn=execution)
            if d["status"] != "RUNNING" or time.time() > deadline:
                break
            time.sleep(0.5)
        history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        key = f"{prefix}/_patchtrail/organization-runs/weekly-1.json"
        try:
            outcome = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            outcome = None
        out = {
            "status": d["status"], "output": json.loads(d["output"]) if d.get("output") else None,
            "error": d.get("error"), "cause": d.get("cause"), "outcome": outcome,
            "map_runs": sum(1 for e in history if e["type"] == "MapRunStarted"),
            "events": sorted({e["type"] for e in history}),
            "lambda_invocations": service.invocations,
            "suspended": service.suspended,
            "late": service.late,
        }
        if args.download:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
                for o in page.get("Contents", []):
                    path = Path(args.download) / o["Key"][len(prefix) + 1:]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        json.dump(out, sys.stdout, default=str)
    finally:
        for f in functions:
            f.kill()
        moto.stop()


if __name__ == "__main__":
    main()
