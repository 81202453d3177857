"""The oracle of docs/semantics.md §8 (findings, SLA, CVE exposure, waivers), written from the page alone.

Like oracle.py, whose history (`oracle.history`), patch classes (§2.1), severity levels (§3.1), reporting
(§6.2, §4.7) and snapshots in force (§5.2) it reuses, its input is the generated history, never the store,
and nothing here comes from crates/query. §8.5 (time to remediate) is not implemented by the product and not
here either.

Entry points:
- `findings(store, T, stale_days, policy, waivers, kev)` -> [Finding] (§8.1, §8.2, §8.3, §8.6);
- `sla_rows`, `by_scope`, `waiver_rows` -> the tables of `report sla`;
- `exposure_rows`, `cve_rows`, `without_cve_rows` -> the tables of `report exposure` (§8.4);
- `read_policy(text)`, `read_waivers(text)` and `read_kev(text)` read the files the tests give the product.
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import oracle as O

UTC = timezone.utc
DAY_US = 86_400_000_000

# §8.1: outstanding (applicable and not in effect) and fixed classes (§2.1).
OUTSTANDING = {"missing", "failed", "pending_reboot"}
FIXED = {"installed", "not_applicable"}

# §8.3 statuses, in the findings table's row order (the brief: breached, fixed_late, open, fixed_in_time, other).
STATUSES = ["breached", "fixed_late", "open", "fixed_in_time", "resolved_other"]
STATUS_RANK = {s: n for n, s in enumerate(STATUSES)}

# §8.3 the default policy (after PCI DSS v4.0.1 6.3.3): (days, clock).
DEFAULT_SEVERITY = {"critical": (30, "released"), "high": (30, "first_seen"), "medium": (90, "first_seen"),
                    "low": (180, "first_seen"), "unspecified": (180, "first_seen")}
DEFAULT_CLASSIFICATION = {"criticalupdates": (30, "released")}

FINDING_COLUMNS = ["account_id", "region", "instance_id", "name", "kb_id", "title", "severity_level",
                   "classification", "cve_ids", "first_seen", "last_seen", "previous_snapshot", "resolved_at",
                   "resolution", "days_open", "days_open_min", "days_open_max", "release_date", "clock",
                   "limit_days", "due_at", "status", "waived_by", "expired_waiver", "kev_cves", "kev_due_date",
                   "kev_ransomware"]
BY_SCOPE_COLUMNS = ["account_id", "region", "breached", "fixed_late", "open", "fixed_in_time", "resolved_other",
                    "waived"]
WAIVER_COLUMNS = ["id", "instance", "tag", "kb", "cve", "reason", "approver", "expires", "findings", "state"]
EXPOSURE_COLUMNS = ["account_id", "region", "instance_id", "name", "cve_id", "kb_id", "title", "severity_level",
                    "first_seen_exposed", "last_seen_exposed", "fixed_at", "resolution", "days_exposed", "waived_by"]
CVE_COLUMNS = ["cve_id", "instances", "findings", "instance_days", "still_exposed", "waived", "kev_due_date",
               "kev_ransomware"]
WITHOUT_CVE_COLUMNS = ["severity_level", "findings", "instances", "open"]

TIME_COLUMNS = {"first_seen", "last_seen", "previous_snapshot", "resolved_at", "first_seen_exposed",
                "last_seen_exposed", "fixed_at", "release_date", "due_at"}
DAY_COLUMNS = {"days_open", "days_open_min", "days_open_max", "days_exposed", "instance_days"}
COUNT_COLUMNS = {"limit_days", "findings", "instances", "still_exposed", "waived", "open", *STATUSES}


def us(td: timedelta) -> int:
    """A duration in whole microseconds (the tables' unit, §1.4)."""
    return td // O.US


def days1(micros: int | None):
    """§8.2: days with one decimal, rounded half away from zero, from an exact duration in µs (integer
    arithmetic: no float decides a tie)."""
    if micros is None:
        return None
    sign = -1 if micros < 0 else 1
    q, r = divmod(abs(micros) * 10, DAY_US)
    if 2 * r >= DAY_US:
        q += 1
    return sign * q / 10


def is_tie(micros: int | None) -> bool:
    """Whether the exact duration lies exactly half-way between two one-decimal values."""
    return micros is not None and (abs(micros) * 10) % DAY_US * 2 == DAY_US


# ---------------------------------------------------------------------------------------------
# §8.3 policy, §8.6 waivers (read from the same TOML text the product is given)
# ---------------------------------------------------------------------------------------------


@dataclass
class Policy:
    severity: dict  # level -> (days, clock)
    classification: dict  # classification trimmed, lower-cased -> (days, clock)

    def limits(self, level, classification):
        """§8.3: the limits that apply, the level's first, then the classification's when the policy names
        it (§3.2: trimmed, without regard to case)."""
        out = [self.severity[level]]
        c = (classification or "").strip().lower()
        if c in self.classification:
            out.append(self.classification[c])
        return out


def default_policy():
    return Policy(dict(DEFAULT_SEVERITY), dict(DEFAULT_CLASSIFICATION))


def _limit(v):
    """`days` (from first_seen) or `{ days = N, from = "released" | "first_seen" }`."""
    if isinstance(v, dict):
        return (v["days"], v.get("from", "first_seen"))
    return (v, "first_seen")


def read_policy(text: str | None) -> Policy:
    """§8.3: `[severity]` and `[classification]` tables of name = days or { days, from }; names matched as
    §3.1 / §3.2 match them (trimmed, any case); a level or classification the file omits keeps the default."""
    p = default_policy()
    if text is None:
        return p
    doc = tomllib.loads(text)
    for name, v in (doc.get("severity") or {}).items():
        level = name.strip().lower()
        assert level in DEFAULT_SEVERITY, f"the test wrote a policy naming {name!r}, not a §3.1 level"
        p.severity[level] = _limit(v)
    for name, v in (doc.get("classification") or {}).items():
        p.classification[name.strip().lower()] = _limit(v)
    return p


@dataclass
class Kev:
    entries: dict  # CVE id (upper case) -> (dueDate as a date, knownRansomwareCampaignUse == "Known")


def read_kev(text: str | None):
    """§8.3: CISA's feed, `vulnerabilities` of cveID, dueDate (YYYY-MM-DD), knownRansomwareCampaignUse."""
    if text is None:
        return None
    doc = json.loads(text)
    return Kev({v["cveID"].strip().upper(): (date.fromisoformat(v["dueDate"]),
                                            v.get("knownRansomwareCampaignUse") == "Known")
                for v in doc["vulnerabilities"]})


@dataclass
class Waiver:
    id: str
    instance: str | None
    tag: str | None
    kb: str | None
    cve: str | None
    reason: str
    approver: str
    expires: date

    def holds_at(self, T: datetime) -> bool:
        """§8.6: the waiver holds until the end of its `expires` day, UTC."""
        end = datetime(self.expires.year, self.expires.month, self.expires.day, tzinfo=UTC) + timedelta(days=1)
        return T < end

    def matches(self, f) -> bool:
        """§8.6: every selector given must match: instance (its id), tag (Key=Value against the instance's
        tags in the finding's last_seen snapshot), kb (exact), cve (any case; one of its cve_ids)."""
        if self.instance is not None and f.instance_id != self.instance:
            return False
        if self.tag is not None:
            key, _, value = self.tag.partition("=")
            if f.tags.get(key) != value:
                return False
        if self.kb is not None and f.kb_id != self.kb:
            return False
        if self.cve is not None and self.cve.upper() not in f.cve_ids:
            return False
        return True


def read_waivers(text: str | None) -> list:
    """§8.6: `[[waiver]]` entries; `id` defaults to W1, W2, … in file order; `expires` a date."""
    if text is None:
        return []
    out = []
    for n, e in enumerate(tomllib.loads(text).get("waiver") or [], start=1):
        exp = e["expires"]
        exp = exp if isinstance(exp, date) else date.fromisoformat(exp)
        out.append(Waiver(e.get("id", f"W{n}"), e.get("instance"), e.get("tag"), e.get("kb"), e.get("cve"),
                          e["reason"], e["approver"], exp))
    return out


# ---------------------------------------------------------------------------------------------
# §8.1 / §8.2 findings
# ---------------------------------------------------------------------------------------------


# §8.4: the shape of a CVE id: `CVE-`, four digits, `-`, four or more digits (ASCII digits).
CVE_SHAPE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,}")


