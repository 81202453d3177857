#!/usr/bin/env python3
"""Checks that the IAM policies of patchtrail have not drifted apart.

1. The collector Lambda's inline policy in deploy/patchtrail.yaml, rendered with the placeholders
   BUCKET, PREFIX, REGION, ACCOUNT and FUNCTION in place of its ${...} variables, must be
   statement-for-statement equal to deploy/iam/patchtrail-lambda-policy.json.
2. The Lambda role must hold nothing else: that one inline policy, no managed policies, no
   separate AWS::IAM::Policy attached to it, no wildcard actions, Allow statements only.
3. deploy/iam/patchtrail-cli-policy.json must allow exactly the Lambda policy's actions minus
   the logs:* ones (the CLI writes no CloudWatch logs).
4. Organizations: the member role of deploy/patchtrail-member-role.yaml must allow exactly the
   Lambda policy's EC2/SSM/STS read actions plus ec2:DescribeRegions (what a scope's collection
   calls in a member account), and the collector of deploy/patchtrail-organization.yaml exactly
   those plus organizations:ListAccounts and sts:AssumeRole (only on the member role's name).

On success prints {"actions": [...]} (the Lambda policy's allowed actions, sorted); with
--actions prints only the sorted list. On drift prints what differs to stderr and exits 1;
exits 2 when a file cannot be read or the template has an unexpected shape.

Needs python3 and PyYAML (which cfn-lint installs).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

# ${...} variables of the template's policy and what stands in their place in the JSON document.
# "Bucket" and "Function" are Fn::Sub-local variables; the others are parameters or pseudo parameters.
PLACEHOLDERS = {
    "AWS::Partition": "aws",
    "AWS::Region": "REGION",
    "AWS::AccountId": "ACCOUNT",
    "Prefix": "PREFIX",
    "Bucket": "BUCKET",
    "Function": "FUNCTION",
    "MemberRoleName": "MEMBER_ROLE",
    "HistoryBucketName": "BUCKET",
    "AWS::StackName": "STACK",
}


class Unexpected(Exception):
    """The inputs are not shaped as this checker expects (exit 2)."""


# ------------------------------------------------------------------ loading the template


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags (!Sub, !Ref, ...) into long form."""


