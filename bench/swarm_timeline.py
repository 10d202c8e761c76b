#!/usr/bin/env python3
"""How a swarm run went, node by node, from the debug logs of a kept benchmark run.

    python3 bench/loopback.py --runs 1 --scenarios S3 --keep --node-args '--log-level debug'
    python3 bench/swarm_timeline.py /tmp/torrent-bench-XXXX/logs/S3

Reads the last run in each node<N>.log of the directory (node 1 is the holder) and prints:
for the holder, how many times each chunk was started and when the repeats came; for each
downloader, when it finished, how long it sat without a piece (gaps over --gap), and per
time step how many chunks it verified and how many of those came from the holder.
A downloader that verifies nothing for seconds while others finish is the thing to look for.
"""
import argparse
import collections
import datetime
import glob
import os
import re
import sys

HOLDER = 1


def seconds(line):
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def last_run(path):
    """The lines of the last process that logged to this file (runs append)."""
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    starts = [i for i, line in enumerate(lines) if " listening on " in line]
    return lines[starts[-1]:] if starts else []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("logdir", help="a scenario's log directory (logs/S3 of a kept run)")
    ap.add_argument("--step", type=float, default=0.5, help="seconds per column (default 0.5)")
    ap.add_argument("--gap", type=float, default=0.05,
                    help="a pause between pieces longer than this counts as idle (s)")
    args = ap.parse_args()
    nodes = {}
    for path in glob.glob(os.path.join(args.logdir, "node*.log")):
        lines = last_run(path)
        if lines:
            nodes[int(re.search(r"node(\d+)\.log$", path).group(1))] = lines
    downloaders = sorted(n for n in nodes if n != HOLDER)
    if HOLDER not in nodes or not downloaders:
        sys.exit(f"{args.logdir}: no node1.log and downloaders' logs there")
    if not any(" DEBUG " in line for line in nodes[HOLDER]):
        sys.exit("the logs have no DEBUG lines: run the benchmark with --node-args '--log-level debug'")
    start = min(seconds(nodes[n][0]) for n in downloaders)

    starts = collections.defaultdict(list)
    for line in nodes[HOLDER]:
        asked = re.search(r"\(node (\d+)\) asks chunk (\d+) \[0\+", line)
        if asked:
            starts[int(asked.group(2))].append((seconds(line) - start, int(asked.group(1))))
    repeats = sorted(t for asks in starts.values() for t, _ in asks[1:])
    by_asker = collections.Counter(n for asks in starts.values() for _, n in asks)
    print(f"holder: {sum(map(len, starts.values()))} chunk starts for {len(starts)} chunks; "
          f"every chunk started once by {max((a[0][0] for a in starts.values()), default=0):.2f} s")
    columns = collections.Counter(int(t / args.step) for t in repeats)
    print(f"holder: repeated starts per {args.step} s:",
          " ".join(f"{columns[i]}" for i in range(max(columns, default=-1) + 1)))
    print("holder: chunk starts by downloader:", dict(sorted(by_asker.items())))

    for n in downloaders:
        verified = []
        pieces = []
        for line in nodes[n]:
            done = re.search(r"chunk \d+ of \S+ verified, from node (\d+)", line)
            if done:
                verified.append((seconds(line) - start, int(done.group(1))))
            elif " DEBUG piece " in line:
                pieces.append(seconds(line) - start)
        gaps = [b - a for a, b in zip(pieces, pieces[1:]) if b - a > args.gap]
        end = verified[-1][0] if verified else 0.0
        total = collections.Counter(int(t / args.step) for t, _ in verified)
        holder = collections.Counter(int(t / args.step) for t, src in verified if src == HOLDER)
        row = " ".join(f"{total[i]:3d}/{holder[i]:<2d}" for i in range(int(end / args.step) + 1))
        print(f"node{n}: done {end:.2f} s, idle {sum(gaps):.2f} s in {len(gaps)} gaps over "
              f"{args.gap * 1000:.0f} ms; verified/from holder per {args.step} s: {row}")


if __name__ == "__main__":
    main()
