"""Build benchmark (issues 12, 24 and 32): release build time and peak memory, the CLI's stripped
size with and without `patchtrail sql` (the cargo feature `sql`, DataFusion), what of it is
unwinding tables, its memory before any work, and the Lambda artifact (its `bootstrap` zipped as
`cargo lambda build` does). Prints a table. With --clean each is built in its
own empty target folder (the CLI about half an hour on 2 cores), the figure the goal is about; without
it the builds are incremental and their times say little. `--profile dist` measures the profile
release archives are built with (Cargo.toml); `--timings` keeps cargo's per-unit report.

The Lambda is built for the host (x86_64 here): `cargo lambda build --release --arm64` needs an
aarch64 standard library, which this machine cannot install.
"""
import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile

from common import print_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(package, target_dir, profile, timings, features):
    """Builds one package's binary on its own (so its features are its own): seconds, and the
    peak RSS in MiB of the largest process the build ran (rustc or the linker)."""
    cmd = ["cargo", "build", "--profile", profile, "--locked", "-p", package, *features]
    if timings:
        cmd.append("--timings")
    t = time.monotonic()
    p = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "CARGO_TARGET_DIR": target_dir})
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.monotonic() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed")
    return secs, usage.ru_maxrss / 1024


def zipped_size(path):
    """Bytes of a zip holding the file as `bootstrap`, deflate level 9."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(path, "bootstrap")
    return len(buf.getvalue())


def section_bytes(binary, names):
    """Bytes of the named ELF sections, from `readelf -SW` (a stripped binary keeps its section
    headers)."""
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if m and m.group(1) in names:
            sizes[m.group(1)] = int(m.group(2), 16)
    return sum(sizes.values())


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
    ap.add_argument("--profile", default="release", help="the cargo profile: release (from source) or dist (release archives)")
    ap.add_argument("--only", choices=["cli", "cli-without-sql", "lambda"],
                    help="build one: the CLI (default features), the CLI without `sql`, or the Lambda")
    ap.add_argument("--timings", action="store_true", help="keep cargo's --timings report (cargo-timings/ in the target folder)")
    ap.add_argument("--keep", action="store_true", help="with --clean, keep the target folder (to run the built binary)")
    args = ap.parse_args()
    kind = "clean" if args.clean else "incremental"
    rows = []
    # (package, what, binary, cargo's feature flags, target folder of an incremental build): the
    # CLI without `sql` builds its dependencies with other features, so it has a folder of its own
    packages = [("patchtrail", "cli", "patchtrail", [], args.target_dir),
                ("patchtrail", "cli-without-sql", "patchtrail", ["--no-default-features"],
                 os.path.join(args.target_dir, "without-sql")),
                ("patchtrail-lambda", "lambda", "patchtrail-lambda", [], args.target_dir)]
    for package, what, binary_name, features, incremental in packages:
        if args.only and args.only != what:
            continue
        target = os.path.join(ROOT, "target", "bench-clean", what) if args.clean else incremental
        if args.clean:
            shutil.rmtree(target, ignore_errors=True)
        secs, build_rss = build(package, target, args.profile, args.timings, features)
        binary = os.path.join(target, args.profile, binary_name)
        size = os.path.getsize(binary) / 1e6
        unwind = section_bytes(binary, {".eh_frame", ".eh_frame_hdr", ".gcc_except_table"}) / 1e6
        if what.startswith("cli"):
            result = (f"{size:.1f} MB stripped ({unwind:.1f} MB unwinding tables); "
                      f"`--version` peak RSS {idle_rss_mib(binary):.0f} MiB")
        elif what == "lambda":
            result = (f"{size:.1f} MB stripped ({unwind:.1f} MB unwinding tables), "
                      f"{zipped_size(binary) / 1e6:.1f} MB zipped (goal 15 MB)")
        result += f"; build peak RSS {build_rss / 1024:.1f} GiB"
        if args.timings:
            result += f"; per-unit times in {os.path.join(target, 'cargo-timings')}"
        rows.append((f"{kind} {args.profile} build, {what}", f"{secs / 60:.1f} min", result))
        if args.clean and not args.keep:
            shutil.rmtree(target, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
