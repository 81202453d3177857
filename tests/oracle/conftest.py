import pytest

import tally


def pytest_report_header(config):
    return f"oracle: seed {tally.SEED} (ORACLE_SEED={tally.SEED} replays this session's histories)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Every failure names the session's seed, so that it can be replayed."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        rep.sections.append(("oracle seed", f"replay with ORACLE_SEED={tally.SEED}"))


def pytest_terminal_summary(terminalreporter):
    w = terminalreporter.write_line
    w(f"oracle: seed {tally.SEED}: replay with ORACLE_SEED={tally.SEED}")
    if tally.findings:
        f = tally.findings
        hist = {k[len("histories "):]: v for k, v in f.items() if k.startswith("histories ")}
        w(f"oracle §8: {sum(v for k, v in hist.items() if k in ('parquet', 'jsonl', 'seed'))} finding histories "
          f"({hist}), {f['findings']} findings, {f['tables sla']} sla and {f['tables exposure']} exposure tables "
          f"compared; " + ", ".join(f"{k} {v}" for k, v in sorted(f.items())
                                     if k.startswith(("status ", "resolution ", "waiver ", "clock ")) or k == "kev"))
    if not tally.examples:
        return
    w(f"oracle: {sum(tally.examples.values())} histories ({dict(tally.examples)}), "
      f"{sum(tally.reports.values())} report tables compared")
    w(f"oracle: outputs parsed back: {dict(sorted((f'{r}/{f}', n) for (r, f), n in tally.outputs.items()))}")
    w(f"oracle: refused imports (§1.6): {dict(tally.refusals)}")
    fewest = sorted(tally.transitions.items(), key=lambda kv: kv[1])[:3]
    w(f"oracle: {len(tally.transitions)} distinct class transitions (§6.2) compared (fewest: {fewest}), "
      f"{len(tally.changes)} distinct change names: {sorted(tally.changes)}")
