"""Two builds of patchtrail on one command, run in turn (A B A B ...), and the ratio A/B taken pair
by pair: a change measured against the build before it on a shared, noisy machine, where one run of
each would say more about the machine than about the change.

    python bench/pair.py NEW_BINARY OLD_BINARY [--pairs 8] -- report diff --from D1 --to D2 --store S

Prints each build's median wall time and the median, min and max of the paired ratios.
"""

import argparse
import statistics
import subprocess
import sys
import time


def wall(command):
    start = time.monotonic()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a", help="the build measured (the new one)")
    ap.add_argument("b", help="the build it is compared with")
    ap.add_argument("--pairs", type=int, default=8)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, rest = ap.parse_args(argv[:split]), argv[split + 1:]
    if not rest:
        sys.exit("give the command after --, e.g. -- report trend --store DIR --format csv")
    wall([args.a, *rest])  # warm the page cache for both
    a, b = [], []
    for _ in range(args.pairs):
        a.append(wall([args.a, *rest]))
        b.append(wall([args.b, *rest]))
    ratios = [x / y for x, y in zip(a, b)]
    print(f"{' '.join(rest)}: A {statistics.median(a):.3f} s, B {statistics.median(b):.3f} s, "
          f"A/B median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}, "
          f"{args.pairs} pairs)")


if __name__ == "__main__":
    main()
