"""Checks the `aws` commands of Markdown files against the AWS CLI's own service models (botocore), so
that an operator copying them meets no unknown command or option, and against the templates they deploy.

For every `aws SERVICE COMMAND ...` in a ```sh block (continuation lines joined, `$(aws ...)` checked too):
- COMMAND is an operation of SERVICE (botocore's service model, the CLI's name for it), or one of the
  AWS CLI's own commands listed below with their options;
- every --option is a parameter of that operation (or a global option);
- `cloudformation deploy --template-file T` and `create-stack-set --template-body file://T`: every
  parameter given is one of T's, every parameter of T without a default is given, and a template that
  names IAM resources is deployed with CAPABILITY_NAMED_IAM (CloudFormation refuses it otherwise:
  "Acknowledging IAM resources in AWS CloudFormation templates").

usage: check_aws_commands.py REPO_ROOT FILE.md...
Prints JSON {"commands": N, "problems": [...]}; exits 1 when there are problems.
"""
import json
import re
import shlex
import sys
from pathlib import Path

import botocore.session
from botocore import xform_name

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))
from check_policies import load_template  # noqa: E402

GLOBAL = {"--region", "--output", "--query", "--profile", "--cli-binary-format", "--no-cli-pager", "--debug",
          "--endpoint-url", "--no-paginate", "--color"}
# AWS CLI commands that are not API operations (awscli customizations), with their options.
CUSTOM = {
    ("cloudformation", "deploy"): {"--template-file", "--stack-name", "--s3-bucket", "--force-upload", "--s3-prefix",
                                   "--kms-key-id", "--parameter-overrides", "--capabilities", "--no-execute-changeset",
                                   "--role-arn", "--notification-arns", "--fail-on-empty-changeset",
                                   "--no-fail-on-empty-changeset", "--tags", "--disable-rollback"},
    ("s3", "cp"): {"--recursive", "--acl", "--sse", "--sse-kms-key-id", "--content-type", "--exclude", "--include",
                   "--checksum-algorithm", "--storage-class", "--quiet", "--no-progress"},
}
SERVICES = {"stepfunctions": "stepfunctions", "s3api": "s3"}


def commands(markdown):
    """Each `aws ...` command line of the file's sh blocks, as a token list."""
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.S):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
            for inner in re.findall(r"\$\((aws [^)]*)\)", line):
                yield shlex.split(inner)
            line = re.sub(r"\$\([^)]*\)", "VALUE", line)
            start = line.find("aws ")
            if start == 0 or (start > 0 and line[start - 1] in " =;|&("):
                try:
                    yield shlex.split(line[start:])
                except ValueError as e:
                    yield ["aws", "?", "?", f"unparsable: {e}"]


def options(tokens):
    """{--option: [values]} of a token list after `aws SERVICE COMMAND`."""
    found, current = {}, None
    for t in tokens:
        if t.startswith("--"):
            current = t.split("=", 1)[0]
            found.setdefault(current, [])
            if "=" in t:
                found[current].append(t.split("=", 1)[1])
        elif current is not None:
            found[current].append(t)
    return found


def template_checks(root, label, template_path, given, capabilities):
    problems = []
    path = root / template_path
    if not path.exists():
        return [f"{label}: template {template_path} does not exist"]
    template = load_template(path)
    parameters = template.get("Parameters") or {}
    for name in given:
        if name not in parameters:
            problems.append(f"{label}: {template_path} has no parameter {name}")
    for name, spec in parameters.items():
        if "Default" not in spec and name not in given:
            problems.append(f"{label}: {template_path} needs {name}, which the command does not give")
    named_iam = any(r.get("Type", "").startswith("AWS::IAM::") and
                    any(k in (r.get("Properties") or {}) for k in ("RoleName", "PolicyName", "UserName", "GroupName"))
                    and r.get("Type") != "AWS::IAM::Policy"
                    for r in template["Resources"].values())
    if named_iam and "CAPABILITY_NAMED_IAM" not in capabilities:
        problems.append(f"{label}: {template_path} names IAM resources: give --capabilities CAPABILITY_NAMED_IAM")
    return problems


def check(root, tokens, session):
    label = " ".join(tokens[:3])
    if len(tokens) < 3:
        return [f"{label}: incomplete command"]
    service, command = tokens[1], tokens[2]
    opts = options(tokens[3:])
    custom = CUSTOM.get((service, command))
    if custom is not None:
        known = custom
    else:
        try:
            model = session.get_service_model(SERVICES.get(service, service))
        except Exception:  # noqa: BLE001 - botocore raises several kinds for an unknown service
            return [f"{label}: no AWS service {service!r}"]
        ops = {xform_name(op, "-"): op for op in model.operation_names}
        if command not in ops:
            return [f"{label}: {service} has no command {command!r}"]
        shape = model.operation_model(ops[command]).input_shape
        members = list(shape.members) if shape else []
        known = {"--" + xform_name(m, "-") for m in members} | {"--no-" + xform_name(m, "-") for m in members}
    problems = [f"{label}: unknown option {o}" for o in opts if o not in known and o not in GLOBAL]
    capabilities = " ".join(opts.get("--capabilities", []))
    if (service, command) == ("cloudformation", "deploy"):
        given = [v.split("=", 1)[0] for v in opts.get("--parameter-overrides", [])]
        problems += template_checks(root, label, opts.get("--template-file", ["?"])[0], given, capabilities)
    if (service, command) == ("cloudformation", "create-stack-set"):
        body = opts.get("--template-body", ["?"])[0].removeprefix("file://")
        given = [m.group(1) for v in opts.get("--parameters", []) for m in re.finditer(r"ParameterKey=([^,\s]+)", v)]
        problems += template_checks(root, label, body, given, capabilities)
    return problems


def main():
    root = Path(sys.argv[1])
    session = botocore.session.get_session()
    problems, count = [], 0
    for name in sys.argv[2:]:
        for tokens in commands((root / name).read_text()):
            count += 1
            problems += [f"{name}: {p}" for p in check(root, tokens, session)]
    json.dump({"commands": count, "problems": problems}, sys.stdout)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
