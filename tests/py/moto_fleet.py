"""Creates a fleet in moto with boto3: N instances tagged CheckPatch, M without, and a bucket.

usage: moto_fleet.py BUCKET TAGGED UNTAGGED      prints {"tagged": [ids], "untagged": [ids]}
"""
import json
import sys

import boto3


def launch(ec2, count, tags):
    ids = []
    while count > 0:
        n = min(count, 500)
        r = ec2.run_instances(
            ImageId="ami-12c6146b",
            InstanceType="t3.micro",
            MinCount=n,
            MaxCount=n,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}] if tags else [],
        )
        ids += [i["InstanceId"] for i in r["Instances"]]
        count -= n
    return ids


def main():
    bucket, tagged, untagged = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    boto3.client("s3").create_bucket(Bucket=bucket)
    ec2 = boto3.client("ec2")
    t = launch(ec2, tagged, [{"Key": "CheckPatch", "Value": "true"}, {"Key": "Name", "Value": "moto-web"}])
    u = launch(ec2, untagged, [{"Key": "Name", "Value": "moto-untagged"}])
    json.dump({"tagged": t, "untagged": u}, sys.stdout)


if __name__ == "__main__":
    main()
