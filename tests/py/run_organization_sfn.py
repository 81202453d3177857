"""Runs the organization state machine of deploy/patchtrail-organization.yaml, unchanged, in moto's Step
Functions interpreter (a port of LocalStack's), with the real patchtrail Lambda binary behind it.

- The definition is the template's, with its DefinitionSubstitutions resolved and put in as CloudFormation
  does: the Definition serialised to JSON, then each "${Name}" replaced by the value's text (quotes stay:
  a number substituted into "${X}" becomes the string "20"). Before running, it is checked for what moto
  would not catch: a placeholder left over, and a child execution reading a variable of the parent
  (Distributed Map children run as executions of their own on AWS and see none; moto runs them in-process).
- moto serves Step Functions on a loopback port (ThreadedMotoServer, in this process), with state machines
  executed for real (`execute_state_machine`); JSONata is evaluated by jsonata-python, which moto leaves
  unset. S3 is a moto server of its own (a second process, so that its work runs beside the interpreter's).
  moto and jsonata-python are patched at private module paths: the harness refuses other versions than
  requirements-test.lock pins.
- The Lambda service is a small loopback adapter written here: it answers the Lambda Invoke API (what the
  state machine's `lambda:invoke` tasks call, through boto3) and serves the Lambda Runtime API
  (`/2018-06-01/runtime/invocation/next`, `/response`, `/error`) to WORKERS real `patchtrail-lambda`
  processes, as the Lambda service does for warm containers.
- The Lambda processes reach the simulator (EC2, SSM, STS, Organizations) through the standard AWS
  environment variables, and S3 through tests/py/faulty_s3_proxy.py --object-lock in front of moto, which
  refuses uploads without a checksum as S3 does in a bucket with a default Object Lock retention; the
  state machine's own S3 calls (ItemReader, ResultWriter) go to moto directly, into the working bucket.
- Every state's input, output and task parameters are measured as moto records them (moto itself has no
  256 KiB limit): `payload` reports the largest, for the limit AWS enforces.

usage: run_organization_sfn.py TEMPLATE LAMBDA_BIN SIM_URL INPUT_JSON [--workers N] [--timeout S]
           [--download DIR] [--max-concurrency N] [--tolerated-failure-percentage P]
       run_organization_sfn.py --render TEMPLATE [--partition P]
(--timeout: the function's timeout, 900 s as deployed: each invocation's deadline is that far from when a
process takes it, and an answer after it is counted as late, where Lambda would have stopped the process.
--download: copy the history the execution wrote from moto S3 into DIR, a local store, afterwards.
--render: print the substituted definition, checked, and exit.)
Prints JSON: {status, output, error, cause, outcome (the recorded object), map_runs, lambda_invocations,
              suspended (answers with status "suspended"), late, payload: {bytes, event, state},
              s3: {uploads, refused}, work: [keys of the working folder]}.
"""
import argparse
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from urllib.parse import unquote
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[2]
# The CloudFormation reader of deploy/check_policies.py (short-form tags to long form).
sys.path.insert(0, str(ROOT / "deploy"))
from check_policies import load_template  # noqa: E402
from moto_sfn import run_in_moto, wait_for  # noqa: E402

REGION, ACCOUNT = "us-east-1", "123456789012"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:patchtrail-collector"
WORK_BUCKET = "patchtrail-work"
EXECUTION = "weekly-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned_versions():
    """moto and jsonata-python are patched at private paths: only the pinned releases are known to fit."""
    lock = (ROOT / "requirements-test.lock").read_text()
    for package in ("moto", "jsonata-python"):
        m = re.search(rf"^{re.escape(package)}(\[[^\]]*\])?==([^\s;]+)", lock, re.M)
        if not m:
            sys.exit(f"requirements-test.lock pins no {package}: pin it (pip freeze) before running this harness")
        if version(package) != m.group(2):
            sys.exit(f"{package} {version(package)} is installed but requirements-test.lock pins {m.group(2)}; "
                     f"run scripts/test, which installs the pinned versions")


# ------------------------------------------------------------------ the template's definition, as CloudFormation renders it

