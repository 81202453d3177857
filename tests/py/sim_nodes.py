"""Walks ssm:DescribeInstanceInformation of the simulator with boto3 (botocore's model parses every
answer) and compares it with ec2:DescribeInstances.

usage: sim_nodes.py   (AWS_ENDPOINT_URL etc. point at the simulator)
Prints JSON facts for the Rust test to assert.
"""
import json

import boto3
from botocore.exceptions import ClientError, ParamValidationError


def walk(ssm, **kwargs):
    nodes = []
    for page in ssm.get_paginator("describe_instance_information").paginate(
            PaginationConfig={"PageSize": 50}, **kwargs):
        nodes.extend(page["InstanceInformationList"])
    return nodes


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    except ParamValidationError:
        return "ParamValidationError"
    return None


def main():
    ec2, ssm = boto3.client("ec2"), boto3.client("ssm")
    states = {}
    for page in ec2.get_paginator("describe_instances").paginate():
        for r in page["Reservations"]:
            for i in r["Instances"]:
                states[i["InstanceId"]] = i["State"]["Name"]
    nodes = walk(ssm)
    ids = [n["InstanceId"] for n in nodes]
    lost = walk(ssm, Filters=[{"Key": "PingStatus", "Values": ["ConnectionLost"]}])
    windows = walk(ssm, InstanceInformationFilterList=[{"key": "PlatformTypes", "valueSet": ["Windows"]}])
    tagged = walk(ssm, Filters=[{"Key": "tag-key", "Values": ["CheckPatch"]}])
    some = ids[:3]
    by_id = walk(ssm, Filters=[{"Key": "InstanceIds", "Values": some}])
    print(json.dumps({
        "nodes": len(nodes),
        "unique": len(set(ids)),
        "ec2_states_of_nodes": sorted({states.get(i, "absent") for i in ids}),
        "running_in_ec2": sum(1 for s in states.values() if s == "running"),
        "ping_statuses": sorted({n["PingStatus"] for n in nodes}),
        "lost_all_lost": all(n["PingStatus"] == "ConnectionLost" for n in lost) and len(lost) > 0,
        "windows_only": sorted({n["PlatformType"] for n in windows}),
        "tagged": len(tagged),
        "by_id": sorted(n["InstanceId"] for n in by_id) == sorted(some),
        "fields": sorted(nodes[0].keys()) if nodes else [],
        "last_ping_is_datetime": all(hasattr(n["LastPingDateTime"], "year") for n in nodes),
        "platform_names": sorted({n["PlatformName"] for n in nodes}),
        "both_forms": error_code(lambda: ssm.describe_instance_information(
            Filters=[{"Key": "PingStatus", "Values": ["Online"]}],
            InstanceInformationFilterList=[{"key": "PlatformTypes", "valueSet": ["Linux"]}])),
        "bad_key": error_code(lambda: ssm.describe_instance_information(
            Filters=[{"Key": "Colour", "Values": ["blue"]}])),
        "max_results_60": error_code(lambda: ssm.describe_instance_information(MaxResults=60)),
        "bad_token": error_code(lambda: ssm.describe_instance_information(NextToken="garbage")),
    }))


if __name__ == "__main__":
    main()
