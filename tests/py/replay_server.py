"""Replays the answers of tests/fixtures/aws-documented.json on loopback, on the AWS wire protocols
the collector speaks: EC2 and STS as query/XML, SSM as awsJson1_1. Written apart from the simulator,
from the API references, so that a second source checks the collector and the reports.

usage: replay_server.py FIXTURE
Prints `listening on http://127.0.0.1:PORT`, then serves until killed. What it understands:
- sts:GetCallerIdentity; ec2:DescribeInstances (one page; the tag-key filter must name the fixture's tag);
- ssm:DescribeInstanceInformation with an InstanceIds filter (the fixture's nodes among those ids), or a
  tag filter with ResourceType=ManagedInstance (the fixture's hybrid nodes carrying the tag);
- ssm:DescribeInstancePatchStates (the fixture's states among the ids);
- ssm:DescribeInstancePatches, page by page (NextToken "page-N"); an id with no patches listed in the
  fixture gets InvalidInstanceId, as SSM answers for a node it does not manage.
Anything else is a 400 naming what was not understood, so that a new call cannot pass unnoticed.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

FIX = json.load(open(sys.argv[1], encoding="utf-8"))


def ec2_xml(query):
    filters = {}
    n = 1
    while f"Filter.{n}.Name" in query:
        filters[query[f"Filter.{n}.Name"]] = [v for k, v in query.items() if k.startswith(f"Filter.{n}.Value.")]
        n += 1
    if filters != {"tag-key": [FIX["tag_key"]]}:
        return 400, "text/xml", f"<Response><Errors><Error><Code>Unsupported</Code><Message>filters {filters}</Message></Error></Errors></Response>"
    items = []
    for i in FIX["ec2"]:
        tags = "".join(f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>" for k, v in i["Tags"].items())
        code = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}[i["State"]]
        items.append(
            f"<item><reservationId>r-{i['InstanceId'][2:]}</reservationId><ownerId>{FIX['account']}</ownerId><groupSet/>"
            f"<instancesSet><item><instanceId>{i['InstanceId']}</instanceId><imageId>ami-bff32ccc</imageId>"
            f"<instanceState><code>{code}</code><name>{i['State']}</name></instanceState>"
            f"<instanceType>{i['InstanceType']}</instanceType><launchTime>{i['LaunchTime']}</launchTime>"
            f"<platformDetails>{escape(i['PlatformDetails'])}</platformDetails>"
            f"<tagSet>{tags}</tagSet></item></instancesSet></item>")
    body = ('<?xml version="1.0" encoding="UTF-8"?>'
            '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            '<requestId>8f7724cf-496f-496e-8fe3-example</requestId>'
            f'<reservationSet>{"".join(items)}</reservationSet></DescribeInstancesResponse>')
    return 200, "text/xml", body


def sts_xml():
    body = ('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
            f'<Arn>arn:aws:iam::{FIX["account"]}:user/Alice</Arn><UserId>AIDACKCEVSQ6C2EXAMPLE</UserId>'
            f'<Account>{FIX["account"]}</Account></GetCallerIdentityResult>'
            '<ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>'
            '</GetCallerIdentityResponse>')
    return 200, "text/xml", body


def ssm_error(code, message):
    return 400, "application/x-amz-json-1.1", json.dumps({"__type": code, "Message": message})


def ssm(operation, req):
    if operation == "DescribeInstanceInformation":
        filters = {f["Key"]: f["Values"] for f in req.get("Filters", [])}
        if set(filters) == {"InstanceIds"}:
            nodes = [n for n in FIX["nodes"] if n["InstanceId"] in filters["InstanceIds"]]
        elif filters == {"tag-key": [FIX["tag_key"]], "ResourceType": ["ManagedInstance"]}:
            nodes = [n for n in FIX["nodes"]
                     if n["ResourceType"] == "ManagedInstance" and FIX["tag_key"] in n.get("Tags", {})]
        else:
            return ssm_error("InvalidFilterKey", f"not replayed: {filters}")
        listed = [{k: v for k, v in n.items() if k != "Tags"} for n in nodes]
        return 200, "application/x-amz-json-1.1", json.dumps({"InstanceInformationList": listed})
    if operation == "DescribeInstancePatchStates":
        states = [s for s in FIX["patch_states"] if s["InstanceId"] in req.get("InstanceIds", [])]
        return 200, "application/x-amz-json-1.1", json.dumps({"InstancePatchStates": states})
    if operation == "DescribeInstancePatches":
        if req.get("Filters"):
            return ssm_error("ValidationException", "the replay serves unfiltered patch lists only")
        pages = FIX["patches"].get(req["InstanceId"])
        if pages is None:
            return ssm_error("InvalidInstanceId", "Instance Id " + req["InstanceId"] + " is not valid")
        token = req.get("NextToken")
        n = int(token.removeprefix("page-")) if token else 0
        out = {"Patches": pages[n]}
        if n + 1 < len(pages):
            out["NextToken"] = f"page-{n + 1}"
        return 200, "application/x-amz-json-1.1", json.dumps(out)
    return ssm_error("UnknownOperationException", f"{operation} is not replayed")


class Replay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        target = self.headers.get("X-Amz-Target", "")
        if target.startswith("AmazonSSM."):
            status, kind, text = ssm(target.split(".", 1)[1], json.loads(body or b"{}"))
        else:
            query = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            action = query.get("Action")
            if action == "DescribeInstances":
                status, kind, text = ec2_xml(query)
            elif action == "GetCallerIdentity":
                status, kind, text = sts_xml()
            else:
                status, kind, text = 400, "text/xml", f"<ErrorResponse><Error><Code>Unsupported</Code><Message>{escape(str(action))}</Message></Error></ErrorResponse>"
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "01234567-89ab-cdef-0123-456789abcdef")
        self.end_headers()
        self.wfile.write(data)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
