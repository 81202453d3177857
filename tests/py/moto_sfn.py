"""Running a Step Functions definition in moto's own interpreter, as both harnesses do
(run_seed_sfn.py: the seed article's workflow; run_organization_sfn.py: patchtrail's organization
definition). moto ships the interpreter but no JSONata engine and sends its SDK integrations to
AWS; this wires both to loopback: JSONata through jsonata-python, each service's client to the
endpoint `endpoint_for(service)` names. The module paths patched are moto's private ones, pinned by
requirements-test.lock.
"""
import sys
import time

import boto3


def run_in_moto(endpoint_for, jsonata_functions=None, on_client=None):
    """Makes moto execute state machines, evaluating JSONata with jsonata-python (registering
    `jsonata_functions`, name -> callable) and building each integration's client for
    `endpoint_for(service)`; `on_client(service, client)` may adjust a client before use."""
    from moto.core.config import default_user_config
    default_user_config["stepfunctions"]["execute_state_machine"] = True
    import jsonata
    import moto.stepfunctions.parser.asl.jsonata.jsonata as mj

    def evaluate(expression):
        expr = jsonata.Jsonata(expression)
        for name, fn in (jsonata_functions or {}).items():
            expr.register_lambda(name, fn)
        return expr.evaluate(None)

    mj._eval_jsonata = evaluate
    if jsonata_functions:
        # moto declares its own $uuid and friends as variables, which would shadow ours.
        import moto.stepfunctions.parser.asl.component.intrinsic.jsonata as ij
        for name in jsonata_functions:
            ij._DECLARATION_BY_VARIABLE_REFERENCE.pop(f"${name}", None)
    import moto.stepfunctions.parser.asl.utils.boto_client as bc
    original = bc.boto_client_for

    def boto_client_for(region, service, state_credentials=None):
        client = boto3.client(service, region_name=region, endpoint_url=endpoint_for(service),
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        if on_client:
            on_client(service, client)
        return client

    bc.boto_client_for = boto_client_for
    import moto.stepfunctions.parser.models  # noqa: F401  (loads every module that imported the original)
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("moto.stepfunctions") and \
                getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for


def wait_for(sfn, execution, timeout, poll):
    """The execution's description once it is no longer RUNNING, or after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        d = sfn.describe_execution(executionArn=execution)
        if d["status"] != "RUNNING" or time.time() > deadline:
            return d
        time.sleep(poll)
