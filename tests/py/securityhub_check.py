"""Checks ASFF findings against botocore's model of Security Hub, and reads what a Security Hub
endpoint holds, with boto3.

Usage:
  securityhub_check.py files BATCH.json...          the request bodies of --dry-run
  securityhub_check.py list ACCOUNT ROLE [REGION]   GetFindings as ACCOUNT (through ROLE, assumed
                                                    from the environment's credentials; `-`: as
                                                    the environment's credentials)

Every finding is checked member by member against the `AwsSecurityFinding` shape of botocore's
securityhub model (required members, no unknown members, types, enums, the `.*\\S.*` pattern of
its non-empty strings, list and map bounds) and against the limits the Security Hub API reference
states in prose (Title 256, Description 1024, ... characters; 240 KB per finding; 100 findings
per call). Prints one JSON object: the findings (a few fields each), the errors, the counts.
"""

import json
import re
import sys

import boto3
import botocore.session

# The API reference's limits that the model does not carry (AwsSecurityFinding, Resource, Note,
# Recommendation, Severity, Compliance), by path (`[]` for list items, `{}` for map keys).
LIMITS = {
    "Id": 512,
    "GeneratorId": 512,
    "ProductArn": 2048,
    "Title": 256,
    "Description": 1024,
    "Severity.Original": 64,
    "Remediation.Recommendation.Text": 512,
    "Note.Text": 512,
    "Note.UpdatedBy": 512,
    "ProductFields{}": 128,
    "ProductFields": 2048,
    "Resources[].Tags{}": 128,
    "Resources[].Tags": 256,
}
COUNTS = {"Types": 50, "Resources": 32, "ProductFields": 50, "Compliance.RelatedRequirements": 32}
FINDING_BYTES = 240 * 1000
CALL_FINDINGS = 100


def validate(shape, value, path, limit_path, errors):
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: not an object")
            return
        for r in shape.required_members:
            if r not in value:
                errors.append(f"{path}.{r}: required")
        for k, v in value.items():
            if k not in shape.members:
                errors.append(f"{path}.{k}: not a member of {shape.name}")
                continue
            validate(shape.members[k], v, f"{path}.{k}", join(limit_path, k), errors)
    elif t == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: not a list")
            return
        bound = COUNTS.get(limit_path)
        if bound is not None and len(value) > bound:
            errors.append(f"{path}: {len(value)} items, at most {bound}")
        for i, v in enumerate(value):
            validate(shape.member, v, f"{path}[{i}]", limit_path + "[]", errors)
    elif t == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: not a map")
            return
        bound = COUNTS.get(limit_path)
        if bound is not None and len(value) > bound:
            errors.append(f"{path}: {len(value)} pairs, at most {bound}")
        for k, v in value.items():
            validate(shape.key, k, f"{path} key {k!r}", limit_path + "{}", errors)
            validate(shape.value, v, f"{path}[{k!r}]", limit_path, errors)
    elif t == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: not a string")
            return
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            errors.append(f"{path}: {value!r} not one of {enum}")
        pattern = shape.metadata.get("pattern")
        if pattern and not re.search(pattern, value):
            errors.append(f"{path}: {value!r} does not match {pattern}")
        limit = LIMITS.get(limit_path)
        if limit is not None and len(value) > limit:
            errors.append(f"{path}: {len(value)} characters, at most {limit}")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: not an integer")
    elif t in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: not a number")
    elif t == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: not a boolean")
    elif t == "timestamp":
        if not isinstance(value, str):
            errors.append(f"{path}: not a timestamp")


def join(prefix, key):
    return f"{prefix}.{key}" if prefix else key


def check(findings, shape, errors):
    for f in findings:
        fid = f.get("Id", "?")
        size = len(json.dumps(f, ensure_ascii=False).encode())
        if size > FINDING_BYTES:
            errors.append(f"{fid}: {size} bytes, at most {FINDING_BYTES}")
        validate(shape, f, fid, "", errors)


def summary(f):
    return {
        "Id": f.get("Id"),
        "AwsAccountId": f.get("AwsAccountId"),
        "Title": f.get("Title"),
        "RecordState": f.get("RecordState"),
        "Compliance": f.get("Compliance", {}).get("Status"),
        "Workflow": f.get("Workflow", {}).get("Status"),
        "UpdatedAt": f.get("UpdatedAt"),
        "CreatedAt": f.get("CreatedAt"),
        "Vulnerabilities": [v.get("Id") for v in f.get("Vulnerabilities", [])],
        "ProductFields": f.get("ProductFields", {}),
        "PatchSummary": f.get("PatchSummary"),
        "Bytes": len(json.dumps(f, ensure_ascii=False).encode()),
    }


def main():
    model = botocore.session.get_session().get_service_model("securityhub")
    shape = model.shape_for("AwsSecurityFinding")
    errors = []
    findings = []
    if sys.argv[1] == "files":
        for path in sys.argv[2:]:
            with open(path, encoding="utf-8") as fh:
                body = json.load(fh)
            if set(body) != {"Findings"}:
                errors.append(f"{path}: body members {sorted(body)}")
            batch = body.get("Findings", [])
            if not 1 <= len(batch) <= CALL_FINDINGS:
                errors.append(f"{path}: {len(batch)} findings in one call")
            findings += batch
    else:
        account, role = sys.argv[2], sys.argv[3]
        region = sys.argv[4] if len(sys.argv) > 4 else "us-east-1"
        if role == "-":
            hub = boto3.client("securityhub", region_name=region)
        else:
            creds = boto3.client("sts").assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="check"
            )["Credentials"]
            hub = boto3.client(
                "securityhub",
                region_name=region,
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        for page in hub.get_paginator("get_findings").paginate(PaginationConfig={"PageSize": 100}):
            findings += page["Findings"]
    check(findings, shape, errors)
    print(
        json.dumps(
            {
                "count": len(findings),
                "distinct_ids": len({f.get("Id") for f in findings}),
                "findings": [summary(f) for f in findings],
                "errors": errors[:50],
                "error_count": len(errors),
            }
        )
    )


if __name__ == "__main__":
    main()
