"""What `patchtrail import` stored, against what it was given.

The report oracle (oracle.py) never reads the store: it computes every answer from the import lines. This
module closes the other side: it reads the store `import` wrote, following the commit chain
(`_patchtrail/chain/<seq>.json` names `manifest_key` and `manifest_sha256`, §1.1) to each manifest and the
objects it lists (Parquet with pyarrow; JSON lines and seed pages `{"Patches":[...]}` with json), and
compares them row by row with the input lines. The only differences allowed are the documented rewrites:
§1.3 (the API model's State spellings stored as the wire's) and §1.4 (times truncated to the microsecond,
`finished_at` defaulting to `snapshot_time`), plus the seed layout's own page shape (README "Data layout":
member names `KbId`/`CveIds`, ISO `InstalledTime`, `1970-01-01T00:00:00Z` for a patch not installed).
Every instances-table column an input line gave must round-trip; columns it did not give are null
(`import --help`), except the ones the table never leaves null (`tags`, `outcome`) and the ones `import`
derives (`patch_pages`, `patch_rows`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

import oracle as O

TIME_COLUMNS = {"snapshot_time", "launch_time", "last_ping_time", "operation_start_time", "last_scan_time",
                "last_no_reboot_install_time", "installed_time"}
CONTEXT = ("run_id", "snapshot_time", "account_id", "region")
# instances-table columns an absent input field does not leave null
NOT_NULL_DEFAULTS = {"tags", "outcome", "patch_pages", "patch_rows"}
PATCH_FIELDS = ("kb_id", "title", "classification", "severity", "state", "installed_time", "cve_ids")
_SEED_PAGE = re.compile(r"^year=(\d{4})/month=(\d{2})/day=(\d{2})/instanceid=([^/]+)/([^/]+)$")
_PARTITION = re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})/")


def listing(root):
    """Every file under root with its size and SHA-256 (to show that nothing was written)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = (os.path.getsize(p), hashlib.sha256(fh.read()).hexdigest())
    return out


def _rows(path):
    if path.endswith(".parquet"):
        t = pq.read_table(path)
        cols = {}
        for name in t.column_names:
            col = t.column(name)
            if pa.types.is_timestamp(col.type) and col.type.unit == "ns":
                cols[name] = [None if v is None else ("ns", v) for v in col.cast(pa.int64()).to_pylist()]
            else:
                cols[name] = col.to_pylist()
        n = t.num_rows
        return [{c: cols[c][i] for c in cols} for i in range(n)]
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _stored_time(v):
    """A stored time (Arrow timestamp, RFC 3339 text) as (datetime to the µs, problem or None)."""
    if v is None:
        return None, None
    if isinstance(v, tuple) and v[0] == "ns":
        ns = v[1]
        return O.from_ns(ns), (f"stored with nanoseconds ({ns} ns): §1.4 keeps microseconds" if ns % 1000 else None)
    if isinstance(v, datetime):
        return O.parse_ts(v), None
    if isinstance(v, str):
        m = re.search(r"\.(\d+)", v)
        try:
            t = O.parse_ts(v)
        except ValueError:
            return ("<not RFC 3339>", v), f"{v!r} is not an RFC 3339 time"
        if m and len(m.group(1).rstrip("0")) > 6:
            return t, f"{v!r} keeps digits finer than the microsecond: §1.4 truncates them"
        return t, None
    return ("<not a time>", v), f"{v!r} is not a time"


def _expected(col, v):
    if v is None:
        return None
    if col in TIME_COLUMNS:
        return O.parse_ts(v)
    return v


def _same(col, want, got):
    if col in TIME_COLUMNS:
        t, _ = _stored_time(got)
        return t == want
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if isinstance(want, int) and isinstance(got, (int, float)):
        return want == got
    return want == got


