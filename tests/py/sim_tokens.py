"""Uses NextTokens of the simulator before and after they expire, through boto3.

usage: sim_tokens.py TTL_MS   (AWS_ENDPOINT_URL etc. point at a simulator started with --token-ttl-ms)
Prints JSON: for each API, the error code of a fresh token (null: it worked) and of an expired one.
"""
import json
import sys
import time

import boto3
from botocore.exceptions import ClientError


def code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def main():
    ttl = int(sys.argv[1]) / 1000
    ec2, ssm = boto3.client("ec2"), boto3.client("ssm")
    apis = {
        "ec2:DescribeInstances": lambda token=None: ec2.describe_instances(
            MaxResults=5, **({"NextToken": token} if token else {})),
        "ssm:DescribeInstanceInformation": lambda token=None: ssm.describe_instance_information(
            MaxResults=5, **({"NextToken": token} if token else {})),
    }
    out = {}
    for name, call in apis.items():
        fresh = call()["NextToken"]
        stale = call()["NextToken"]
        out[name] = {"fresh": code(lambda: call(fresh))}
        time.sleep(ttl * 2)
        out[name]["expired"] = code(lambda: call(stale))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