def cve_list(text):
    """§8.1 / §8.4: the CVE ids a row names: its comma-separated items trimmed of spaces and upper-cased, those
    with a CVE id's shape (anything else names none)."""
    items = (c.strip(" ").upper() for c in (text or "").split(","))
    return {c for c in items if CVE_SHAPE.fullmatch(c)}


def tag_map(text):
    """The instances table's `tags` (a JSON object string; import writes "{}" for none)."""
    if not text:
        return {}
    v = json.loads(text)
    return v if isinstance(v, dict) else {}


@dataclass
class Finding:
    account_id: str
    region: str
    instance_id: str
    kb_id: str
    name: str | None
    tags: dict
    title: str | None
    severity_level: str
    classification: str | None
    cve_ids: list  # sorted, upper-case
    first_seen: datetime
    last_seen: datetime
    previous_snapshot: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    open_us: int  # the exact duration behind days_open (§8.2)
    min_us: int
    max_us: int | None
    released: datetime | None = None  # §8.3: the earliest release_date of its rows
    limit_days: int = 0
    clock: str = "first_seen"
    due_at: datetime | None = None
    kev_cves: list = ()
    kev_due_date: date | None = None
    kev_ransomware: bool | None = None
    status: str = ""
    waived_by: str | None = None
    expired_waiver: str | None = None
    matched: tuple = ()  # ids of every waiver entry that matches it (§8.6 table waivers)

    @property
    def key(self):
        return (self.account_id, self.region, self.instance_id, self.kb_id, self.first_seen)

    @property
    def is_open(self):
        return self.resolution is None


