"""An independent oracle for patchtrail's reports, written from docs/semantics.md alone.

Its input is the generated history itself: the `patchtrail import` lines (with the run ids `import`
printed for them, one per line in line order) and the pages of the seed's own workflow a test wrote (with
the LastModified times it gave them). It never reads the store `import` wrote: what `import` stored is
checked against the same input by storecheck.py. Every function cites the rule (§N.M) of
docs/semantics.md it implements; nothing here is taken from crates/query or crates/model, so that a
disagreement with the product points at one of the two reading the written rules differently.

Entry points: `history(lines, run_ids, seed_pages, claimed)` -> Store; then `summary`, `top_missing`,
`diff`, `history_instance`, `history_kb`, `trend` return the expected tables as lists of dicts keyed by
the column names of §6.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------
# Timestamps (§1.4: kept to the microsecond; finer input truncated)
# ---------------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


def parse_ts(v):
    """An instant as an aware UTC datetime, truncated to the microsecond (§1.4), from RFC 3339 text,
    a datetime or None."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)
    if not isinstance(v, str):
        raise TypeError(f"not a timestamp: {v!r}")
    m = _RFC3339.match(v.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {v!r}")
    frac = ((m.group(3) or "") + "000000")[:6]  # truncation, never rounding
    off = "+00:00" if m.group(4) in ("Z", "z") else m.group(4)
    return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{off}").astimezone(UTC)


def from_ns(ns: int) -> datetime:
    """A LastModified time given in ns since the epoch, to the microsecond."""
    return EPOCH + timedelta(microseconds=ns // 1000)


# ---------------------------------------------------------------------------------------------
# §2 patch states, §3 severity / classification
# ---------------------------------------------------------------------------------------------

# §2.1 table, left column -> class column.  §2.2: matched on the exact stored spelling.
_STATE_TO_CLASS = {
    "Installed": "installed",
    "InstalledOther": "installed",
    "InstalledPendingReboot": "pending_reboot",
    "InstalledRejected": "rejected",
    "Missing": "missing",
    "Failed": "failed",
    "NotApplicable": "not_applicable",
    "AvailableSecurityUpdate": "available_security_update",
}
# §2.1 last column: the classes that make an instance non-compliant ("yes" rows).
_NON_COMPLIANT = {"pending_reboot", "rejected", "missing", "failed", "available_security_update"}
# The class columns of §6.1, in the order the rule lists them.
CLASS_COLUMNS = ["installed", "pending_reboot", "rejected", "missing", "failed", "not_applicable",
                 "available_security_update"]
ALL_CLASSES = CLASS_COLUMNS + ["other"]


def _api_model_spelling(wire):
    """The AWS API model's enum spelling of a wire state: InstalledPendingReboot -> INSTALLED_PENDING_REBOOT."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", wire).upper()


# §1.3: the API model's spelling of each wire state, rewritten to the wire's at collection (import).
_API_MODEL_TO_WIRE = {_api_model_spelling(w): w for w in _STATE_TO_CLASS}


def stored_state(sent):
    """§1.3: the State a collection (or import) stores: the API model's spelling becomes the wire's;
    anything else is kept exactly as sent."""
    return _API_MODEL_TO_WIRE.get(sent, sent)


def state_class(state):
    """§2.1 / §2.2: the class of a stored State; anything not in the table (any other spelling,
    other case, empty, null) is `other`."""
    return _STATE_TO_CLASS.get(state, "other")


def severity_level(severity):
    """§3.1: stored severity trimmed, compared without regard to case."""
    s = (severity or "").strip().lower()
    if s == "critical":
        return "critical"
    if s in ("important", "high"):
        return "high"
    if s in ("moderate", "medium"):
        return "medium"
    if s == "low":
        return "low"
    return "unspecified"  # "", Unspecified, None, required/standard/optional/extra, anything else


def _cls(classification):
    """§3.2: classification trimmed, without regard to case."""
    return (classification or "").strip().lower()


def is_critical(p):
    """§3.3: severity level critical, or classification CriticalUpdates."""
    return severity_level(p.severity) == "critical" or _cls(p.classification) == "criticalupdates"


def is_security(p):
    """§3.3: classification Security or SecurityUpdates."""
    return _cls(p.classification) in ("security", "securityupdates")


def version_of(kb_id, title):
    """§6.5: the part of the title after `KBId:` when the title starts with `KBId:` ("" when nothing
    follows the colon: a known, empty version), else none."""
    if kb_id is None or title is None:
        return None
    prefix = kb_id + ":"
    return title[len(prefix):] if title.startswith(prefix) else None


# ---------------------------------------------------------------------------------------------
# The history (§1), built from the generated input
# ---------------------------------------------------------------------------------------------


@dataclass
class Patch:
    kb_id: str | None
    title: str | None
    classification: str | None
    severity: str | None
    state: str | None
    cve_ids: str | None = None  # §8.4: comma-separated, as sent (AWS names them on Missing / Failed rows)
    release_date: str | None = None  # §1.3 / §8.3: AWS's ReleaseDate of the patch, as given

    @property
    def cls(self):
        return state_class(self.state)

    @property
    def version(self):
        return version_of(self.kb_id, self.title)


@dataclass
class Instance:
    account_id: str
    region: str
    instance_id: str
    name: str | None = None
    ec2_state: str | None = None
    platform: str | None = None
    resource_type: str | None = None
    ping_status: str | None = None
    last_ping_time: datetime | None = None
    agent_version: str | None = None
    platform_type: str | None = None
    platform_name: str | None = None
    platform_version: str | None = None
    unmanaged_reason: str | None = None
    last_scan_time: datetime | None = None
    outcome: str | None = None
    error_code: str | None = None
    critical_nc: int | None = None
    security_nc: int | None = None
    other_nc: int | None = None
    patches: list = field(default_factory=list)
    seed_workflow: bool = False  # an instance of a seed-workflow snapshot (§1.2)
    tags: str | None = None  # the instances table's JSON object string (import: absent is "{}"), §8.6


@dataclass
class Run:
    run_id: str
    snapshot_time: datetime
    finished_at: datetime
    account_id: str
    region: str
    instances: dict = field(default_factory=dict)  # instance_id -> Instance

    @property
    def key(self):
        """§5.2 order of runs: (snapshot_time, run_id)."""
        return (self.snapshot_time, self.run_id)


@dataclass
class Store:
    runs: list  # sorted by Run.key


def _opt_int(v):
    return None if v is None else int(v)


def run_from_line(line: dict, run_id: str) -> Run:
    """One committed run from one import line (§1.3, §1.4): times to the microsecond, finished_at
    defaulting to snapshot_time, absent fields null, patch states in the wire's spelling."""
    snap = parse_ts(line["snapshot_time"])
    fin = parse_ts(line["finished_at"]) if line.get("finished_at") is not None else snap
    run = Run(run_id=run_id, snapshot_time=snap, finished_at=fin, account_id=line["account_id"],
              region=line["region"])
    for r in line["instances"]:
        inst = Instance(
            account_id=run.account_id, region=run.region, instance_id=r["instance_id"], name=r.get("name"),
            ec2_state=r.get("ec2_state"), platform=r.get("platform"), resource_type=r.get("resource_type"),
            ping_status=r.get("ping_status"), last_ping_time=parse_ts(r.get("last_ping_time")),
            agent_version=r.get("agent_version"), platform_type=r.get("platform_type"),
            platform_name=r.get("platform_name"), platform_version=r.get("platform_version"),
            unmanaged_reason=r.get("unmanaged_reason"), last_scan_time=parse_ts(r.get("last_scan_time")),
            outcome=r.get("outcome"), error_code=r.get("error_code"),
            critical_nc=_opt_int(r.get("critical_non_compliant_count")),
            security_nc=_opt_int(r.get("security_non_compliant_count")),
            other_nc=_opt_int(r.get("other_non_compliant_count")), tags=r.get("tags"),
            patches=[Patch(p.get("kb_id"), p.get("title"), p.get("classification"), p.get("severity"),
                           stored_state(p.get("state")), p.get("cve_ids"), p.get("release_date"))
                     for p in r.get("patches") or []])
        if inst.instance_id in run.instances:
            raise ValueError(f"instance {inst.instance_id} twice in one line: import refuses it (§1.6)")
        run.instances[inst.instance_id] = inst
    return run


def run_tag(run_id: str) -> str:
    """§1.2: the first 8 hex digits of SHA-256("patchtrail-run/<run_id>")."""
    return hashlib.sha256(f"patchtrail-run/{run_id}".encode()).hexdigest()[:8]


def seed_workflow_runs(pages, claimed_run_ids):
    """§1.2: the seed pages whose name does not start with a claimed run's tag are the seed workflow's;
    each day partition of them is one snapshot of account "" and region "", run id seed-YYYYMMDD, dated
    by the earliest LastModified of its pages and finished (§1.4) at the latest. It holds no patch state
    (§4.7): each instance with a page is listed; its patches are read as the seed stored them, State
    included (§1.3).
    `pages`: objects with .day, .instance_id, .name, .patches (the page's "Patches"), .mtime_ns."""
    ours = {run_tag(i) for i in claimed_run_ids}
    parts = {}
    for p in pages:
        if p.name[:8] in ours:
            continue
        parts.setdefault(p.day, []).append(p)
    runs = []
    for day, ps in parts.items():
        run = Run(run_id=f"seed-{day:%Y%m%d}", snapshot_time=from_ns(min(p.mtime_ns for p in ps)),
                  finished_at=from_ns(max(p.mtime_ns for p in ps)), account_id="", region="")
        for p in sorted(ps, key=lambda p: p.name):
            inst = run.instances.setdefault(p.instance_id, Instance(account_id="", region="", instance_id=p.instance_id,
                                                                    seed_workflow=True))
            for m in p.patches:
                inst.patches.append(Patch(m.get("KbId", m.get("KBId")), m.get("Title"), m.get("Classification"),
                                          m.get("Severity"), m.get("State"), m.get("CveIds", m.get("CVEIds"))))
        runs.append(run)
    return runs


def history(lines, run_ids, seed_pages=(), claimed=None) -> Store:
    """§1.1/§1.2: the committed runs are the import lines (labelled with the run ids import printed,
    in line order) and the seed workflow's day partitions; `claimed` is every run id with a claim
    (default: the imported ones)."""
    if len(lines) != len(run_ids):
        raise ValueError(f"{len(lines)} lines, {len(run_ids)} run ids")
    runs = [run_from_line(line, rid) for line, rid in zip(lines, run_ids)]
    runs += seed_workflow_runs(seed_pages, run_ids if claimed is None else claimed)
    runs.sort(key=lambda r: r.key)
    return Store(runs)


# ---------------------------------------------------------------------------------------------
# §4 instance compliance
# ---------------------------------------------------------------------------------------------

DEFAULT_STALE_DAYS = 14  # §4.1 rule 4: default 14


def compliance(run, inst, stale_days=None):
    """§4.1: the first rule that applies; §4.7 in a snapshot without patch states."""
    stale = DEFAULT_STALE_DAYS if stale_days is None else stale_days
    if inst.outcome == "error":  # 1
        return "error"
    if inst.outcome == "unmanaged":  # 2
        return "unmanaged"
    if inst.seed_workflow:  # §4.7 rule 2 replaces rules 3-6: the listed patches are the only evidence
        return "non_compliant" if any(p.cls in _NON_COMPLIANT for p in inst.patches) else "unknown"
    if inst.last_scan_time is None:  # 3 (never scanned, or a seed-workflow snapshot)
        return "unknown"
    if run.finished_at - inst.last_scan_time > timedelta(seconds=stale * 86400):  # 4 (at finished_at, strictly)
        return "unknown"
    if any(p.cls in _NON_COMPLIANT for p in inst.patches):  # 5
        return "non_compliant"
    return "compliant"  # 6


def reporting(run, inst, stale_days=None):
    """§6.2: reporting means compliance is compliant or non_compliant, or, in a snapshot without patch
    states, that the instance is listed (§4.7 rules 1 and 4: every instance of a seed-workflow snapshot
    has at least one page)."""
    if inst.seed_workflow:
        return True
    return compliance(run, inst, stale_days) in ("compliant", "non_compliant")


def scan_age_days(run, inst):
    """§4.2: (finished_at - last_scan_time) in days, one decimal; null without a scan. Returned
    unrounded; the comparison accepts the one-decimal rounding of it (either neighbour at a tie)."""
    if inst.last_scan_time is None:
        return None
    return (run.finished_at - inst.last_scan_time) / timedelta(days=1)


def aws_compliance(run, inst, stale_days=None):
    """§4.3; null in a snapshot without patch states (§4.7 rule 3)."""
    if inst.seed_workflow:
        return None
    if compliance(run, inst, stale_days) not in ("compliant", "non_compliant"):
        return None
    counts = (inst.critical_nc, inst.security_nc, inst.other_nc)
    present = [c for c in counts if c is not None]
    if not present:
        return None
    if sum(present) > 0:  # "non_compliant when their sum is above 0"
        return "non_compliant"
    if len(present) == 3:  # "compliant when all three are present and sum to 0"
        return "compliant"
    return None


def agrees_with_aws(run, inst, stale_days=None):
    """§4.3: null when either side is null, else whether the verdicts are equal."""
    aws = aws_compliance(run, inst, stale_days)
    if aws is None:
        return None
    return aws == compliance(run, inst, stale_days)


def class_counts(inst):
    """§6.1: counts of the stored patches by class, plus missing_critical / missing_security (§3.3)."""
    out = {c: 0 for c in CLASS_COLUMNS}
    for p in inst.patches:
        if p.cls in out:
            out[p.cls] += 1
    out["missing_critical"] = sum(1 for p in inst.patches if p.cls == "missing" and is_critical(p))
    out["missing_security"] = sum(1 for p in inst.patches if p.cls == "missing" and is_security(p))
    return out


# ---------------------------------------------------------------------------------------------
# §5 dates
# ---------------------------------------------------------------------------------------------


def start_of(d: date, tz: str) -> datetime:
    """§5.1: the first instant of local day d in tz (midnight, or the first valid instant after it
    when the zone skips midnight)."""
    z = ZoneInfo(tz)
    local = datetime(d.year, d.month, d.day, tzinfo=z)
    u = local.astimezone(UTC)
    if u.astimezone(z).replace(tzinfo=None) == local.replace(tzinfo=None):
        # midnight exists; if it exists twice (a fall-back across midnight) take the earlier one
        u2 = local.replace(fold=1).astimezone(UTC)
        return min(u, u2) if u2.astimezone(z).replace(tzinfo=None) == local.replace(tzinfo=None) else u
    # midnight is skipped: the first instant whose local time is at or after it (search by µs)
    lo, hi = u - timedelta(hours=30), u + timedelta(hours=30)
    naive = local.replace(tzinfo=None)
    while hi - lo > US:
        mid = lo + (hi - lo) // 2
        if mid.astimezone(z).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi


def end_of(d: date, tz: str) -> datetime:
    """§5.1: start_of(D + 1 day) - 1 µs."""
    return start_of(d + timedelta(days=1), tz) - US


def instant(arg: str, tz: str) -> datetime:
    """§5.1: `--as-of` / `--to` argument: a date names end_of(D) in tz; a full RFC 3339 time is that instant."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", arg):
        return end_of(date.fromisoformat(arg), tz)
    return parse_ts(arg)


def restrict(store, accounts=(), regions=()):
    """§5.5: the store as if it held only the runs of scopes whose account is one of `accounts` and whose
    region is one of `regions` (an empty list admits any); with any filter, seed-workflow snapshots (no
    account, no region) are left out."""
    if not accounts and not regions:
        return store
    return Store([r for r in store.runs
                  if not r.run_id.startswith("seed-")
                  and (not accounts or r.account_id in accounts)
                  and (not regions or r.region in regions)])


def in_force(store, t: datetime):
    """§5.2: per scope (account, region), the run with the greatest (snapshot_time, run_id) among those
    whose collection was complete by t (finished_at <= t)."""
    best = {}
    for run in store.runs:  # sorted by (snapshot_time, run_id)
        if run.finished_at <= t:
            best[(run.account_id, run.region)] = run
    return list(best.values())


# ---------------------------------------------------------------------------------------------
# §6 reports
# ---------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ["account_id", "region", "instance_id", "name", "node_type", "ec2_state", "platform",
                   "platform_name", "platform_version", "ping_status", "last_ping_time", "agent_version",
                   "last_scan_time", "scan_age_days", *CLASS_COLUMNS, "missing_critical", "missing_security",
                   "compliance", "aws_compliance", "agrees_with_aws", "outcome", "error_code", "unmanaged_reason",
                   "snapshot_time", "run_id"]
FLEET_COLUMNS = ["instances", "compliant", "non_compliant", "unknown", "unmanaged", "error", "stopped", "hybrid",
                 "agent_offline", "disagree_with_aws", "installed", "pending_reboot", "missing", "failed",
                 "missing_critical", "missing_security"]


def node_type(inst: Instance):
    """§4.6: hybrid when SSM calls it a ManagedInstance or its id is an mi- id."""
    return "hybrid" if inst.resource_type == "ManagedInstance" or inst.instance_id.startswith("mi-") else "ec2"


def on_platform(inst: Instance, platform):
    """§6.1 --platform: contained, without regard to case, in platform, platform_type or platform_name."""
    if platform is None:
        return True
    return any(platform.lower() in (v or "").lower() for v in (inst.platform, inst.platform_type, inst.platform_name))


def fleet_totals(rows):
    """§6.1 table fleet over summary rows."""
    fleet = {"instances": len(rows)}
    for v in ("compliant", "non_compliant", "unknown", "unmanaged", "error"):
        fleet[v] = sum(1 for r in rows if r["compliance"] == v)
    fleet["stopped"] = sum(1 for r in rows if r["ec2_state"] == "stopped")
    fleet["hybrid"] = sum(1 for r in rows if r["node_type"] == "hybrid")
    fleet["agent_offline"] = sum(1 for r in rows if r["ping_status"] in ("ConnectionLost", "Inactive"))
    fleet["disagree_with_aws"] = sum(1 for r in rows if r["agrees_with_aws"] is False)
    for col in ("installed", "pending_reboot", "missing", "failed", "missing_critical", "missing_security"):
        fleet[col] = sum(r[col] for r in rows)
    return fleet


BY_ACCOUNT_COLUMNS = ["account_id", "regions", *FLEET_COLUMNS]


def by_account(rows):
    """§6.1 table by_account: the fleet totals of each account's rows, with its number of regions,
    ordered by non_compliant descending, then account_id."""
    accounts = {}
    for r in rows:
        accounts.setdefault(r["account_id"], []).append(r)
    out = [{"account_id": a, "regions": len({r["region"] for r in rs}), **fleet_totals(rs)}
           for a, rs in accounts.items()]
    return sorted(out, key=lambda x: (-x["non_compliant"], x["account_id"]))


def summary(store, as_of: datetime, stale_days=None, platform=None):
    """§6.1. Returns (instances rows, fleet row, {severity_level: missing patches}, top_missing groups)."""
    rows = []
    by_level = {}
    top = {}  # kb_id -> {"instances": set of instance keys, "titles": set}
    for run in in_force(store, as_of):
        for inst in run.instances.values():
            if not on_platform(inst, platform):
                continue
            c = class_counts(inst)
            rows.append({
                "account_id": inst.account_id, "region": inst.region, "instance_id": inst.instance_id,
                "name": inst.name, "node_type": node_type(inst), "ec2_state": inst.ec2_state,
                "platform": inst.platform, "platform_name": inst.platform_name,
                "platform_version": inst.platform_version, "ping_status": inst.ping_status,
                "last_ping_time": inst.last_ping_time, "agent_version": inst.agent_version,
                "last_scan_time": inst.last_scan_time, "scan_age_days": scan_age_days(run, inst), **c,
                "compliance": compliance(run, inst, stale_days),
                "aws_compliance": aws_compliance(run, inst, stale_days),
                "agrees_with_aws": agrees_with_aws(run, inst, stale_days),
                "outcome": inst.outcome, "error_code": inst.error_code,
                "unmanaged_reason": inst.unmanaged_reason,
                "snapshot_time": run.snapshot_time, "run_id": run.run_id,
                "_seed_workflow": inst.seed_workflow,
            })
            for p in inst.patches:
                if p.cls != "missing":
                    continue
                lvl = severity_level(p.severity)  # table missing_by_severity: missing patches by §3.1 level
                by_level[lvl] = by_level.get(lvl, 0) + 1
                g = top.setdefault(p.kb_id, {"kb_id": p.kb_id, "instances": set(), "titles": set()})
                g["instances"].add((inst.account_id, inst.region, inst.instance_id))
                g["titles"].add(p.title)
    return rows, fleet_totals(rows), by_level, top_missing(top)


def top_missing(groups):
    """Table top_missing of summary (README: "tables fleet, missing_by_severity, top_missing"; its
    meaning is not written in docs/semantics.md): the patches (by kb_id) of class `missing` (§2.1) on the
    most instances of the summary, with the number of those instances, most first. Returns every kb_id
    with its count and the titles it was listed with, in that order (ties by kb_id)."""
    out = [{"kb_id": g["kb_id"], "instances": len(g["instances"]), "titles": g["titles"]} for g in groups.values()]
    return sorted(out, key=lambda g: (-g["instances"], g["kb_id"]))


DIFF_COLUMNS = ["account_id", "region", "instance_id", "name", "kb_id", "title", "severity", "classification",
                "change", "from_state", "to_state", "from_version", "to_version", "from_last_scan", "to_last_scan"]

PATCH_CHANGES = ["regressed", "newly_missing", "newly_failed", "reboot_completed", "newly_installed",
                 "installed_pending_reboot", "newly_rejected", "became_not_applicable",
                 "security_update_available", "state_changed", "no_longer_reported", "version_changed"]


def patch_change(a, b):
    """§6.2 table: the change from class a to class b (a != b; either may be "absent"), first match."""
    if b == "missing":
        return "regressed" if a in ("installed", "pending_reboot", "rejected") else "newly_missing"
    if b == "failed":
        return "newly_failed"
    if b == "installed":
        return "reboot_completed" if a == "pending_reboot" else "newly_installed"
    if b == "pending_reboot":
        return "installed_pending_reboot"
    if b == "rejected":
        return "newly_rejected"
    if b == "not_applicable":
        return "became_not_applicable"
    if b == "available_security_update":
        return "security_update_available"
    if b == "other":
        return "state_changed"
    if b == "absent":
        return "no_longer_reported"
    raise AssertionError((a, b))


def patch_changes(ia: Instance, ib: Instance):
    """§6.2 patch rows between two patch lists of one instance (matched by kb_id). Yields
    (change, pa, pb) with pa / pb None when absent."""
    pa = {p.kb_id: p for p in ia.patches}
    pb = {p.kb_id: p for p in ib.patches}
    if len(pa) != len(ia.patches) or len(pb) != len(ib.patches):
        raise ValueError("a kb_id listed twice for one instance: import refuses it (§1.6)")
    out = []
    for kb in list(pa) + [k for k in pb if k not in pa]:
        a = pa[kb].cls if kb in pa else "absent"
        b = pb[kb].cls if kb in pb else "absent"
        if a != b:
            out.append((patch_change(a, b), pa.get(kb), pb.get(kb)))
        else:
            va, vb = pa[kb].version, pb[kb].version
            if va is not None and vb is not None and va != vb:  # §6.5: "" is a known version
                out.append(("version_changed", pa[kb], pb[kb]))
    return out


def _pick(pb, pa, attr):
    """"B's, else A's" (§6.2)."""
    return getattr(pb if pb is not None else pa, attr)


def diff(store, t1: datetime, t2: datetime, stale_days=None):
    """§6.2. Returns (changes rows, {change: count})."""
    A = {(i.account_id, i.region, i.instance_id): (r, i) for r in in_force(store, t1) for i in r.instances.values()}
    B = {(i.account_id, i.region, i.instance_id): (r, i) for r in in_force(store, t2) for i in r.instances.values()}
    rows = []

    def inst_row(key, change, ia, ib):
        src = ib if ib is not None else ia
        return {"account_id": key[0], "region": key[1], "instance_id": key[2], "name": src.name, "kb_id": None,
                "title": None, "severity": None, "classification": None, "change": change,
                "from_state": None, "to_state": None, "from_version": None, "to_version": None,
                "from_last_scan": ia.last_scan_time if ia else None,
                "to_last_scan": ib.last_scan_time if ib else None}

    for key in list(A) + [k for k in B if k not in A]:
        ra, ia = A.get(key, (None, None))
        rb, ib = B.get(key, (None, None))
        if ia is None:
            rows.append(inst_row(key, "appeared", ia, ib))
            continue
        if ib is None:
            rows.append(inst_row(key, "disappeared", ia, ib))
            continue
        rep_a, rep_b = reporting(ra, ia, stale_days), reporting(rb, ib, stale_days)
        if rep_a and not rep_b:
            rows.append(inst_row(key, "stopped_reporting", ia, ib))
        elif rep_b and not rep_a:
            rows.append(inst_row(key, "resumed_reporting", ia, ib))
        if not (rep_a and rep_b):
            continue  # patch rows only for instances reporting in both A and B
        for change, pa, pb in patch_changes(ia, ib):
            rows.append({
                "account_id": key[0], "region": key[1], "instance_id": key[2], "name": ib.name,
                "kb_id": _pick(pb, pa, "kb_id"), "title": _pick(pb, pa, "title"),
                "severity": _pick(pb, pa, "severity"), "classification": _pick(pb, pa, "classification"),
                "change": change,
                "from_state": pa.state if pa else None, "to_state": pb.state if pb else None,
                "from_version": pa.version if pa else None, "to_version": pb.version if pb else None,
                "from_last_scan": ia.last_scan_time, "to_last_scan": ib.last_scan_time,
            })
    counts = {}
    for r in rows:
        counts[r["change"]] = counts.get(r["change"], 0) + 1
    return rows, counts


HISTORY_SNAPSHOT_COLUMNS = ["snapshot_time", "run_id", "ec2_state", "last_scan_time", "outcome", "installed",
                            "pending_reboot", "missing", "failed", "missing_critical", "missing_security",
                            "compliance"]
PATCH_CHANGE_COLUMNS = ["snapshot_time", "kb_id", "title", "severity", "classification", "change", "from_state",
                        "to_state", "from_version", "to_version"]


def history_instance(store, instance_id, stale_days=None):
    """§6.3. Returns (snapshots rows oldest first, patch_changes rows)."""
    held = [(r, r.instances[instance_id]) for r in store.runs if instance_id in r.instances]
    snaps = []
    for r, i in held:
        c = class_counts(i)
        snaps.append({"snapshot_time": r.snapshot_time, "run_id": r.run_id, "ec2_state": i.ec2_state,
                      "last_scan_time": i.last_scan_time, "outcome": i.outcome,
                      **{k: c[k] for k in ("installed", "pending_reboot", "missing", "failed", "missing_critical",
                                           "missing_security")},
                      "compliance": compliance(r, i, stale_days), "_seed_workflow": i.seed_workflow})
    changes = []
    prev = None
    for r, i in held:
        if not reporting(r, i, stale_days):
            continue
        if prev is None:
            for p in i.patches:
                changes.append({"snapshot_time": r.snapshot_time, "kb_id": p.kb_id, "title": p.title,
                                "severity": p.severity, "classification": p.classification, "change": "first_seen",
                                "from_state": None, "to_state": p.state, "from_version": None,
                                "to_version": p.version})
        else:
            for change, pa, pb in patch_changes(prev, i):
                changes.append({"snapshot_time": r.snapshot_time, "kb_id": _pick(pb, pa, "kb_id"),
                                "title": _pick(pb, pa, "title"), "severity": _pick(pb, pa, "severity"),
                                "classification": _pick(pb, pa, "classification"), "change": change,
                                "from_state": pa.state if pa else None, "to_state": pb.state if pb else None,
                                "from_version": pa.version if pa else None,
                                "to_version": pb.version if pb else None})
        prev = i
    return snaps, changes


KB_INSTANCE_COLUMNS = ["account_id", "region", "instance_id", "latest_state", "latest_snapshot", "first_seen",
                       "first_seen_missing", "first_seen_installed"]
KB_SNAPSHOT_COLUMNS = ["snapshot_time", "run_id", "instances", "installed", "pending_reboot", "missing", "failed"]


def history_kb(store, kb_id):
    """§6.4 history --kb. Returns (instances rows, snapshots rows)."""
    per_inst = {}
    snaps = []
    for r in store.runs:  # oldest first
        listing = []
        for i in r.instances.values():
            ps = [p for p in i.patches if p.kb_id == kb_id]
            if not ps:
                continue
            p = ps[0]
            listing.append(p)
            key = (i.account_id, i.region, i.instance_id)
            e = per_inst.setdefault(key, {"account_id": key[0], "region": key[1], "instance_id": key[2],
                                          "first_seen": r.snapshot_time, "first_seen_missing": None,
                                          "first_seen_installed": None})
            e["latest_state"] = p.state
            e["latest_snapshot"] = r.snapshot_time
            if p.cls == "missing" and e["first_seen_missing"] is None:
                e["first_seen_missing"] = r.snapshot_time
            if p.cls == "installed" and e["first_seen_installed"] is None:
                e["first_seen_installed"] = r.snapshot_time
        if listing:
            snaps.append({"snapshot_time": r.snapshot_time, "run_id": r.run_id, "instances": len(listing),
                          **{c: sum(1 for p in listing if p.cls == c)
                             for c in ("installed", "pending_reboot", "missing", "failed")}})
    return list(per_inst.values()), snaps


TREND_COLUMNS = ["snapshot_time", "run_id", "account_id", "region", "instances", "compliant_instances",
                 "noncompliant_instances", "unknown_instances", "unmanaged_instances", "error_instances",
                 "installed", "missing", "missing_critical", "missing_security", "failed"]


def trend(store, start: datetime | None, end: datetime | None, stale_days=None):
    """§6.4 trend: one row per committed run with start <= snapshot_time <= end (§5.3), oldest first."""
    rows = []
    for r in store.runs:
        if start is not None and r.snapshot_time < start:
            continue
        if end is not None and r.snapshot_time > end:
            continue
        comp = [compliance(r, i, stale_days) for i in r.instances.values()]
        cc = [class_counts(i) for i in r.instances.values()]
        rows.append({"snapshot_time": r.snapshot_time, "run_id": r.run_id, "account_id": r.account_id,
                     "region": r.region, "instances": len(comp),
                     "compliant_instances": comp.count("compliant"),
                     "noncompliant_instances": comp.count("non_compliant"),
                     "unknown_instances": comp.count("unknown"), "unmanaged_instances": comp.count("unmanaged"),
                     "error_instances": comp.count("error"),
                     **{k: sum(c[k] for c in cc) for k in ("installed", "missing", "missing_critical",
                                                          "missing_security", "failed")}})
    return rows
