"""Prints a CloudFormation template (YAML with short-form tags) as JSON in long form, read with
deploy/check_policies.py's loader, for tests that look at its structure.

usage: template_json.py TEMPLATE
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))
from check_policies import load_template  # noqa: E402

json.dump(load_template(sys.argv[1]), sys.stdout)