def reporting_snapshots(store, T, stale_days=None):
    """§8.1 / §8.2: per (account_id, region, instance_id), the snapshots complete by T (finished_at <= T)
    in which the instance reports (§6.2, §4.7), ordered by (snapshot_time, run_id)."""
    out = {}
    for run in store.runs:  # sorted by (snapshot_time, run_id)
        if run.finished_at > T:
            continue
        for inst in run.instances.values():
            if O.reporting(run, inst, stale_days):
                out.setdefault((run.account_id, run.region, inst.instance_id), []).append((run, inst))
    return out


def findings(store, T, stale_days=None, policy=None, waivers=(), kev=None):
    """Every finding of the history up to T (§8.1, §8.2), with its due date and status (§8.3) and waivers
    (§8.6)."""
    policy = policy or default_policy()
    in_force = {(r.account_id, r.region): r for r in O.in_force(store, T)}
    out = []
    for (acc, reg, iid), snaps in reporting_snapshots(store, T, stale_days).items():
        kbs = []
        for _run, inst in snaps:
            for p in inst.patches:
                if p.kb_id not in kbs:
                    kbs.append(p.kb_id)
        current = in_force.get((acc, reg))
        # §8.1 instance_gone: not in the snapshot in force (§5.2), or there only as terminated (§4.5)
        there = current.instances.get(iid) if current is not None else None
        gone = there is None or there.ec2_state in ("shutting-down", "terminated") \
            or there.unmanaged_reason == "terminated"
        for kb in kbs:
            rows = [next((p for p in inst.patches if p.kb_id == kb), None) for _run, inst in snaps]
            n = 0
            while n < len(snaps):
                if rows[n] is None or rows[n].cls not in OUTSTANDING:
                    n += 1
                    continue
                first = n
                while n + 1 < len(snaps) and rows[n + 1] is not None and rows[n + 1].cls in OUTSTANDING:
                    n += 1
                last = n
                n += 1
                out.append(_finding(acc, reg, iid, kb, snaps, rows, first, last, gone, T))
    for f in out:
        _due(f, policy, kev)
        f.status = _status(f, T)
        f.matched = tuple(w.id for w in waivers if w.matches(f))
        active = [w.id for w in waivers if w.matches(f) and w.holds_at(T)]
        expired = [w.id for w in waivers if w.matches(f) and not w.holds_at(T)]
        f.waived_by = active[0] if active else None
        f.expired_waiver = expired[0] if expired and not active else None
    return out