def resolve(value, names):
    """The value of an intrinsic as CloudFormation computes it: Ref, GetAtt and Sub over `names`
    (parameters, pseudo parameters and `Resource.Attribute`); anything else is refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return names[arg]
        if fn == "Fn::GetAtt":
            return names[".".join(arg)]
        if fn == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            scope = {**names, **{k: resolve(v, names) for k, v in local.items()}}
            return re.sub(r"\$\{([^}!]+)\}", lambda m: scope[m.group(1)], text)
    raise ValueError(f"cannot resolve {value!r} of DefinitionSubstitutions")


def machine_of(template):
    doc = load_template(template)
    return next(r for r in doc["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")


def definition(template, names):
    """The state machine's Definition with its DefinitionSubstitutions put in, as CloudFormation does:
    a text replacement inside the serialised definition."""
    machine = machine_of(template)["Properties"]
    text = json.dumps(machine["Definition"])
    for name, value in machine["DefinitionSubstitutions"].items():
        text = text.replace("${" + name + "}", str(resolve(value, names)))
    return text


def variable_names(states):
    return {name for s in states.values() for name in (s.get("Assign") or {})}


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def problems(text):
    """What AWS would refuse or run differently and moto would not notice."""
    found = [f"placeholder {m} left in the definition" for m in sorted(set(re.findall(r"\$\{[^}]*\}", text)))]
    doc = json.loads(text)
    outer = variable_names(doc["States"])
    for name, state in doc["States"].items():
        processor = state.get("ItemProcessor")
        if not processor:
            continue
        inner = variable_names(processor["States"])
        for s in strings(processor["States"]):
            for var in re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", s):
                if var in outer and var not in inner:
                    found.append(f"{name}'s child executions read ${var}, a variable of the parent execution "
                                 f"(AWS gives them none): pass it in the ItemSelector")
    return found


def for_moto(text):
    """The definition as moto's parser takes it: its grammar knows a ResultWriter's `Parameters` but not
    the `Arguments` a JSONata state must use instead (Step Functions Developer Guide, "ResultWriter (Map)");
    the definition keeps constant values there, so the rename changes nothing else (wire_moto lets moto
    read that one block as JSONPath)."""
    doc = json.loads(text)

    def visit(states):
        for state in states.values():
            writer = state.get("ResultWriter")
            if writer and "Arguments" in writer:
                writer["Parameters"] = writer.pop("Arguments")
            if "ItemProcessor" in state:
                visit(state["ItemProcessor"]["States"])

    visit(doc["States"])
    return json.dumps(doc)


def render_names(partition, region, account, max_concurrency, tolerated, scope_start_hours="22"):
    """Parameters, pseudo parameters and resource attributes the definition's substitutions name."""
    return {
        "AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account,
        "AWS::StackName": "patchtrail",
        "CollectorFunction.Arn": f"arn:{partition}:lambda:{region}:{account}:function:patchtrail-collector",
        "WorkBucket": WORK_BUCKET,
        # CloudFormation hands Number parameters to intrinsics as strings.
        "MaxConcurrency": str(max_concurrency), "ToleratedFailurePercentage": str(tolerated),
        "ScopeStartHours": str(scope_start_hours),
    }


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
        with self.done:
            self.invocations += 1
        self.pending.put((rid, payload))
        with self.done:
            # The deadline runs from when a process takes the invocation; allow for the wait.
            self.done.wait_for(lambda: rid in self.results, timeout=self.timeout + 600)
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


def start_s3():
    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "moto_s3_server.py"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        if time.time() > deadline:
            server.kill()
            sys.exit("moto_server (S3) did not start")
        time.sleep(0.1)


def start_object_lock_proxy(upstream):
    proxy = subprocess.Popen([sys.executable, str(ROOT / "tests/py/faulty_s3_proxy.py"), upstream, "0", "1",
                              "--object-lock"], stdout=subprocess.PIPE, text=True)
    line = proxy.stdout.readline().strip()
    if not line.startswith("listening on "):
        proxy.kill()
        sys.exit(f"faulty_s3_proxy.py did not start: {line!r}")
    return proxy, line[len("listening on "):]


# ------------------------------------------------------------------ moto, with its interpreter wired up

class Payloads:
    """The largest state input, output or task parameters moto recorded, in UTF-8 bytes."""

    def __init__(self):
        self.largest = {"bytes": 0, "event": None, "state": None}
        self.events = 0
        self.lock = threading.Lock()

    def measure(self, event_type, details):
        for detail in (details or {}).values():
            if not isinstance(detail, dict):
                continue
            for field in ("input", "output", "parameters"):
                value = detail.get(field)
                if value is None:
                    continue
                text = value if isinstance(value, str) else json.dumps(value)
                size = len(text.encode())
                with self.lock:
                    self.events += 1
                    if size > self.largest["bytes"]:
                        self.largest = {"bytes": size, "event": f"{event_type}.{field}",
                                        "state": detail.get("name") or detail.get("resource")}


