"""Checks the node columns of a collected parquet store against what boto3 reads from the endpoint.

usage: node_facts.py STORE TAG_KEY   (AWS_ENDPOINT_URL etc. point at the simulator)

boto3 (botocore's model parses every answer) lists the tagged EC2 instances and every managed node
(ssm:DescribeInstanceInformation); pyarrow reads the store's `instances` table. The expected
`unmanaged_reason` follows docs/semantics.md §4.5 as written, computed here from boto3's facts:
terminated (EC2 shutting-down/terminated) > not_registered (SSM does not list the node) >
agent_offline (listed, PingStatus not Online) > not_permitted (listed and Online).
Prints JSON: counts for the Rust test, and every mismatch found.
"""
import json
import sys

import boto3
import pyarrow.dataset as ds


def walk_nodes(ssm, **kwargs):
    nodes = []
    for page in ssm.get_paginator("describe_instance_information").paginate(
            PaginationConfig={"PageSize": 50}, **kwargs):
        nodes.extend(page["InstanceInformationList"])
    return nodes


def expected_reason(ec2_state, node):
    """docs/semantics.md §4.5, from an EC2 state name and SSM's node record (None: not listed)."""
    if ec2_state in ("shutting-down", "terminated"):
        return "terminated"
    if node is None:
        return "not_registered"
    if node["PingStatus"] != "Online":
        return "agent_offline"
    return "not_permitted"


def main():
    store, tag_key = sys.argv[1], sys.argv[2]
    ec2, ssm = boto3.client("ec2"), boto3.client("ssm")
    ec2_state = {}
    for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag-key", "Values": [tag_key]}]):
        for r in page["Reservations"]:
            for i in r["Instances"]:
                if i["State"]["Name"] != "terminated":
                    ec2_state[i["InstanceId"]] = i["State"]["Name"]
    nodes = {n["InstanceId"]: n for n in walk_nodes(ssm)}
    hybrid = {n["InstanceId"] for n in walk_nodes(ssm, Filters=[
        {"Key": "tag-key", "Values": [tag_key]}, {"Key": "ResourceType", "Values": ["ManagedInstance"]}])}

    rows = ds.dataset(f"{store}/instances", format="parquet", partitioning="hive").to_table().to_pylist()
    stored = {r["instance_id"]: r for r in rows}
    mismatches = []
    if set(stored) != set(ec2_state) | hybrid:
        mismatches.append({"ids": {"stored_only": sorted(set(stored) - set(ec2_state) - hybrid),
                                   "not_stored": sorted((set(ec2_state) | hybrid) - set(stored))}})
    for iid, r in stored.items():
        node = nodes.get(iid)
        want = {
            "resource_type": node and node["ResourceType"],
            "ping_status": node and node["PingStatus"],
            "last_ping_time": node and node["LastPingDateTime"].timestamp(),
            "agent_version": node and node["AgentVersion"],
            "platform_type": node and node["PlatformType"],
            "platform_name": node and node["PlatformName"],
            "platform_version": node and node["PlatformVersion"],
            "computer_name": node and node["ComputerName"],
            "ip_address": node and node["IPAddress"],
            "ec2_state": ec2_state.get(iid),
            "unmanaged_reason": expected_reason(ec2_state.get(iid), node) if r["outcome"] == "unmanaged" else None,
        }
        got = dict((k, r[k]) for k in want)
        if got["last_ping_time"] is not None:
            got["last_ping_time"] = got["last_ping_time"].timestamp()
        if iid in hybrid:  # a hybrid node is named by its host name (docs/semantics.md §4.6)
            want["name"], got["name"] = node["ComputerName"], r["name"]
        if got != want:
            mismatches.append({"instance_id": iid, "got": got, "want": want})
    print(json.dumps({
        "stored": len(stored),
        "hybrid": len(hybrid),
        "agent_offline": sum(1 for r in rows if r["ping_status"] not in (None, "Online")),
        "reasons": sorted({r["unmanaged_reason"] for r in rows if r["unmanaged_reason"]}),
        "mismatches": mismatches[:10],
    }, default=str))


if __name__ == "__main__":
    main()
