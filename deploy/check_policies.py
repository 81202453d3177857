#!/usr/bin/env python3
"""Checks the IAM policies of every role of patchtrail's templates, each against what it must allow.

1. The collector Lambda's inline policy in deploy/patchtrail.yaml, rendered with the placeholders
   BUCKET, PREFIX, REGION, ACCOUNT and FUNCTION in place of its ${...} variables (optional statements
   left out), must be statement-for-statement equal to deploy/iam/patchtrail-lambda-policy.json, and
   deploy/iam/patchtrail-cli-policy.json must allow exactly its actions minus the logs:* ones.
2. Every AWS::IAM::Role of every template has exactly one inline policy and nothing else (no managed
   policies, no separate policy resources), Allow statements only, no wildcard or NotAction actions,
   and a rule below that says what it must allow: a role no rule covers is an error. A statement
   under a condition (!If) must be one of the known optional ones (UseHistoryKey: kms:Decrypt and
   kms:GenerateDataKey on the key parameter; ExportFindings: securityhub:BatchImportFindings on the
   account's own default product). A service trust other than Lambda's carries
   aws:SourceAccount (IAM User Guide, "The confused deputy problem").
3. Organization collector (patchtrail-organization.yaml): the single-account read actions plus
   ec2:DescribeRegions, organizations:ListAccounts and sts:AssumeRole on the member role's name only, in
   the organization only (aws:ResourceOrgID = ${aws:PrincipalOrgID});
   S3 on the history prefix and the working bucket only.
4. State machine role: exactly what its definition needs, derived from the definition itself: each
   lambda:invoke task's function (and its versions), a Distributed Map's child executions
   (states:StartExecution on the state machine, DescribeExecution/StopExecution on its executions
   `execution:<machine>:*`, RedriveExecution on its Map Runs' `execution:<machine>/*:*`),
   its ItemReader (s3:GetObject) and ResultWriter (s3:PutObject, GetObject, ListMultipartUploadParts,
   AbortMultipartUpload) keys (a fixed key, or the execution's folder `*/<rest>`), and the log delivery actions of a LoggingConfiguration (Step
   Functions Developer Guide, "IAM policies for Distributed Map states", "Logging using CloudWatch
   Logs"). Any other task resource is an error until a rule for it is written here.
5. Scheduler roles (both templates): exactly starting their schedule's target (states:StartExecution
   or lambda:InvokeFunction) and sending to its dead-letter queue.
6. Member role (patchtrail-member-role.yaml): exactly the read actions a scope calls plus
   ec2:DescribeRegions; trusted by the collector account's root with an aws:PrincipalArn condition on
   the collector role's name (so it works whichever stack is deployed first and survives the collector
   role being recreated), with or without the external id; its defaults match the organization stack's.
7. Organizations delegation policy (patchtrail-delegation-policy.yaml): organizations:ListAccounts
   only, for the delegated administrator's account.

On success prints {"actions": [...]} (the single-account Lambda policy's allowed actions, sorted);
with --actions prints only the sorted list. On drift prints what differs to stderr and exits 1;
exits 2 when a file cannot be read or a template has an unexpected shape.

Needs python3 and PyYAML (which cfn-lint installs).
"""

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

# ${...} variables of the templates' policies and what stands in their place in the JSON documents.
# "Bucket" and "Function" are Fn::Sub-local variables; the others are parameters or pseudo parameters.
PLACEHOLDERS = {
    "AWS::Partition": "aws",
    "AWS::Region": "REGION",
    "AWS::AccountId": "ACCOUNT",
    "Prefix": "PREFIX",
    "Bucket": "BUCKET",
    "Function": "FUNCTION",
    "MemberRoleName": "MEMBER_ROLE",
    "RoleName": "MEMBER_ROLE",
    "HistoryBucketName": "BUCKET",
    "AWS::StackName": "STACK",
    "KmsKeyArn": "KMS_KEY",
    "HistoryKmsKeyArn": "KMS_KEY",
    "CollectorAccountId": "COLLECTOR_ACCOUNT",
    "CollectorRoleName": "COLLECTOR_ROLE",
    "ExternalId": "EXTERNAL_ID",
    "DelegatedAdministratorAccountId": "DELEGATED_ADMIN",
}

