"""History-size benchmark (issue 9): the cost of starting a collect and of an "as of" report must
follow the runs they need, not the number of runs the store has ever committed.

1. Stores with 1, 52 and 520 committed runs (weekly snapshots of a small fleet), written with
   `patchtrail import` so that building them is quick.
2. For each: `report summary --as-of <last day>` and a `collect` of a one-instance simulated fleet
   into the same store (claiming a run id, finding the chain head, committing), each timed as a
   whole process and its peak RSS read from the kernel (wait4), best of N.
Prints one row per store size and the ratio to the 1-run store.
"""
import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import aws_env, start_sim  # noqa: E402


def runs_jsonl(n, instances, patches):
    start = dt.datetime(2016, 1, 4, 6, 0, tzinfo=dt.timezone.utc)
    for w in range(n):
        at = start + dt.timedelta(weeks=w)
        yield json.dumps({
            "snapshot_time": at.isoformat().replace("+00:00", "Z"),
            "account_id": "123456789012",
            "region": "us-east-1",
            "instances": [{
                "instance_id": f"i-{i:017x}",
                "last_scan_time": (at - dt.timedelta(hours=3)).isoformat().replace("+00:00", "Z"),
                "patches": [{
                    "kb_id": f"KB{5000000 + k}", "title": f"Update {k}", "classification": "SecurityUpdates",
                    "severity": "Important", "state": "Missing" if (i + k + w) % 7 == 0 else "Installed",
                    "installed_time": None, "cve_ids": None,
                } for k in range(patches)],
            } for i in range(instances)],
        })


def peak_rss_mib(pid):
    """The process's own high-water RSS (VmHWM), which, unlike a forked child's ru_maxrss, does
    not inherit the parent's size."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(cmd, env=None, repeat=3):
    """Best wall time (s) and the peak RSS (MiB) of that run."""
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        rss = 0.0
        while p.poll() is None:
            rss = max(rss, peak_rss_mib(p.pid) or 0.0)
            time.sleep(0.002)
        took = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.read().decode()}")
        if best is None or took < best[0]:
            best = (took, rss)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--sizes", default="1,52,520")
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--patches", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sim, url = start_sim(args.binary, "--instances", "1", "--seed", "3")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in [int(s) for s in args.sizes.split(",")]:
                store = os.path.join(tmp, f"runs-{n}")
                src = os.path.join(tmp, f"runs-{n}.jsonl")
                with open(src, "w") as f:
                    for line in runs_jsonl(n, args.instances, args.patches):
                        f.write(line + "\n")
                subprocess.run([args.binary, "import", src, "--store", store], check=True, stdout=subprocess.DEVNULL)
                last = (dt.date(2016, 1, 4) + dt.timedelta(weeks=n - 1)).isoformat()
                summary = measure([args.binary, "report", "summary", "--store", store, "--as-of", last,
                                   "--format", "csv"], repeat=args.repeat)
                collect = measure([args.binary, "collect", "--store", store, "-q"], env=aws_env(url),
                                  repeat=args.repeat)
                rows.append((n, summary, collect))
    finally:
        sim.terminate()
    base = rows[0]
    print(f"{'committed runs':>14}  {'summary s':>9}  {'ratio':>5}  {'RSS MiB':>7}  {'collect s':>9}  {'ratio':>5}  {'RSS MiB':>7}")
    for n, (st, sr), (ct, cr) in rows:
        print(f"{n:>14}  {st:>9.3f}  {st / base[1][0]:>5.2f}  {sr:>7.1f}  {ct:>9.3f}  {ct / base[2][0]:>5.2f}  {cr:>7.1f}")


if __name__ == "__main__":
    main()
