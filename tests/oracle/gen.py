"""Hypothesis strategies for random multi-week patch histories, written as `patchtrail import` lines.

A history has 1-3 scopes (account, region), 2-6 snapshots per scope at random instants of a four-week
window that holds one of the America/New_York DST changes (2026-03-08, 2026-11-01), with instants
placed on local midnights / the last microsecond of local days of UTC, New York and Tokyo. A run's
collection window (`finished_at`, §1.4) is often hours long, and runs of one scope may overlap; times are
written in RFC 3339 with up to nanoseconds (which `import` truncates to the microsecond, §1.4), the
finest ones next to day boundaries. Instances come and go; each has its own set of patches (Windows KBs,
Linux packages whose version moves in the title, an empty version `pkg.x86_64:` (§6.5), unicode and
formula-looking text) whose State is drawn afresh in every snapshot from every §2.1 state in both the
wire's and the API model's spelling (§1.3) plus unknown ones, so that every class transition of §6.2
occurs. Scans are placed on the stale-age boundaries measured from `finished_at` (§4.1 rule 4).

Besides histories, this module draws what `import` must refuse (§1.6), and the pages of the seed's own
Step Functions workflow (§1.2) a seed-layout store may hold beside patchtrail's runs.
"""
from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

UTC = timezone.utc
US = timedelta(microseconds=1)
TZS = ["UTC", "America/New_York", "Asia/Tokyo"]

# §2.1 every known state in the wire's CamelCase and in the API model's UPPER_SNAKE spelling (both stored
# as the wire's, §1.3), plus unknown ones that must fall in `other` (§2.2). Grouped by §2.1 class and drawn
# class first, so that every pair of classes is about equally likely. (A near-spelling such as `missing`
# is neither AWS spelling: §1.3 keeps it as sent; test_import.py checks that case once.)
STATE_GROUPS = [["Installed", "InstalledOther", "INSTALLED", "INSTALLED_OTHER"],
                ["InstalledPendingReboot", "INSTALLED_PENDING_REBOOT"],
                ["InstalledRejected", "INSTALLED_REJECTED"], ["Missing", "MISSING"], ["Failed", "FAILED"],
                ["NotApplicable", "NOT_APPLICABLE"], ["AvailableSecurityUpdate", "AVAILABLE_SECURITY_UPDATE"],
                ["Superseded", "Installed Other", ""]]
STATES = [s for g in STATE_GROUPS for s in g]
# What a seed-workflow page (§1.2) may hold: kept exactly as sent (§1.3), so the API model's spellings fall
# in `other` there.
SEED_WORKFLOW_STATES = ["Installed", "InstalledOther", "InstalledPendingReboot", "InstalledRejected", "Missing",
                        "Failed", "NotApplicable", "AvailableSecurityUpdate", "MISSING", "INSTALLED_PENDING_REBOOT",
                        "INSTALLED", "Superseded"]
SEVERITIES = ["Critical", "critical", "CRITICAL", " Critical ", "Important", "important", "IMPORTANT", "High",
              "Moderate", "medium", "MEDIUM", "Low", "low", "", "Unspecified", "None", "required", "standard",
              "optional", "extra", "=Critical", "\tHigh", "\rLow", "-1", "+High"]
CLASSIFICATIONS = ["Security", "SecurityUpdates", "securityupdates", " Security ", "SECURITY", "CriticalUpdates",
                   "criticalupdates", "Updates", "Bugfix", "", "=SecurityUpdates", "UpdateRollups", "@Security"]
WINDOWS_KBS = ["KB5034441", "KB5034439", "KB5035845", "KB890830", "KB5001716", "KB2267602", "KB5036893",
               "KB4052623"]
WINDOWS_TITLES = ["2026-02 Cumulative Update for Windows Server 2022 for x64-based Systems ({kb})",
                  "Security Intelligence Update for Microsoft Defender Antivirus - {kb}",
                  "=HYPERLINK(\"http://x\",\"{kb}\")", "+{kb} update", "-{kb}", "@{kb}", "\t{kb} tab",
                  "Windows の累積更新プログラム ({kb})", "", "Mise à jour de sécurité ({kb}) — ✓",
                  "pipe | and back\\slash {kb}", "{kb}\r\nsecond line", "trailing backslash {kb}\\"]
LINUX_KBS = ["kernel.x86_64", "openssl-libs.x86_64", "glibc.x86_64", "curl.aarch64", "libssl3",
             "パッケージ.noarch", "@scope-pkg.noarch", "=calc.x86_64"]
LINUX_VERSIONS = ["0:5.10.1-1.amzn2", "0:5.10.2-1.amzn2", "1:5.10.228-219.884.amzn2", "0:3.0.2-0ubuntu1.10", ""]
NAMES = ["web-1", "db-primary", "=cmd|' /C calc'!A0", "+sum(1,2)", "-minus", "@at", "サーバー１", "naïve ☃",
         "", "a,b;\"quoted\"", "\tleading tab", " spaced ", "two\nlines", "back\\slash | pipe\r\nend",
         # §7.1: HTML, a terminal's escape sequences, bidirectional overrides, a full-width formula.
         "<img src=x onerror=alert(1)> & co", "\x1b]0;pwned\x07\x1b[2Jweb", "rtl\u202egpj.exe", "\u2066iso\u2069 name",
         "\uff1d1+1"]
SCOPES = [("111111111111", "us-east-1"), ("111111111111", "ap-northeast-1"), ("222222222222", "us-east-1"),
          ("333333333333", "eu-west-1")]
ENVIRONMENTS = ["prod", "staging", "dev"]  # the instances' Environment tag (§8.6 tag selectors)
# Four-week windows: each holds a New York DST change (2026-03-08 spring forward, 2026-11-01 fall back).
WINDOWS = [(date(2026, 2, 22), date(2026, 3, 8)), (date(2026, 10, 18), date(2026, 11, 1))]


