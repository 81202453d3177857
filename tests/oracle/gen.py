"""Hypothesis strategies for random multi-week patch histories, written as `patchtrail import` lines.

A history has 1-3 scopes (account, region), 2-6 snapshots per scope at random instants of a four-week
window that holds one of the America/New_York DST changes (2026-03-08, 2026-11-01), with instants
placed on local midnights / the last microsecond of local days of UTC, New York and Tokyo. Instances
come and go; each has its own set of patches (Windows KBs, Linux packages whose version moves in the
title, unicode and formula-looking text) whose State is drawn afresh in every snapshot from every
§2.1 state plus unknown ones, so that every class transition of §6.2 occurs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

UTC = timezone.utc
US = timedelta(microseconds=1)
TZS = ["UTC", "America/New_York", "Asia/Tokyo"]

# §2.1 every known state, plus unknown ones that must fall in `other` (§2.2). (`import` folds the case and
# underscores of known names, `MISSING` -> `Missing`, like collection does for the API model's spellings
# (§1.3), so the unknown ones here are not near-spellings of known states.)
# Grouped by §2.1 class and drawn class first, so that every pair of classes is about equally likely.
STATE_GROUPS = [["Installed", "InstalledOther"], ["InstalledPendingReboot", "INSTALLED_PENDING_REBOOT"],
                ["InstalledRejected"], ["Missing", "missing"], ["Failed"], ["NotApplicable"],
                ["AvailableSecurityUpdate"], ["Superseded", "Installed Other", ""]]
STATES = [s for g in STATE_GROUPS for s in g]
SEVERITIES = ["Critical", "critical", "CRITICAL", " Critical ", "Important", "important", "IMPORTANT", "High",
              "Moderate", "medium", "MEDIUM", "Low", "low", "", "Unspecified", "None", "required", "standard",
              "optional", "extra", "=Critical", "\tHigh"]
CLASSIFICATIONS = ["Security", "SecurityUpdates", "securityupdates", " Security ", "SECURITY", "CriticalUpdates",
                   "criticalupdates", "Updates", "Bugfix", "", "=SecurityUpdates", "UpdateRollups"]
WINDOWS_KBS = ["KB5034441", "KB5034439", "KB5035845", "KB890830", "KB5001716", "KB2267602", "KB5036893",
               "KB4052623"]
WINDOWS_TITLES = ["2026-02 Cumulative Update for Windows Server 2022 for x64-based Systems ({kb})",
                  "Security Intelligence Update for Microsoft Defender Antivirus - {kb}",
                  "=HYPERLINK(\"http://x\",\"{kb}\")", "+{kb} update", "-{kb}", "@{kb}",
                  "Windows の累積更新プログラム ({kb})", "", "Mise à jour de sécurité ({kb}) — ✓"]
LINUX_KBS = ["kernel.x86_64", "openssl-libs.x86_64", "glibc.x86_64", "curl.aarch64", "libssl3",
             "パッケージ.noarch", "@scope-pkg.noarch", "=calc.x86_64"]
LINUX_VERSIONS = ["0:5.10.1-1.amzn2", "0:5.10.2-1.amzn2", "1:5.10.228-219.884.amzn2", "0:3.0.2-0ubuntu1.10"]
NAMES = ["web-1", "db-primary", "=cmd|' /C calc'!A0", "+sum(1,2)", "-minus", "@at", "サーバー１", "naïve ☃",
         "", "a,b;\"quoted\""]
PLATFORMS = ["Windows", "windows", "Linux", "Amazon Linux", "Ubuntu", ""]
SCOPES = [("111111111111", "us-east-1"), ("111111111111", "ap-northeast-1"), ("222222222222", "us-east-1"),
          ("333333333333", "eu-west-1")]
# Four-week windows: each holds a New York DST change (2026-03-08 spring forward, 2026-11-01 fall back).
WINDOWS = [(date(2026, 2, 22), date(2026, 3, 8)), (date(2026, 10, 18), date(2026, 11, 1))]


def rfc3339(t: datetime, style: int = 0) -> str:
    """An instant as RFC 3339 text: Z (style 0), +00:00 (1), or an offset of another zone (2)."""
    if style == 2:
        return t.astimezone(ZoneInfo("Asia/Tokyo")).isoformat()
    s = t.astimezone(UTC).isoformat()
    return s.replace("+00:00", "Z") if style == 0 else s


def local_instant(d: date, tz: str, kind: str, secs: int = 0) -> datetime:
    """Midnight (first instant) / last µs / a time of local day d in tz, as UTC."""
    z = ZoneInfo(tz)
    if kind == "start":
        return datetime(d.year, d.month, d.day, tzinfo=z).astimezone(UTC)
    if kind == "end":
        n = d + timedelta(days=1)
        return datetime(n.year, n.month, n.day, tzinfo=z).astimezone(UTC) - timedelta(microseconds=1)
    return (datetime(d.year, d.month, d.day, tzinfo=z) + timedelta(seconds=secs)).astimezone(UTC)


@dataclass
class Scenario:
    lines: list  # import JSON objects, in import order
    instance_ids: list
    rich_id: str  # the instance always present, mostly reporting, with many patches
    kb_ids: list
    snapshot_times: list
    leftovers: bool = False

    def __repr__(self):  # what hypothesis prints for a failing example: the import file itself
        body = "\n".join(json.dumps(line, ensure_ascii=False) for line in self.lines)
        return f"Scenario(leftovers={self.leftovers}, import lines:\n{body}\n)"


def _hexid(draw, prefix, used):
    while True:
        v = prefix + "".join(draw(st.lists(st.sampled_from("0123456789abcdef"), min_size=17, max_size=17)))
        if v not in used:
            used.add(v)
            return v


def _chance(draw, pct):
    return draw(st.integers(0, 99)) < pct


@st.composite
def snapshot_time(draw, window):
    start, dst = window
    day = draw(st.one_of(st.sampled_from([dst - timedelta(days=1), dst, dst + timedelta(days=1)]),
                         st.sampled_from(range(28)).map(lambda n: start + timedelta(days=n))))
    kind = draw(st.sampled_from(["random", "random", "random", "start", "end", "start_plus", "dst"]))
    tz = draw(st.sampled_from(TZS))
    if kind == "dst":  # next to New York's DST changes: the 23- and 25-hour local days (§5.1)
        ny = "America/New_York"
        edges = [local_instant(dst, ny, "start"), local_instant(dst + timedelta(days=1), ny, "start"),
                 local_instant(dst + timedelta(days=1), ny, "start") + timedelta(minutes=30),
                 local_instant(dst, ny, "at", 2 * 3600), local_instant(dst, ny, "at", 5400),
                 local_instant(dst, ny, "at", 9000), local_instant(dst, ny, "at", 23 * 3600 + 1800)]
        return draw(st.sampled_from(edges)) + draw(st.sampled_from([timedelta(0), US, -US, timedelta(seconds=1)]))
    if kind == "random":
        # sampled_from draws uniformly (integers() favours small values): times all over the day
        secs = draw(st.sampled_from(range(24))) * 3600 + draw(st.sampled_from(range(60))) * 60 + draw(st.integers(0, 59))
        t = local_instant(day, tz, "at", secs)
        if _chance(draw, 25):
            t += timedelta(microseconds=draw(st.integers(1, 999999)))
        return t
    if kind == "start_plus":
        return local_instant(day, tz, "start") + timedelta(microseconds=1)
    return local_instant(day, tz, kind)


@st.composite
def patch_row(draw, kb, linux):
    if linux:
        title = (f"{kb}:{draw(st.sampled_from(LINUX_VERSIONS))}" if _chance(draw, 90)
                 else draw(st.sampled_from([kb, "", kb + " update", kb.split(".")[0]])))
    else:
        title = draw(st.sampled_from(WINDOWS_TITLES)).format(kb=kb)
    return {"kb_id": kb, "title": title, "classification": draw(st.sampled_from(CLASSIFICATIONS)),
            "severity": draw(st.sampled_from(SEVERITIES)), "state": draw(st.sampled_from(STATE_GROUPS).flatmap(st.sampled_from)),
            "installed_time": draw(st.sampled_from([None, "2026-01-15T10:00:00Z"])),
            "cve_ids": draw(st.sampled_from(["", "CVE-2024-20666", "CVE-2024-1,CVE-2024-2"]))}


@st.composite
def instance_row(draw, snap: datetime, proto: dict):
    rich = proto.get("rich") and _chance(draw, 90)  # a reporting instance with many patches (transitions)
    outcome = "ok" if rich else draw(st.sampled_from(["ok"] * 7 + ["unmanaged", "error"]))
    scan = None
    if outcome == "ok" or _chance(draw, 15):
        kind = "recent" if rich else draw(st.sampled_from(
            ["recent"] * 8 + ["d14", "d14+", "d7", "d30", "months", "never", "future"]))
        scan = {
            "recent": lambda: snap - timedelta(hours=draw(st.sampled_from(range(0, 14 * 24 - 1))),
                                               seconds=draw(st.integers(0, 3599))),
            "d14": lambda: snap - timedelta(days=14),
            "d14+": lambda: snap - timedelta(days=14, seconds=1),
            "d7": lambda: snap - timedelta(days=7, seconds=draw(st.integers(-1, 1))),
            "d30": lambda: snap - timedelta(days=30, seconds=draw(st.integers(-1, 1))),
            "months": lambda: snap - timedelta(days=draw(st.integers(60, 200)), seconds=draw(st.integers(0, 86399))),
            "never": lambda: None,
            "future": lambda: snap + timedelta(hours=1),
        }[kind]()
        if scan is not None:
            scan = scan.replace(microsecond=0)
    patches = []
    if outcome == "ok" or _chance(draw, 10):
        for kb in proto["kbs"]:
            if _chance(draw, 89):  # absent about as often as each class (1 in 9)
                patches.append(draw(patch_row(kb, proto["linux"])))
    row = {"instance_id": proto["instance_id"], "name": proto["name"], "platform": proto["platform"],
           "ec2_state": draw(st.sampled_from(["running"] * 4 + ["stopped", "stopped", "terminated", None])),
           "instance_type": "t3.micro", "last_scan_time": rfc3339(scan, draw(st.integers(0, 2))) if scan else None,
           "outcome": outcome, "error_code": None, "error_message": None, "patches": patches}
    if proto["name"] is not None and _chance(draw, 10):  # renamed (a name is never added or dropped)
        row["name"] = draw(st.sampled_from([n for n in NAMES if n]))
    if outcome == "error":
        row["error_code"] = draw(st.sampled_from(["AccessDeniedException", "ThrottlingException", "=err"]))
        row["error_message"] = "collecting failed"
    if _chance(draw, 75):  # SSM lists the node (§4.6): agent health and OS as DescribeInstanceInformation sends them
        hybrid = proto["instance_id"].startswith("mi-")
        row.update(
            resource_type=draw(st.sampled_from(["ManagedInstance", "EC2Instance"] if hybrid
                                               else ["EC2Instance", "EC2Instance", "ManagedInstance"])),
            ping_status=draw(st.sampled_from(["Online", "Online", "ConnectionLost", "Inactive", None])),
            last_ping_time=rfc3339(snap - timedelta(minutes=draw(st.integers(1, 90 * 24 * 60))), 0),
            agent_version=draw(st.sampled_from(["3.3.1142.0", "3.2.2303.0", None])),
            platform_type="Linux" if proto["linux"] else draw(st.sampled_from(["Windows", "windows", None])),
            platform_name=draw(st.sampled_from(["Amazon Linux", "Ubuntu", "Red Hat Enterprise Linux", ""]
                                               if proto["linux"] else
                                               ["Microsoft Windows Server 2022 Datacenter", "", None])),
            platform_version=draw(st.sampled_from(["2023", "22.04", "10.0.20348", None])))
    if outcome == "unmanaged" and _chance(draw, 80):
        row["unmanaged_reason"] = draw(st.sampled_from(["terminated", "not_registered", "agent_offline",
                                                        "not_permitted"]))
    aws = draw(st.sampled_from(["none", "zero", "random", "agree"]))
    if aws != "none":
        bad = any(p["state"] in ("InstalledPendingReboot", "InstalledRejected", "Missing", "Failed",
                                 "AvailableSecurityUpdate") for p in patches)
        if aws == "zero":
            c = (0, 0, 0)
        elif aws == "random":
            c = tuple(draw(st.integers(0, 3)) for _ in range(3))
        else:
            c = (0, 1, 0) if bad else (0, 0, 0)
        row.update(critical_non_compliant_count=c[0], security_non_compliant_count=c[1],
                   other_non_compliant_count=c[2])
    return row


@st.composite
def scenarios(draw):
    window = draw(st.sampled_from(WINDOWS))
    scopes = draw(st.lists(st.sampled_from(SCOPES), min_size=1, max_size=3, unique=True))
    used = set()
    lines, all_ids, all_kbs, times, protos_all = [], [], set(), [], []
    for account, region in scopes:
        protos = []
        for n in range(draw(st.integers(1, 4))):
            rich = n == 0 and not protos_all
            kind = draw(st.sampled_from(["windows", "linux", "linux", "windows"]))
            linux = kind == "linux"
            iid = _hexid(draw, "mi-" if _chance(draw, 10) else "i-", used)
            pool = LINUX_KBS if linux else WINDOWS_KBS
            k = draw(st.sampled_from([6, 7, 8] if rich else [0, 2, 3, 4, 5, 6]))
            kbs = draw(st.lists(st.sampled_from(pool), min_size=k, max_size=k, unique=True))
            name = None if _chance(draw, 15) else draw(st.sampled_from(NAMES))
            platform = draw(st.sampled_from(["Linux", "Amazon Linux", "Ubuntu", ""] if linux
                                            else ["Windows", "windows", ""]))
            protos.append({"instance_id": iid, "linux": linux, "kbs": kbs, "name": name, "platform": platform,
                           "rich": rich})
            protos_all.append(iid)
            all_ids.append(iid)
            all_kbs.update(kbs)
        snaps = draw(st.lists(snapshot_time(window), min_size=2, max_size=6))
        if _chance(draw, 10):  # two runs of one scope at the same instant: run_id breaks the tie (§5.2)
            snaps.append(snaps[0])
        for t in sorted(snaps):
            insts = [draw(instance_row(t, p)) for p in protos if p["rich"] or _chance(draw, 80)]
            lines.append({"snapshot_time": rfc3339(t, draw(st.sampled_from([0, 0, 1, 2]))), "account_id": account,
                          "region": region, "instances": insts})
            times.append(t)
    # import order: chronological per scope, scopes interleaved at random
    order = draw(st.permutations(range(len(lines))))
    per_scope_sorted = sorted(range(len(lines)), key=lambda i: (_parse(lines[i]["snapshot_time"]),))
    lines = [lines[i] for i in per_scope_sorted] if not _chance(draw, 30) else _interleave(lines, order)
    return Scenario(lines=lines, instance_ids=all_ids, rich_id=protos_all[0], kb_ids=sorted(all_kbs), snapshot_times=times,
                    leftovers=_chance(draw, 30))


def _parse(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _interleave(lines, order):
    """A permutation that keeps each scope's snapshots in time order (runs are imported as collected)."""
    by_scope = {}
    for i in range(len(lines)):
        by_scope.setdefault((lines[i]["account_id"], lines[i]["region"]), []).append(i)
    for v in by_scope.values():
        v.sort(key=lambda i: _parse(lines[i]["snapshot_time"]))
    picks = [(lines[i]["account_id"], lines[i]["region"]) for i in order]
    return [lines[by_scope[s].pop(0)] for s in picks]


def query_dates(scn: Scenario, tz: str):
    """Candidate `--as-of` / `--from` / `--to` dates in zone tz: each snapshot's local date and the day
    before it (where the snapshot is just in / just out of force), the DST days, and dates before and
    after the whole history."""
    out = set()
    for t in scn.snapshot_times:
        d = t.astimezone(ZoneInfo(tz)).date()
        out.update({d - timedelta(days=1), d})
    if out:
        out.update({min(out) - timedelta(days=30), max(out) + timedelta(days=30)})
    dst_days = [dst for _start, dst in WINDOWS if min(out) <= dst <= max(out)]
    return sorted(out) + dst_days * 3  # the DST days drawn more often
