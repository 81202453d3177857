"""Fixed cases of what `patchtrail import` takes, refuses and stores (docs/semantics.md §1.3, §1.4, §1.6),
and of the collection window's rules (§4.1 rule 4, §4.2, §5.2) on hand-written histories.

Each case checks the store against the lines (storecheck.py) and the reports against the oracle
(oracle.py), whose input is the lines alone; the hand-written expectations check the oracle itself.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone

import pytest

import oracle as O
import storecheck
import tally
from test_reports import (FORMATS, NotInForce, compare, import_history, refused_import, report,
                          seed_workflow_project)

UTC = timezone.utc


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="patchtrail-oracle-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _inst(iid="i-0123456789abcdef0", scan="2026-02-28T03:00:00Z", patches=(), **kw):
    return {"instance_id": iid, "name": "web-1", "outcome": "ok", "last_scan_time": scan, "patches": list(patches), **kw}


def _patch(kb="KB5034441", state="Missing", title=None):
    return {"kb_id": kb, "title": title if title is not None else f"Update ({kb})", "classification": "SecurityUpdates",
            "severity": "Critical", "state": state}


def _line(t="2026-03-01T06:00:00Z", instances=None, **kw):
    return {"snapshot_time": t, "account_id": "111111111111", "region": "us-east-1",
            "instances": [_inst(patches=[_patch()])] if instances is None else instances, **kw}


GOOD = [_line("2026-02-22T06:00:00Z", instances=[_inst(scan="2026-02-21T03:00:00Z", patches=[_patch()])]),
        _line("2026-03-01T06:00:00Z", finished_at="2026-03-01T07:00:00Z")]

# §1.6, one line each: what import must refuse
REFUSED = {
    "instance_twice": _line(instances=[_inst(patches=[_patch()]), _inst(patches=[])]),
    "kb_twice": _line(instances=[_inst(patches=[_patch("KB1", "Missing"), _patch("KB1", "Installed", "again")])]),
    "scan_after_finish": _line(finished_at="2026-03-01T07:00:00Z",
                               instances=[_inst(scan="2026-03-01T07:00:00.000001Z")]),
    "scan_after_snapshot_no_finish": _line(instances=[_inst(scan="2026-03-01T06:00:01Z")]),
    "finish_before_snapshot": _line(finished_at="2026-03-01T05:59:59.999999Z", instances=[_inst(scan=None)]),
}


@pytest.mark.parametrize("kind,fmt", [(k, FORMATS[n % len(FORMATS)]) for n, k in enumerate(sorted(REFUSED))])
def test_import_refuses(kind, fmt, tmp):
    """§1.6: exit 2 and nothing written, whether the line comes first or after valid ones, into an empty
    store or one that already holds runs; the valid lines of the same file are not committed either. (Each
    kind in one store format here; the property tests draw every kind in every format.)"""
    problems = []
    fresh = os.path.join(tmp, "fresh")
    problems += [f"into an empty store: {p}" for p in refused_import(fresh, fmt, [REFUSED[kind], GOOD[0]])]
    if os.path.exists(fresh) and storecheck.listing(fresh):
        problems.append(f"into an empty store: files written: {sorted(storecheck.listing(fresh))}")
    store = os.path.join(tmp, "store")
    ids = import_history(store, fmt, GOOD)
    problems += [f"after {ids}: {p}" for p in refused_import(store, fmt, [GOOD[1], GOOD[0], REFUSED[kind]])]
    assert not problems, f"{kind} ({fmt}) {tally.replay()}:\n" + "\n".join(problems)


def test_import_takes_the_edges_of_what_it_refuses(tmp):
    """§1.6's limits, which import must take: a scan at the very instant the run finished, a finished_at equal
    to snapshot_time, the same instance in two lines, the same KBId on two instances of one line."""
    lines = [_line("2026-03-01T06:00:00Z", finished_at="2026-03-01T06:00:00Z",
                   instances=[_inst(scan="2026-03-01T06:00:00Z", patches=[_patch("KB1")]),
                              _inst("i-0123456789abcdef1", patches=[_patch("KB1")])]),
             _line("2026-03-02T06:00:00Z", finished_at="2026-03-02T09:00:00+00:00",
                   instances=[_inst(scan="2026-03-02T18:00:00+09:00", patches=[_patch("KB1")])])]
    store = os.path.join(tmp, "store")
    ids = import_history(store, "parquet", lines)
    problems = storecheck.check(store, "parquet", lines, ids)
    assert not problems, "\n".join(problems)


SPELLINGS = {  # as sent -> as stored (§1.3): only the API model's enum spellings are rewritten
    "INSTALLED": "Installed", "INSTALLED_OTHER": "InstalledOther", "INSTALLED_PENDING_REBOOT": "InstalledPendingReboot",
    "INSTALLED_REJECTED": "InstalledRejected", "MISSING": "Missing", "FAILED": "Failed",
    "NOT_APPLICABLE": "NotApplicable", "AVAILABLE_SECURITY_UPDATE": "AvailableSecurityUpdate",
    "InstalledPendingReboot": "InstalledPendingReboot", "Missing": "Missing",
    # neither the wire's nor the API model's spelling: kept as sent, and so of class `other` (§2.1, §2.2)
    "missing": "missing", "installedPendingReboot": "installedPendingReboot", "Installed_Other": "Installed_Other",
    "Installed Other": "Installed Other", "": "", "Superseded": "Superseded",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_state_spellings(fmt, tmp):
    """§1.3: the API model's spellings of a State are stored as the wire's; every other spelling is stored
    as sent and matched exactly (§2.2), so `missing` is of class `other`, not `missing`."""
    assert all(O.stored_state(k) == v for k, v in SPELLINGS.items())  # the oracle's reading of §1.3
    patches = [_patch(f"KB{n}", s) for n, s in enumerate(SPELLINGS)]
    lines = [_line(instances=[_inst(patches=patches)])]
    store = os.path.join(tmp, "store")
    ids = import_history(store, fmt, lines)
    problems = storecheck.check(store, fmt, lines, ids)
    S = O.history(lines, ids)
    rows, fleet, _, _ = O.summary(S, O.instant("2026-03-01", "UTC"))
    assert rows[0]["missing"] == 2 and rows[0]["installed"] == 2  # MISSING, Missing; INSTALLED, INSTALLED_OTHER
    problems += compare("summary --as-of 2026-03-01", rows, report(store, ["summary", "--as-of", "2026-03-01"]),
                        O.SUMMARY_COLUMNS)
    insts, _ = O.history_kb(S, "KB10")
    problems += compare("history --kb KB10 (sent as `missing`)", insts, report(store, ["history", "--kb", "KB10"]),
                        O.KB_INSTANCE_COLUMNS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("fmt", FORMATS)
def test_times_truncated_to_the_microsecond(fmt, tmp):
    """§1.4: finer digits are dropped, never rounded: a snapshot sent as the last nanosecond of a UTC day
    stays on that day (its run id, its partition, `--as-of` that day), in every offset it is written in."""
    lines = [
        _line("2026-03-01T23:59:59.999999999Z", finished_at="2026-03-01T23:59:59.9999999Z",
              instances=[_inst(scan="2026-03-01T23:59:59.999999999Z", last_ping_time="2026-03-01T23:00:00.0000005Z",
                               patches=[_patch()])]),
        _line("2026-03-03T08:59:59.999999999+09:00", finished_at="2026-03-03T12:00:00.0000009+09:00",
              instances=[_inst(scan="2026-03-02T23:59:59.9999995Z", patches=[_patch("KB2", "Installed")])]),
    ]
    store = os.path.join(tmp, "store")
    ids = import_history(store, fmt, lines)
    problems = storecheck.check(store, fmt, lines, ids)
    S = O.history(lines, ids)
    assert [r.snapshot_time for r in S.runs] == [datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
                                                 datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC)]
    for as_of in ("2026-03-01", "2026-03-02", "2026-03-02T23:59:59.999999Z", "2026-03-03T03:00:00.000000+00:00"):
        rows, fleet, _, _ = O.summary(S, O.instant(as_of, "UTC"))
        assert len(rows) == 1
        problems += compare(f"summary --as-of {as_of}", rows, report(store, ["summary", "--as-of", as_of]),
                            O.SUMMARY_COLUMNS)
    problems += compare("trend --from 2026-03-02 --to 2026-03-02", O.trend(S, O.start_of(datetime(2026, 3, 2).date(), "UTC"),
                                                                          O.end_of(datetime(2026, 3, 2).date(), "UTC")),
                        report(store, ["trend", "--from", "2026-03-02", "--to", "2026-03-02"]), O.TREND_COLUMNS)
    assert not problems, "\n".join(problems)


def test_seed_pages_keep_install_times_to_the_microsecond(tmp):
    """§1.4 "Times are kept to the microsecond": the seed layout's pages carry InstalledTime too."""
    lines = [_line(instances=[_inst(patches=[
        {**_patch("KB1", "Installed"), "installed_time": "2026-01-15T10:00:00.25Z"},
        {**_patch("KB2", "Installed"), "installed_time": "2025-12-31T23:59:59.999999999Z"},
        {**_patch("KB3", "Installed"), "installed_time": "2026-01-15T10:00:00Z", "cve_ids": "CVE-2024-1,CVE-2024-2"},
        {**_patch("KB4", "Missing"), "installed_time": None, "cve_ids": ""}])])]
    store = os.path.join(tmp, "store")
    ids = import_history(store, "seed", lines)
    problems = storecheck.check(store, "seed", lines, ids)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("fmt", FORMATS)
