"""Collector benchmark (issue 3). Prints a table; run it with scripts/bench-collect.

1. Rate: the simulator throttles each SSM API at --ssm-tps with --latency-ms per answer; the
   collector's wall time is compared with the least time the rate allows (SSM calls / TPS).
2. The seed: the same fleet through a re-enactment of the seed's Step Functions map (2 at a time,
   DescribeInstancePatches, a put per page, 1 s wait between pages), on a sample of instances and
   scaled to the fleet, for the speed ratio.
3. Memory: peak RSS of a collection of a large fleet (no rate limit), data streamed to Parquet.
"""
import argparse
import concurrent.futures
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

from common import aws_env, print_table, start_sim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stats(url):
    return {s["operation"]: s for s in json.load(urllib.request.urlopen(url + "/_sim/stats"))}


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed_collect(binary, url, store, *extra):
    """Runs one collection as a child; returns (seconds, peak RSS in MiB, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.monotonic()
    out = subprocess.run([binary, "collect", "--store", store, *extra], env=aws_env(url),
                         capture_output=True, text=True)
    elapsed = time.monotonic() - t
    if out.returncode != 0:
        sys.exit(f"collect failed ({out.returncode}): {out.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024, out.stdout


def seed_reenactment(url, sample, store):
    """The seed's map state: MaxConcurrency 2; per page a put, then 1 s wait before the next page."""
    env = aws_env(url)
    os.environ.update({k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    cfg = Config(retries={"mode": "standard", "max_attempts": 10})
    ec2, ssm = boto3.client("ec2", config=cfg), boto3.client("ssm", config=cfg)
    # The seed calls DescribeInstances once, without paginating.
    ids = [i["InstanceId"] for r in ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": ["CheckPatch"]}])["Reservations"] for i in r["Instances"]]
    ids = ids[:sample]
    filters = [{"Key": "Classification", "Values": ["Security", "CriticalUpdates", "SecurityUpdates"]}]

    def one(iid):
        n, token = 0, None
        while True:
            kw = {"InstanceId": iid, "Filters": filters}
            if token:
                kw["NextToken"] = token
            try:
                page = ssm.describe_instance_patches(**kw)
            except ssm.exceptions.InvalidInstanceId:
                return n  # the seed's map would fail here; the re-enactment moves on
            with open(os.path.join(store, f"{iid}-{n}.json"), "w") as f:
                json.dump({"Patches": page["Patches"]}, f, default=str)
            n += 1
            token = page.get("NextToken")
            if not token:
                return n
            time.sleep(1)

    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        pages = sum(pool.map(one, ids))
    return time.monotonic() - t, len(ids), pages


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/patchtrail"))
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--ssm-tps", type=float, default=200)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--seed-sample", type=int, default=200)
    ap.add_argument("--rss-instances", type=int, default=20000)
    ap.add_argument("--sim-instances", type=int, default=100000)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # 1. rate
        for label, extra in (("adaptive retry only", []), (f"--max-tps {args.ssm_tps:g}", ["--max-tps", str(args.ssm_tps)])):
            sim, url = start_sim(args.binary, "--instances", str(args.instances), "--seed", "7",
                                 "--ssm-tps", str(args.ssm_tps), "--latency-ms", str(args.latency_ms))
            try:
                secs, _, _ = timed_collect(args.binary, url, os.path.join(tmp, f"rate-{len(rows)}"), "--concurrency", "32", *extra)
                s = stats(url)
            finally:
                sim.terminate()
                sim.wait()
            served = {op: v["requests"] - v["throttled"] - v["faults"] for op, v in s.items() if op.startswith("ssm:")}
            ideal = max(served.values()) / args.ssm_tps
            throttled = sum(v["throttled"] for op, v in s.items() if op.startswith("ssm:"))
            rows.append((f"collect {args.instances} instances, {label}", f"{secs:.1f} s",
                         f"ideal {ideal:.1f} s ({max(served.values())} calls / {args.ssm_tps:g} TPS); ratio {secs / ideal:.2f}; {throttled} throttled"))
            if label.startswith("--max-tps"):
                patchtrail_secs = secs

        # 2. the seed
        sim, url = start_sim(args.binary, "--instances", str(args.instances), "--seed", "7",
                             "--ssm-tps", str(args.ssm_tps), "--latency-ms", str(args.latency_ms))
        try:
            seed_dir = os.path.join(tmp, "seed")
            os.makedirs(seed_dir)
            secs, n, pages = seed_reenactment(url, args.seed_sample, seed_dir)
        finally:
            sim.terminate()
            sim.wait()
        tagged = served_instances = None
        scale = args.instances * 0.85 / n  # ~85 % of the fleet carries CheckPatch
        rows.append((f"seed re-enactment, {n} instances ({pages} pages)", f"{secs:.1f} s",
                     f"scaled to the fleet: {secs * scale:.0f} s; patchtrail is {secs * scale / patchtrail_secs:.0f}x faster"))

        # 3. memory of the collector: data must stream, not accumulate
        sim, url = start_sim(args.binary, "--instances", str(args.rss_instances), "--seed", "8")
        try:
            secs, rss, out = timed_collect(args.binary, url, os.path.join(tmp, "rss"), "--concurrency", "32")
        finally:
            sim.terminate()
            sim.wait()
        patches = next((l.split()[1] for l in out.splitlines() if l.strip().startswith("patches")), "?")
        rows.append((f"collect {args.rss_instances} instances, no rate limit", f"{secs:.1f} s",
                     f"collector peak RSS {rss:.0f} MiB for {patches} patch rows"))

        # 4. the simulator under load: requests per second, and memory for a large lazy fleet
        sim, url = start_sim(args.binary, "--instances", str(args.sim_instances), "--seed", "9")
        try:
            secs, _, _ = timed_collect(args.binary, url, os.path.join(tmp, "sim"), "--concurrency", "64")
            served = sum(v["requests"] for v in stats(url).values())
            sim_rss = peak_rss_mib(sim.pid)
        finally:
            sim.terminate()
            sim.wait()
        rows.append((f"simulator, {args.sim_instances} instances, collected at concurrency 64", f"{secs:.1f} s",
                     f"{served / secs:,.0f} requests/s on loopback (collector on the same 2 cores); simulator peak RSS {sim_rss:.0f} MiB"))

    print_table(rows)


if __name__ == "__main__":
    main()
