#!/usr/bin/env python3
"""The simulation's fingerprint: every simulated run of tests/sim*.rs at seeds 1 to 20, each
as one line (test, seed, virtual time, datagrams and bytes delivered, and a digest of every
delivery: when, between whom, how long, the header). Two builds that behave alike give the
same lines, to the nanosecond; issue 15's redesign must not change them.

Python 3 standard library only.

    python3 bench/sim_fingerprint.py > before.txt          # seeds 1-20, every sim test file
    python3 bench/sim_fingerprint.py --compare before.txt   # after a change: what moved
    python3 bench/sim_fingerprint.py --seeds 1-3 --tests sim,sim_swarm

Each test file is run once per seed with SIM_SEED set (tests that sweep seeds run that one;
tests with a fixed seed give the same line every time, kept once) and SIM_FINGERPRINT naming
a file the simulation appends its lines to (src/sim.rs, `Sim::trace_digest`). Ignored tests
(the long T* runs) are not included. The whole sweep takes about 15 minutes on 2 cores, most
of it the 200-node runs of sim_tstar.
"""

import argparse
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = ["sim", "sim_swarm", "sim_registry", "sim_loss", "sim_delay",
         "sim_tracker_traffic", "sim_tstar"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def seed_range(text):
    if "-" in text:
        first, last = text.split("-", 1)
        return range(int(first), int(last) + 1)
    return [int(seed) for seed in text.split(",")]


def run(tests, seeds):
    """Every fingerprint line of `tests` at `seeds`, sorted, each once."""
    subprocess.run(["cargo", "test", "--release", "--no-run", "--quiet"]
                   + [arg for test in tests for arg in ("--test", test)],
                   cwd=REPO, check=True)
    lines = set()
    with tempfile.TemporaryDirectory(prefix="sim-fingerprint-") as scratch:
        for test in tests:
            for seed in seeds:
                path = os.path.join(scratch, f"{test}-{seed}.txt")
                env = dict(os.environ, SIM_SEED=str(seed), SIM_FINGERPRINT=path)
                log(f"{test} seed {seed}")
                done = subprocess.run(
                    ["cargo", "test", "--release", "--quiet", "--test", test],
                    cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    text=True)
                if done.returncode != 0:
                    # A failing assertion is behaviour too: kept as a line, so that a build
                    # whose runs fail alike compares equal and one that fails elsewhere not.
                    log(f"{test} at seed {seed} failed:\n{done.stderr[-2000:]}")
                    lines.add(f"{test}:: seed {seed} FAILED")
                if os.path.exists(path):
                    with open(path) as f:
                        lines.update(f"{test}::{line.rstrip()}" for line in f if line.strip())
    return sorted(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-20", help="1-20 (default), or 1,5,7")
    ap.add_argument("--tests", default=",".join(TESTS),
                    help="test files under tests/ (default: every sim test file)")
    ap.add_argument("--compare", metavar="FILE",
                    help="an earlier output: print the lines that differ, exit 1 if any do")
    args = ap.parse_args()
    lines = run(args.tests.split(","), seed_range(args.seeds))
    if not args.compare:
        print("\n".join(lines))
        return
    with open(args.compare) as f:
        before = {line.rstrip() for line in f if line.strip()}
    now = set(lines)
    gone, new = sorted(before - now), sorted(now - before)
    for line in gone:
        print(f"- {line}")
    for line in new:
        print(f"+ {line}")
    print(f"{len(now & before)} of {len(before)} runs unchanged; "
          f"{len(gone)} changed or gone, {len(new)} changed or new")
    sys.exit(1 if gone or new else 0)


if __name__ == "__main__":
    main()
