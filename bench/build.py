"""Build benchmark (issue 12): release build time, the CLI's stripped size and its memory before
any work, and the Lambda artifact (its `bootstrap` zipped as `cargo lambda build` does). Prints a
table. With --clean each is built in its own empty target folder (the CLI about an hour on 2
cores), the figure the goal is about; without it the builds are incremental and their times say
little.

The Lambda is built for the host (x86_64 here): `cargo lambda build --release --arm64` needs an
aarch64 standard library, which this machine cannot install.
"""
import argparse
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile

from common import print_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(package, target_dir):
    """Builds one package's release binary on its own (so its features are its own): seconds."""
    t = time.monotonic()
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", package], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": target_dir})
    return time.monotonic() - t


def zipped_size(path):
    """Bytes of a zip holding the file as `bootstrap`, deflate level 9."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(path, "bootstrap")
    return len(buf.getvalue())


def idle_rss_mib(binary):
    """Peak RSS of `patchtrail --version`: what the process costs before any work."""
    p = subprocess.Popen([binary, "--version"], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{binary} --version failed")
    return usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clean", action="store_true",
                    help="build each package in its own empty target folder (under target/bench-clean, removed after)")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")))
    args = ap.parse_args()
    kind = "clean" if args.clean else "incremental"
    rows = []
    for package, what in [("patchtrail", "cli"), ("patchtrail-lambda", "lambda")]:
        target = os.path.join(ROOT, "target", "bench-clean", package) if args.clean else args.target_dir
        if args.clean:
            shutil.rmtree(target, ignore_errors=True)
        secs = build(package, target)
        binary = os.path.join(target, "release", package)
        size = os.path.getsize(binary) / 1e6
        if what == "cli":
            result = f"{size:.1f} MB stripped; `--version` peak RSS {idle_rss_mib(binary):.0f} MiB"
        else:
            result = f"{size:.1f} MB stripped, {zipped_size(binary) / 1e6:.1f} MB zipped (goal 15 MB)"
        rows.append((f"{kind} release build, {package}", f"{secs / 60:.1f} min", result))
        if args.clean:
            shutil.rmtree(target, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
