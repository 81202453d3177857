"""Reports benchmark (issues 4, 24 and 32). Prints a table; run it with scripts/bench-reports.

1. Histories: `patchtrail demo` with W weekly snapshots of N instances, every classification
   (Windows and Linux shapes from the simulator), Parquet, through the real simulator and
   collector: 52 x 5,000 and 52 x 20,000 by default, kept under --cache and reused when there.
2. Speed and memory: every report (summary --as-of, diff, trend, history --instance, history --kb,
   sla, exposure) timed as a patchtrail command, best of --repeat, beside roughly the same
   question asked of DuckDB over the same files (bench/duckdb_equivalent.py, timed in-process as
   the earlier figures were); each side's peak RSS from /usr/bin/time in its own process. The
   ratios of one run are the figures to compare (the machines are 2 shared cores).
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

UNTIL = "2026-11-23"


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


def peak_mib(*command):
    """Peak RSS of `command` in its own process, MiB (GNU time's maximum resident set size)."""
    with tempfile.NamedTemporaryFile("r") as report:
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{' '.join(command)} failed: {out.stderr}")
        return int(report.read().split()[-1]) / 1024


def history(binary, cache, instances, weeks):
    """The store of `weeks` snapshots of `instances`, generated once under `cache`."""
    store = os.path.join(cache, f"history-{weeks}x{instances}")
    done = os.path.join(store, ".bench-complete")
    if not os.path.exists(done):
        t = time.monotonic()
        run(binary, "demo", "--store", store, "--instances", str(instances), "--weeks", str(weeks),
            "--until", UNTIL, "--all-classifications")
        with open(done, "w") as f:
            f.write(f"{time.monotonic() - t:.0f}")
    return store, float(open(done).read())


def cases(binary, store):
    """(name, patchtrail arguments, DuckDB arguments) of every report, on dates inside `store`."""
    manifests = [json.load(open(p)) for p in glob.glob(f"{store}/runs/**/*.json", recursive=True)]
    times = sorted(m["snapshot_time"][:10] for m in manifests)
    mid, quarter = times[len(times) // 2], times[len(times) // 4]
    summary = list(csv.DictReader(io.StringIO(
        run(binary, "report", "summary", "--as-of", mid, "--store", store, "--format", "csv"))))
    instance = summary[0]["instance_id"]
    top = list(csv.DictReader(io.StringIO(run(binary, "report", "summary", "--as-of", mid, "--store", store,
                                              "--format", "csv", "--table", "top_missing"))))
    kb = top[0]["kb_id"]
    end = f"{UNTIL}T23:59:59Z"
    return [
        (f"summary --as-of {mid}", ["summary", "--as-of", mid], ("summary", mid + "T23:59:59Z")),
        (f"diff {quarter} -> {mid}", ["diff", "--from", quarter, "--to", mid],
         ("diff", quarter + "T23:59:59Z", mid + "T23:59:59Z")),
        ("trend (all snapshots)", ["trend"], ("trend",)),
        ("history --instance", ["history", "--instance", instance], ("instance", instance)),
        ("history --kb", ["history", "--kb", kb], ("kb", kb)),
        ("sla (all snapshots)", ["sla", "--as-of", UNTIL], ("sla", end)),
        ("exposure (all snapshots)", ["exposure", "--as-of", UNTIL], ("exposure", end)),
        # DuckDB's exposure query answers the CVE ranking (table `cves`), not the per-finding,
        # per-CVE table `exposure` prints by default: the same question, both sides.
        ("exposure --table cves", ["exposure", "--as-of", UNTIL, "--table", "cves"], ("exposure", end)),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/patchtrail"))
    ap.add_argument("--sizes", default="5000,20000", help="fleet sizes, comma-separated")
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache", default=os.environ.get("PATCHTRAIL_BENCH_CACHE", "/var/cache/patchtrail-bench"),
                    help="where generated histories are kept between runs")
    ap.add_argument("--size-instances", type=int, default=2000)
    ap.add_argument("--no-sizes", action="store_true", help="skip the bytes-per-row part")
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    rows = []
    python = sys.executable
    duck_cli = os.path.join(ROOT, "bench", "duckdb_equivalent.py")
    for instances in [int(s) for s in args.sizes.split(",")]:
        store, generated = history(args.binary, args.cache, instances, args.weeks)
        rows.append((f"history: {args.weeks} snapshots x {instances:,} instances", f"{generated:.0f} s",
                     "generated once (demo: simulator, collector, Parquet), then reused"))
        for name, ours, theirs in cases(args.binary, store):
            command = [args.binary, "report", *ours, "--store", store, "--format", "csv"]
            pt = best_of(args.repeat, lambda: run(*command))
            dk = best_of(args.repeat, lambda: duck_reports.query(store, *theirs))
            pt_mib = peak_mib(*command)
            dk_mib = peak_mib(python, duck_cli, store, *theirs)
            rows.append((f"  {name}", f"{pt:.2f} s",
                         f"DuckDB {dk:.2f} s; patchtrail/DuckDB = {pt / dk:.2f}; "
                         f"peak {pt_mib:.0f} MiB (DuckDB in Python {dk_mib:.0f} MiB)"))
        start = best_of(args.repeat, lambda: run(args.binary, "--version"))
        rows.append(("  process start (--version)", f"{start:.2f} s", ""))

    if not args.no_sizes:
        # bytes per patch row, one snapshot of the same fleet in each format
        sim, url = start_sim(args.binary, "--instances", str(args.size_instances), "--seed", "3")
        env = aws_env(url)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                sizes = []
                for fmt in ("parquet", "jsonl", "seed"):
                    s = os.path.join(tmp, fmt)
                    run(args.binary, "collect", "--store", s, "--format", fmt, "--all-classifications", env=env)
                    m = json.load(open(glob.glob(f"{s}/**/runs/**/*.json", recursive=True)[0]))
                    prefixes = ("patches/",) if fmt != "seed" else ("year=",)
                    total = sum(o["size"] for o in m["objects"] if o["key"].startswith(prefixes))
                    sizes.append(f"{fmt} {total / m['counts']['patches']:.1f}")
                rows.append((f"bytes per patch row ({m['counts']['patches']:,} rows)", "", ", ".join(sizes)))
        finally:
            sim.terminate()
            sim.wait()
    print_table(rows)


if __name__ == "__main__":
    main()
