"""Checks what patchtrail stored and reported from the replayed answers of a fixture.

usage: replay_check.py FIXTURE STORE SUMMARY_JSON
STORE is a parquet store collected with --all-classifications from replay_server.py; SUMMARY_JSON is
`patchtrail report summary --format json --stale-days 100000` over it (the documented answers are
years old, so only a long stale age leaves their patches to decide compliance). Expected values come
from the fixture by docs/semantics.md as written (§1.3 stored as sent, §4.1 compliance, §4.5 the
unmanaged reason, §4.6 node type and names). Prints JSON: the mismatches, and the rows compared.
"""
import json
import sys

import pyarrow.dataset as ds

from node_facts import expected_reason

NON_COMPLIANT = {"InstalledPendingReboot", "InstalledRejected", "Missing", "Failed", "AvailableSecurityUpdate"}


def opt_time(v):
    return v if v is not None and v > 0 else None


def main():
    fix = json.load(open(sys.argv[1], encoding="utf-8"))
    store = sys.argv[2]
    summary = json.load(open(sys.argv[3], encoding="utf-8"))
    nodes = {n["InstanceId"]: n for n in fix["nodes"]}
    states = {s["InstanceId"]: s for s in fix["patch_states"]}
    ec2 = {i["InstanceId"]: i for i in fix["ec2"]}
    hybrid = [n["InstanceId"] for n in fix["nodes"]
              if n["ResourceType"] == "ManagedInstance" and fix["tag_key"] in n.get("Tags", {})]

    want_patches = sorted(
        (iid, p["KBId"], p["Title"], p["Classification"], p["Severity"], p["State"],
         opt_time(p["InstalledTime"]), p.get("CVEIds") or None)
        for iid, pages in fix["patches"].items() for page in pages for p in page)
    got_patches = sorted(
        (r["instance_id"], r["kb_id"], r["title"], r["classification"], r["severity"], r["state"],
         r["installed_time"].timestamp() if r["installed_time"] else None, r["cve_ids"])
        for r in ds.dataset(f"{store}/patches", format="parquet", partitioning="hive").to_table().to_pylist())

    want_instances, want_summary = {}, {}
    for iid in list(ec2) + hybrid:
        node, state, e = nodes.get(iid), states.get(iid), ec2.get(iid)
        managed = iid in fix["patches"]
        reason = None if managed else expected_reason(e and e["State"], node)
        s = state or {}
        want_instances[iid] = {
            "name": e["Tags"].get("Name") if e else node["ComputerName"],
            "ec2_state": e and e["State"], "platform": e and e["PlatformDetails"],
            "resource_type": node and node["ResourceType"], "ping_status": node and node["PingStatus"],
            "last_ping_time": node and node["LastPingDateTime"], "agent_version": node and node["AgentVersion"],
            "platform_type": node and node["PlatformType"], "platform_name": node and node["PlatformName"],
            "platform_version": node and node["PlatformVersion"], "computer_name": node and node["ComputerName"],
            "ip_address": node and node["IPAddress"],
            "baseline_id": s.get("BaselineId"), "patch_group": s.get("PatchGroup"), "snapshot_id": s.get("SnapshotId"),
            "operation": s.get("Operation"), "last_scan_time": s.get("OperationEndTime"),
            "installed_count": s.get("InstalledCount"), "missing_count": s.get("MissingCount"),
            "failed_count": s.get("FailedCount"), "not_applicable_count": s.get("NotApplicableCount"),
            "unreported_not_applicable_count": s.get("UnreportedNotApplicableCount"),
            "reboot_option": s.get("RebootOption"),
            "last_no_reboot_install_time": s.get("LastNoRebootInstallOperationTime"),
            "outcome": "ok" if managed else "unmanaged", "unmanaged_reason": reason,
        }
        patches = [p for page in fix["patches"].get(iid, []) for p in page]
        want_summary[iid] = {
            "node_type": "hybrid" if iid.startswith("mi-") or (node and node["ResourceType"] == "ManagedInstance") else "ec2",
            "compliance": ("unmanaged" if not managed else "unknown" if state is None else
                           "non_compliant" if any(p["State"] in NON_COMPLIANT for p in patches) else "compliant"),
            "missing": sum(1 for p in patches if p["State"] == "Missing"),
            "ping_status": node and node["PingStatus"], "platform_name": node and node["PlatformName"],
            "unmanaged_reason": reason,
        }

    stored = {r["instance_id"]: r for r in
              ds.dataset(f"{store}/instances", format="parquet", partitioning="hive").to_table().to_pylist()}
    got_instances = {}
    for iid, r in stored.items():
        got = {k: r.get(k) for k in next(iter(want_instances.values()))}
        for k, v in got.items():
            if hasattr(v, "timestamp"):
                got[k] = v.timestamp()
        got_instances[iid] = got
    rows = summary if isinstance(summary, list) else summary.get("rows", summary)
    got_summary = {r["instance_id"]: {k: r.get(k) for k in next(iter(want_summary.values()))} for r in rows}

    mismatches = []
    if got_patches != want_patches:
        mismatches.append({"patches": {"got": got_patches, "want": want_patches}})
    for name, got, want in (("instances", got_instances, want_instances), ("summary", got_summary, want_summary)):
        for iid in sorted(set(got) | set(want)):
            if got.get(iid) != want.get(iid):
                mismatches.append({name: iid, "got": got.get(iid), "want": want.get(iid)})
    print(json.dumps({"mismatches": mismatches, "patches": len(got_patches), "instances": sorted(got_instances),
                      "compliance": {k: v["compliance"] for k, v in got_summary.items()}}, default=str))


if __name__ == "__main__":
    main()
