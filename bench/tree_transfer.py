#!/usr/bin/env python3
"""Downloading a directory tree against downloading one file of the same bytes, on loopback
(issue 17: the tree within 20% of the file, 10,000 files and 2 GiB in all).

One holder shares both: the tree (many files, sizes log-uniform from 0 B to 64 MiB, a few
empty, up to six levels deep; made as bench/tree_hash.py makes it) and one file holding the
same bytes. Each run starts a fresh downloader for the tree and one for the file, in turn
(the order alternating), each with `--exit-when-done`, and times it from its start to its
exit: what a user waits for, the tree's info dictionary, the laying out of its files and
directories, its one syncfs and rename included (the node's own "downloaded ... in S s"
counts from the first request only, and is printed beside). The downloaded copy is checked
(the tree's file count; the first tree copy file by file: sizes, executable bits, SHA-1s)
and removed before the next run. Prints every run, then the medians, the
spread and the ratio tree/file (1.00: as fast; the goal is >= 0.8 of the file's rate, that
is a time ratio <= 1.25).

    python3 bench/tree_transfer.py                           # 1 GiB in 2,000 files, 3 runs
    python3 bench/tree_transfer.py --size 2G --files 10000 --runs 3
    python3 bench/tree_transfer.py --size 2G --files 10000 --runs 3 --ceiling

With --ceiling, each run also copies the tree and the file on the same file system with
`cp -r` and `cp`, each followed by `sync -f` (the durability our node gives), the copies
removed between: what the file system itself allows for a tree against a file, with no
network and no hashing.

Builds the release binary first. Python 3 standard library only; the scratch directory is
removed at the end.
"""

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from share import Proc, parse_size  # noqa: E402
from tree_hash import make  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(REPO, "target", "release", "torrent")
LINE_TIMEOUT_S = 60
DOWNLOAD_TIMEOUT_S = 600


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def node(scratch, node_id, tracker, extra):
    argv = [BINARY, "node", "--id", str(node_id), "--tracker", tracker,
            "--dir", os.path.join(scratch, f"node{node_id}"),
            "--log-dir", os.path.join(scratch, "logs"), "--listen", "127.0.0.1:0"] + extra
    return Proc(argv, scratch)


def count_files(path):
    return sum(len(names) for _, _, names in os.walk(path))


def checksums(top):
    """Every file below `top`: its path, size, executable bit and SHA-1 (as `diff -r` and a
    checksum list would compare two trees)."""
    out = {}
    for base, _, names in os.walk(top):
        for name in names:
            path = os.path.join(base, name)
            sha = hashlib.sha1()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    sha.update(block)
            mode = os.stat(path).st_mode
            out[os.path.relpath(path, top)] = (os.path.getsize(path), bool(mode & 0o100),
                                               sha.hexdigest())
    return out


def download(scratch, tracker, node_id, name, expected=None):
    """Seconds from a downloader's start to its exit, the transfer's seconds as it reports
    them, and the files it published; the copy is compared with `expected` (checksums of
    the original), when given, then removed."""
    started = time.monotonic()
    proc = node(scratch, node_id, tracker, ["--download", name, "--exit-when-done"])
    try:
        line = proc.wait_line(f"downloaded {name} ", DOWNLOAD_TIMEOUT_S)
        code = proc.p.wait(timeout=LINE_TIMEOUT_S)
        wall = time.monotonic() - started
    finally:
        proc.stop()
    if code != 0:
        raise RuntimeError(f"the downloader of {name} exited with {code}")
    transfer = float(re.search(r" in ([0-9.]+) s", line).group(1))
    copy = os.path.join(scratch, f"node{node_id}", name)
    files = count_files(copy) if os.path.isdir(copy) else 1
    if expected is not None and checksums(copy) != expected:
        raise RuntimeError(f"the copy of {name} differs from the original")
    shutil.rmtree(os.path.join(scratch, f"node{node_id}"))
    return wall, transfer, files


