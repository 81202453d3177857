"""Probes the simulator with boto3 and raw HTTP; prints JSON for the Rust tests to assert on.

usage:
  sim_probe.py errors UNMANAGED_ID MANAGED_ID   error codes as boto3 surfaces them
  sim_probe.py throttle N INSTANCE_ID            N calls without retries: how many were throttled
  sim_probe.py raw INSTANCE_ID                   sha256 of raw answers (bodies and request ids)
"""
import hashlib
import json
import sys
import time
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


def code_of(fn):
    try:
        fn()
        return {"code": None}
    except ClientError as e:
        return {
            "code": e.response["Error"]["Code"],
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "message": e.response["Error"].get("Message", ""),
            "class": type(e).__name__,
        }


def errors(unmanaged, managed):
    ssm = boto3.client("ssm", config=NO_RETRY)
    ec2 = boto3.client("ec2", config=NO_RETRY)
    out = {
        "max_results_100": code_of(lambda: ssm.describe_instance_patches(InstanceId=managed, MaxResults=100)),
        "unmanaged": code_of(lambda: ssm.describe_instance_patches(InstanceId=unmanaged)),
        "bad_token": code_of(lambda: ssm.describe_instance_patches(InstanceId=managed, NextToken="bogus")),
        "bad_filter": code_of(
            lambda: ssm.describe_instance_patches(InstanceId=managed, Filters=[{"Key": "Colour", "Values": ["x"]}])
        ),
        "bad_id": code_of(lambda: ssm.describe_instance_patches(InstanceId="i-123")),
        "states_51": code_of(
            lambda: ssm.describe_instance_patch_states(InstanceIds=[managed] * 51)
        ),
        "ec2_max_results_3": code_of(lambda: ec2.describe_instances(MaxResults=3)),
        "ec2_bad_token": code_of(lambda: ec2.describe_instances(MaxResults=5, NextToken="bogus")),
        "ec2_bad_filter": code_of(
            lambda: ec2.describe_instances(Filters=[{"Name": "colour", "Values": ["x"]}])
        ),
        "ec2_unknown_id": code_of(lambda: ec2.describe_instances(InstanceIds=["i-0000000000000000a"])),
    }
    # The exception classes boto3 generates from the models must match the codes.
    try:
        ssm.describe_instance_patches(InstanceId=unmanaged)
    except ssm.exceptions.InvalidInstanceId:
        out["unmanaged_is_modeled_exception"] = True
    try:
        ssm.describe_instance_patches(InstanceId=managed, NextToken="bogus")
    except ssm.exceptions.InvalidNextToken:
        out["bad_token_is_modeled_exception"] = True
    return out


def throttle(n, instance_id):
    ssm = boto3.client("ssm", config=NO_RETRY)
    ec2 = boto3.client("ec2", config=NO_RETRY)
    throttled, first = 0, None
    start = time.monotonic()
    for _ in range(n):
        r = code_of(lambda: ssm.describe_instance_patches(InstanceId=instance_id, MaxResults=10))
        if r["code"] == "ThrottlingException":
            throttled += 1
            first = first or r
    elapsed = time.monotonic() - start
    ec2_codes = [code_of(lambda: ec2.describe_instances(MaxResults=5)) for _ in range(5)]
    ec2_throttle = next((c for c in ec2_codes if c["code"]), None)
    return {"sent": n, "throttled": throttled, "elapsed": elapsed, "ssm_error": first, "ec2_error": ec2_throttle}


def raw(instance_id):
    import os

    url = os.environ["AWS_ENDPOINT_URL"]
    requests = [
        ({"X-Amz-Target": "AmazonSSM.DescribeInstancePatches", "Content-Type": "application/x-amz-json-1.1"},
         json.dumps({"InstanceId": instance_id, "MaxResults": 50}).encode()),
        ({"X-Amz-Target": "AmazonSSM.DescribeInstancePatchStates", "Content-Type": "application/x-amz-json-1.1"},
         json.dumps({"InstanceIds": [instance_id]}).encode()),
        ({"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
         b"Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag-key&Filter.1.Value.1=CheckPatch&MaxResults=50"),
        ({"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
         b"Action=GetCallerIdentity&Version=2011-06-15"),
    ]
    digest = hashlib.sha256()
    for headers, body in requests:
        req = urllib.request.Request(url + "/", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req) as resp:
            digest.update(resp.read())
            digest.update(resp.headers.get("x-amzn-requestid", "").encode())
    return {"sha256": digest.hexdigest()}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "errors":
        result = errors(sys.argv[2], sys.argv[3])
    elif mode == "throttle":
        result = throttle(int(sys.argv[2]), sys.argv[3])
    else:
        result = raw(sys.argv[2])
    json.dump(result, sys.stdout)