def wire_moto(lambda_url, s3_url, payloads):
    run_in_moto(lambda service: lambda_url if service == "lambda" else s3_url)
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    add_event = EventManager.add_event

    def measured(self, context, event_type, event_details=None, *args, **kwargs):
        payloads.measure(str(event_type), event_details)
        return add_event(self, context, event_type, event_details, *args, **kwargs)

    EventManager.add_event = measured
    # for_moto() spells the ResultWriter's Arguments as Parameters; moto's preprocessor takes
    # Parameters only in JSONPath scopes, so that block is read as one.
    from moto.stepfunctions.parser.asl.component.common.query_language import QueryLanguage, QueryLanguageMode
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
    visit_result_writer = Preprocessor.visitResult_writer_decl

    def result_writer_as_jsonpath(self, ctx):
        self._query_language_per_scope.append(QueryLanguage(query_language_mode=QueryLanguageMode.JSONPath))
        try:
            return visit_result_writer(self, ctx)
        finally:
            self._query_language_per_scope.pop()

    Preprocessor.visitResult_writer_decl = result_writer_as_jsonpath


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--partition", default="aws")
    ap.add_argument("template")
    ap.add_argument("lambda_bin", nargs="?")
    ap.add_argument("sim_url", nargs="?")
    ap.add_argument("input", nargs="?")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--download")
    ap.add_argument("--max-concurrency", type=int, default=3)
    ap.add_argument("--tolerated-failure-percentage", type=int, default=100)
    # Any number, as the harness takes it: 0 (which CloudFormation's MinValue refuses) puts every
    # scope past the execution's deadline.
    ap.add_argument("--scope-start-hours", default="22")
    args = ap.parse_args()

    text = definition(args.template, render_names(args.partition, REGION, ACCOUNT, args.max_concurrency,
                                                   args.tolerated_failure_percentage, args.scope_start_hours))
    found = problems(text)
    if found:
        sys.exit("the definition would not run as tested: " + "; ".join(found))
    if args.render:
        print(text)
        return
    pinned_versions()
    import boto3

    service = LambdaService(args.timeout)
    lambda_port = free_port()
    ThreadingHTTPServer.daemon_threads = True
    lambda_server = ThreadingHTTPServer(("127.0.0.1", lambda_port), handler_for(service))
    threading.Thread(target=lambda_server.serve_forever, daemon=True).start()
    lambda_url = f"http://127.0.0.1:{lambda_port}"

    from moto.server import ThreadedMotoServer
    sfn_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=sfn_port, verbose=False)
    moto.start()
    s3_server, s3_url = start_s3()
    payloads = Payloads()
    wire_moto(lambda_url, s3_url, payloads)
    proxy, proxy_url = start_object_lock_proxy(s3_url)

    request = json.loads(args.input)
    bucket, prefix = request["s3_bucket"].rstrip("/"), request["s3_path"]
    client = lambda name, url: boto3.client(name, region_name=REGION, endpoint_url=url,  # noqa: E731
                                            aws_access_key_id="testing", aws_secret_access_key="testing")
    s3, sfn = client("s3", s3_url), client("stepfunctions", f"http://127.0.0.1:{sfn_port}")
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=WORK_BUCKET)
    functions = start_functions(args.lambda_bin, f"127.0.0.1:{lambda_port}", args.sim_url, proxy_url, args.workers)
    try:
        machine = sfn.create_state_machine(name="patchtrail-organization", definition=for_moto(text),
                                           roleArn=f"arn:aws:iam::{ACCOUNT}:role/patchtrail-sfn")["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name=EXECUTION, input=args.input)["executionArn"]
        d = wait_for(sfn, execution, 1800, 0.5)
        history = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution):
            history.extend(page["events"])
        key = f"{prefix}/_patchtrail/organization-runs/{EXECUTION}.json"
        try:
            outcome = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            outcome = None
        work = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=WORK_BUCKET)
                for o in page.get("Contents", [])]
        out = {
            "status": d["status"], "output": json.loads(d["output"]) if d.get("output") else None,
            "error": d.get("error"), "cause": d.get("cause"), "outcome": outcome,
            "map_runs": sum(1 for e in history if e["type"] == "MapRunStarted"),
            "events": sorted({e["type"] for e in history}),
            "lambda_invocations": service.invocations,
            "suspended": service.suspended,
            "late": service.late,
            "payload": {**payloads.largest, "measured": payloads.events},
            "s3": {name: int(urlopen(f"{proxy_url}/_{name}").read()) for name in ("uploads", "refused")},
            "work": sorted(work),
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
        proxy.kill()
        s3_server.kill()
        moto.stop()


if __name__ == "__main__":
    main()
