"""Reports benchmark (issue 4). Prints a table; run it with scripts/bench-reports.

1. History: `patchtrail demo` with N instances and W weekly snapshots of every classification
   (52 x 5,000 by default), Parquet, through the real simulator and collector.
2. Speed: summary --as-of, diff and trend, timed as patchtrail commands and as the same
   questions asked of DuckDB over the same files (bench/duckdb_equivalent.py), best of 3 each.
3. Size: bytes on disk per patch row of one snapshot in parquet, jsonl and seed formats.
"""
import argparse
import glob
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


def run(binary, *args, env=None):
    out = subprocess.run([binary, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {out.stderr}")
    return out.stdout


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