def _finding(acc, reg, iid, kb, snaps, rows, first, last, gone, T):
    t = lambda i: snaps[i][0].snapshot_time
    head = rows[first]
    last_inst = snaps[last][1]
    cves = set()
    for i in range(first, last + 1):
        cves |= cve_list(rows[i].cve_ids)
    prev = t(first - 1) if first > 0 else None
    if last + 1 < len(snaps):
        resolved_at = t(last + 1)
        nxt = rows[last + 1]
        resolution = "no_longer_reported" if nxt is None else nxt.cls
        open_us = us(resolved_at - t(first))
        max_us = us(resolved_at - prev) if prev is not None else None
        min_us = us(t(last) - t(first))
    elif gone:
        resolved_at, resolution = None, "instance_gone"
        open_us = min_us = us(t(last) - t(first))
        max_us = None
    else:
        resolved_at, resolution = None, None
        open_us = us(T - t(first))
        min_us = us(t(last) - t(first))  # §8.2: the certain bound ends at last_seen, open or not
        max_us = us(T - prev) if prev is not None else None
    released = [O.parse_ts(rows[i].release_date) for i in range(first, last + 1)
                if rows[i].release_date is not None]
    return Finding(acc, reg, iid, kb, last_inst.name, tag_map(last_inst.tags), head.title,
                   O.severity_level(head.severity), head.classification, sorted(cves), t(first), t(last), prev,
                   resolved_at, resolution, open_us, min_us, max_us, min(released) if released else None)


def _due(f, policy, kev):
    """§8.3: each limit that applies gives clock start + days; `released` without a release date starts at
    first_seen; the earliest wins (the level's on a tie); a KEV dueDate (its day's end, UTC) earlier than
    that wins with clock `kev`."""
    dues = []
    for days, clock in policy.limits(f.severity_level, f.classification):
        if clock == "released" and f.released is not None:
            dues.append((f.released + timedelta(days=days), days, "released"))
        else:
            dues.append((f.first_seen + timedelta(days=days), days, "first_seen"))
    f.due_at, f.limit_days, f.clock = min(dues, key=lambda d: d[0])  # min keeps the first of equals
    listed = [c for c in f.cve_ids if kev is not None and c in kev.entries]
    f.kev_cves = listed
    if listed:
        f.kev_due_date = min(kev.entries[c][0] for c in listed)
        f.kev_ransomware = any(kev.entries[c][1] for c in listed)
        end = datetime(f.kev_due_date.year, f.kev_due_date.month, f.kev_due_date.day, tzinfo=UTC) \
            + timedelta(days=1) - O.US
        if end < f.due_at:
            f.due_at, f.clock = end, "kev"


def _status(f, T):
    """§8.3: open and T past due_at: breached; fixed and resolved_at past due_at: fixed late."""
    if f.resolution is None:
        return "breached" if T > f.due_at else "open"
    if f.resolution in FIXED:
        return "fixed_late" if f.resolved_at > f.due_at else "fixed_in_time"
    return "resolved_other"


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def sla_rows(fs):
    """`report sla` table findings, in its row order: status rank, days_open descending (exact), account,
    region, instance, kb, first_seen."""
    rows = []
    for f in sorted(fs, key=lambda f: (STATUS_RANK[f.status], -f.open_us, f.account_id, f.region, f.instance_id,
                                       f.kb_id, f.first_seen)):
        rows.append({
            "account_id": f.account_id, "region": f.region, "instance_id": f.instance_id, "name": f.name,
            "kb_id": f.kb_id, "title": f.title, "severity_level": f.severity_level,
            "classification": f.classification, "cve_ids": ",".join(f.cve_ids) or None,
            "first_seen": f.first_seen, "last_seen": f.last_seen, "previous_snapshot": f.previous_snapshot,
            "resolved_at": f.resolved_at, "resolution": f.resolution, "days_open": days1(f.open_us),
            "days_open_min": days1(f.min_us), "days_open_max": days1(f.max_us), "release_date": f.released,
            "clock": f.clock, "limit_days": f.limit_days, "due_at": f.due_at,
            "status": f.status, "waived_by": f.waived_by, "expired_waiver": f.expired_waiver,
            "kev_cves": ",".join(f.kev_cves) or None,
            "kev_due_date": f.kev_due_date.isoformat() if f.kev_due_date else None,
            "kev_ransomware": None if f.kev_ransomware is None else ("Known" if f.kev_ransomware else "Unknown"),
            "_exact": {"days_open": f.open_us, "days_open_min": f.min_us, "days_open_max": f.max_us},
            "_finding": f,
        })
    return rows