def fmt_time(t: datetime, style: int = 0, ns: int = 0) -> str:
    """An instant (µs precision) as RFC 3339 text, with `ns` (0-999) further nanoseconds that `import`
    must drop (§1.4): Z (style 0), +00:00 (1), or Tokyo's offset (2)."""
    z = ZoneInfo("Asia/Tokyo") if style == 2 else UTC
    local = t.astimezone(z)
    frac = ""
    if ns:
        frac = f".{local.microsecond:06d}{ns:03d}"
        if ns % 100 == 0:
            frac = frac[:8]  # 7 digits
    elif local.microsecond:
        frac = f".{local.microsecond:06d}".rstrip("0")
    off = "Z" if style == 0 else local.strftime("%z")
    if off != "Z":
        off = off[:3] + ":" + off[3:]
    return local.strftime("%Y-%m-%dT%H:%M:%S") + frac + off


def rfc3339(t: datetime, style: int = 0) -> str:
    return fmt_time(t, style)


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
class SeedPage:
    """A page the seed's own workflow wrote (§1.2): its day partition, instance, object name, body and
    LastModified (the file's mtime, in ns)."""
    day: date
    instance_id: str
    name: str
    patches: list
    mtime_ns: int

    @property
    def key(self):
        return f"year={self.day:%Y}/month={self.day:%m}/day={self.day:%d}/instanceid={self.instance_id}/{self.name}"


@dataclass
class Scenario:
    lines: list  # import JSON objects, in import order
    instance_ids: list
    rich_id: str  # the instance always present, mostly reporting, with many patches
    kb_ids: list
    snapshot_times: list  # instants (µs) the history's runs started
    finished_times: list = field(default_factory=list)  # instants (µs) they were complete
    instants: list = field(default_factory=list)  # instants worth asking about: collection window edges
    window_instants: list = field(default_factory=list)  # instants inside a window, where only §5.2 decides
    seed_window_instants: list = field(default_factory=list)  # the same, of seed-workflow partitions (§1.2)
    leftovers: bool = False
    seed_pages: list = field(default_factory=list)  # SeedPage written after the import (seed layout only)

    def __repr__(self):  # what hypothesis prints for a failing example: the import file itself
        body = "\n".join(json.dumps(line, ensure_ascii=False) for line in self.lines)
        pages = "".join(f"\nseed-workflow page {p.key} mtime_ns={p.mtime_ns}: "
                        f"{json.dumps({'Patches': p.patches}, ensure_ascii=False)}" for p in self.seed_pages)
        return f"Scenario(leftovers={self.leftovers}, import lines:\n{body}{pages}\n)"


def _hexid(draw, prefix, used):
    while True:
        v = prefix + "".join(draw(st.lists(st.sampled_from("0123456789abcdef"), min_size=17, max_size=17)))
        if v not in used:
            used.add(v)
            return v


def _chance(draw, pct):
    return draw(st.integers(0, 99)) < pct


def _ns(draw, pct=20):
    """Sub-microsecond digits (§1.4: truncated by import), sometimes."""
    return draw(st.sampled_from([1, 499, 500, 501, 999, 100, 900])) if _chance(draw, pct) else 0


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
def window_length(draw):
    """How long a run's collection took (§1.4): often an instant, else seconds to more than a day."""
    kind = draw(st.sampled_from(["none", "zero", "short", "hours", "hours", "hours", "long", "long"]))
    if kind == "none":
        return None  # no finished_at in the line: it defaults to snapshot_time
    if kind == "zero":
        return timedelta(0)
    if kind == "short":
        return timedelta(seconds=draw(st.integers(1, 600)), microseconds=draw(st.integers(0, 999999)))
    if kind == "hours":
        return timedelta(hours=draw(st.sampled_from(range(1, 13))), minutes=draw(st.sampled_from(range(60))),
                         microseconds=draw(st.sampled_from([0, 1, 999999, 123456])))
    return timedelta(hours=draw(st.sampled_from([20, 23, 24, 25, 30])), seconds=draw(st.integers(0, 3599)))


INSTALLED_TIMES = [None, "2026-01-15T10:00:00Z", "2026-01-15T19:00:00+09:00", "2025-12-31T23:59:59Z"]
# Finer install times: the seed layout's pages hold them to the second (test_import checks that once).
FINE_INSTALLED_TIMES = ["2026-01-15T10:00:00.25Z", "2025-12-31T23:59:59.999999999Z", "2026-01-01T00:00:00.0000005Z"]


@st.composite
def patch_row(draw, kb, linux, fine_times):
    if linux:
        title = (f"{kb}:{draw(st.sampled_from(LINUX_VERSIONS))}" if _chance(draw, 90)
                 else draw(st.sampled_from([kb, "", kb + " update", kb.split(".")[0], kb + "::"])))
    else:
        title = draw(st.sampled_from(WINDOWS_TITLES)).format(kb=kb)
    row = {"kb_id": kb, "title": title, "classification": draw(st.sampled_from(CLASSIFICATIONS)),
           "severity": draw(st.sampled_from(SEVERITIES)),
           "state": draw(st.sampled_from(STATE_GROUPS).flatmap(st.sampled_from)),
           "installed_time": draw(st.sampled_from(INSTALLED_TIMES + (FINE_INSTALLED_TIMES if fine_times else []))),
           "cve_ids": draw(st.sampled_from([None, "", "CVE-2024-20666", "CVE-2024-1,CVE-2024-2"]))}
    for k in ("installed_time", "cve_ids"):  # an absent field is null (import --help)
        if row[k] is None and _chance(draw, 50):
            del row[k]
    return row