def check(root, fmt, lines, run_ids):
    """Problems (strings) between the store at root, written by one `import --format fmt` of `lines`
    into an empty store that printed `run_ids`, and those lines. Empty when it holds exactly them."""
    problems = []
    if len(run_ids) != len(lines):
        return [f"import printed {len(run_ids)} run ids for {len(lines)} lines: {run_ids}"]
    if len(set(run_ids)) != len(run_ids):
        problems.append(f"import printed a run id twice: {run_ids}")
    chain_dir = os.path.join(root, "_patchtrail", "chain")
    names = sorted(os.listdir(chain_dir)) if os.path.isdir(chain_dir) else []
    if len(names) != len(lines):
        return problems + [f"{len(names)} chain entries for {len(lines)} imported lines: {names}"]
    head_path = os.path.join(root, "_patchtrail", "chain-head")
    prev = None
    for n, (fname, line, rid) in enumerate(zip(names, lines, run_ids), start=1):
        where = f"chain entry {fname} (line {n}, run {rid})"
        with open(os.path.join(chain_dir, fname), encoding="utf-8") as f:
            entry = json.load(f)
        if entry.get("run_id") != rid:
            problems.append(f"{where}: names run {entry.get('run_id')!r}, import printed {rid!r} for line {n}")
        mkey = entry["manifest_key"]
        prefix = "_patchtrail/runs/" if fmt == "seed" else "runs/"
        if not mkey.startswith(prefix):
            problems.append(f"{where}: manifest {mkey} is not under {prefix} (§1.1)")
        mpath = os.path.join(root, mkey)
        if not os.path.exists(mpath):
            problems.append(f"{where}: its manifest {mkey} does not exist")
            continue
        with open(mpath, "rb") as f:
            raw = f.read()
        if hashlib.sha256(raw).hexdigest() != entry["manifest_sha256"]:
            problems.append(f"{where}: manifest {mkey} does not hash to the entry's manifest_sha256")
        m = json.loads(raw)
        want_prev = None if prev is None else {"key": prev[0], "sha256": prev[1]}
        if m.get("previous") != want_prev:
            problems.append(f"{where}: manifest previous {m.get('previous')} where the chain's previous is {want_prev}")
        prev = (mkey, entry["manifest_sha256"])
        problems += [f"{where}: {p}" for p in _check_run(root, fmt, m, line, rid)]
    if os.path.exists(head_path):
        with open(head_path, encoding="utf-8") as f:
            head = f.read().strip()
        if head and head.isdigit() and int(head) != len(names):
            problems.append(f"_patchtrail/chain-head says {head}, the chain has {len(names)} entries")
    return problems