READ_ACTIONS_EXTRA = {"ec2:DescribeRegions"}
# Statements a template may add under a condition, and what each may allow.
# ExportFindings (SecurityHubExport): BatchImportFindings on the account's own default product, in
# the stack's region (single account) or any region its scopes are in (organization, member role).
OPTIONAL_STATEMENTS = {
    "UseHistoryKey": [{"Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": ["KMS_KEY"]}],
    "ExportFindings": [
        {"Action": ["securityhub:BatchImportFindings"],
         "Resource": [f"arn:aws:securityhub:{region}:ACCOUNT:product/ACCOUNT/default"]}
        for region in ("REGION", "*")
    ],
}
# What a LoggingConfiguration needs (Developer Guide, "Logging using CloudWatch Logs", IAM policy).
LOG_DELIVERY = ["logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups",
                "logs:DescribeResourcePolicies", "logs:GetLogDelivery", "logs:ListLogDeliveries",
                "logs:PutResourcePolicy", "logs:UpdateLogDelivery"]
# What a ResultWriter needs (Developer Guide, "IAM policies for ResultWriter").
RESULT_WRITER = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"]


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


# ------------------------------------------------------------------ rendering with placeholders

_VAR = re.compile(r"\$\{([^}]*)\}")
NO_VALUE = object()