def _time(draw, t, style_pool=(0, 0, 1, 2)):
    return fmt_time(t, draw(st.sampled_from(list(style_pool))), _ns(draw))


@st.composite
def extra_fields(draw, snap: datetime, name):
    """Other columns of the instances table an import line may give (import --help): each must round-trip."""
    out = {}
    pool = {
        "launch_time": lambda: _time(draw, snap - timedelta(days=draw(st.integers(1, 900)), seconds=draw(st.integers(0, 86399)))),
        "tags": lambda: json.dumps({"Name": name or "", "CheckPatch": "true", "環境": "本番",
                                    "Environment": draw(st.sampled_from(ENVIRONMENTS))}, ensure_ascii=False),
        "computer_name": lambda: draw(st.sampled_from(["ip-10-0-0-1.ec2.internal", "WIN-ÄÖ", "=host"])),
        "ip_address": lambda: draw(st.sampled_from(["10.0.0.1", "fe80::1"])),
        "baseline_id": lambda: draw(st.sampled_from(["pb-0123456789abcdef0",
                                                     "arn:aws:ssm:us-east-1:111111111111:patchbaseline/pb-0a"])),
        "patch_group": lambda: draw(st.sampled_from(["prod", "", "グループ"])),
        "operation": lambda: draw(st.sampled_from(["Scan", "Install"])),
        "operation_start_time": lambda: _time(draw, snap - timedelta(hours=draw(st.integers(1, 400)))),
        "installed_count": lambda: draw(st.integers(0, 500)),
        "installed_other_count": lambda: draw(st.integers(0, 50)),
        "installed_pending_reboot_count": lambda: draw(st.integers(0, 5)),
        "installed_rejected_count": lambda: draw(st.integers(0, 5)),
        "missing_count": lambda: draw(st.integers(0, 50)),
        "failed_count": lambda: draw(st.integers(0, 5)),
        "not_applicable_count": lambda: draw(st.integers(0, 900)),
        "unreported_not_applicable_count": lambda: draw(st.sampled_from([-1, 0, 3])),
        "available_security_update_count": lambda: draw(st.integers(0, 4)),
        "reboot_option": lambda: draw(st.sampled_from(["RebootIfNeeded", "NoReboot"])),
        "last_no_reboot_install_time": lambda: _time(draw, snap - timedelta(days=draw(st.integers(1, 60)))),
        "snapshot_id": lambda: str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "install_override_list": lambda: draw(st.sampled_from(["s3://bucket/override.yaml", ""])),
        "owner_information": lambda: draw(st.sampled_from(["maintenance window mw-1", "-owner"])),
    }
    for k in draw(st.lists(st.sampled_from(sorted(pool)), max_size=8, unique=True)):
        out[k] = pool[k]()
    return out


@st.composite
def instance_row(draw, snap: datetime, fin: datetime, proto: dict, fine_times: bool):
    """One instance of a run that started at `snap` and was complete at `fin` (§1.4)."""
    rich = proto.get("rich") and _chance(draw, 90)  # a reporting instance with many patches (transitions)
    outcome = "ok" if rich else draw(st.sampled_from(["ok"] * 7 + ["unmanaged", "error"]))
    scan = None
    if outcome == "ok" or _chance(draw, 15):
        kind = "recent" if rich else draw(st.sampled_from(
            ["recent"] * 8 + ["d14", "d14+", "d14-", "d7", "d30", "months", "never", "window", "by_start",
             "at_finish"]))
        D = timedelta(days=1)
        scan = {
            "recent": lambda: fin - timedelta(hours=draw(st.sampled_from(range(0, 14 * 24 - 1))),
                                              seconds=draw(st.integers(0, 3599))),
            # §4.1 rule 4 at finished_at: exactly 14 days is not stale, 1 µs more is
            "d14": lambda: fin - 14 * D,
            "d14+": lambda: fin - 14 * D - US,
            "d14-": lambda: fin - 14 * D + US,
            "d7": lambda: fin - 7 * D + draw(st.sampled_from([-US, timedelta(0), US, timedelta(seconds=1)])),
            "d30": lambda: fin - 30 * D + draw(st.sampled_from([-US, timedelta(0), US, -timedelta(seconds=1)])),
            "months": lambda: fin - timedelta(days=draw(st.integers(60, 200)), seconds=draw(st.integers(0, 86399))),
            "never": lambda: None,
            # read during the collection window: after the snapshot started, not after it finished (§1.6)
            "window": lambda: snap + (fin - snap) * draw(st.sampled_from([0, 1, 2, 3])) / 3,
            # stale when measured from the snapshot's start or not, the other way from its end (§4.1, §4.2)
            "by_start": lambda: snap - 14 * D + draw(st.sampled_from([timedelta(hours=1), timedelta(0), -US])),
            "at_finish": lambda: fin,
        }[kind]()
        if scan is not None:
            scan = min(scan, fin)
            if kind in ("recent", "months") and _chance(draw, 70):
                scan = scan.replace(microsecond=0)  # whole seconds, as SSM sends them (never later)
    patches = []
    if outcome == "ok" or _chance(draw, 10):
        for kb in proto["kbs"]:
            if _chance(draw, 89):  # absent about as often as each class (1 in 9)
                patches.append(draw(patch_row(kb, proto["linux"], fine_times)))
    row = {"instance_id": proto["instance_id"], "name": proto["name"], "platform": proto["platform"],
           "ec2_state": draw(st.sampled_from(["running"] * 4 + ["stopped", "stopped", "terminated", None])),
           "instance_type": "t3.micro", "last_scan_time": None, "outcome": outcome, "error_code": None,
           "error_message": None, "patches": patches}
    if scan is not None:
        # sub-µs digits only on a scan before the window's last µs: whether §1.6 compares the times as sent
        # or as kept (§1.4) is not for this test to decide
        row["last_scan_time"] = fmt_time(scan, draw(st.integers(0, 2)), _ns(draw) if scan < fin else 0)
    elif _chance(draw, 30):
        del row["last_scan_time"]  # absent: null
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
            last_ping_time=fmt_time(snap - timedelta(minutes=draw(st.integers(1, 90 * 24 * 60)),
                                                     microseconds=draw(st.sampled_from([0, 0, 1, 654321]))),
                                    draw(st.integers(0, 2)), _ns(draw)),
            agent_version=draw(st.sampled_from(["3.3.1142.0", "3.2.2303.0", None])),
            platform_type="Linux" if proto["linux"] else draw(st.sampled_from(["Windows", "windows", None])),
            platform_name=draw(st.sampled_from(["Amazon Linux", "Ubuntu", "Red Hat Enterprise Linux", ""]
                                               if proto["linux"] else
                                               ["Microsoft Windows Server 2022 Datacenter", "", None])),
            platform_version=draw(st.sampled_from(["2023", "22.04", "10.0.20348", None])))
    if outcome == "unmanaged" and _chance(draw, 80):
        row["unmanaged_reason"] = draw(st.sampled_from(["terminated", "not_registered", "agent_offline",
                                                        "not_permitted"]))
    aws = draw(st.sampled_from(["none", "zero", "random", "agree", "partial"]))
    if aws != "none":
        bad = any(p["state"] in ("InstalledPendingReboot", "InstalledRejected", "Missing", "Failed",
                                 "AvailableSecurityUpdate") for p in patches)
        if aws == "zero":
            c = (0, 0, 0)
        elif aws == "random":
            c = tuple(draw(st.integers(0, 3)) for _ in range(3))
        elif aws == "partial":  # §4.3: some counts absent
            c = tuple(draw(st.sampled_from([None, 0, 1])) for _ in range(3))
        else:
            c = (0, 1, 0) if bad else (0, 0, 0)
        for k, v in zip(("critical_non_compliant_count", "security_non_compliant_count",
                         "other_non_compliant_count"), c):
            if v is not None:
                row[k] = v
    if _chance(draw, 30):
        row.update(draw(extra_fields(snap, row["name"])))
    for k in ("name", "platform", "ec2_state", "error_code", "error_message"):
        if row.get(k, 0) is None and _chance(draw, 30):
            del row[k]  # absent: null
    return row