def test_collection_window(fmt, tmp):
    """§1.4/§4.1 rule 4/§4.2/§5.2 by hand: compliance and scan age are measured at finished_at, and a run is
    in force only once complete. Run A starts 2026-03-01T00:00Z and finishes at 10:00Z; run B of the same
    scope started before it (2026-02-28T23:00Z) and finished at 06:00Z, before A did: B is in force from
    06:00 until A is complete, and the run before both (Z) until 06:00."""
    snap_a, fin_a = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 10, tzinfo=UTC)
    D = timedelta(days=1)
    t = lambda x: x.isoformat().replace("+00:00", "Z")
    scans = {  # instance -> (last scan, compliance at finished_at with the default 14 days, scan age)
        "i-00000000000000001": (fin_a - 14 * D, "non_compliant", 14.0),
        "i-00000000000000002": (fin_a - 14 * D - timedelta(microseconds=1), "unknown", 14.0),
        "i-00000000000000003": (snap_a - 14 * D + timedelta(hours=1), "unknown", 14.4),  # fresh at snapshot_time
        "i-00000000000000004": (fin_a, "non_compliant", 0.0),
        "i-00000000000000005": (snap_a + timedelta(hours=5), "non_compliant", 0.2),  # read during the window
    }
    a = _line(t(snap_a), finished_at=t(fin_a), instances=[_inst(i, t(s), [_patch()]) for i, (s, _, _) in scans.items()])
    z = _line("2026-02-22T00:00:00Z", instances=[_inst("i-00000000000000009", "2026-02-21T00:00:00Z", [])])
    b = _line("2026-02-28T23:00:00Z", finished_at="2026-03-01T06:00:00Z",
              instances=[_inst("i-00000000000000008", "2026-03-01T04:00:00Z", [])])
    lines = [z, a, b]
    store = os.path.join(tmp, "store")
    ids = import_history(store, fmt, lines)
    problems = storecheck.check(store, fmt, lines, ids)
    S = O.history(lines, ids)
    expect = {  # as-of instant -> the run in force (by its line)
        "2026-03-01T04:59:59Z": z, "2026-03-01T05:30:00Z": z, "2026-03-01T06:00:00Z": b, "2026-03-01T09:59:59.999999Z": b,
        "2026-03-01T10:00:00Z": a, "2026-03-01": a,
    }
    for as_of, line in expect.items():
        rows, _, _, _ = O.summary(S, O.instant(as_of, "UTC"))
        assert {r["instance_id"] for r in rows} == {i["instance_id"] for i in line["instances"]}, as_of
        if line is a:
            for r in rows:
                _, c, age = scans[r["instance_id"]]
                assert (r["compliance"], round(r["scan_age_days"], 1)) == (c, age), r
        problems += compare(f"summary --as-of {as_of}", rows, report(store, ["summary", "--as-of", as_of]),
                            O.SUMMARY_COLUMNS)
    rows, counts = O.diff(S, O.instant("2026-03-01T05:30:00Z", "UTC"), O.instant("2026-03-01T10:00:00Z", "UTC"))
    problems += compare("diff --from 2026-03-01T05:30:00Z --to 2026-03-01T10:00:00Z", rows,
                        report(store, ["diff", "--from", "2026-03-01T05:30:00Z", "--to", "2026-03-01T10:00:00Z"]),
                        O.DIFF_COLUMNS)
    snaps, _ = O.history_instance(S, "i-00000000000000003", 14)
    problems += compare("history --instance i-00000000000000003", snaps,
                        report(store, ["history", "--instance", "i-00000000000000003"]), O.HISTORY_SNAPSHOT_COLUMNS)
    problems += compare("trend", O.trend(S, None, None), report(store, ["trend"]), O.TREND_COLUMNS)
    try:
        report(store, ["summary", "--as-of", "2026-02-21T23:59:59Z"])
        problems.append("summary --as-of 2026-02-21T23:59:59Z: produced before any run was complete (§5.4)")
    except NotInForce:
        pass
    assert not problems, "\n".join(problems)
