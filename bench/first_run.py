"""First-run benchmark (issue 24): the README's two commands as a newcomer runs them, in order, on
a fresh clone of the committed HEAD with an empty target folder: `cargo run -- demo`, then
`scripts/test`. Prints each wall time, the build's share of it, its peak memory, and the crates
the second command compiled again (it shares the first one's build only where both ask for the
same features). Goal: demo output within 15 minutes of the clone.

What is not fresh here: cargo's download cache (~/.cargo/registry) and pip's, and the Debian
packages scripts/test would install (Chromium, fonts, ...), so downloads are not in the figures.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from common import print_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILING = re.compile(r"^\s*Compiling (\S+) v(\S+)", re.M)
FINISHED = re.compile(r"Finished .* in (?:(\d+)m )?([\d.]+)s")


def timed(cmd, cwd, env, log):
    """Runs `cmd`, its output to `log`: (seconds, exit code, output, peak RSS MiB of its largest process)."""
    t = time.monotonic()
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
    secs = time.monotonic() - t
    return secs, os.waitstatus_to_exitcode(status), open(log).read(), usage.ru_maxrss / 1024


def build_secs(output):
    """The seconds cargo reported for its build (the first `Finished` line)."""
    m = FINISHED.search(output)
    return int(m.group(1) or 0) * 60 + float(m.group(2)) if m else float("nan")


def minutes(secs):
    return f"{int(secs // 60)} min {secs % 60:02.0f} s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo-only", action="store_true", help="stop after `cargo run -- demo`")
    ap.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="patchtrail-first-run-")
    clone = os.path.join(tmp, "patchtrail")
    subprocess.run(["git", "clone", "--quiet", ROOT, clone], check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                          text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items()
           if k not in ("CARGO_TARGET_DIR", "PATCHTRAIL_VENV", "PATCHTRAIL_PYTHON", "CARGO_BUILD_TARGET_DIR")}
    rows = []
    try:
        secs, code, out, rss = timed(["cargo", "run", "--", "demo"], clone, env, os.path.join(tmp, "demo.log"))
        if code != 0:
            sys.exit(f"cargo run -- demo exited {code}: see {tmp}/demo.log")
        first = set(COMPILING.findall(out))
        rows.append((f"cargo run -- demo (clone of {head}, empty target folder)", minutes(secs),
                     f"build {minutes(build_secs(out))}, {len(first)} crates compiled, build peak RSS "
                     f"{rss / 1024:.1f} GiB; report.html "
                     f"{'written' if os.path.exists(os.path.join(clone, 'patchtrail-demo', 'report.html')) else 'MISSING'}"))
        if not args.demo_only:
            secs, code, out, rss = timed(["scripts/test"], clone, env, os.path.join(tmp, "test.log"))
            second = set(COMPILING.findall(out))
            # the workspace's own crates are compiled again as test harnesses; a dependency
            # compiled again is one the two commands built with different features
            again = sorted(name for name, _ in first & second if not name.startswith("patchtrail"))
            summary = re.findall(r"Summary \[.*?\].*", out)
            rows.append(("then scripts/test (same clone and target folder)", minutes(secs),
                         f"exit {code}; build {minutes(build_secs(out))}, {len(second)} crates compiled, "
                         f"{len(again)} dependencies compiled again ({', '.join(again[:6])}{', ...' if len(again) > 6 else ''}); "
                         f"{summary[-1].strip() if summary else 'no nextest summary'}"))
    finally:
        if args.keep:
            print(f"kept {clone}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