@st.composite
def scenarios(draw, fmt="parquet"):
    window = draw(st.sampled_from(WINDOWS))
    scopes = draw(st.lists(st.sampled_from(SCOPES), min_size=1, max_size=3, unique=True))
    fine_times = fmt != "seed"
    used = set()
    lines, all_ids, all_kbs, times, fins, protos_all, instants, windows = [], [], set(), [], [], [], [], []
    for account, region in scopes:
        protos = []
        for n in range(draw(st.integers(1, 4))):
            rich = n == 0 and not protos_all
            kind = draw(st.sampled_from(["windows", "linux", "linux", "windows"]))
            linux = kind == "linux"
            iid = _hexid(draw, "mi-" if _chance(draw, 10) else "i-", used)
            pool = LINUX_KBS if linux else WINDOWS_KBS
            k = 8 if rich else draw(st.sampled_from([0, 2, 3, 4, 5, 6]))  # the rich one: the whole pool
            kbs = draw(st.lists(st.sampled_from(pool), min_size=k, max_size=k, unique=True))
            name = None if _chance(draw, 15) else draw(st.sampled_from(NAMES))
            platform = draw(st.sampled_from(["Linux", "Amazon Linux", "Ubuntu", ""] if linux
                                            else ["Windows", "windows", ""]))
            protos.append({"instance_id": iid, "linux": linux, "kbs": kbs, "name": name, "platform": platform,
                           "rich": rich})
            protos_all.append(iid)
            all_ids.append(iid)
            all_kbs.update(kbs)
        # the rich instance's scope has at least three snapshots (two changes of each of its patches)
        snaps = draw(st.lists(snapshot_time(window), min_size=3 if any(p["rich"] for p in protos) else 2, max_size=6))
        if _chance(draw, 10):  # two runs of one scope at the same instant: run_id breaks the tie (§5.2)
            snaps.append(snaps[0])
        for t in sorted(snaps):
            length = draw(window_length())
            fin = t if length is None else t + length
            insts = [draw(instance_row(t, fin, p, fine_times)) for p in protos if p["rich"] or _chance(draw, 80)]
            # sub-µs digits on the snapshot's own time: truncation (§1.4) must never carry it into the
            # next microsecond, and so never into the next day for a last-µs-of-the-day snapshot
            ns = _ns(draw, 25)
            line = {"snapshot_time": fmt_time(t, draw(st.sampled_from([0, 0, 1, 2])), ns), "account_id": account,
                    "region": region, "instances": insts}
            if length is not None:
                # (an instant window keeps the snapshot's own sub-µs digits: never before it, as sent or kept)
                line["finished_at"] = fmt_time(fin, draw(st.sampled_from([0, 1, 2])), _ns(draw, 25) if fin > t else ns)
            lines.append(line)
            times.append(t)
            fins.append(fin)
            instants += [t, fin, fin - US, fin + US]
            if fin > t:
                windows += [t + (fin - t) / 2, fin - US, fin]
    # import order: chronological per scope, scopes interleaved at random
    order = draw(st.permutations(range(len(lines))))
    per_scope_sorted = sorted(range(len(lines)), key=lambda i: (_parse(lines[i]["snapshot_time"]),))
    lines = [lines[i] for i in per_scope_sorted] if not _chance(draw, 30) else _interleave(lines, order)
    scn = Scenario(lines=lines, instance_ids=all_ids, rich_id=protos_all[0], kb_ids=sorted(all_kbs),
                   snapshot_times=times, finished_times=fins, instants=sorted(set(instants)),
                   window_instants=sorted(set(windows)), leftovers=_chance(draw, 30))
    if fmt == "seed" and _chance(draw, 50):
        scn.seed_pages = draw(seed_workflow_pages(window, all_ids, sorted(all_kbs), times))
        parts = {}
        for p in scn.seed_pages:
            t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=p.mtime_ns // 1000)
            scn.instants += [t, t - US, t + US]
            parts.setdefault(p.day, []).append(t)
        for ts in parts.values():  # a seed-workflow partition is complete at its last page (§1.2)
            if max(ts) > min(ts):
                scn.seed_window_instants += [min(ts) + (max(ts) - min(ts)) / 2, max(ts) - US, max(ts)]
        scn.instants = sorted(set(scn.instants))
        scn.seed_window_instants = sorted(set(scn.seed_window_instants))
    return scn