def copy_time(source, scratch, recursive):
    """Seconds to copy `source` beside it and make the copy durable; the copy is removed."""
    target = os.path.join(scratch, "ceiling-copy")
    started = time.monotonic()
    subprocess.run(["cp", "-r", source, target] if recursive else ["cp", source, target],
                   check=True)
    subprocess.run(["sync", "-f", target], check=True)
    seconds = time.monotonic() - started
    if recursive:
        shutil.rmtree(target)
    else:
        os.remove(target)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="scratch parent (default: the system's)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--ceiling", action="store_true",
                        help="also time cp -r and cp (each with sync -f) in every run")
    args = parser.parse_args()
    if args.runs < 1 or args.files < 1:
        parser.error("--runs and --files must be at least 1")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    scratch = tempfile.mkdtemp(prefix="tree-transfer-", dir=args.dir)
    procs = []
    try:
        holder_dir = os.path.join(scratch, "node1")
        os.makedirs(holder_dir)
        log(f"making a tree of {args.files} files, {args.size} bytes, and the same as one file")
        make(holder_dir, args.size, args.files, args.seed)
        tree_files = count_files(os.path.join(holder_dir, "tree"))
        original = checksums(os.path.join(holder_dir, "tree"))
        tracker = Proc([BINARY, "tracker", "--listen", "127.0.0.1:0",
                        "--db-dir", os.path.join(scratch, "db"),
                        "--log-dir", os.path.join(scratch, "logs")], scratch)
        procs.append(tracker)
        addr = tracker.wait_line("tracker listening on ", LINE_TIMEOUT_S).split()[-1]
        holder = node(scratch, 1, addr, ["--send", "tree", "--send", "file.bin"])
        procs.append(holder)
        started = time.monotonic()
        holder.wait_line("sharing tree ", DOWNLOAD_TIMEOUT_S)
        holder.wait_line("sharing file.bin ", DOWNLOAD_TIMEOUT_S)
        log(f"holder shares both after {time.monotonic() - started:.1f} s")
        times = {"tree": [], "file.bin": [], "cp -r": [], "cp": []}
        next_id = 2
        for run in range(args.runs):
            order = ["tree", "file.bin"] if run % 2 == 0 else ["file.bin", "tree"]
            for name in order:
                # The first tree copy is compared whole, file by file (outside the timing).
                check = original if name == "tree" and run == 0 else None
                seconds, transfer, files = download(scratch, addr, next_id, name, check)
                next_id += 1
                expected = tree_files if name == "tree" else 1
                if files != expected:
                    raise RuntimeError(f"{name}: {files} files downloaded, not {expected}")
                times[name].append(seconds)
                rate = args.size / seconds / (1 << 20)
                print(f"run {run + 1} {name:8} {seconds:7.2f} s  {rate:7.1f} MiB/s  "
                      f"(transfer as the node reports it: {transfer:.2f} s)", flush=True)
            if args.ceiling:
                for name, recursive in (("cp -r", True), ("cp", False)):
                    source = os.path.join(holder_dir, "tree" if recursive else "file.bin")
                    seconds = copy_time(source, scratch, recursive)
                    times[name].append(seconds)
                    print(f"run {run + 1} {name:8} {seconds:7.2f} s  "
                          f"{args.size / seconds / (1 << 20):7.1f} MiB/s", flush=True)
        tree, single = statistics.median(times["tree"]), statistics.median(times["file.bin"])
        spread = lambda xs: f"[{min(xs):.2f}-{max(xs):.2f}]"  # noqa: E731
        print(f"tree ({tree_files} files): median {tree:.2f} s {spread(times['tree'])}; "
              f"one file: median {single:.2f} s {spread(times['file.bin'])}")
        print(f"tree/file time ratio {tree / single:.2f} (goal <= 1.25: the tree at >= 0.8 "
              f"of the file's rate); tree rate {single / tree:.2f} of the file's")
        if args.ceiling:
            tree_cp, file_cp = statistics.median(times["cp -r"]), statistics.median(times["cp"])
            print(f"ceiling: cp -r median {tree_cp:.2f} s {spread(times['cp -r'])}; cp median "
                  f"{file_cp:.2f} s {spread(times['cp'])}; cp -r rate {file_cp / tree_cp:.2f} "
                  f"of cp's; our tree at {tree_cp / tree:.2f} of cp -r's rate")
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
