"""Counters shared by the property tests and conftest's end-of-session summary."""
from collections import Counter

examples = Counter()  # format -> examples run
reports = Counter()  # report table -> invocations compared
transitions = Counter()  # (from_class, to_class) compared against the product (§6.2), "absent" included
changes = Counter()  # change names compared (§6.2 / §6.3)
failed = Counter()  # format -> examples with a disagreement
