"""`report sla` and `report exposure` against the independent oracle of docs/semantics.md §8 (findings.py).

Random weekly histories of three to five months (gen.finding_scenarios) are written with `patchtrail import`
in each store format (with days of the seed's own workflow in the seed layout), then for each one:
1. `report sla --as-of D --policy P --waivers W --kev K` (tables findings, by_scope, waivers) at a date after
   the history (open findings breach there), with a policy that overrides some limits (some counted from the
   patch's release date, §8.3), a waiver file holding an active waiver (tag selector), an expired one (cve
   selector), an unused one and two on the expiry day's edge, and a KEV catalog in CISA's feed shape whose due
   dates fall before and after the policy's; the generated rows carry release dates, or none;
2. `report sla --as-of D` at a date inside the history (the default policy, no waivers), sometimes with a
   scope filter (§5.5);
3. `report exposure --as-of D --waivers W --kev K` (tables exposure, cves, without_cve_ids);
4. `report exposure --as-of D --cve C1,c2` (the CVEs in other case, one the history never names);
each with a random --tz and --stale-days, in JSON, compared row by row and column by column with the oracle's
answer computed from the import lines and seed pages alone; the notes must name the policy, waiver and KEV
files with their SHA-256. A fixed history checks every status, resolution and waiver state with hand-written
expectations (of the oracle) as well.

Run:  PATCHTRAIL_BIN=/path/to/patchtrail python -m pytest -q -p no:cacheprovider tests/oracle/test_findings.py
Size: FINDINGS_EXAMPLES (default 4) histories per store format; ORACLE_SEED=<n> replays a session.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import findings as FO
import gen
import oracle as O
import tally
from test_reports import BIN, ProductError, import_history, imported_history, write_seed_page

UTC = timezone.utc
EXAMPLES = int(os.environ.get("FINDINGS_EXAMPLES", "4"))
# Known disagreements to leave out while looking for others (comma-separated columns, or `waiver_order`):
# FINDINGS_TOLERATE=expired_waiver,waiver_order. Empty by default: every disagreement fails.
TOLERATE = {c for c in os.environ.get("FINDINGS_TOLERATE", "").split(",") if c}
FORMATS = ["parquet", "jsonl", "seed"]
POOL = ThreadPoolExecutor(max_workers=2)


# ---------------------------------------------------------------------------------------------
# Running the product
# ---------------------------------------------------------------------------------------------


class Refused(Exception):
    """The product refused the report (exit 2)."""


def fetch(store, args, table):
    """`patchtrail report ARGS --store S --format json --table T`: (notes or None, rows). With notes, JSON is
    {"notes": [...], "rows": [...]}; without, a bare array."""
    cmd = [BIN, "report", *args, "--store", store, "--format", "json", "--lang", "en", "--table", table]
    p = subprocess.run(cmd, capture_output=True, timeout=180)
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode == 2:
        raise Refused(err.strip())
    if p.returncode != 0:
        raise ProductError(f"`patchtrail {' '.join(cmd[1:])}` exited {p.returncode}:\n{err[-3000:]}")
    doc = json.loads(p.stdout.decode("utf-8"))
    if isinstance(doc, list):
        return None, doc
    if isinstance(doc, dict) and set(doc) == {"notes", "rows"}:
        return doc["notes"], doc["rows"]
    raise ProductError(f"`patchtrail {' '.join(cmd[1:])}`: neither an array nor {{notes, rows}}: {str(doc)[:300]}")


# ---------------------------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------------------------


def cell(col, v):
    """A value as compared: times as UTC instants to the µs (RFC 3339 in the product's JSON), numbers as
    numbers, dates as YYYY-MM-DD, the rest as is."""
    if col in FO.TIME_COLUMNS:
        if v is None or v == "":
            return None
        try:
            return O.parse_ts(v).isoformat(timespec="microseconds")
        except (TypeError, ValueError):
            return ("<not an RFC 3339 time>", v)
    if col in FO.DAY_COLUMNS or col in FO.COUNT_COLUMNS:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return ("<not a JSON number>", v)
        return round(float(v), 6)
    if col == "expires" and v is not None:
        return str(v)[:10]
    if col == "cve" and isinstance(v, str):
        return v.upper()  # a waiver's cve selector is matched in any case (§8.6): either spelling shown
    return v


def identity(row, cols):
    return tuple(cell(c, row.get(c)) for c in cols)


def compare(label, expected, got, columns, ident):
    """Rows matched by their identity columns, then every column compared; the product's rows must carry
    every column (in §8's order). Returns problems."""
    problems = []
    if got:
        have = list(got[0])
        if have == sorted(have) and set(columns) <= set(have):
            pass  # {"notes", "rows"} carries each row with its keys sorted: the order is checked in CSV
        elif [c for c in have if c in columns] != columns:
            problems.append(f"{label}: columns {have}, expected (in order) {columns}")
            if not set(columns) <= set(have):
                return problems
    exp = {}
    for r in expected:
        exp.setdefault(identity(r, ident), []).append(r)
    act = {}
    for r in got:
        act.setdefault(identity(r, ident), []).append(r)
    for k in exp.keys() - act.keys():
        for r in exp[k]:
            problems.append(f"{label}: expected but not produced: {_show(r, columns)}")
    for k in act.keys() - exp.keys():
        for r in act[k]:
            problems.append(f"{label}: produced but not expected: {_show(r, columns)}")
    for k in exp.keys() & act.keys():
        if len(exp[k]) != len(act[k]):
            problems.append(f"{label}: {dict(zip(ident, k))}: {len(exp[k])} row(s) expected, {len(act[k])} produced")
            continue
        for e, a in zip(exp[k], act[k]):
            diffs = []
            for c in columns:
                if c in TOLERATE:
                    continue
                ev, av = cell(c, e.get(c)), cell(c, a.get(c))
                if ev != av:
                    hint = ""
                    exact = e.get("_exact", {}).get(c)
                    if exact is not None:
                        hint = f" (exact {exact / FO.DAY_US:.9f} days{'; a half-way tie' if FO.is_tie(exact) else ''})"
                    diffs.append(f"{c}: expected {ev!r}, got {av!r}{hint}")
            if diffs:
                problems.append(f"{label}: {dict(zip(ident, k))}: " + "; ".join(diffs))
    return problems


def _show(r, columns):
    return {c: cell(c, r.get(c)) for c in columns}


def check_order(label, expected, got, ident, keys):
    """The product's rows come in an order the rule allows: `keys` are alternative sort keys over the
    oracle's rows (exact or rounded days); the product's sequence of identities must equal one of them
    (ties between rows every key leaves equal may come in any order)."""
    if len(expected) != len(got):
        return []
    by_id = {identity(r, ident): r for r in expected}
    seq = [by_id.get(identity(r, ident)) for r in got]
    if any(r is None for r in seq):
        return []
    for key in keys:
        ks = [key(r) for r in seq]
        if all(a <= b for a, b in zip(ks, ks[1:])):
            return []
    return [f"{label}: rows out of order: {[tuple(cell(c, r.get(c)) for c in ident) for r in got][:12]}"]


def finding_order_keys():
    exact = lambda r: (FO.STATUS_RANK[r["status"]], -r["_exact"]["days_open"], r["account_id"], r["region"],
                       r["instance_id"], r["kb_id"], r["first_seen"])
    rounded = lambda r: (FO.STATUS_RANK[r["status"]], -r["days_open"], r["account_id"], r["region"],
                         r["instance_id"], r["kb_id"], r["first_seen"])
    return [exact, rounded]


def cve_order_keys():
    return [lambda r: (-r["_exact"]["instance_days"], -r["instances"], r["cve_id"]),
            lambda r: (-r["instance_days"], -r["instances"], r["cve_id"])]


FINDING_ID = ["account_id", "region", "instance_id", "kb_id", "first_seen"]
EXPOSURE_ID = FINDING_ID[:4] + ["first_seen_exposed", "cve_id"]


def measured_note(S, T):
    """§8.2: the first note of `report sla` / `report exposure` names the newest snapshot in force by T and
    how many days before T it was taken. -> ("first", text the first note must hold)."""
    newest = max(r.snapshot_time for r in S.runs if r.finished_at <= T).astimezone(UTC)
    return ("first", f"the newest snapshot in force was taken {newest:%Y-%m-%d %H:%M} UTC, "
                     f"{FO.days1(FO.us(T - newest)):.1f} days earlier")


def unnamed_notes(fs, cves):
    """§8.4: for each asked CVE id no finding names, a note saying so. -> [("says", text)]."""
    named = {c for f in fs for c in f.cve_ids}
    return [("says", f"{c.upper()}: no snapshot in force by") for c in cves if c.upper() not in named]


def check_notes(label, notes, files, report_name):
    """§8.6: every report given a waiver file names it and its SHA-256 in its notes; the SLA report names
    its policy the same way. `files` also holds ("first", text) and ("says", text): text the first note,
    or any note, must hold (§8.2, §8.4)."""
    problems = []
    text = "\n".join(notes or [])
    for what, path in files:
        if what in ("first", "says"):
            where = (notes or [""])[0] if what == "first" else text
            if path not in where:
                problems.append(f"{label}: the {'first note' if what == 'first' else 'notes'} do not say "
                                f"{path!r}: {notes}")
            continue
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest not in text or os.path.basename(path) not in text:
            problems.append(f"{label}: the notes do not name the {what} {path} and its SHA-256 {digest}: {notes}")
    if report_name == "sla" and not any("polic" in n.lower() for n in notes or []):
        problems.append(f"{label}: the notes do not name the SLA policy: {notes}")
    return problems


# ---------------------------------------------------------------------------------------------
# Policy and waiver files
# ---------------------------------------------------------------------------------------------


def policy_text(R):
    """A policy overriding some limits (names in any case, padded: §8.3 matches them as §3.1 / §3.2), small
    enough that fixed_late and breached occur within weeks."""
    sev = R.sample([("critical", [7, 14]), ("High", [14, 21]), (" MEDIUM ", [10, 30]), ("low", [21, 60]),
                    ("Unspecified", [5, 45])], R.randint(1, 4))
    cls = R.sample([("SecurityUpdates", [10, 20]), (" securityupdates ", [12]), ("CriticalUpdates", [60, 3]),
                    ("Bugfix", [7]), ("@Security", [1])], R.randint(0, 2))
    def limit(days):
        """§8.3: a bare number (from first_seen) or an inline table naming the clock."""
        kind = R.choice(["bare", "bare", "released", "first_seen"])
        return str(days) if kind == "bare" else f'{{ days = {days}, from = "{kind}" }}'

    out = ["# SLA policy drawn by test_findings.py", "[severity]"]
    out += [f'"{k}" = {limit(R.choice(v))}' for k, v in sev]
    if cls:
        seen = set()
        out.append("[classification]")
        for k, v in cls:
            if k.strip().lower() in seen:  # one limit per classification
                continue
            seen.add(k.strip().lower())
            out.append(f'"{k}" = {limit(R.choice(v))}')
    return "\n".join(out) + "\n"


def kev_text(R, fs, T):
    """A KEV catalog in CISA's feed shape (§8.3) listing some of the history's CVE ids (in any case) and one
    it never names, with due dates before, around and after the findings' (so that the KEV date wins for
    some and the policy for others), and ransomware Known or Unknown."""
    named = sorted({c for f in fs for c in f.cve_ids})
    picked = R.sample(named, R.randint(0, len(named))) + ["CVE-1999-0002"]
    day = T.astimezone(UTC).date()
    vulns = []
    for c in picked:
        due = day - timedelta(days=R.randint(-30, 200))
        vulns.append({"cveID": c.lower() if R.random() < 0.2 else c, "vendorProject": "Example",
                      "product": "Server", "vulnerabilityName": "drawn", "dateAdded": (due - timedelta(days=21)).isoformat(),
                      "shortDescription": "drawn by test_findings.py", "requiredAction": "Apply updates.",
                      "dueDate": due.isoformat(), "knownRansomwareCampaignUse": R.choice(["Known", "Unknown"]),
                      "notes": "", "cwes": []})
    return json.dumps({"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": "2026.12.01",
                       "dateReleased": "2026-12-01T17:00:00.0000Z", "count": len(vulns),
                       "vulnerabilities": vulns}, indent=1)


def waiver_text(R, fs, T):
    """A waiver file for findings `fs` at T: an active tag waiver (Environment=prod), an expired cve waiver
    (the cve in lower case, default id), an unused one, and two on an instance's kb whose expiry is T's UTC
    day (holds) and the day before (expired)."""
    cves = sorted({c for f in fs for c in f.cve_ids}) or ["CVE-2026-0001"]
    day = T.astimezone(UTC).date()
    entries = [
        {"id": "WV-prod", "tag": "Environment=prod", "reason": "accepted until the migration",
         "approver": "ciso@example.com", "expires": "2099-12-31"},
        {"cve": R.choice(cves).lower(), "reason": "compensating control (WAF rule)", "approver": "sec-lead",
         "expires": (day - timedelta(days=R.choice([1, 30]))).isoformat()},
        {"id": "W-unused", "instance": "i-0000000000000dead", "kb": "KB5034441", "reason": "decommissioned",
         "approver": "ops", "expires": "2099-01-01"},
    ]
    if fs:
        f = R.choice(fs)
        entries.append({"id": "W-edge-holds", "instance": f.instance_id, "kb": f.kb_id, "reason": "edge",
                        "approver": "ops", "expires": day.isoformat()})
        g = R.choice(fs)
        entries.append({"instance": g.instance_id, "kb": g.kb_id, "reason": "edge, expired", "approver": "ops",
                        "expires": (day - timedelta(days=1)).isoformat()})
    R.shuffle(entries)
    out = ["# waivers drawn by test_findings.py"]
    for e in entries:
        out.append("[[waiver]]")
        for k, v in e.items():
            if k == "expires" and R.random() < 0.5:
                out.append(f"{k} = {v}")  # a TOML date, or the same date as a string
            else:
                out.append(f"{k} = {json.dumps(v, ensure_ascii=False)}")
    return "\n".join(out) + "\n"


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------------
# One history: the queries
# ---------------------------------------------------------------------------------------------


def sla_checks(fs, waivers, T):
    rows = FO.sla_rows(fs)
    checks = {
        "findings": lambda got, lbl: (compare(lbl, rows, got, FO.FINDING_COLUMNS, FINDING_ID)
                                      + check_order(lbl, rows, got, FINDING_ID, finding_order_keys())),
        "by_scope": lambda got, lbl: compare(lbl, FO.by_scope(fs), [r for r in got if _nonzero(r)],
                                             FO.BY_SCOPE_COLUMNS, ["account_id", "region"]),
    }
    if waivers is not None:
        wr = FO.waiver_rows(waivers, fs, T)
        checks["waivers"] = lambda got, lbl: (compare(lbl, wr, got, FO.WAIVER_COLUMNS, ["id"])
                                              + ([] if [r.get("id") for r in got] == [r["id"] for r in wr] or "waiver_order" in TOLERATE else
                                                 [f"{lbl}: entries not in file order (§8.6 numbers them in file order; the order must not change "
                                                  f"from run to run): {[r.get('id') for r in got]}"]))
    return rows, checks


def _nonzero(r):
    """by_scope: a scope without findings may be listed with zeros (§8.3 does not say); not compared."""
    return any(r.get(c) for c in FO.BY_SCOPE_COLUMNS[2:])


def exposure_checks(fs, cves=None, kev=None):
    ex = FO.exposure_rows(fs, cves)
    cr = FO.cve_rows(ex, kev)
    return ex, {
        "exposure": lambda got, lbl: compare(lbl, ex, got, FO.EXPOSURE_COLUMNS, EXPOSURE_ID),
        "cves": lambda got, lbl: (compare(lbl, cr, got, FO.CVE_COLUMNS, ["cve_id"])
                                  + check_order(lbl, cr, got, ["cve_id"], cve_order_keys())),
        "without_cve_ids": lambda got, lbl: compare(lbl, FO.without_cve_rows(fs), got, FO.WITHOUT_CVE_COLUMNS,
                                                    ["severity_level"]),
    }


def run_queries(store, queries):
    """queries: [(report name, args, files for the notes, {table: check})]; runs two at a time."""
    futures = [(name, args, files, table, check, POOL.submit(fetch, store, args, table))
               for name, args, files, checks in queries for table, check in checks.items()]
    problems = []
    for name, args, files, table, check, fut in futures:
        lbl = f"report {' '.join(args)} --table {table}"
        try:
            notes, rows = fut.result()
        except (ProductError, Refused, subprocess.TimeoutExpired) as e:
            problems.append(f"{lbl}: {type(e).__name__}: {e}")
            continue
        tally.findings[f"tables {name}"] += 1
        problems += check(rows, lbl)
        problems += check_notes(lbl, notes, files, name)
    return problems


def note_coverage(fs, waivers=None, T=None):
    tally.findings["findings"] += len(fs)
    for f in fs:
        tally.findings[f"status {f.status}"] += 1
        tally.findings[f"resolution {f.resolution}"] += 1
        if f.waived_by:
            tally.findings["waived"] += 1
        if f.expired_waiver:
            tally.findings["expired_waiver"] += 1
        if f.cve_ids:
            tally.findings["with cve"] += 1
        if f.max_us is None:
            tally.findings["no days_open_max"] += 1
        tally.findings[f"clock {f.clock}"] += 1
        if f.kev_cves:
            tally.findings["kev"] += 1
    if waivers is not None:
        for w in FO.waiver_rows(waivers, fs, T):
            tally.findings[f"waiver {w['state']}"] += 1


def tz_args(R, tz):
    return [] if tz == "UTC" and R.random() < 0.5 else ["--tz", tz]


def scope_filter(R, S):
    """§5.5: a filter admitting one or two of the history's scopes (seed-workflow days left out), or none."""
    scopes = sorted({(r.account_id, r.region) for r in S.runs if not r.run_id.startswith("seed-")})
    kind = R.choice(["none", "none", "account", "region", "both"])
    acc, reg = R.choice(scopes)
    accounts = [acc] if kind in ("account", "both") else []
    regions = [reg] if kind in ("region", "both") else []
    args = (["--account", ",".join(accounts)] if accounts else []) + (["--region", ",".join(regions)] if regions else [])
    return O.restrict(S, accounts, regions), args


def check_history(store, tmp, scn, S, R):
    queries = []
    tz = R.choice(gen.TZS)
    stale = R.choice([None, None, 7, 30])
    st_args = [] if stale is None else ["--stale-days", str(stale)]
    first_fin = min(r.finished_at for r in S.runs)
    last_fin = max(r.finished_at for r in S.runs)
    # T1: after the history (open findings age past their limits); T2: inside it
    d1 = last_fin.astimezone(O.ZoneInfo(tz)).date() + timedelta(days=R.choice([0, 2, 20, 45, 120]))
    d1 = min(d1, datetime.now(O.ZoneInfo(tz)).date())  # §8.2: an as-of in the future is refused
    inside = [d for d in gen.query_dates(scn, tz) if O.end_of(d, tz) >= first_fin and O.end_of(d, tz) < last_fin]
    d2 = R.choice(inside or [d1]).isoformat()
    if R.random() < 0.35:  # a full RFC 3339 instant (§5.1) at the edge of a run's collection window (§8.2)
        run = R.choice(S.runs)
        d2 = gen.fmt_time(R.choice([run.finished_at, run.finished_at - O.US, run.snapshot_time]), R.randint(0, 2))
    T1, T2 = O.end_of(d1, tz), O.instant(d2, tz)

    # 1. sla with a policy and waivers, after the history
    ptext = policy_text(R)
    policy = FO.read_policy(ptext)
    fs_plain = FO.findings(S, T1, stale)
    wtext = waiver_text(R, fs_plain, T1)
    waivers = FO.read_waivers(wtext)
    ktext = kev_text(R, fs_plain, T1)
    kev = FO.read_kev(ktext)
    ppath = write(os.path.join(tmp, "policy.toml"), ptext)
    wpath = write(os.path.join(tmp, "waivers.toml"), wtext)
    kpath = write(os.path.join(tmp, "kev.json"), ktext)
    fs1 = FO.findings(S, T1, stale, policy, waivers, kev)
    note_coverage(fs1, waivers, T1)
    _rows, checks = sla_checks(fs1, waivers, T1)
    queries.append(("sla", ["sla", "--as-of", d1.isoformat(), *tz_args(R, tz), *st_args, "--policy", ppath,
                            "--waivers", wpath, "--kev", kpath],
                    [("policy", ppath), ("waivers", wpath), ("KEV catalog", kpath), measured_note(S, T1)],
                    checks))

    # 2. sla inside the history: default policy, no waivers, maybe a scope filter
    SF, sc_args = scope_filter(R, S)
    fs2 = FO.findings(SF, T2, stale)
    if O.in_force(SF, T2):
        note_coverage(fs2)
        _rows, checks = sla_checks(fs2, None, T2)
        queries.append(("sla", ["sla", "--as-of", d2, *tz_args(R, tz), *st_args, *sc_args],
                        [measured_note(SF, T2)], checks))

    # 3. exposure with the waivers, after the history (the default policy: exposure has none)
    fs3 = FO.findings(S, T1, stale, None, waivers, kev)
    _ex, checks = exposure_checks(fs3, kev=kev)
    queries.append(("exposure", ["exposure", "--as-of", d1.isoformat(), *tz_args(R, tz), *st_args,
                                 "--waivers", wpath, "--kev", kpath],
                    [("waivers", wpath), ("KEV catalog", kpath), measured_note(S, T1)], checks))

    # 4. exposure of chosen CVEs (any case; one no row names), inside the history, maybe a scope filter
    SF, sc_args = scope_filter(R, S)
    fs4 = FO.findings(SF, T2, stale)
    named = sorted({c for f in fs4 for c in f.cve_ids})
    if named and O.in_force(SF, T2):
        pick = R.sample(named, min(len(named), R.randint(1, 2)))
        cves = [c.lower() if R.random() < 0.5 else c for c in pick] + (["CVE-1999-0001"] if R.random() < 0.5 else [])
        ex, checks = exposure_checks(fs4, cves)
        tally.findings["exposure rows"] += len(ex)
        queries.append(("exposure", ["exposure", "--as-of", d2, "--cve", ",".join(cves),
                                     *tz_args(R, tz), *st_args, *sc_args],
                        [measured_note(SF, T2), *unnamed_notes(fs4, cves)], checks))
    return run_queries(store, queries)


def _as_stored(fmt, lines):
    """§1.3: the seed layout's pages hold the seed's members only, so its runs have no release_date."""
    if fmt != "seed":
        return lines
    return [{**line, "instances": [{**i, "patches": [{k: v for k, v in p.items() if k != "release_date"}
                                                     for p in i.get("patches") or []]}
                                   for i in line["instances"]]} for line in lines]


def _check_one(fmt, scn, data):
    R = random.Random(data.draw(st.integers(0, 2**63), label="queries' seed"))
    with imported_history(fmt, scn, "patchtrail-findings-") as (tmp, store, run_ids, problems):
        if run_ids is not None:
            for page in scn.seed_pages:  # the seed's own workflow wrote into the same store (§1.2)
                write_seed_page(store, page)
            S = O.history(_as_stored(fmt, scn.lines), run_ids, scn.seed_pages)  # the generated history
            tally.findings[f"histories {fmt}"] += 1
            if scn.seed_pages:
                tally.findings["histories with seed-workflow days"] += 1
            problems += check_history(store, tmp, scn, S, R)
        if problems:
            tally.findings[f"failed {fmt}"] += 1
        assert not problems, (f"{len(problems)} disagreement(s) in a {fmt} store {tally.replay()}:\n"
                              + "\n".join(problems[:40]))


def _property_test(fmt):
    @seed((tally.SEED * 1000003 + zlib.crc32(f"findings/{fmt}".encode())) % 2**63)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=False,
              phases=[Phase.explicit, Phase.reuse, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(scn=gen.finding_scenarios(fmt), data=st.data())
    def test(scn, data):
        _check_one(fmt, scn, data)
    test.__name__ = f"test_findings_equal_oracle_{fmt}"
    return test


test_findings_equal_oracle_parquet = _property_test("parquet")
test_findings_equal_oracle_jsonl = _property_test("jsonl")
test_findings_equal_oracle_seed = _property_test("seed")


# ---------------------------------------------------------------------------------------------
# A fixed history: every status, resolution and waiver state, by hand
# ---------------------------------------------------------------------------------------------

A, B, C, D = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2", "i-0ccccccccccccccc3", "i-0ddddddddddddddd4"
WEEKS = [datetime(2026, 3, 1, 6, tzinfo=UTC) + timedelta(days=7 * n) for n in range(7)]  # S1 … S7


def _p(kb, state, sev="Critical", cls="SecurityUpdates", cves=None, title=None):
    row = {"kb_id": kb, "title": title or f"Update ({kb})", "classification": cls, "severity": sev, "state": state}
    if cves is not None:
        row["cve_ids"] = cves
    return row


def _fixed_history():
    """Instance A (Environment=prod) reports every week but S4 (a failed collect); instance B (dev) is gone
    after S3. Patches, per week S1 … S7 (`-` not listed):
      A KB1  Missing(CVE-2026-0001) Missing Installed                       fixed_in_time, 14 d
      A KB2  Installed Missing(cve-2026-0002, CVE-2026-0001) Missing …      open at T: breached, waived
      A KB4  Failed PendingReboot Missing Missing Missing Missing Installed fixed_late (42 d > 30)
      A KB5  Missing NotApplicable                                          not_applicable, fixed_in_time
      A KB6  - Missing -                                                    no_longer_reported
      A KB7  - - Missing (S4 error) InstalledRejected                       rejected, resolved_other, 14 d
      A KB8  (severity "", CriticalUpdates) Missing from S5                 breached (limit 30 by classification)
      A KB9  Missing S6, S7                                                 open
      B KB1  - Missing(CVE-2026-0001) Missing, then B is gone               instance_gone, 7 d
      C KB1  S5, S6 Missing; S7 listed as terminated (unmanaged)            instance_gone, 7 d
      D KB1  S6 Missing; S7 Missing while EC2 says shutting-down             instance_gone, 7 d
    (§8.2: days_open_min of an open finding ends at last_seen, days_open at T.)"""
    weeks = {n: [] for n in range(7)}
    a = {n: [] for n in range(7)}
    a[0] += [_p("KB1", "Missing", cves="CVE-2026-0001"), _p("KB2", "Installed"),
             _p("KB4", "Failed", "Important"), _p("KB5", "Missing", "Moderate")]
    a[1] += [_p("KB1", "Missing"), _p("KB2", "Missing", cves="cve-2026-0002, CVE-2026-0001"),
             _p("KB4", "InstalledPendingReboot", "Important"), _p("KB5", "NotApplicable", "Moderate"),
             _p("KB6", "Missing", "Low")]
    a[2] += [_p("KB1", "Installed"), _p("KB2", "Missing"), _p("KB4", "Missing", "Important"),
             _p("KB7", "Missing", "Medium")]
    a[3] += [_p("KB2", "Failed")]  # S4: the collect failed: its list says nothing (§8.1)
    for n in (4, 5, 6):
        a[n] += [_p("KB2", "MISSING"), _p("KB4", "Missing" if n < 6 else "Installed", "Important")]
    a[4] += [_p("KB7", "InstalledRejected", "Medium"), _p("KB8", "Missing", "", "CriticalUpdates")]
    a[5] += [_p("KB8", "Missing", "", " criticalupdates "), _p("KB9", "Missing")]
    a[6] += [_p("KB8", "Missing", "", "CriticalUpdates"), _p("KB9", "Missing", cves="")]
    for n in range(7):
        inst_a = {"instance_id": A, "name": "web-1", "outcome": "error" if n == 3 else "ok",
                  "last_scan_time": (WEEKS[n] - timedelta(hours=3)).isoformat().replace("+00:00", "Z"),
                  "tags": json.dumps({"Name": "web-1", "Environment": "prod"}), "patches": a[n]}
        weeks[n].append(inst_a)
        if n in (1, 2):
            weeks[n].append({"instance_id": B, "name": "db-1" if n == 1 else "db-primary", "outcome": "ok",
                             "last_scan_time": (WEEKS[n] - timedelta(hours=5)).isoformat().replace("+00:00", "Z"),
                             "tags": json.dumps({"Environment": "dev" if n == 1 else "prod"}),
                             "patches": [_p("KB1", "Missing", cves="CVE-2026-0001")]})
        scan = (WEEKS[n] - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
        if n in (4, 5):
            weeks[n].append({"instance_id": C, "name": "batch-1", "outcome": "ok", "ec2_state": "running",
                             "last_scan_time": scan, "tags": "{}", "patches": [_p("KB1", "Missing")]})
        if n == 6:  # §8.1: there only as terminated: its finding ends as instance_gone
            weeks[n].append({"instance_id": C, "name": "batch-1", "outcome": "unmanaged", "ec2_state": "terminated",
                             "unmanaged_reason": "terminated", "last_scan_time": None, "tags": "{}",
                             "patches": []})
        if n in (5, 6):
            weeks[n].append({"instance_id": D, "name": "batch-2", "outcome": "ok",
                             "ec2_state": "running" if n == 5 else "shutting-down",
                             "last_scan_time": scan, "tags": "{}", "patches": [_p("KB1", "Missing")]})
        if n == 0:
            weeks[n].append({"instance_id": B, "name": "db-1", "outcome": "ok", "last_scan_time": None,
                             "tags": "{}", "patches": [_p("KB1", "Missing", cves="CVE-2026-0009")]})
    return [{"snapshot_time": WEEKS[n].isoformat().replace("+00:00", "Z"), "account_id": "111111111111",
             "region": "us-east-1", "instances": weeks[n]} for n in range(7)]


FIXED_WAIVERS = """\
[[waiver]]
id = "W-prod"
tag = "Environment=prod"
kb = "KB2"
reason = "accepted until the migration"
approver = "ciso@example.com"
expires = 2099-12-31

[[waiver]]
cve = "cve-2026-0001"
reason = "WAF rule"
approver = "sec-lead"
expires = "2026-01-31"

[[waiver]]
instance = "i-0000000000000dead"
reason = "decommissioned"
approver = "ops"
expires = 2099-01-01

[[waiver]]
id = "W-edge"
instance = "i-0aaaaaaaaaaaaaaa1"
kb = "KB9"
reason = "holds until the end of 2026-04-30 UTC"
approver = "ops"
expires = 2026-04-30

[[waiver]]
id = "W-dev"
tag = "Environment=dev"
reason = "B was dev when first seen, prod when last seen: the last_seen snapshot's tags decide (§8.6)"
approver = "ops"
expires = "2099-12-31"
"""


@pytest.mark.parametrize("fmt", FORMATS)
def test_fixed_history(fmt):
    tmp = tempfile.mkdtemp(prefix="patchtrail-findings-")
    try:
        store = os.path.join(tmp, "store")
        lines = _fixed_history()
        S = O.history(lines, import_history(store, fmt, lines))
        T = O.end_of(date(2026, 4, 30), "UTC")
        waivers = FO.read_waivers(FIXED_WAIVERS)
        fs = FO.findings(S, T, None, None, waivers)
        got = {(f.instance_id[-1], f.kb_id): (f.status, f.resolution, FO.days1(f.open_us), FO.days1(f.min_us),
                                              FO.days1(f.max_us), f.limit_days, f.waived_by, f.expired_waiver,
                                              ",".join(f.cve_ids)) for f in fs}
        # the oracle against hand-written answers (§8.1-§8.3, §8.6); T = 2026-04-30T23:59:59.999999Z
        assert got == {
            ("1", "KB1"): ("fixed_in_time", "installed", 14.0, 7.0, None, 30, None, "W2", "CVE-2026-0001"),
            ("1", "KB2"): ("breached", None, 53.7, 35.0, 60.7, 30, "W-prod", None, "CVE-2026-0001,CVE-2026-0002"),
            ("1", "KB4"): ("fixed_late", "installed", 42.0, 35.0, None, 30, None, None, ""),
            ("1", "KB5"): ("fixed_in_time", "not_applicable", 7.0, 0.0, None, 90, None, None, ""),
            ("1", "KB6"): ("resolved_other", "no_longer_reported", 7.0, 0.0, 14.0, 180, None, None, ""),
            ("1", "KB7"): ("resolved_other", "rejected", 14.0, 0.0, 21.0, 90, None, None, ""),
            ("1", "KB8"): ("breached", None, 32.7, 14.0, 46.7, 30, None, None, ""),
            ("1", "KB9"): ("open", None, 25.7, 7.0, 32.7, 30, "W-edge", None, ""),
            ("2", "KB1"): ("resolved_other", "instance_gone", 7.0, 7.0, None, 30, None, "W2", "CVE-2026-0001"),
            ("3", "KB1"): ("resolved_other", "instance_gone", 7.0, 7.0, None, 30, None, None, ""),
            ("4", "KB1"): ("resolved_other", "instance_gone", 7.0, 7.0, None, 30, None, None, ""),
        }, got
        assert [(w["id"], w["findings"], w["state"]) for w in FO.waiver_rows(waivers, fs, T)] == [
            ("W-prod", 1, "active"), ("W2", 3, "expired"), ("W3", 0, "unused"), ("W-edge", 1, "active"),
            ("W-dev", 0, "unused")]
        assert [(r["cve_id"], r["findings"], r["instances"], r["instance_days"], r["still_exposed"], r["waived"])
                for r in FO.cve_rows(FO.exposure_rows(fs))] == [
            ("CVE-2026-0001", 3, 2, 74.7, 1, 1), ("CVE-2026-0002", 1, 1, 53.7, 1, 1)]
        # at the end of S3's day instance B is in force: its finding is open; A's KB1 is fixed that day
        early = {(f.instance_id[-1], f.kb_id): (f.status, f.resolution)
                 for f in FO.findings(S, O.end_of(date(2026, 3, 15), "UTC"))}
        assert early == {("1", "KB1"): ("fixed_in_time", "installed"), ("1", "KB2"): ("open", None),
                         ("1", "KB4"): ("open", None), ("1", "KB5"): ("fixed_in_time", "not_applicable"),
                         ("1", "KB6"): ("resolved_other", "no_longer_reported"), ("1", "KB7"): ("open", None),
                         ("2", "KB1"): ("open", None)}, early
        note_coverage(fs, waivers, T)
        wpath = write(os.path.join(tmp, "waivers.toml"), FIXED_WAIVERS)
        ptext = '[severity]\n" Critical " = 10\n[classification]\ncriticalupdates = 40\n'
        ppath = write(os.path.join(tmp, "p.toml"), ptext)
        fsp = FO.findings(S, T, None, FO.read_policy(ptext), waivers)
        assert {f.kb_id: f.limit_days for f in fsp if f.instance_id == A}["KB8"] == 40  # unspecified 180, class 40
        note_coverage(fsp, waivers, T)
        seen = measured_note(S, T)
        assert seen[1].endswith("taken 2026-04-12 06:00 UTC, 18.7 days earlier"), seen
        queries = [("sla", ["sla", "--as-of", "2026-04-30", "--waivers", wpath], [("waivers", wpath), seen],
                    sla_checks(fs, waivers, T)[1]),
                   ("sla", ["sla", "--as-of", "2026-04-30", "--tz", "UTC", "--policy", ppath, "--waivers", wpath],
                    [("policy", ppath), ("waivers", wpath)], sla_checks(fsp, waivers, T)[1]),
                   ("exposure", ["exposure", "--as-of", "2026-04-30", "--waivers", wpath], [("waivers", wpath)],
                    exposure_checks(fs)[1]),
                   ("exposure", ["exposure", "--as-of", "2026-04-30", "--cve", "cve-2026-0002,CVE-2031-0404"],
                    [seen, ("says", "CVE-2031-0404: no snapshot in force by 2026-04-30")],
                    exposure_checks(FO.findings(S, T), ["cve-2026-0002", "CVE-2031-0404"])[1])]
        assert unnamed_notes(fs, ["cve-2026-0002", "CVE-2031-0404"]) == [("says", "CVE-2031-0404: no snapshot in force by")]
        for d in ("2026-03-15", "2026-03-08", "2026-03-22"):
            Td = O.end_of(date.fromisoformat(d), "UTC")
            queries.append(("sla", ["sla", "--as-of", d], [], sla_checks(FO.findings(S, Td), None, Td)[1]))
        problems = run_queries(store, queries)
        assert not problems, "\n".join(problems)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def csv_header(store, args, table):
    """The columns of a table as CSV writes them (its order; JSON with notes sorts each row's keys)."""
    p = subprocess.run([BIN, "report", *args, "--store", store, "--format", "csv", "--lang", "en", "--table", table],
                       capture_output=True, timeout=180)
    if p.returncode != 0:
        return None
    lines = [x for x in p.stdout.decode("utf-8").split("\n") if x and not x.startswith("#")]
    return lines[0].split(",") if lines else None


def _tie_history():
    """Scope 1, instance C: patch TIEnn missing from the first snapshot (2026-03-01T00:00Z) until the
    snapshot d days later, where it is installed, for d on every half-way point x.x5 between 0.05 and 2.95,
    and 7.05, 10.35, 14.45, 29.95, 30 (exactly the limit: in time), 30 days + 1 µs (late), 30.05, 80.15.
    Scope 2, instance D, asked at T = 2026-05-31T23:59:59.999999Z: LIMa first seen at T - 30 days (open:
    not past the limit), LIMb at T - 30 days - 1 µs (breached), TIEo at T - 3.05 days (3.1, a tie, open)."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    ds = [timedelta(microseconds=n * 864_000_000) for n in range(5, 300, 10)]
    ds += [timedelta(microseconds=n * 864_000_000) for n in (705, 1035, 1445, 2995)]
    ds += [timedelta(days=30), timedelta(days=30, microseconds=1), timedelta(microseconds=3005 * 864_000_000),
           timedelta(microseconds=8015 * 864_000_000)]
    kbs = [f"TIE{k:02d}" for k in range(len(ds))]
    lines = []
    times = [t0] + [t0 + d for d in ds]
    for n, t in enumerate(times):
        patches = [_p(kb, "Missing" if n <= k else "Installed",
                      cves={0: "CVE-2026-7001", 1: "CVE-2026-7002", 30: "CVE-2026-7003"}.get(k))
                   for k, kb in enumerate(kbs)]
        lines.append({"snapshot_time": gen.fmt_time(t), "account_id": "111111111111", "region": "us-east-1",
                      "instances": [{"instance_id": "i-0cccccccccccccccc", "name": "ties", "outcome": "ok",
                                     "last_scan_time": gen.fmt_time(t - timedelta(hours=1)), "patches": patches}]})
    T = O.end_of(date(2026, 5, 31), "UTC")
    marks = [T - timedelta(days=30, microseconds=1), T - timedelta(days=30), T - timedelta(microseconds=305 * 864_000_000),
             T - timedelta(days=1)]
    for n, t in enumerate(marks):
        patches = [_p("LIMb", "Missing")]
        if n >= 1:
            patches.append(_p("LIMa", "Missing", cves="CVE-2026-7003"))
        if n >= 2:
            patches.append(_p("TIEo", "Missing", "Low", cves="CVE-2026-7004"))
        lines.append({"snapshot_time": gen.fmt_time(t), "account_id": "222222222222", "region": "us-east-1",
                      "instances": [{"instance_id": "i-0dddddddddddddddd", "name": "limits", "outcome": "ok",
                                     "last_scan_time": gen.fmt_time(t), "patches": patches}]})
    lines.sort(key=lambda line: O.parse_ts(line["snapshot_time"]))
    return lines, T


def test_rounding_and_limits():
    """§8.2: one decimal, half away from zero, on every x.x5 tie; §8.3: the status on the exact duration
    (exactly the limit is within it, 1 µs more is past it); §8.4: instance_days rounded after the exact sum.
    Then every column of the tables the names in the brief list in CSV, in order."""
    tmp = tempfile.mkdtemp(prefix="patchtrail-findings-")
    try:
        store = os.path.join(tmp, "store")
        lines, T = _tie_history()
        S = O.history(lines, import_history(store, "parquet", lines))
        fs = FO.findings(S, T)
        got = {f.kb_id: (FO.days1(f.open_us), FO.days1(f.min_us), f.status) for f in fs}
        # the oracle against hand-written answers
        assert got["TIE00"] == (0.1, 0.0, "fixed_in_time") and got["TIE01"] == (0.2, 0.1, "fixed_in_time")
        assert got["TIE02"] == (0.3, 0.2, "fixed_in_time") and got["TIE29"] == (3.0, 2.9, "fixed_in_time")
        assert got["TIE33"] == (30.0, 14.5, "fixed_in_time")  # 29.95
        assert got["TIE34"] == (30.0, 30.0, "fixed_in_time") and got["TIE35"] == (30.0, 30.0, "fixed_late")
        assert got["TIE36"] == (30.1, 30.0, "fixed_late") and got["TIE37"] == (80.2, 30.1, "fixed_late")
        # §8.2: the certain bound ends at the last snapshot that saw them, T - 1 day
        assert got["LIMa"] == (30.0, 29.0, "open") and got["LIMb"] == (30.0, 29.0, "breached")
        assert got["TIEo"] == (3.1, 2.1, "open")  # min: 2.05 days, a tie
        note_coverage(fs)
        queries = [("sla", ["sla", "--as-of", "2026-05-31"], [], sla_checks(fs, None, T)[1]),
                   ("exposure", ["exposure", "--as-of", "2026-05-31"], [], exposure_checks(fs)[1])]
        for d in ("2026-03-01", "2026-03-02", "2026-03-31"):
            Td = O.end_of(date.fromisoformat(d), "UTC")
            queries.append(("sla", ["sla", "--as-of", d], [], sla_checks(FO.findings(S, Td), None, Td)[1]))
        problems = run_queries(store, queries)
        wpath = write(os.path.join(tmp, "w.toml"), FIXED_WAIVERS)
        for args, table, cols in [(["sla", "--waivers", wpath], "findings", FO.FINDING_COLUMNS),
                                  (["sla"], "by_scope", FO.BY_SCOPE_COLUMNS),
                                  (["sla", "--waivers", wpath], "waivers", FO.WAIVER_COLUMNS),
                                  (["exposure"], "exposure", FO.EXPOSURE_COLUMNS), (["exposure"], "cves", FO.CVE_COLUMNS),
                                  (["exposure"], "without_cve_ids", FO.WITHOUT_CVE_COLUMNS)]:
            head = csv_header(store, [*args, "--as-of", "2026-05-31"], table)
            if head != cols:
                problems.append(f"report {args[0]} --table {table} --format csv: columns {head}, expected {cols}")
        assert not problems, "\n".join(problems)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_zz_findings_coverage():
    """Runs last: every §8.3 status and clock, every kind of §8.1 resolution and every §8.6 waiver state was
    compared."""
    ran = sum(v for k, v in tally.findings.items() if k.startswith("histories "))
    if ran < EXAMPLES * len(FORMATS) or not tally.findings["tables sla"]:
        pytest.skip("the findings tests did not all run in this session")
    want = ([f"status {s}" for s in FO.STATUSES]
            + [f"resolution {r}" for r in ("installed", "not_applicable", "no_longer_reported", "instance_gone",
                                           "rejected", "None")]
            + [f"waiver {s}" for s in ("active", "expired", "unused")] + ["waived", "expired_waiver", "with cve"]
            + [f"clock {c}" for c in ("first_seen", "released", "kev")] + ["kev"])
    missing = [k for k in want if not tally.findings[k]]
    assert not missing, f"never compared {tally.replay()}: {missing}"