@st.composite
def seed_workflow_pages(draw, window, instance_ids, kb_ids, times):
    """§1.2: one or two day partitions written by the seed's own workflow (no manifest, no account or
    region), sometimes on a day patchtrail also wrote, holding known instances and new ones, with states as
    the seed's workflow stored them (kept as sent, §1.3). LastModified times spread over minutes to hours."""
    start, _dst = window
    days = draw(st.lists(st.one_of(st.sampled_from(range(28)).map(lambda n: start + timedelta(days=n)),
                                   st.sampled_from(sorted({t.date() for t in times}))),
                         min_size=1, max_size=2, unique=True))
    used = set(instance_ids)
    names = set()
    pages = []
    for d in days:
        n_before = len(pages)
        first = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(
            seconds=draw(st.sampled_from(range(0, 86400, 137))))
        iids = draw(st.lists(st.sampled_from(instance_ids), max_size=2, unique=True)) if instance_ids else []
        if not iids or _chance(draw, 50):
            iids.append(_hexid(draw, "i-", used))
        for iid in iids:
            listed = set()  # AWS lists a patch once per instance: pages of one instance hold distinct KBIds
            # an instance's patches over one or two pages; a partition has two pages at least
            for _ in range(2 if len(iids) == 1 else draw(st.integers(1, 2))):
                kbs = [k for k in draw(st.lists(st.sampled_from(kb_ids or WINDOWS_KBS), max_size=4, unique=True))
                       if k not in listed]
                listed.update(kbs)
                patches = [{"Classification": draw(st.sampled_from(CLASSIFICATIONS)),
                            "InstalledTime": "1970-01-01T00:00:00Z",
                            "KbId": kb, "Severity": draw(st.sampled_from(SEVERITIES)),
                            "State": draw(st.sampled_from(SEED_WORKFLOW_STATES)),
                            "Title": draw(st.sampled_from([f"{kb}:0:1.0-1", f"Update ({kb})", ""]))} for kb in kbs]
                # a Step Functions execution id, unique; never a claimed run's tag (first 8 hex digits) by
                # chance: the tests check that case separately
                name = str(draw(st.uuids()))
                while name in names:
                    name = str(uuid.UUID(int=(uuid.UUID(name).int * 6364136223846793005 + 1442695040888963407) % 2**128))
                names.add(name)
                mtime = first + timedelta(seconds=draw(st.sampled_from([0, 1, 59, 600, 3600, 7 * 3600])))
                pages.append(SeedPage(d, iid, name, patches, int(mtime.timestamp()) * 10**9))
        if len({p.mtime_ns for p in pages[n_before:]}) == 1:  # the workflow took a while: a later page
            p = pages[-1]
            pages[-1] = SeedPage(p.day, p.instance_id, p.name, p.patches, p.mtime_ns + 600 * 10**9)
    return pages


def _parse(s):
    return datetime.fromisoformat(_iso_us(s))


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
    """Candidate `--as-of` / `--from` / `--to` dates in zone tz: each snapshot's and each finish's local
    date and the day before it (where the snapshot is just in / just out of force), the DST days, and dates
    before and after the whole history."""
    out = set()
    for t in scn.snapshot_times + scn.finished_times:
        d = t.astimezone(ZoneInfo(tz)).date()
        out.update({d - timedelta(days=1), d})
    if out:
        out.update({min(out) - timedelta(days=30), max(out) + timedelta(days=30)})
    dst_days = [dst for _start, dst in WINDOWS if min(out) <= dst <= max(out)]
    # §8.2: an as-of in the future is refused; histories near today keep only dates up to today
    today = datetime.now(ZoneInfo(tz)).date()
    return [d for d in sorted(out) + dst_days * 3 if d <= today]  # the DST days drawn more often


# ---------------------------------------------------------------------------------------------
# What import must refuse (§1.6)
# ---------------------------------------------------------------------------------------------

REFUSALS = ["instance_twice", "kb_twice", "scan_after_finish", "scan_after_snapshot_no_finish",
            "finish_before_snapshot"]


