"""Reports benchmark (issue 4). Prints a table; run it with scripts/bench-reports.

1. History: `patchtrail demo` with N instances and W weekly snapshots of every classification
   (52 x 5,000 by default), Parquet, through the real simulator and collector.
2. Speed: summary --as-of, diff and trend, timed as patchtrail commands and as the same
   questions asked of DuckDB over the same files (bench/duckdb_equivalent.py), best of 3 each.
   With --kernels, also the summary computed on Arrow arrays with no SQL engine (bench/kernels,
   issue 24's alternative design), checked to agree with patchtrail's on every instance.
3. Size: bytes on disk per patch row of one snapshot in parquet, jsonl and seed formats.
"""
import argparse
import csv
import glob
import io
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import duckdb_equivalent as duck_reports  # noqa: E402
from common import aws_env, print_table, start_sim  # noqa: E402


def best_of(n, fn):
    times = []
    for _ in range(n):
        t = time.monotonic()
        fn()
        times.append(time.monotonic() - t)
    return min(times)


def run(binary, *args, env=None, with_stderr=False):
    out = subprocess.run([binary, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {out.stderr}")
    return (out.stdout, out.stderr) if with_stderr else out.stdout


# The summary columns the kernels prototype must agree on with `report summary`: all but the names,
# platforms, agent versions and times (it prints times in its own format).
AGREED = ("account_id", "region", "node_type", "ec2_state", "scan_age_days", "installed", "pending_reboot",
          "rejected", "missing", "failed", "not_applicable", "available_security_update", "missing_critical",
          "missing_security", "compliance", "aws_compliance", "agrees_with_aws", "outcome", "run_id")


def agreement(ours_csv, kernels_csv):
    """Instances on which the two summaries differ, as one line (empty when they agree)."""
    def cell(v):
        try:
            return float(v)  # 3 and 3.0 are the same age
        except ValueError:
            return v

    def rows(text):
        """instance ids in row order, and each instance's agreed columns"""
        table = list(csv.DictReader(io.StringIO(text)))
        return [r["instance_id"] for r in table], {r["instance_id"]: tuple(cell(r[c]) for c in AGREED) for r in table}
    (order, ours), (korder, kernels) = rows(ours_csv), rows(kernels_csv)
    differ = [i for i in ours.keys() | kernels.keys() if ours.get(i) != kernels.get(i)]
    if differ:
        i = sorted(differ)[0]
        return f"{len(differ)} of {len(ours)} instances differ, e.g. {i}: {ours.get(i)} vs {kernels.get(i)}"
    if order != korder:
        return "same rows in another order"
    return ""


def tables_agreement(summary, tables):
    """Where the kernels prototype's other tables (its JSON on stderr) differ from the product's
    (`summary("--table", name)` gives the product's CSV), as one line; empty when they agree."""
    def table(name):
        return list(csv.DictReader(io.StringIO(summary("--table", name))))
    def totals_differ(what, ours, theirs):
        """the product's totals row against the prototype's object (a count it omits is 0)"""
        pairs = [f"{k} {v} vs {theirs.get(k, 0)}" for k, v in ours.items() if int(v) != theirs.get(k, 0)]
        return f"{what} totals differ: " + ", ".join(pairs) if pairs else ""

    differ = totals_differ("fleet", table("fleet")[0], tables["fleet"])
    if differ:
        return differ
    severity = [[r["severity_level"], int(r["missing"])] for r in table("missing_by_severity")]
    if severity != tables["missing_by_severity"]:
        return f"missing_by_severity differs: {severity} vs {tables['missing_by_severity']}"
    top = [[r["kb_id"], r["title"], int(r["instances"])] for r in table("top_missing")]
    if top != tables["top_missing"]:
        return f"top_missing differs: {top} vs {tables['top_missing']}"
    accounts = table("by_account")
    if [a["account_id"] for a in accounts] != [a["account_id"] for a in tables["by_account"]]:
        return "by_account lists other accounts, or in another order"
    for ours, theirs in zip(accounts, tables["by_account"]):
        account = ours.pop("account_id")
        differ = totals_differ(f"account {account}", ours, theirs)
        if differ:
            return differ
    return ""


def data_bytes(store, prefixes):
    total = 0
    # `**` also matches no folder, so this finds runs/ and _patchtrail/runs/ alike, each once
    for m in set(glob.glob(f"{store}/**/runs/**/*.json", recursive=True)):
        for o in json.load(open(m))["objects"]:
            if o["key"].startswith(prefixes):
                total += o["size"]
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/patchtrail"))
    ap.add_argument("--instances", type=int, default=5000)
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--size-instances", type=int, default=2000)
    ap.add_argument("--no-sizes", action="store_true", help="skip the bytes-per-row part")
    ap.add_argument("--kernels", help="the summary-kernels binary (bench/kernels) to time beside the summary")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "history")
        t = time.monotonic()
        run(args.binary, "demo", "--store", store, "--instances", str(args.instances), "--weeks", str(args.weeks),
            "--until", "2026-11-23", "--all-classifications")
        gen = time.monotonic() - t
        manifests = [json.load(open(p)) for p in glob.glob(f"{store}/runs/**/*.json", recursive=True)]
        patch_rows = sum(m["counts"]["patches"] for m in manifests)
        rows.append((f"history: {len(manifests)} snapshots x {args.instances} instances", f"{gen:.0f} s",
                     f"{patch_rows:,} patch rows ({patch_rows / gen:,.0f} rows/s through simulator, collector and Parquet, report.html included)"))

        mid = sorted(m["snapshot_time"] for m in manifests)[len(manifests) // 2][:10]
        first = sorted(m["snapshot_time"] for m in manifests)[len(manifests) // 4][:10]
        cases = [
            ("summary --as-of " + mid, ["report", "summary", "--as-of", mid], ("summary", mid + "T23:59:59Z")),
            (f"diff {first} -> {mid}", ["report", "diff", "--from", first, "--to", mid], ("diff", first + "T23:59:59Z", mid + "T23:59:59Z")),
            ("trend (all snapshots)", ["report", "trend"], ("trend",)),
        ]
        for name, ours, theirs in cases:
            pt = best_of(3, lambda: run(args.binary, *ours, "--store", store, "--format", "csv"))
            dk = best_of(3, lambda: duck_reports.query(store, *theirs))
            rows.append((name, f"{pt:.2f} s", f"DuckDB {dk:.2f} s; patchtrail/DuckDB = {pt / dk:.2f}"))
            if args.kernels and ours[1] == "summary":
                as_of = theirs[1]
                kernels = lambda: run(args.kernels, store, as_of, with_stderr=True)
                summary = lambda *more: run(args.binary, *ours, "--store", store, "--format", "csv", *more)
                kernels_csv, kernels_tables = kernels()
                differ = (agreement(summary(), kernels_csv)
                          or tables_agreement(summary, json.loads(kernels_tables)))
                if differ:
                    sys.exit(f"the kernels prototype disagrees with report summary: {differ}")
                kt = best_of(3, kernels)
                rows.append(("  the same on Arrow kernels, no SQL engine", f"{kt:.2f} s",
                             f"kernels/DuckDB = {kt / dk:.2f}; kernels/patchtrail = {kt / pt:.2f}; "
                             "agrees with report summary on every instance and its other four tables"))

        # what every report pays before its query: the process, then loading the history (every
        # run's manifest and chain entry, the files registered) with a query that reads no row
        start = best_of(3, lambda: run(args.binary, "--version"))
        load = best_of(3, lambda: run(args.binary, "sql", "SELECT 1", "--store", store, "--format", "csv"))
        rows.append(("process start (--version)", f"{start:.2f} s", ""))
        rows.append(("history load (sql 'SELECT 1', all snapshots)", f"{load:.2f} s", "process start included"))

        if args.no_sizes:
            print_table(rows)
            return
        # bytes per patch row, one snapshot of the same fleet in each format
        sim, url = start_sim(args.binary, "--instances", str(args.size_instances), "--seed", "3")
        env = aws_env(url)
        try:
            sizes = []
            for fmt in ("parquet", "jsonl", "seed"):
                s = os.path.join(tmp, fmt)
                run(args.binary, "collect", "--store", s, "--format", fmt, "--all-classifications", env=env)
                m = json.load(open(glob.glob(f"{s}/**/runs/**/*.json", recursive=True)[0]))
                prefixes = ("patches/",) if fmt != "seed" else ("year=",)
                per_row = data_bytes(s, prefixes) / m["counts"]["patches"]
                sizes.append(f"{fmt} {per_row:.1f}")
            rows.append((f"bytes per patch row ({m['counts']['patches']:,} rows)", "", ", ".join(sizes)))
        finally:
            sim.terminate()
            sim.wait()

    print_table(rows)


if __name__ == "__main__":
    main()