def by_scope(fs):
    """§8.3 table by_scope: per (account_id, region) with findings, each status counted, waived findings
    only under `waived`."""
    out = {}
    for f in fs:
        r = out.setdefault((f.account_id, f.region), {"account_id": f.account_id, "region": f.region,
                                                       **{s: 0 for s in STATUSES}, "waived": 0})
        r["waived" if f.waived_by else f.status] += 1
    return [out[k] for k in sorted(out)]


def waiver_rows(waivers, fs, T):
    """§8.6 table waivers: every entry, the findings it matches, and unused / active / expired at T."""
    rows = []
    for w in waivers:
        n = sum(1 for f in fs if w.id in f.matched)
        rows.append({"id": w.id, "instance": w.instance, "tag": w.tag, "kb": w.kb, "cve": w.cve,
                     "reason": w.reason, "approver": w.approver, "expires": w.expires.isoformat(), "findings": n,
                     "state": "unused" if n == 0 else "active" if w.holds_at(T) else "expired"})
    return rows


def exposure_rows(fs, cves=None):
    """§8.4: per (finding, CVE it is exposed to), the CVEs limited to `cves` (any case) when given."""
    only = None if cves is None else {c.strip().upper() for c in cves}
    rows = []
    for f in fs:
        for c in f.cve_ids:
            if only is not None and c not in only:
                continue
            rows.append({
                "account_id": f.account_id, "region": f.region, "instance_id": f.instance_id, "name": f.name,
                "cve_id": c, "kb_id": f.kb_id, "title": f.title, "severity_level": f.severity_level,
                "first_seen_exposed": f.first_seen, "last_seen_exposed": f.last_seen,
                "fixed_at": f.resolved_at if f.resolution in FIXED else None, "resolution": f.resolution,
                "days_exposed": days1(f.open_us), "waived_by": f.waived_by,
                "_exact": {"days_exposed": f.open_us}, "_finding": f,
            })
    return rows


def cve_rows(exposure, kev=None):
    """§8.4 table cves: per CVE listed, the instances and findings exposed, instance_days (the exact sum
    of days_exposed, then rounded), still_exposed (instances with an open finding), waived (findings
    waived); ranked by instance_days (exact) descending, then instances descending, then the CVE id."""
    groups = {}
    for r in exposure:
        groups.setdefault(r["cve_id"], []).append(r["_finding"])
    out = []
    for c, fs in groups.items():
        total = sum(f.open_us for f in fs)
        insts = {(f.account_id, f.region, f.instance_id) for f in fs}
        out.append({"cve_id": c, "instances": len(insts), "findings": len(fs), "instance_days": days1(total),
                    "still_exposed": len({(f.account_id, f.region, f.instance_id) for f in fs if f.is_open}),
                    "waived": sum(1 for f in fs if f.waived_by),
                    "kev_due_date": kev.entries[c][0].isoformat() if kev and c in kev.entries else None,
                    "kev_ransomware": (("Known" if kev.entries[c][1] else "Unknown")
                                       if kev and c in kev.entries else None),
                    "_exact": {"instance_days": total}})
    return sorted(out, key=lambda r: (-r["_exact"]["instance_days"], -r["instances"], r["cve_id"]))


def without_cve_rows(fs):
    """§8.4 table without_cve_ids: per severity level, the findings whose rows name no CVE, their
    instances and how many of them are open."""
    groups = {}
    for f in fs:
        if not f.cve_ids:
            groups.setdefault(f.severity_level, []).append(f)
    return [{"severity_level": lvl, "findings": len(g),
             "instances": len({(f.account_id, f.region, f.instance_id) for f in g}),
             "open": sum(1 for f in g if f.is_open)} for lvl, g in sorted(groups.items())]