def _construct_intrinsic(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + tag_suffix: value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path):
    try:
        with open(path, encoding="utf-8") as f:
            template = yaml.load(f, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    except (OSError, yaml.YAMLError) as e:
        raise Unexpected(f"cannot read template {path}: {e}") from e
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise Unexpected(f"{path} has no Resources section")
    return template


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise Unexpected(f"cannot read {path}: {e}") from e


# ------------------------------------------------------------------ finding the Lambda role


def lambda_role(template):
    resources = template["Resources"]
    functions = [(n, r) for n, r in resources.items() if r.get("Type") == "AWS::Lambda::Function"]
    if len(functions) != 1:
        raise Unexpected(f"expected exactly one AWS::Lambda::Function, found {[n for n, _ in functions]}")
    fn_name, fn = functions[0]
    role_ref = (fn.get("Properties") or {}).get("Role")
    if not (isinstance(role_ref, dict) and list(role_ref) == ["Fn::GetAtt"]):
        raise Unexpected(f"{fn_name}.Role must be !GetAtt <Role>.Arn of a role in this template, found {role_ref!r}")
    role_name, attribute = role_ref["Fn::GetAtt"]
    role = resources.get(role_name)
    if attribute != "Arn" or not role or role.get("Type") != "AWS::IAM::Role":
        raise Unexpected(f"{fn_name}.Role must point at the Arn of an AWS::IAM::Role, found {role_ref!r}")
    return role_name, role


def role_problems(template, role_name, role):
    """What gives the role more than its one inline policy."""
    problems = []
    props = role.get("Properties") or {}
    if props.get("ManagedPolicyArns"):
        problems.append(f"{role_name} has managed policies {props['ManagedPolicyArns']!r}; it must have none")
    policies = props.get("Policies") or []
    if len(policies) != 1:
        problems.append(f"{role_name} must have exactly one inline policy, found {len(policies)}")
    for name, res in template["Resources"].items():
        if res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            attached = json.dumps((res.get("Properties") or {}))
            if f'"Ref": "{role_name}"' in attached:
                problems.append(f"{name} ({res['Type']}) attaches more permissions to {role_name}")
    return problems


# ------------------------------------------------------------------ rendering with placeholders

_VAR = re.compile(r"\$\{([^}]*)\}")


def _sub(text, where):
    def replace(m):
        name = m.group(1)
        if name.startswith("!"):  # ${!Literal} is the literal text ${Literal}
            return "${" + name[1:] + "}"
        if name in PLACEHOLDERS:
            return PLACEHOLDERS[name]
        raise Unexpected(
            f"{where}: no placeholder for ${{{name}}}; known variables: {', '.join(sorted(PLACEHOLDERS))}"
        )

    return _VAR.sub(replace, text)


def render(value, where="PolicyDocument"):
    """The policy document with every intrinsic replaced by its placeholder text."""
    if isinstance(value, list):
        return [render(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                if arg not in PLACEHOLDERS:
                    raise Unexpected(f"{where}: no placeholder for !Ref {arg}")
                return PLACEHOLDERS[arg]
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return _sub(arg, where)
                if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
                    unknown = sorted(set(arg[1]) - set(PLACEHOLDERS))
                    if unknown:
                        raise Unexpected(f"{where}: no placeholder for Fn::Sub variable(s) {unknown}")
                    return _sub(arg[0], where)
                raise Unexpected(f"{where}: malformed Fn::Sub {arg!r}")
            if key.startswith("Fn::") or key == "Condition":
                raise Unexpected(
                    f"{where}: {key} cannot be rendered with placeholders; use !Sub with "
                    f"variables named {', '.join(sorted(PLACEHOLDERS))}"
                )
        return {k: render(v, f"{where}.{k}") for k, v in value.items()}
    return value


# ------------------------------------------------------------------ comparing


def _as_list(value):
    return value if isinstance(value, list) else [value]


def normalise_statement(statement):
    """A statement with every string-or-list field as a sorted list, so spelling does not matter."""
    out = {}
    for key, value in statement.items():
        if key in ("Action", "NotAction", "Resource", "NotResource"):
            out[key] = sorted(_as_list(value))
        elif key == "Condition":
            out[key] = {op: {k: sorted(_as_list(v)) for k, v in body.items()} for op, body in value.items()}
        else:
            out[key] = value
    return out


def statements(policy, name):
    body = policy.get("Statement") if isinstance(policy, dict) else None
    if body is None:
        raise Unexpected(f"{name} has no Statement")
    return [normalise_statement(s) for s in _as_list(body)]


def allowed_actions(stmts):
    return sorted({a for s in stmts if s.get("Effect") == "Allow" for a in s.get("Action", [])})


def policy_drift(rendered, expected, template_name, json_name):
    problems = []
    if rendered.get("Version") != expected.get("Version"):
        problems.append(f"Version: {template_name} has {rendered.get('Version')!r}, {json_name} has {expected.get('Version')!r}")
    ours, theirs = statements(rendered, template_name), statements(expected, json_name)
    sids_ours, sids_theirs = [s.get("Sid") for s in ours], [s.get("Sid") for s in theirs]
    for sid in sids_ours:
        if sid not in sids_theirs:
            problems.append(f"statement {sid!r} is in {template_name} but not in {json_name}")
    for sid in sids_theirs:
        if sid not in sids_ours:
            problems.append(f"statement {sid!r} is in {json_name} but not in {template_name}")
    if not problems and sids_ours != sids_theirs:
        problems.append(f"statement order differs: {template_name} {sids_ours}, {json_name} {sids_theirs}")
    by_sid = {s.get("Sid"): s for s in theirs}
    for s in ours:
        other = by_sid.get(s.get("Sid"))
        if other is None or other == s:
            continue
        for key in sorted(set(s) | set(other)):
            if s.get(key) != other.get(key):
                problems.append(
                    f"statement {s.get('Sid')!r} {key}: {template_name} has {json.dumps(s.get(key))}, "
                    f"{json_name} has {json.dumps(other.get(key))}"
                )
    for s in ours:
        if s.get("Effect") != "Allow":
            problems.append(f"statement {s.get('Sid')!r} is not an Allow statement")
        wild = [a for a in s.get("Action", []) if "*" in a]
        if wild or "NotAction" in s:
            problems.append(f"statement {s.get('Sid')!r} uses wildcard or NotAction actions {wild}")
    return problems


def organization_problems(single_account_actions):
    """Rule 4: the member role and the organization collector against the single-account policy."""
    problems = []
    read = {a for a in single_account_actions if not a.startswith("s3:")}
    member_doc = load_template(HERE / "patchtrail-member-role.yaml")
    member = member_doc["Resources"]["ReadRole"]["Properties"]
    if member.get("ManagedPolicyArns"):
        problems.append("the member role must have no managed policies")
    member_actions = set(allowed_actions(statements(render(member["Policies"][0]["PolicyDocument"]), "member role")))
    if member_actions != read | {"ec2:DescribeRegions"}:
        problems.append(f"the member role allows {sorted(member_actions)}; a scope needs {sorted(read | {'ec2:DescribeRegions'})}")
    trust = member["AssumeRolePolicyDocument"]["Statement"]
    if [st.get("Principal") for st in trust] != [{"AWS": {"Ref": "CollectorRoleArn"}}]:
        problems.append("the member role must trust the collector's role alone")
    org_doc = load_template(HERE / "patchtrail-organization.yaml")
    collector = org_doc["Resources"]["CollectorRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    stmts = statements(render(collector), "organization collector")
    org_actions = {a for a in allowed_actions(stmts) if not a.startswith(("s3:", "logs:"))}
    if org_actions != read | {"ec2:DescribeRegions", "organizations:ListAccounts", "sts:AssumeRole"}:
        problems.append(f"the organization collector allows {sorted(org_actions)}")
    for st in stmts:
        if "sts:AssumeRole" in _as_list(st.get("Action")) and any(r == "*" for r in _as_list(st.get("Resource"))):
            problems.append("the organization collector may assume any role; limit sts:AssumeRole to the member role")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", action="store_true", help="print only the sorted list of the Lambda policy's actions")
    parser.add_argument("--template", default=HERE / "patchtrail.yaml", type=Path)
    parser.add_argument("--lambda-policy", default=HERE / "iam" / "patchtrail-lambda-policy.json", type=Path)
    parser.add_argument("--cli-policy", default=HERE / "iam" / "patchtrail-cli-policy.json", type=Path)
    args = parser.parse_args(argv)

    try:
        template = load_template(args.template)
        role_name, role = lambda_role(template)
        problems = role_problems(template, role_name, role)
        inline = ((role.get("Properties") or {}).get("Policies") or [{}])[0]
        if "PolicyDocument" not in inline:
            raise Unexpected(f"{role_name} has no inline PolicyDocument")
        rendered = render(inline["PolicyDocument"], f"{role_name}.Policies[0].PolicyDocument")
        expected = load_json(args.lambda_policy)
        cli = load_json(args.cli_policy)
        template_name = f"{args.template.name} ({role_name})"
        problems += policy_drift(rendered, expected, template_name, args.lambda_policy.name)

        actions = allowed_actions(statements(rendered, template_name))
        non_logs = {a for a in actions if not a.startswith("logs:")}
        cli_actions = set(allowed_actions(statements(cli, args.cli_policy.name)))
        if cli_actions != non_logs:
            if non_logs - cli_actions:
                problems.append(f"{args.cli_policy.name} lacks {sorted(non_logs - cli_actions)} that the Lambda policy allows")
            if cli_actions - non_logs:
                problems.append(f"{args.cli_policy.name} allows {sorted(cli_actions - non_logs)} that the Lambda policy does not")
        problems += organization_problems(non_logs)
    except Unexpected as e:
        print(f"check_policies: {e}", file=sys.stderr)
        return 2

    if problems:
        print("check_policies: the IAM policies have drifted:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(json.dumps(actions if args.actions else {"actions": actions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
