#!/usr/bin/env python3
"""Hashing a directory tree for sharing against hashing one file of the same bytes (issue 17:
the tree at >= 0.9x the file, warm cache, on every core).

Makes a tree of many files (sizes drawn log-uniformly from 0 B to 64 MiB, a few empty, up to
six levels deep, scaled to --size in all) and one file holding the same bytes, reads both
once so that both are in the page cache, then runs `examples/tree_hash.rs`, which hashes the
two in turn --runs times (the order alternating) with 1 MiB pieces on every core and prints
each run and the medians, of the speeds and of the CPU seconds each took.

    python3 bench/tree_hash.py                         # 1 GiB in 2,000 files, 5 runs
    python3 bench/tree_hash.py --size 2G --files 10000 --runs 3 --dir /dev/shm

Python 3 standard library only; the scratch directory is removed at the end.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from share import parse_size  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LARGEST_FILE_BYTES = 64 << 20
DEPTH_MAX = 6
BLOCK_BYTES = 1 << 20


def sizes(total, count, rng):
    """`count` file sizes summing to `total`: log-uniform up to LARGEST_FILE_BYTES, 2% empty."""
    raw = [0 if rng.random() < 0.02 else int(2 ** rng.uniform(0, 26)) for _ in range(count)]
    scale = total / max(1, sum(raw))
    out = [min(LARGEST_FILE_BYTES, int(n * scale)) for n in raw]
    short = total - sum(out)
    i = 0
    while short > 0:  # what the cap cut off goes to files with room left
        room = LARGEST_FILE_BYTES - out[i % count]
        add = min(room, short)
        out[i % count] += add
        short -= add
        i += 1
    return out


def make(scratch, total, count, seed):
    """The tree (scratch/tree) and the same bytes as one file (scratch/file.bin)."""
    rng = random.Random(seed)
    root = os.path.join(scratch, "tree")
    single = open(os.path.join(scratch, "file.bin"), "wb")
    # The tree's files in our order (sorted by path), so that the single file holds the
    # same bytes in the same order (only their total matters to the hashing speed).
    paths = []
    for i, size in enumerate(sizes(total, count, rng)):
        depth = rng.randint(0, DEPTH_MAX - 1)
        dirs = [f"d{rng.randint(0, 7)}" for _ in range(depth)]
        paths.append((dirs + [f"f{i:05}.bin"], size))
    paths.sort()
    block = os.urandom(BLOCK_BYTES)
    for parts, size in paths:
        path = os.path.join(root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, BLOCK_BYTES)
                f.write(block[:n])
                single.write(block[:n])
                left -= n
    single.close()
    return root, os.path.join(scratch, "file.bin")


def warm(path):
    """Reads every file below `path` once, so that the runs find it in the page cache."""
    for base, _, names in os.walk(path) if os.path.isdir(path) else [("", [], [path])]:
        for name in names:
            with open(os.path.join(base, name), "rb") as f:
                while f.read(BLOCK_BYTES):
                    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", type=parse_size, help="bytes in all (1G)")
    parser.add_argument("--files", default=2000, type=int, help="files in the tree (2000)")
    parser.add_argument("--runs", default=5, type=int)
    parser.add_argument("--threads", type=int, help="hashing threads (default: every core)")
    parser.add_argument("--dir", help="where the scratch directory goes")
    parser.add_argument("--seed", default=1, type=int)
    args = parser.parse_args()
    if args.files < 1 or args.runs < 1 or args.size < 1:
        parser.error("--size, --files and --runs must be positive")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "tree_hash"],
                   cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    example = os.path.join(target, "release", "examples", "tree_hash")
    scratch = tempfile.mkdtemp(prefix="torrent-tree-hash-", dir=args.dir)
    try:
        print(f"making {args.files} files, {args.size >> 20} MiB in all, in {scratch}",
              file=sys.stderr, flush=True)
        tree, single = make(scratch, args.size, args.files, args.seed)
        # Written back before the runs, so that the kernel's writeback of gigabytes just
        # written does not compete with the first runs (it made the first one 2-3x slower).
        os.sync()
        warm(tree)
        warm(single)
        argv = [example, tree, single, str(args.runs)]
        if args.threads:
            argv.append(str(args.threads))
        return subprocess.run(argv).returncode
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