class Renderer:
    """Renders a template's values with placeholders: parameters as PLACEHOLDERS says (others as
    PARAM(Name)), a resource's
    Ref as REF(Name) (a bucket's Arn as arn:aws:s3:::REF(Name)), other attributes as Name.Attribute;
    !If by `conditions` (True: every optional part in, False: all out)."""

    def __init__(self, template, conditions):
        self.resources = template["Resources"]
        self.parameters = template.get("Parameters") or {}
        self.conditions = conditions

    def _name(self, name, where):
        if name in PLACEHOLDERS:
            return PLACEHOLDERS[name]
        if name in self.parameters:
            return f"PARAM({name})"
        if name in self.resources:
            return f"REF({name})"
        if "." in name:
            resource, attribute = name.split(".", 1)
            return self._attribute(resource, attribute, where)
        raise Unexpected(f"{where}: no placeholder for ${{{name}}}; known: {', '.join(sorted(PLACEHOLDERS))}")

    def _attribute(self, resource, attribute, where):
        if resource not in self.resources:
            raise Unexpected(f"{where}: !GetAtt of an unknown resource {resource}")
        if self.resources[resource].get("Type") == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::REF({resource})"
        return f"{resource}.{attribute}"

    def _sub(self, text, where, local=()):
        def replace(m):
            name = m.group(1)
            if name.startswith("!"):  # ${!Literal} is the literal text ${Literal}
                return "${" + name[1:] + "}"
            if name in local:
                return local[name]
            return self._name(name, where)

        return _VAR.sub(replace, text)

    def __call__(self, value, where="PolicyDocument"):
        if isinstance(value, list):
            items = [self(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in items if v is not NO_VALUE]
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key == "Ref":
                    return NO_VALUE if arg == "AWS::NoValue" else self._name(arg, where)
                if key == "Fn::GetAtt":
                    return self._attribute(arg[0], arg[1], where)
                if key == "Fn::If":
                    return self(arg[1] if self.conditions else arg[2], where)
                if key == "Fn::Sub":
                    if isinstance(arg, str):
                        return self._sub(arg, where)
                    if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
                        # A local variable named like a placeholder stands for it (Bucket: BUCKET).
                        local = {k: PLACEHOLDERS.get(k) or str(self(v, f"{where}.{k}")) for k, v in arg[1].items()}
                        return self._sub(arg[0], where, local)
                    raise Unexpected(f"{where}: malformed Fn::Sub {arg!r}")
                if key.startswith("Fn::") or key == "Condition":
                    raise Unexpected(f"{where}: {key} cannot be rendered with placeholders")
            rendered = {k: self(v, f"{where}.{k}") for k, v in value.items()}
            return {k: v for k, v in rendered.items() if v is not NO_VALUE}
        return value


def render(value, where="PolicyDocument", template=None, conditions=False):
    """`value` rendered with placeholders (see Renderer)."""
    return Renderer(template or {"Resources": {}}, conditions)(value, where)


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


def grants(stmts):
    """action -> the resources it is allowed on."""
    out = defaultdict(set)
    for s in stmts:
        if s.get("Effect") == "Allow":
            for action in s.get("Action", []):
                out[action].update(s.get("Resource", []))
    return out


def grant_drift(name, have, need):
    problems = []
    for action in sorted(set(have) | set(need)):
        if action not in have:
            problems.append(f"{name} lacks {action} on {sorted(need[action])}")
        elif action not in need:
            problems.append(f"{name} allows {action}, which nothing it does needs")
        elif have[action] != need[action]:
            problems.append(f"{name} allows {action} on {sorted(have[action])}; it needs exactly {sorted(need[action])}")
    return problems


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
    return problems


# ------------------------------------------------------------------ every role


class Role:
    """A role of a template: its policy rendered without and with the optional statements."""

    def __init__(self, template, path, name):
        self.template, self.path, self.name = template, path, name
        self.label = f"{path.name} {name}"
        props = template["Resources"][name].get("Properties") or {}
        self.props = props
        policies = props.get("Policies") or []
        self.problems = []
        if props.get("ManagedPolicyArns"):
            self.problems.append(f"{self.label} has managed policies {props['ManagedPolicyArns']!r}; it must have none")
        if len(policies) != 1 or "PolicyDocument" not in policies[0]:
            self.problems.append(f"{self.label} must have exactly one inline policy, found {len(policies)}")
        for other, res in template["Resources"].items():
            if res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
                if f'"Ref": "{name}"' in json.dumps(res.get("Properties") or {}):
                    self.problems.append(f"{other} ({res['Type']}) attaches more permissions to {self.label}")
        document = policies[0].get("PolicyDocument", {"Statement": []}) if policies else {"Statement": []}
        self.raw = document
        self.base = statements(render(document, self.label, template, False), self.label)
        self.full = statements(render(document, self.label, template, True), self.label)
        self.trust = render(props.get("AssumeRolePolicyDocument") or {}, f"{self.label} trust", template, True)
        self.trust_without = render(props.get("AssumeRolePolicyDocument") or {}, f"{self.label} trust", template, False)
        for s in self.full:
            if s.get("Effect") != "Allow":
                self.problems.append(f"{self.label} statement {s.get('Sid')!r} is not an Allow statement")
            wild = [a for a in s.get("Action", []) if "*" in a]
            if wild or "NotAction" in s:
                self.problems.append(f"{self.label} statement {s.get('Sid')!r} uses wildcard or NotAction actions {wild}")
        optional = [s for s in self.full if s not in self.base]
        for s in optional:
            forms = OPTIONAL_STATEMENTS.get(s.get("Sid"), [])
            if not any({k: s.get(k) for k in known} == known for known in forms):
                self.problems.append(f"{self.label} has an optional statement {s} that is not a known one "
                                     f"({', '.join(OPTIONAL_STATEMENTS)})")
        for st in _as_list(self.trust.get("Statement", [])):
            service = (st.get("Principal") or {}).get("Service")
            if service and service != "lambda.amazonaws.com":
                condition = (st.get("Condition") or {}).get("StringEquals", {})
                if condition.get("aws:SourceAccount") != "ACCOUNT":
                    self.problems.append(f"{self.label} trusts {service} without aws:SourceAccount = this account")

    def grants(self, full=False):
        """The role's grants, the known optional statements left out unless `full`."""
        return grants(self.full if full else self.base)


def roles_of(template, path):
    return {name: Role(template, path, name) for name, r in template["Resources"].items() if r.get("Type") == "AWS::IAM::Role"}


def role_of_getatt(value):
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"] and value["Fn::GetAtt"][1] == "Arn":
        return value["Fn::GetAtt"][0]
    return None


def lambda_role_name(template):
    functions = [r for r in template["Resources"].values() if r.get("Type") == "AWS::Lambda::Function"]
    if len(functions) != 1:
        raise Unexpected(f"expected exactly one AWS::Lambda::Function, found {len(functions)}")
    name = role_of_getatt((functions[0].get("Properties") or {}).get("Role"))
    if name is None or template["Resources"].get(name, {}).get("Type") != "AWS::IAM::Role":
        raise Unexpected("the function's Role must be !GetAtt <Role>.Arn of a role in the same template")
    return name


def scheduler_needs(template, role_name, r):
    """What the schedules that run as `role_name` need: start their target, dead-letter to their queue."""
    need = defaultdict(set)
    for name, res in template["Resources"].items():
        if res.get("Type") != "AWS::Scheduler::Schedule":
            continue
        target = res["Properties"]["Target"]
        if role_of_getatt(target.get("RoleArn")) != role_name:
            continue
        arn = target["Arn"]
        kind = None
        if isinstance(arn, dict) and "Ref" in arn:
            kind = template["Resources"].get(arn["Ref"], {}).get("Type")
        elif role_of_getatt(arn):
            kind = template["Resources"].get(role_of_getatt(arn), {}).get("Type")
        action = {"AWS::StepFunctions::StateMachine": "states:StartExecution",
                  "AWS::Lambda::Function": "lambda:InvokeFunction"}.get(kind)
        if action is None:
            raise Unexpected(f"{name}: no rule for a schedule target of type {kind}; add one to check_policies.py")
        need[action].add(r(arn, f"{name}.Target.Arn"))
        if target.get("DeadLetterConfig"):
            need["sqs:SendMessage"].add(r(target["DeadLetterConfig"]["Arn"], f"{name}.DeadLetterConfig"))
    return need


def state_machine_needs(template, role_name, r):
    """What the state machines that run as `role_name` need, from their definitions."""
    need = defaultdict(set)
    for name, res in template["Resources"].items():
        if res.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        props = res["Properties"]
        if role_of_getatt(props.get("RoleArn")) != role_name:
            continue
        text = json.dumps(props["Definition"])
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + key + "}", str(r(value, f"{name}.DefinitionSubstitutions.{key}")))
        machine = r(props["StateMachineName"], f"{name}.StateMachineName")
        arn = f"arn:aws:states:REGION:ACCOUNT:stateMachine:{machine}"
        # Step Functions Developer Guide, "IAM policies for using Distributed Map states": the child
        # executions are `execution:<machine>:*`, a Map Run's redriven ones `execution:<machine>/<label>:*`.
        executions = f"arn:aws:states:REGION:ACCOUNT:execution:{machine}:*"
        map_runs = f"arn:aws:states:REGION:ACCOUNT:execution:{machine}/*:*"

        def bucket_of(config, where):
            args = config.get("Arguments") or config.get("Parameters") or {}
            bucket = args.get("Bucket")
            if not isinstance(bucket, str) or bucket.startswith("{%"):
                raise Unexpected(f"{name} {where}: its Bucket must be fixed in the definition for its policy to be checked")
            return bucket if bucket.startswith("arn:") else f"arn:aws:s3:::{bucket}"

        def key_pattern(config, field, where):
            """The keys `field` (Key or Prefix) can name: a fixed text as it is, or the execution's
            own folder, `{% $states.context.Execution.Name & '/<rest>' %}`, as `*/<rest>`."""
            args = config.get("Arguments") or config.get("Parameters") or {}
            value = args.get(field)
            if isinstance(value, str) and not value.startswith("{%"):
                return value
            m = re.fullmatch(r"\{%\s*\$states\.context\.Execution\.Name\s*&\s*'(/[^']+)'\s*%\}", value or "")
            if not m:
                raise Unexpected(f"{name} {where}: its {field} must be fixed or the execution's folder for its policy to be checked")
            return "*" + m.group(1)

        def visit(states):
            for state_name, state in states.items():
                where = f"{name} state {state_name}"
                if state.get("Type") == "Task":
                    resource = state["Resource"]
                    if resource.endswith(":states:::lambda:invoke"):
                        function = state["Arguments"]["FunctionName"]
                        need["lambda:InvokeFunction"].update({function, f"{function}:*"})
                    else:
                        raise Unexpected(f"{where}: no rule for task resource {resource}; add its actions to check_policies.py")
                if state.get("Type") == "Map":
                    processor = state.get("ItemProcessor") or state.get("Iterator") or {}
                    if (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED":
                        need["states:StartExecution"].add(arn)
                        need["states:DescribeExecution"].add(executions)
                        need["states:StopExecution"].add(executions)
                        need["states:RedriveExecution"].add(map_runs)
                    reader = state.get("ItemReader")
                    if reader:
                        if not reader["Resource"].endswith(":states:::s3:getObject"):
                            raise Unexpected(f"{where}: no rule for ItemReader {reader['Resource']}")
                        need["s3:GetObject"].add(bucket_of(reader, "ItemReader") + "/"
                                                 + key_pattern(reader, "Key", "ItemReader"))
                    writer = state.get("ResultWriter")
                    if writer:
                        prefix = key_pattern(writer, "Prefix", "ResultWriter")
                        for action in RESULT_WRITER:
                            need[action].add(bucket_of(writer, "ResultWriter") + "/" + prefix + "/*")
                    visit(processor.get("States") or {})

        visit(json.loads(text)["States"])
        if props.get("LoggingConfiguration"):
            for action in LOG_DELIVERY:
                need[action].add("*")
    return need


def member_problems(member_path, org_template):
    problems = []
    member_doc = load_template(member_path)
    roles = roles_of(member_doc, member_path)
    if list(roles) != ["ReadRole"]:
        raise Unexpected(f"{member_path.name} must have one role, ReadRole; found {list(roles)}")
    member = roles["ReadRole"]
    problems += member.problems
    read = {"ec2:DescribeInstances", "ssm:DescribeAvailablePatches", "ssm:DescribeInstanceInformation",
            "ssm:DescribeInstancePatches",
            "ssm:DescribeInstancePatchStates", "sts:GetCallerIdentity"}
    actions = set(member.grants())
    if actions != read | READ_ACTIONS_EXTRA:
        problems.append(f"the member role allows {sorted(actions)}; a scope needs {sorted(read | READ_ACTIONS_EXTRA)}")
    principal_arn = "arn:aws:iam::COLLECTOR_ACCOUNT:role/COLLECTOR_ROLE"
    for trust, external in ((member.trust, True), (member.trust_without, False)):
        stmts = _as_list(trust.get("Statement", []))
        expected = {"StringEquals": {"sts:ExternalId": "EXTERNAL_ID"}} if external else {}
        expected = {"ArnEquals": {"aws:PrincipalArn": principal_arn}, **expected}
        if len(stmts) != 1 or stmts[0].get("Principal") != {"AWS": "arn:aws:iam::COLLECTOR_ACCOUNT:root"} \
                or stmts[0].get("Action") != "sts:AssumeRole" or stmts[0].get("Condition") != expected:
            problems.append(
                f"the member role must trust the collector account's root on condition aws:PrincipalArn = "
                f"{principal_arn}{' and the external id' if external else ''} (a role ARN as principal must exist "
                f"before the member role and breaks when the collector role is recreated); found {stmts}")
    defaults = lambda doc, name: (doc.get("Parameters", {}).get(name) or {}).get("Default")  # noqa: E731
    for member_param, org_param in (("RoleName", "MemberRoleName"), ("CollectorRoleName", "CollectorRoleName")):
        if defaults(member_doc, member_param) != defaults(org_template, org_param):
            problems.append(f"{member_path.name} {member_param} defaults to {defaults(member_doc, member_param)!r}, "
                            f"the organization stack's {org_param} to {defaults(org_template, org_param)!r}")
    return problems, read


def delegation_problems(path):
    doc = load_template(path)
    policies = [r for r in doc["Resources"].values() if r.get("Type") == "AWS::Organizations::ResourcePolicy"]
    if len(policies) != 1 or any(r.get("Type") == "AWS::IAM::Role" for r in doc["Resources"].values()):
        raise Unexpected(f"{path.name} must hold one AWS::Organizations::ResourcePolicy and no role")
    stmts = statements(render(policies[0]["Properties"]["Content"], path.name, doc, True), path.name)
    expected = [{"Sid": stmts[0].get("Sid"), "Effect": "Allow",
                 "Principal": {"AWS": "arn:aws:iam::DELEGATED_ADMIN:root"},
                 "Action": ["organizations:ListAccounts"], "Resource": ["*"]}] if stmts else []
    if stmts != expected:
        return [f"{path.name} must allow organizations:ListAccounts alone, to the delegated administrator; found {stmts}"]
    return []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", action="store_true", help="print only the sorted list of the Lambda policy's actions")
    parser.add_argument("--template", default=HERE / "patchtrail.yaml", type=Path)
    parser.add_argument("--org-template", default=HERE / "patchtrail-organization.yaml", type=Path)
    parser.add_argument("--member-template", default=HERE / "patchtrail-member-role.yaml", type=Path)
    parser.add_argument("--delegation-template", default=HERE / "patchtrail-delegation-policy.yaml", type=Path)
    parser.add_argument("--lambda-policy", default=HERE / "iam" / "patchtrail-lambda-policy.json", type=Path)
    parser.add_argument("--cli-policy", default=HERE / "iam" / "patchtrail-cli-policy.json", type=Path)
    args = parser.parse_args(argv)

    try:
        problems = []
        # 1. The single-account stack.
        single = load_template(args.template)
        single_roles = roles_of(single, args.template)
        collector_name = lambda_role_name(single)
        collector = single_roles[collector_name]
        rendered = render(collector.raw, collector.label, single, False)
        problems += policy_drift(rendered, load_json(args.lambda_policy), collector.label, args.lambda_policy.name)
        actions = allowed_actions(collector.base)
        non_logs = {a for a in actions if not a.startswith("logs:")}
        cli_actions = set(allowed_actions(statements(load_json(args.cli_policy), args.cli_policy.name)))
        if cli_actions != non_logs:
            if non_logs - cli_actions:
                problems.append(f"{args.cli_policy.name} lacks {sorted(non_logs - cli_actions)} that the Lambda policy allows")
            if cli_actions - non_logs:
                problems.append(f"{args.cli_policy.name} allows {sorted(cli_actions - non_logs)} that the Lambda policy does not")

        # 2-6. Every role of every template, each by its rule.
        org = load_template(args.org_template)
        member, read = member_problems(args.member_template, org)
        problems += member
        covered = {(args.template, collector_name)}
        for path, template in ((args.template, single), (args.org_template, org)):
            r = Renderer(template, True)
            for name, role in roles_of(template, path).items():
                problems += role.problems
                for rule in (scheduler_needs, state_machine_needs):
                    need = rule(template, name, r)
                    if need:
                        problems += grant_drift(role.label, role.grants(), need)
                        covered.add((path, name))
        org_collector_name = lambda_role_name(org)
        org_collector = roles_of(org, args.org_template)[org_collector_name]
        covered.add((args.org_template, org_collector_name))
        have = org_collector.grants()
        org_actions = {a for a in have if not a.startswith(("s3:", "logs:"))}
        if org_actions != read | READ_ACTIONS_EXTRA | {"organizations:ListAccounts", "sts:AssumeRole"}:
            problems.append(f"the organization collector allows {sorted(org_actions)}")
        if have.get("sts:AssumeRole") != {"arn:aws:iam::*:role/MEMBER_ROLE"}:
            problems.append(f"the organization collector may assume {sorted(have.get('sts:AssumeRole', []))}; "
                            f"limit sts:AssumeRole to the member role's name")
        in_org = {"StringEquals": {"aws:ResourceOrgID": ["${aws:PrincipalOrgID}"]}}
        listed = lambda c: {op: {k: _as_list(v) for k, v in kv.items()} for op, kv in (c or {}).items()}  # noqa: E731
        for st in org_collector.base:
            if "sts:AssumeRole" in _as_list(st.get("Action")) and listed(st.get("Condition")) != in_org:
                problems.append(f"the organization collector's sts:AssumeRole (statement {st.get('Sid')!r}) must carry "
                                f"the condition {in_org}, so that no role of that name outside the organization is "
                                f"assumed (IAM User Guide, aws:ResourceOrgID); found {st.get('Condition')}")
        s3 = {(a, res) for a in have if a.startswith("s3:") for res in have[a]}
        allowed_s3 = {("s3:ListBucket", "arn:aws:s3:::BUCKET"), ("s3:GetObject", "arn:aws:s3:::BUCKET/PREFIX/*"),
                      ("s3:PutObject", "arn:aws:s3:::BUCKET/PREFIX/*"),
                      ("s3:DeleteObject", "arn:aws:s3:::BUCKET/PREFIX/_patchtrail/pending/*"),
                      ("s3:DeleteObject", "arn:aws:s3:::BUCKET/PREFIX/_patchtrail/chain/create-only-probe-*"),
                      ("s3:ListBucket", "arn:aws:s3:::REF(WorkBucket)"),
                      ("s3:GetObject", "arn:aws:s3:::REF(WorkBucket)/*"), ("s3:PutObject", "arn:aws:s3:::REF(WorkBucket)/*")}
        if s3 != allowed_s3:
            problems.append(f"the organization collector's S3 access is {sorted(s3)}; it needs exactly {sorted(allowed_s3)}")
        for path, template in ((args.template, single), (args.org_template, org)):
            for name in roles_of(template, path):
                if (path, name) not in covered:
                    problems.append(f"no rule of check_policies.py covers role {name} of {path.name}: add one")
        # 7. The delegation policy.
        problems += delegation_problems(args.delegation_template)
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
