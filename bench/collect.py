"""Collector benchmark (issues 3 and 12). Prints a table; run it with scripts/bench-collect.

1. Rate: the simulator throttles each SSM API at a token-bucket rate, with a latency per answer;
   the collector runs with default flags (it must find the rate by itself) and its wall time is
   compared with the least time the rate allows (the busiest SSM API's served calls / its rate).
   Rates of 20, 200 and 1,000 TPS at 20 and 150 ms, a run whose rate halves half-way (the
   simulator's PUT /_sim/limits), and `--max-tps` at the rate for reference.
2. The seed: the same fleet through a re-enactment of the seed's Step Functions map (2 at a time,
   DescribeInstancePatches, a put per page, 1 s wait between pages), on a sample of instances and
   scaled to the fleet, for the speed ratio.
3. Memory: peak RSS of collections of 2,000, 20,000 and 100,000 instances (no rate limit), data
   streamed to Parquet; the simulator's request rate on the largest.
4. Organization (issue 11): 20 accounts x 3 regions x 500 instances, each scope throttled at its own
   SSM rate; `collect --organization --regions all` with every scope at once. Scopes run in parallel,
   so the whole should take about as long as the largest scope's bound (its busiest SSM API's served
   calls / the rate, from the simulator's per-scope counters); peak RSS of the collector.
5. Suspended runs (issue 11): one fleet collected in one go, then in slices of `--time-limit` continued
   with `--resume` until the run commits (as Lambda invocations continue a scope): what continuing costs
   (each slice starts a process, lists the fleet again and finds the rate again).
6. What a suspend costs (issue 34, the Lambda's deadline margin): a collect of 5,000 and 20,000
   instances into S3 (moto) stopped by `--time-limit` half-way; the time from the limit to the exit is
   what stopping, flushing what the run holds, uploading it and writing the checkpoint take: the margin
   the Lambda keeps before its deadline (crates/lambda/src/lib.rs, DEADLINE_MARGIN) must exceed it.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3
from botocore.config import Config

from common import aws_env, print_table, start_sim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stats(url):
    return {s["operation"]: s for s in json.load(urllib.request.urlopen(url + "/_sim/stats"))}


def served_ssm(url):
    """Calls served (not throttled, not faulted) per SSM operation."""
    return {op: v["requests"] - v["throttled"] - v["faults"] for op, v in stats(url).items() if op.startswith("ssm:")}


def set_ssm_rate(url, tps):
    req = urllib.request.Request(url + "/_sim/limits", data=json.dumps({"ssm_tps": tps, "ec2_tps": None}).encode(),
                                 method="PUT", headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed_collect(binary, url, store, *extra):
    """Runs one collection as a child; returns (seconds, its own peak RSS in MiB, stdout)."""
    t = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([binary, "collect", "--store", store, "-q", *extra], env=aws_env(url), stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - t
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            sys.exit(f"collect failed ({p.returncode}): {err.read()}")
        return elapsed, usage.ru_maxrss / 1024, out.read()


def rate_run(binary, tmp, tps, latency_ms, instances, extra=(), halve_after=None):
    """One collection against a rate-limited simulator: (seconds, least seconds the rate allows, throttled)."""
    sim, url = start_sim(binary, "--instances", str(instances), "--seed", "7",
                         "--ssm-tps", str(tps), "--latency-ms", str(latency_ms))
    before = {}
    try:
        switch = None
        if halve_after is not None:
            def halve():
                time.sleep(halve_after)
                before.update(served_ssm(url))
                set_ssm_rate(url, tps / 2)
            switch = threading.Thread(target=halve)
            switch.start()
        secs, _, _ = timed_collect(binary, url, os.path.join(tmp, f"rate-{tps}-{latency_ms}-{len(extra)}-{halve_after}"), *extra)
        if switch:
            switch.join()
        after = served_ssm(url)
        throttled = sum(v["throttled"] for op, v in stats(url).items() if op.startswith("ssm:"))
    finally:
        sim.terminate()
        sim.wait()
    if halve_after is not None and halve_after > secs:
        sys.exit(f"the rate was to halve after {halve_after} s but the collection took {secs:.1f} s")
    least = max(before.get(op, 0) / tps + (n - before.get(op, 0)) / (tps / 2 if before else tps) for op, n in after.items())
    return secs, least, throttled, max(after.values())


def sliced_collect(binary, url, store, limit):
    """Collects in processes of at most `limit` (e.g. "5s"), each continuing the run the last one
    suspended, until the run commits: (total seconds, processes)."""
    t, run_id, processes = time.monotonic(), None, 0
    while True:
        processes += 1
        extra = ["--resume", run_id] if run_id else []
        p = subprocess.run([binary, "collect", "--store", store, "-q", "--time-limit", limit, *extra],
                           env=aws_env(url), capture_output=True, text=True)
        if p.returncode == 0:
            return time.monotonic() - t, processes
        if p.returncode != 6:
            sys.exit(f"collect failed ({p.returncode}): {p.stderr}")
        words = p.stderr.split()
        run_id = words[words.index("--resume") + 1].strip("`)")


def suspend_cost(binary, url, moto_url, bucket, limit):
    """One collect into s3://bucket stopped by `--time-limit limit` seconds: seconds from the limit to
    the process's exit (it must exit 6, suspended)."""
    env = aws_env(url)
    env["AWS_ENDPOINT_URL_S3"] = moto_url
    t = time.monotonic()
    p = subprocess.run([binary, "collect", "--store", f"s3://{bucket}/h", "-q", "--time-limit", f"{limit}s"],
                       env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t
    if p.returncode != 6:
        sys.exit(f"collect did not suspend ({p.returncode}): {p.stderr[-2000:]}")
    return elapsed - limit


def start_moto():
    """moto_server (with S3's atomic conditional writes, tests/py/moto_s3_server.py) on a free loopback port: (process, url)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py", "moto_s3_server.py"), "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return moto, url
        except OSError:
            time.sleep(0.1)
    sys.exit("moto_server did not start")


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
    ap.add_argument("--rates", default="20,200,1000", help="simulated SSM rates, TPS")
    ap.add_argument("--latencies", default="20,150", help="simulated latency per answer, ms")
    ap.add_argument("--seconds", type=float, default=20, help="least time each rate run takes at its rate")
    ap.add_argument("--seed-sample", type=int, default=200)
    ap.add_argument("--rss-instances", default="2000,20000,100000")
    ap.add_argument("--org", default="20,3,500", help="accounts,regions,instances of the organization bench")
    ap.add_argument("--org-tps", type=float, default=10, help="SSM rate of each scope, TPS")
    ap.add_argument("--slice", default="5s", help="--time-limit of each process of the suspended-run bench")
    ap.add_argument("--suspend-instances", default="5000,20000", help="fleets of the suspend-cost bench")
    ap.add_argument("--only", choices=["rate", "seed", "memory", "org", "resume", "suspend"], action="append")
    args = ap.parse_args()
    only = set(args.only or ["rate", "seed", "memory", "org", "resume", "suspend"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        def rate_row(label, tps, latency, extra=(), halve=False):
            # ~1.1 DescribeInstancePatches calls per tagged instance; 85 % of instances are tagged.
            instances = int(tps * args.seconds / 0.95)
            secs, least, throttled, calls = rate_run(args.binary, tmp, tps, latency, instances, extra,
                                                     halve_after=args.seconds / 2 if halve else None)
            rows.append((f"{label}: {tps:g} TPS, {latency} ms, {instances} instances", f"{secs:.1f} s",
                         f"least {least:.1f} s ({calls} calls); ratio {secs / least:.2f}; {throttled} throttled"))
            return secs

        if "rate" in only or "seed" in only:
            for tps in [float(r) for r in args.rates.split(",")]:
                for latency in [int(l) for l in args.latencies.split(",")]:
                    secs = rate_row("default flags", tps, latency)
                    if tps == 200 and latency == 20:
                        patchtrail_secs = secs
            rate_row("default flags, rate halves half-way", 200, 150, halve=True)
            rate_row("--max-tps 200 (the rate, known)", 200, 150, ["--max-tps", "200"])

        if "seed" in only:
            instances = int(200 * args.seconds / 0.95)
            sim, url = start_sim(args.binary, "--instances", str(instances), "--seed", "7",
                                 "--ssm-tps", "200", "--latency-ms", "20")
            try:
                seed_dir = os.path.join(tmp, "seed")
                os.makedirs(seed_dir)
                secs, n, pages = seed_reenactment(url, args.seed_sample, seed_dir)
            finally:
                sim.terminate()
                sim.wait()
            scale = instances * 0.85 / n  # ~85 % of the fleet carries CheckPatch
            rows.append((f"seed re-enactment, {n} instances ({pages} pages)", f"{secs:.1f} s",
                         f"scaled to {instances} instances: {secs * scale:.0f} s; patchtrail (200 TPS, 20 ms) is {secs * scale / patchtrail_secs:.0f}x faster"))

        if "memory" in only:
            # Data must stream, not accumulate: the peak should not grow with the fleet.
            for n in [int(x) for x in args.rss_instances.split(",")]:
                sim, url = start_sim(args.binary, "--instances", str(n), "--seed", "8")
                try:
                    secs, rss, out = timed_collect(args.binary, url, os.path.join(tmp, f"rss-{n}"), "--format", "parquet")
                    served = sum(v["requests"] for v in stats(url).values())
                    sim_rss = peak_rss_mib(sim.pid)
                finally:
                    sim.terminate()
                    sim.wait()
                rows.append((f"collect {n} instances, no rate limit", f"{secs:.1f} s",
                             f"collector peak RSS {rss:.0f} MiB; simulator {served / secs:,.0f} requests/s, peak RSS {sim_rss:.0f} MiB"))

        if "org" in only:
            accounts, regions, instances = (int(x) for x in args.org.split(","))
            names = ["ap-northeast-1", "us-east-1", "eu-west-1", "us-west-2", "eu-central-1"][:regions]
            sim, url = start_sim(args.binary, "--instances", str(instances), "--seed", "9",
                                 "--accounts", str(accounts), "--regions", ",".join(names),
                                 "--ssm-tps", f"{args.org_tps:g}", "--latency-ms", "50")
            try:
                secs, rss, _ = timed_collect(args.binary, url, os.path.join(tmp, "org"), "--organization",
                                             "--role-name", "PatchtrailRead", "--regions", "all",
                                             "--max-scopes", str(accounts * regions))
                scopes = json.load(urllib.request.urlopen(url + "/_sim/scopes"))
                bounds = []
                for scope in scopes:
                    served = [s["requests"] - s["throttled"] - s["faults"] for s in scope["stats"]
                              if s["operation"].startswith("ssm:")]
                    if served:
                        bounds.append(max(served) / args.org_tps)
            finally:
                sim.terminate()
                sim.wait()
            largest = max(bounds)
            rows.append((f"organization: {accounts} accounts x {regions} regions x {instances} instances, "
                         f"{args.org_tps:g} TPS per scope, 50 ms", f"{secs:.1f} s",
                         f"{len(bounds)} scopes; largest scope's bound {largest:.1f} s, ratio {secs / largest:.2f}; "
                         f"all scopes one after another {sum(bounds):.0f} s; collector peak RSS {rss:.0f} MiB"))

        if "resume" in only:
            instances = int(200 * args.seconds / 0.95)
            sim, url = start_sim(args.binary, "--instances", str(instances), "--seed", "10",
                                 "--ssm-tps", "200", "--latency-ms", "20")
            try:
                whole, _, _ = timed_collect(args.binary, url, os.path.join(tmp, "whole"))
                sliced, processes = sliced_collect(args.binary, url, os.path.join(tmp, "sliced"), args.slice)
            finally:
                sim.terminate()
                sim.wait()
            rows.append((f"one run in {args.slice} slices (--time-limit, --resume): 200 TPS, 20 ms, "
                         f"{instances} instances", f"{sliced:.1f} s",
                         f"{processes} processes; in one go {whole:.1f} s; ratio {sliced / whole:.2f}"))

        if "suspend" in only:
            moto, moto_url = start_moto()
            try:
                for n, instances in enumerate(int(i) for i in args.suspend_instances.split(",")):
                    # 200 TPS, 20 ms: the run takes about instances / 190 s; stopped half-way.
                    limit = max(5, int(instances / 190 / 2))
                    sim, url = start_sim(args.binary, "--instances", str(instances), "--seed", "11",
                                         "--ssm-tps", "200", "--latency-ms", "20")
                    try:
                        costs = []
                        for k in range(3):
                            bucket = f"suspend-{n}-{k}"
                            boto3.client("s3", endpoint_url=moto_url, aws_access_key_id="bench",
                                         aws_secret_access_key="bench", region_name="us-east-1").create_bucket(Bucket=bucket)
                            costs.append(suspend_cost(args.binary, url, moto_url, bucket, limit))
                    finally:
                        sim.terminate()
                        sim.wait()
                    rows.append((f"suspend at --time-limit {limit}s into S3 (moto): 200 TPS, 20 ms, {instances} instances",
                                 f"{max(costs):.2f} s", "limit to exit, worst of 3: " + ", ".join(f"{c:.2f} s" for c in costs)))
            finally:
                moto.terminate()
                moto.wait()

    print_table(rows)


if __name__ == "__main__":
    main()
