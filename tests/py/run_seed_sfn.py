"""Runs the seed article's own Step Functions definition, unchanged (tests/fixtures/seed-state-machine.asl.json,
copied from the article: reference/seed-original-ja.txt), in moto's Step Functions interpreter, against
`patchtrail sim` (EC2, SSM) and moto S3, and writes what it stored into a folder.

usage: run_seed_sfn.py SIM_URL OUT_DIR [--bucket B] [--path P]
Prints JSON: {status, error, cause, objects: n}. OUT_DIR receives every object under P/ (keys relative to
it), byte for byte.

What moto's interpreter lacks, wired here as docs (shared/reference/tooling.md) describe:
- JSONata: evaluated by jsonata-python; Step Functions' own `$uuid()` (moto declares a constant) is a
  real random UUID, as on AWS.
- SDK integrations: `ec2` and `ssm` go to the simulator, `s3` to moto.
- `s3:putObject` with a JSON object `Body`: Step Functions writes it as JSON text, with the SDK
  integration's member names and ISO 8601 times. What AWS writes is taken from the seed article's own
  sample of a stored page (reference/seed-original-ja.txt: `"KbId"`, `"InstalledTime":
  "yyyy-mm-ddThh:mm:ssZ"`), not from moto, which hands boto3's shapes through (`KBId`, datetimes).
  Step Functions' SDK integrations name members as the AWS SDK for Java v2 does: an acronym in a member
  name keeps its first letter upper case only (`KBId` -> `KbId`, `CVEIds` -> `CveIds`).
"""
import argparse
import datetime
import json
import re
import sys
import uuid
from pathlib import Path

import boto3

from moto_sfn import run_in_moto, wait_for

REGION = "us-east-1"
DEFINITION = Path(__file__).resolve().parents[1] / "fixtures" / "seed-state-machine.asl.json"


def sfn_member(name):
    """A member name as Step Functions' SDK integrations spell it (the Java SDK v2's convention)."""
    return re.sub(r"([A-Z])([A-Z]+)(?=[A-Z][a-z]|$)", lambda m: m.group(1) + m.group(2).lower(), name)


ISO_UTC = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.0+)?\+00:00$")


def sfn_value(value):
    """A value as Step Functions hands it to PutObject: members renamed, times as `…Z` (moto hands
    boto3's datetimes through, or its own `+00:00` text)."""
    if isinstance(value, dict):
        return {sfn_member(k): sfn_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sfn_value(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str) and (m := ISO_UTC.match(value)):
        return m.group(1) + "Z"
    return value


def wire_moto(sim_url, s3_url):
    def body_as_step_functions_writes_it(params, **_):
        if isinstance(params.get("Body"), (dict, list)):
            params["Body"] = json.dumps(sfn_value(params["Body"]), ensure_ascii=False).encode()

    def on_client(service, client):
        if service == "s3":
            client.meta.events.register("before-parameter-build.s3.PutObject", body_as_step_functions_writes_it)

    run_in_moto(lambda service: sim_url if service in ("ec2", "ssm") else s3_url,
                jsonata_functions={"uuid": lambda: str(uuid.uuid4())}, on_client=on_client)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sim_url")
    ap.add_argument("out_dir")
    ap.add_argument("--bucket", default="seed-history")
    ap.add_argument("--path", default="patch-report")
    args = ap.parse_args()

    from moto.server import ThreadedMotoServer
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    s3_url = f"http://127.0.0.1:{port}"
    wire_moto(args.sim_url, s3_url)
    client = lambda name: boto3.client(name, region_name=REGION, endpoint_url=s3_url,
                                       aws_access_key_id="testing", aws_secret_access_key="testing")
    s3, sfn = client("s3"), client("stepfunctions")
    try:
        s3.create_bucket(Bucket=args.bucket)
        machine = sfn.create_state_machine(name="ssm-patch-report", definition=DEFINITION.read_text(),
                                           roleArn="arn:aws:iam::123456789012:role/seed")["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name="weekly",
                                        input=json.dumps({"s3_bucket": args.bucket,
                                                          "s3_path": args.path}))["executionArn"]
        d = wait_for(sfn, execution, 600, 0.3)
        n = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=args.path + "/"):
            for o in page.get("Contents", []):
                path = Path(args.out_dir) / o["Key"][len(args.path) + 1:]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(s3.get_object(Bucket=args.bucket, Key=o["Key"])["Body"].read())
                n += 1
        json.dump({"status": d["status"], "error": d.get("error"), "cause": d.get("cause"), "objects": n},
                  sys.stdout)
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