def refused_import(R, scn: Scenario):
    """A file of import lines exactly one of which `import` must refuse (§1.6), placed first, among or
    after valid ones, drawn with the random.Random R. Returns (kind, lines)."""
    kind = R.choice(REFUSALS)
    base = json.loads(json.dumps(R.choice(scn.lines)))
    snap = _parse(base["snapshot_time"])
    blank = {"instance_id": "i-0123456789abcdef0", "outcome": "ok", "patches": []}
    if not base["instances"]:
        base["instances"] = [dict(blank)]
    if kind == "instance_twice":
        inst = R.choice(base["instances"])
        twin = json.loads(json.dumps(inst))
        if R.random() < 0.5:  # not identical rows: the same instance all the same
            twin["name"] = "another name"
            twin["patches"] = []
        base["instances"].insert(R.randint(0, len(base["instances"])), twin)
    elif kind == "kb_twice":
        inst = R.choice(base["instances"])
        p = {"kb_id": "KB5034441", "title": "t", "classification": "Security", "severity": "Critical",
             "state": "Missing"}
        if inst.get("patches"):
            p = dict(R.choice(inst["patches"]))
            if R.random() < 0.5:  # another state and title: the same KBId all the same
                p["state"] = "Installed" if p.get("state") != "Installed" else "Failed"
                p["title"] = (p.get("title") or "") + " (again)"
        else:
            inst["patches"] = [dict(p)]
        inst["patches"] = list(inst["patches"]) + [p]
    elif kind in ("scan_after_finish", "scan_after_snapshot_no_finish"):
        if kind == "scan_after_finish":
            fin = snap + R.choice([timedelta(0), timedelta(hours=3), timedelta(seconds=1)])
            base["finished_at"] = fmt_time(fin, R.randint(0, 2))
        else:
            base.pop("finished_at", None)
            fin = snap
        inst = R.choice(base["instances"])
        inst["last_scan_time"] = fmt_time(fin + R.choice([US, timedelta(seconds=1), timedelta(hours=1)]),
                                          R.randint(0, 2))
    else:  # finish_before_snapshot
        base["finished_at"] = fmt_time(snap - R.choice([US, timedelta(seconds=1), timedelta(days=1)]), R.randint(0, 2))
        for inst in base["instances"]:  # no other reason to refuse it
            inst["last_scan_time"] = None
    others = [json.loads(json.dumps(R.choice(scn.lines))) for _ in range(R.randint(0, 2))]
    pos = R.randint(0, len(others))
    return kind, others[:pos] + [base] + others[pos:]


def _iso_us(s):
    """RFC 3339 text as fromisoformat reads it (at most µs: finer digits dropped)."""
    s = s.replace("Z", "+00:00")
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(.*)$", s)
    frac = (m.group(2) or "") + "000000"
    return f"{m.group(1)}.{frac[:6]}{m.group(3)}"


# ---------------------------------------------------------------------------------------------
# Findings over time (§8): weekly histories of three to five months
# ---------------------------------------------------------------------------------------------

CVE_POOL = ["CVE-2026-0001", "CVE-2026-0002", "CVE-2025-21333", "CVE-2024-49138", "CVE-2026-21519",
            "CVE-2025-0282"]
# §2.1 classes a finding history draws from, "absent" for a patch the instance's list does not hold
# (§8.1 no_longer_reported), with their weights: outstanding classes most often.
FINDING_CLASSES = {"missing": 5, "installed": 4, "failed": 1, "pending_reboot": 1, "not_applicable": 2,
                   "rejected": 1, "available_security_update": 1, "other": 1, "absent": 1}
_CLASS_GROUP = {"installed": 0, "pending_reboot": 1, "rejected": 2, "missing": 3, "failed": 4, "not_applicable": 5,
                "available_security_update": 6, "other": 7}
# The seed's own workflow stores State as sent (§1.3): its pages' classes, with the API model's spellings
# falling in `other`.
_SEED_CLASS_STATE = {"installed": ["Installed", "InstalledOther"], "pending_reboot": ["InstalledPendingReboot"],
                     "rejected": ["InstalledRejected"], "missing": ["Missing", "Missing", "MISSING"],
                     "failed": ["Failed"], "not_applicable": ["NotApplicable"],
                     "available_security_update": ["AvailableSecurityUpdate"], "other": ["Superseded"]}


def _weighted(R, weights):
    return R.choices(list(weights), weights=list(weights.values()))[0]


class _Chain:
    """The class of one patch of one instance from snapshot to snapshot: it stays put with probability
    `stick` (weekly snapshots of a patch that stays missing for months, §8.2), else moves."""

    def __init__(self, R, stick):
        self.R, self.stick = R, stick
        self.cls = _weighted(R, FINDING_CLASSES)

    def step(self):
        if self.R.random() >= self.stick:
            self.cls = _weighted(self.R, FINDING_CLASSES)
        return self.cls


def _cve_text(R, cves, messy):
    """What AWS sends in CVEIds for a Missing / Failed row (§8.4): none, or some of the patch's CVE ids,
    comma-separated; in a `messy` history also in other case, with blanks, empty pieces and "" (which name no
    CVE)."""
    if not cves or R.random() < 0.15:
        return None
    picked = R.sample(cves, R.randint(1, len(cves)))
    if not messy:
        return ",".join(picked)
    kind = R.choice(["plain", "lower", "spaced", "trailing", "empty"])
    if kind == "lower":
        return ",".join(c.lower() for c in picked)
    if kind == "spaced":
        return " , ".join(f" {c} " for c in picked)
    if kind == "trailing":
        return ",".join(picked) + ","
    if kind == "empty":
        return R.choice(["", " "])
    return ",".join(picked)


def _tags(R, name, env, style):
    """The instances table's tags (a JSON object string, import --help): Name and Environment, sometimes
    more keys; `style` "none" leaves the field out (import stores "{}")."""
    if style == "none":
        return None
    t = {"Name": name or "", "Environment": env}
    if style == "more":
        t.update({"CheckPatch": "true", "Owner": R.choice(["=team|ops", "platform", "運用"])})
    return json.dumps(t, ensure_ascii=False)


