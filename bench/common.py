"""Shared by the benchmark scripts: the simulator as a child process, and its AWS environment."""
import os
import subprocess


def start_sim(binary, *args):
    """`patchtrail sim ARGS`; returns the process and its endpoint URL."""
    p = subprocess.Popen([binary, "sim", *args], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    return p, line.removeprefix("listening on ")


def aws_env(url):
    """The environment that points AWS SDKs at `url` with dummy credentials."""
    env = dict(os.environ)
    env.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_PROFILE", None)
    return env


def print_table(rows):
    """Rows of (benchmark, time, result), aligned."""
    width = max([len("benchmark")] + [len(r[0]) for r in rows])
    print(f"{'benchmark':<{width}}  {'time':>8}  result")
    for name, t, result in rows:
        print(f"{name:<{width}}  {t:>8}  {result}")