def _check_run(root, fmt, m, line, rid):
    problems = []
    snap = O.parse_ts(line["snapshot_time"])
    fin = O.parse_ts(line["finished_at"]) if line.get("finished_at") is not None else snap
    for col, want in (("run_id", rid), ("account_id", line["account_id"]), ("region", line["region"]),
                      ("format", fmt)):
        if m.get(col) != want:
            problems.append(f"manifest {col} {m.get(col)!r}, expected {want!r}")
    for col, want in (("snapshot_time", snap), ("finished_at", fin)):
        got, bad = _stored_time(m.get(col))
        if bad:
            problems.append(f"manifest {col}: {bad}")
        if got != want:
            problems.append(f"manifest {col} {m.get(col)!r}, expected {want.isoformat()} "
                            f"(§1.4: {'the line' if col == 'snapshot_time' or line.get('finished_at') else 'snapshot_time, the default'}, to the µs)")
    day = f"{snap:%Y%m%d}"
    if not rid.startswith(day + "-"):
        problems.append(f"run id {rid} does not start with its snapshot's UTC date {day} (README: <YYYYMMDD>-<account>-<region>-<seq>)")
    inst_rows, patch_rows = [], []  # stored rows; patch rows as (instance_id, dict)
    for obj in m.get("objects", []):
        key = obj["key"]
        path = os.path.join(root, key)
        if not os.path.exists(path):
            problems.append(f"lists {key}, which does not exist")
            continue
        with open(path, "rb") as f:
            body = f.read()
        if len(body) != obj.get("size") or hashlib.sha256(body).hexdigest() != obj.get("sha256"):
            problems.append(f"lists {key} with a size or SHA-256 the object does not have")
        part = _PARTITION.search(key)
        if not part or "".join(part.groups()) != day:
            problems.append(f"object {key} is not in the partition of its snapshot's day {day}")
        seed = _SEED_PAGE.match(key)
        if seed:
            if fmt != "seed":
                problems.append(f"a {fmt} run lists a seed page {key}")
            if seed.group(5)[:8] != O.run_tag(rid):
                problems.append(f"seed page {key} does not carry its run's tag {O.run_tag(rid)} (§1.2)")
            for p in json.loads(body).get("Patches") or []:
                patch_rows.append((seed.group(4), _from_seed_member(p, problems, key)))
        elif key.startswith("patches/") and fmt != "seed":
            for r in _rows(path):
                patch_rows.append((r.get("instance_id"), r))
                _check_context(r, rid, snap, line, problems, f"patch row of {key}")
        elif key.startswith("_patchtrail/instances/" if fmt == "seed" else "instances/"):
            inst_rows += _rows(path)
        else:
            problems.append(f"lists an object of no table of the {fmt} layout: {key}")
    by_id = {}
    for r in inst_rows:
        if r.get("instance_id") in by_id:
            problems.append(f"instance {r.get('instance_id')} stored twice")
        by_id[r.get("instance_id")] = r
    given = {i["instance_id"]: i for i in line["instances"]}
    if set(by_id) != set(given):
        problems.append(f"instances stored {sorted(by_id)}, given {sorted(given)}")
    for iid, r in given.items():
        s = by_id.get(iid)
        if s is None:
            continue
        _check_context(s, rid, snap, line, problems, f"instance {iid}")
        for col, v in r.items():
            if col == "patches":
                continue
            if col not in s:
                problems.append(f"instance {iid}: the column {col} it was given is not stored")
                continue
            want = _expected(col, v)
            if not _same(col, want, s[col]):
                problems.append(f"instance {iid}: {col} stored {s[col]!r}, given {v!r}")
            if col in TIME_COLUMNS:
                _, bad = _stored_time(s[col])
                if bad:
                    problems.append(f"instance {iid}: {col} {bad}")
        for col, v in s.items():
            if col in r or col in CONTEXT or col in NOT_NULL_DEFAULTS or col == "instance_id":
                continue
            if v is not None:
                problems.append(f"instance {iid}: {col} stored {v!r}, but the line did not give it (absent is null)")
    # patches: per instance, the multiset of rows
    got = {}
    for iid, p in patch_rows:
        got.setdefault(iid, Counter())[_patch_key(p, problems)] += 1
    want = {}
    for iid, r in given.items():
        for p in r.get("patches") or []:
            want.setdefault(iid, Counter())[_patch_key({**p, "state": O.stored_state(p.get("state"))}, None,
                                                       given=True)] += 1
    for iid in sorted(set(got) | set(want)):
        g, w = got.get(iid, Counter()), want.get(iid, Counter())
        for k, n in (w - g).items():
            problems.append(f"instance {iid}: patch given but not stored as such (x{n}): {dict(zip(PATCH_FIELDS, k))}")
        for k, n in (g - w).items():
            problems.append(f"instance {iid}: patch stored but not given (x{n}): {dict(zip(PATCH_FIELDS, k))}")
    return problems[:20]


def _check_context(row, rid, snap, line, problems, what):
    if row.get("run_id") != rid:
        problems.append(f"{what}: run_id {row.get('run_id')!r}, expected {rid}")
    t, bad = _stored_time(row.get("snapshot_time"))
    if t != snap or bad:
        problems.append(f"{what}: snapshot_time {row.get('snapshot_time')!r}, expected {snap.isoformat()} (§1.4)")
    if row.get("account_id") != line["account_id"] or row.get("region") != line["region"]:
        problems.append(f"{what}: scope {row.get('account_id')}/{row.get('region')}, expected "
                        f"{line['account_id']}/{line['region']}")


def _from_seed_member(p, problems, key):
    """A patch of one of patchtrail's own seed pages, in the patches table's terms (README, Data layout):
    `InstalledTime` 1970-01-01 or 0001-01-01 (what the API sends, README "The simulator") is a patch not
    installed, `CveIds` absent is null."""
    it = p.get("InstalledTime")
    not_installed = ("1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z")
    return {"kb_id": p.get("KbId"), "title": p.get("Title"), "classification": p.get("Classification"),
            "severity": p.get("Severity"), "state": p.get("State"),
            "installed_time": None if it in not_installed else it, "cve_ids": p.get("CveIds")}


def _patch_key(p, problems, given=False):
    out = []
    for f in PATCH_FIELDS:
        v = p.get(f)
        if f == "installed_time":
            if given:
                v = O.parse_ts(v)
            else:
                v, bad = _stored_time(v)
                if bad and problems is not None:
                    problems.append(f"installed_time {bad}")
            v = None if v is None else v.isoformat()
        out.append(v)
    return tuple(out)
