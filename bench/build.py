"""Build benchmark (issue 12): release build time, the CLI's stripped size and its memory before
any work, and the Lambda artifact (its `bootstrap` zipped as `cargo lambda build` does). Prints a
table. With --clean both are built in an empty target folder (about an hour on 2 cores), which is
the figure the goal is about; without it the builds are incremental and their times say little.

The Lambda is built for the host (x86_64 here): `cargo lambda build --release --arm64` needs an
aarch64 standard library, which this machine cannot install.
"""
import argparse
import io
import os
import subprocess
import tempfile
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
    _, _, usage = os.wait4(p.pid, 0)
    return usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clean", action="store_true", help="build in an empty target folder")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        target = empty if args.clean else args.target_dir
        kind = "clean" if args.clean else "incremental"
        rows = []
        secs = build("patchtrail", target)
        cli = os.path.join(target, "release", "patchtrail")
        rows.append((f"{kind} release build, patchtrail", f"{secs / 60:.1f} min",
                     f"{os.path.getsize(cli) / 1e6:.1f} MB stripped; `--version` peak RSS {idle_rss_mib(cli):.0f} MiB"))
        secs = build("patchtrail-lambda", target)
        lam = os.path.join(target, "release", "patchtrail-lambda")
        rows.append((f"{kind} release build, patchtrail-lambda", f"{secs / 60:.1f} min",
                     f"{os.path.getsize(lam) / 1e6:.1f} MB stripped, {zipped_size(lam) / 1e6:.1f} MB zipped (goal 15 MB)"))
    print_table(rows)


if __name__ == "__main__":
    main()
