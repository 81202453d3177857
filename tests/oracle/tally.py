"""Counters shared by the property tests and conftest's end-of-session summary, and the session's seed."""
import os
import random
from collections import Counter

# Each session draws a fresh seed (ORACLE_SEED=<n> replays one); every property test derives its
# hypothesis seed from it, and every failure message names it.
SEED = int(os.environ["ORACLE_SEED"]) if os.environ.get("ORACLE_SEED") else random.SystemRandom().randrange(10**9)

examples = Counter()  # format -> examples run
reports = Counter()  # report table -> invocations compared
outputs = Counter()  # (report, output format) -> invocations parsed back and compared
transitions = Counter()  # (from_class, to_class) compared against the product (§6.2), "absent" included
changes = Counter()  # change names compared (§6.2 / §6.3)
refusals = Counter()  # §1.6 kinds import was shown and refused
failed = Counter()  # format -> examples with a disagreement
findings = Counter()  # test_findings.py (§8): histories, findings, statuses, resolutions, waiver states, tables


def replay():
    return f"(replay: ORACLE_SEED={SEED})"