@st.composite
def finding_scenarios(draw, fmt="parquet"):
    """A history for §8: 1-3 scopes of 5-9 snapshots, mostly a week apart (some a day or two weeks), with
    collection windows of an instant to more than a day (§1.4, §5.2) and, now and then, two runs at one
    instant (the run id orders them, §8.1). Instances are steady, flaky (not reporting in some snapshots:
    collect error, unmanaged, never scanned, a scan past the stale age; §8.1 skips those), gone (absent from
    every snapshot after some week: §8.1 instance_gone), gapped (absent from a snapshot in the middle) or
    late. Each patch's class follows a sticky chain (missing for months, missing -> installed across weeks,
    missing -> not_applicable, the patch leaving the list: no_longer_reported); its severity, classification
    and title sometimes change between rows (§8.1 takes its first_seen row's), CVE ids only on Missing and
    Failed rows (§8.4), tags carry Environment, which sometimes changes (§8.6 reads the last_seen snapshot's).
    In the seed format, days of the seed's own workflow (§1.2, §4.7) with CVE ids in their pages.
    Drawn from one integer (the composite strategy stays small); the session's seed replays it."""
    R = random.Random(draw(st.integers(0, 2**63 - 1), label="history's seed"))
    messy = R.random() < 0.35
    start = datetime(2026, 1, 4, tzinfo=UTC) + timedelta(days=R.randint(0, 150), seconds=R.randint(0, 86399))
    scopes = R.sample(SCOPES, R.randint(1, 3))
    used = set()
    lines, ids, kbs_all, times, fins = [], [], set(), [], []
    rich = None
    for s_n, (account, region) in enumerate(scopes):
        n_snaps = R.randint(5, 9)
        snaps = [start + timedelta(hours=R.randint(0, 30), seconds=R.randint(0, 3599))]
        for _ in range(n_snaps - 1):
            gap = R.choice([7, 7, 7, 7, 7, 6, 8, 14, 1, 3])
            snaps.append(snaps[-1] + timedelta(days=gap, seconds=R.randint(-7200, 7200),
                                               microseconds=R.choice([0, 0, 1, 999999, R.randint(0, 999999)])))
        if R.random() < 0.15:  # two runs of one scope at one instant: (snapshot_time, run_id) orders them
            k = R.randrange(len(snaps))
            snaps.insert(k, snaps[k])
        protos = []
        for n in range(R.randint(1, 4)):
            first = s_n == 0 and n == 0
            kind = "steady" if first else R.choice(["steady", "steady", "flaky", "flaky", "gone", "gap", "late"])
            linux = R.random() < 0.5
            iid = "".join(["mi-" if R.random() < 0.08 else "i-"] + [R.choice("0123456789abcdef") for _ in range(17)])
            while iid in used:
                iid = iid[:-1] + R.choice("0123456789abcdef")
            used.add(iid)
            pool = LINUX_KBS if linux else WINDOWS_KBS
            kbs = R.sample(pool, 7 if first else R.randint(1, 6))
            present = list(range(len(snaps)))
            if kind == "gone":  # absent from every snapshot after some week (§8.1 instance_gone)
                present = present[:R.randint(2, max(2, len(snaps) - 1))]
            elif kind == "gap":
                k = R.randint(1, len(snaps) - 2)
                present = [i for i in present if i not in (k, k + 1) or (i == k + 1 and R.random() < 0.5)]
            elif kind == "late":
                present = present[R.randint(1, len(snaps) - 2):]
            name = None if R.random() < 0.1 else R.choice(NAMES)
            patches = {}
            for kb in kbs:
                patches[kb] = {
                    "chain": _Chain(R, R.choice([0.5, 0.7, 0.85, 0.95])),
                    "cves": R.sample(CVE_POOL, R.choice([0, 0, 1, 1, 2, 3])),
                    "severity": R.choice(SEVERITIES), "classification": R.choice(CLASSIFICATIONS),
                    "title": (R.choice(WINDOWS_TITLES).format(kb=kb) if not linux else None),
                    # §8.3: AWS's release date, before the history or in it, or none (AWS has none for
                    # most Linux systems and for patches it does not list)
                    "released": (None if R.random() < 0.3 else
                                 start + timedelta(days=R.randint(-90, 20), seconds=R.randint(0, 86399),
                                                   microseconds=R.choice([0, R.randint(0, 999999)]))),
                }
            protos.append({"instance_id": iid, "kind": kind, "linux": linux, "present": set(present), "name": name,
                           "env": R.choice(ENVIRONMENTS), "tag_style": R.choice(["plain", "plain", "more", "none"]),
                           "patches": patches})
            ids.append(iid)
            kbs_all.update(kbs)
            rich = rich or iid
        for k, t in enumerate(snaps):
            length = _window(R)
            fin = t if length is None else t + length
            insts = []
            for p in protos:
                states = {kb: v["chain"].step() for kb, v in p["patches"].items()}  # the chain moves every week
                if k not in p["present"]:
                    continue
                insts.append(_finding_instance(R, p, t, fin, states, messy))
            line = {"snapshot_time": fmt_time(t, R.choice([0, 0, 1, 2])), "account_id": account, "region": region,
                    "instances": insts}
            if length is not None:
                line["finished_at"] = fmt_time(fin, R.choice([0, 1, 2]))
            lines.append(line)
            times.append(t)
            fins.append(fin)
    lines.sort(key=lambda line: _parse(line["snapshot_time"]))  # each scope's runs imported in time order
    scn = Scenario(lines=lines, instance_ids=ids, rich_id=rich, kb_ids=sorted(kbs_all), snapshot_times=times,
                   finished_times=fins)
    if fmt == "seed" and R.random() < 0.5:
        scn.seed_pages = _finding_seed_pages(R, sorted({t.date() for t in times}), sorted(kbs_all), messy)
    return scn


def _window(R):
    """A run's collection window (§1.4): none given (an instant), minutes, hours, or more than a day."""
    kind = R.choice(["none", "none", "zero", "short", "hours", "hours", "long"])
    if kind == "none":
        return None
    if kind == "zero":
        return timedelta(0)
    if kind == "short":
        return timedelta(seconds=R.randint(1, 600), microseconds=R.randint(0, 999999))
    if kind == "hours":
        return timedelta(hours=R.randint(1, 12), minutes=R.randint(0, 59))
    return timedelta(hours=R.choice([20, 25, 30]), seconds=R.randint(0, 3599))


