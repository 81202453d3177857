import tally


def pytest_terminal_summary(terminalreporter):
    if not tally.examples:
        return
    w = terminalreporter.write_line
    w(f"oracle: {sum(tally.examples.values())} histories ({dict(tally.examples)}), "
      f"{sum(tally.reports.values())} report tables compared")
    w(f"oracle: {len(tally.transitions)} distinct class transitions (§6.2) compared, "
      f"{len(tally.changes)} distinct change names: {sorted(tally.changes)}")