def _finding_instance(R, p, snap, fin, states, messy):
    """One instance of a run (snap, fin) in a findings history: reporting unless it is flaky this week
    (or, rarely, even when steady)."""
    flaky = R.random() < (0.35 if p["kind"] == "flaky" else 0.04)
    outcome, scan = "ok", fin - timedelta(hours=R.randint(0, 120), seconds=R.randint(0, 3599))
    why = R.choice(["error", "unmanaged", "never", "stale", "stale", "edge"]) if flaky else None
    if why in ("error", "unmanaged"):
        outcome = why
        scan = None if R.random() < 0.5 else scan
    elif why == "never":
        scan = None
    elif why == "stale":  # stale at the default 14 days and at 7, not at 30 (§4.1 rule 4)
        scan = fin - timedelta(days=R.choice([15, 20, 29]), seconds=R.randint(0, 3599))
    elif why == "edge":  # exactly 14 days: not stale; a µs more: stale
        scan = fin - timedelta(days=14) - R.choice([timedelta(0), US])
    scan = None if scan is None else min(scan, fin)
    name = p["name"]
    if name is not None and R.random() < 0.1:
        name = R.choice([n for n in NAMES if n])  # renamed: §8.1 shows the last_seen snapshot's
    env = p["env"] if R.random() < 0.85 else R.choice(ENVIRONMENTS + ["Prod"])
    patches = []
    if outcome == "ok" or R.random() < 0.3:  # a failed collect may still hold a list: it says nothing (§8.1)
        for kb, v in p["patches"].items():
            cls = states[kb]
            if cls == "absent":
                continue
            sev = v["severity"] if R.random() < 0.9 else R.choice(SEVERITIES)
            clas = v["classification"] if R.random() < 0.9 else R.choice(CLASSIFICATIONS)
            title = (v["title"] if v["title"] is not None else f"{kb}:{R.choice(LINUX_VERSIONS)}")
            if R.random() < 0.05:
                title = title + " (rev)"
            row = {"kb_id": kb, "title": title, "classification": clas, "severity": sev,
                   "state": R.choice(STATE_GROUPS[_CLASS_GROUP[cls]])}
            if v["released"] is not None and R.random() < 0.85:  # a later version: a later date (§8.3 earliest)
                later = timedelta(days=R.choice([0, 0, 0, 7, 30]))
                row["release_date"] = fmt_time(v["released"] + later, R.choice([0, 1, 2]))
            if cls in ("missing", "failed"):
                cves = _cve_text(R, v["cves"], messy)
                if cves is not None or R.random() < 0.5:
                    row["cve_ids"] = cves
            elif R.random() < 0.3:
                row["cve_ids"] = None
            patches.append(row)
    row = {"instance_id": p["instance_id"], "name": name, "platform": "Linux" if p["linux"] else "Windows",
           "ec2_state": "running", "last_scan_time": None if scan is None else fmt_time(scan, R.choice([0, 1, 2])),
           "outcome": outcome, "patches": patches}
    if outcome == "error":
        row["error_code"] = "ThrottlingException"
    if outcome == "unmanaged":
        row["unmanaged_reason"] = R.choice(["terminated", "not_registered", "agent_offline"])
    tags = _tags(R, name, env, p["tag_style"])
    if tags is not None:
        row["tags"] = tags
    return row


def _finding_seed_pages(R, days, kb_ids, messy):
    """§1.2 / §4.7: three to five days the seed's own workflow wrote (account and region unknown), a week
    or so apart, listing one or two instances whose patches follow sticky chains, with `CveIds` (or the raw
    API's `CVEIds`) on Missing and Failed patches."""
    first = R.choice(days)
    parts = sorted({first + timedelta(days=7 * n + R.choice([0, 0, 1])) for n in range(R.randint(3, 5))})
    iids = ["i-0seed" + "".join(R.choice("0123456789abcdef") for _ in range(12)) for _ in range(R.randint(1, 2))]
    kbs = R.sample(kb_ids or WINDOWS_KBS, min(4, len(kb_ids or WINDOWS_KBS)))
    chains = {(i, kb): (_Chain(R, 0.8), R.sample(CVE_POOL, R.choice([0, 1, 2]))) for i in iids for kb in kbs}
    pages, names = [], set()
    for d in parts:
        t0 = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(seconds=R.randrange(0, 80000, 7))
        for iid in iids:
            members = []
            for kb in kbs:
                chain, cves = chains[(iid, kb)]
                cls = chain.step()
                if cls == "absent":
                    continue
                state = R.choice(_SEED_CLASS_STATE[cls])
                m = {"Classification": R.choice(CLASSIFICATIONS), "InstalledTime": "1970-01-01T00:00:00Z",
                     "KbId": kb, "Severity": R.choice(SEVERITIES), "State": state,
                     "Title": f"Update ({kb})"}
                if state in ("Missing", "Failed"):
                    text = _cve_text(R, cves, messy)
                    if text is not None:
                        m["CveIds" if R.random() < 0.7 else "CVEIds"] = text
                members.append(m)
            cut = R.randint(0, len(members))
            for part in ([members] if R.random() < 0.5 else [members[:cut], members[cut:]]):
                name = str(uuid.UUID(int=R.getrandbits(128), version=4))
                while name in names:
                    name = str(uuid.UUID(int=R.getrandbits(128), version=4))
                names.add(name)
                mtime = t0 + timedelta(seconds=R.choice([0, 1, 59, 600, 3600]))
                pages.append(SeedPage(d, iid, name, part, int(mtime.timestamp()) * 10**9))
    return pages
