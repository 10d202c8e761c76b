#!/usr/bin/env python3
"""Sharing benchmark: how fast a node builds the manifest of a new file (reads it and SHA-1s
every chunk on its hasher threads), and how many cores it keeps busy doing so, against
`sha1sum` of the same file (one core) in the same run.

Python 3 standard library only. See bench/README.md ("Sharing benchmark").

    python3 bench/share.py                  # 1 GiB, 5 runs
    python3 bench/share.py --size 256M --runs 3
    python3 bench/share.py --cold           # drop the page cache before each run (root)

Per run: the node's cached manifest is removed so that it hashes again, a node is started
with `--send FILE`, and the run ends at its 'sharing FILE' line. Reported: the node's own
'manifest of FILE ready in S s' (log), its CPU seconds at that moment, cores used (CPU
seconds over hashing seconds), and sha1sum's wall time and MB/s.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 300
NAME = "share.bin"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 256M, 1G)")
    return int(m.group(1)) * units[m.group(2)]


def cpu_seconds(pid):
    """User + system CPU seconds of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Proc:
    """A child whose stdout lines are queued with the time they arrived."""

    def __init__(self, argv, cwd):
        self.p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise RuntimeError(f"no line starting {prefix!r} within {timeout} s "
                                       f"(exit code {self.p.poll()})")
                self.cond.wait(min(left, 0.2))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("1G"),
                    help="file size, e.g. 256M, 1G (default 1G)")
    ap.add_argument("--runs", type=int, default=5, help="runs (default 5)")
    ap.add_argument("--cold", action="store_true",
                    help="drop the page cache before each run (needs root)")
    ap.add_argument("--dir", default=None, help="where the scratch directory goes")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.cold and os.geteuid() != 0:
        ap.error("--cold needs root (it writes /proc/sys/vm/drop_caches)")

    log("$ cargo build --release")
    subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True, timeout=1800)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    binary = os.path.join(REPO, target, "release", "torrent")

    scratch = tempfile.mkdtemp(prefix="torrent-share-", dir=args.dir)
    tracker = None
    rows = []
    try:
        node_dir = os.path.join(scratch, "node_files", "node1")
        os.makedirs(node_dir)
        path = os.path.join(node_dir, NAME)
        log(f"writing {args.size >> 20} MiB of random bytes to {path}")
        with open(path, "wb") as f:
            left = args.size
            while left:
                block = os.urandom(min(left, 1 << 24))
                f.write(block)
                left -= len(block)
        tracker = Proc([binary, "tracker", "--listen", "127.0.0.1:0", "--db-dir", "db",
                        "--log-dir", "logs"], scratch)
        addr = tracker.wait_line("tracker listening on ", READY_TIMEOUT).rsplit(" ", 1)[1]
        for run in range(1, args.runs + 1):
            shutil.rmtree(os.path.join(node_dir, ".torrent"), ignore_errors=True)
            log_path = os.path.join(scratch, "logs", "node1.log")
            if os.path.exists(log_path):
                os.remove(log_path)
            if args.cold:
                drop_caches()
            node = Proc([binary, "node", "--id", "1", "--tracker", addr, "--files-dir",
                         "node_files", "--log-dir", "logs", "--send", NAME], scratch)
            try:
                node.wait_line(f"sharing {NAME}", READY_TIMEOUT)
                cpu = cpu_seconds(node.p.pid)
            finally:
                node.stop()
            with open(log_path) as f:
                m = re.search(rf"manifest of {re.escape(NAME)} ready in ([0-9.]+) s", f.read())
            if not m:
                raise RuntimeError(f"no 'manifest ready' line in {log_path}")
            hash_s = float(m.group(1))
            if args.cold:
                drop_caches()
            started = time.monotonic()
            subprocess.run(["sha1sum", path], check=True, stdout=subprocess.DEVNULL)
            sha1sum_s = time.monotonic() - started
            rows.append((hash_s, cpu, sha1sum_s))
            log(f"run {run}: manifest {hash_s:.3f} s ({args.size / hash_s / 1e6:.0f} MB/s), "
                f"node CPU {cpu:.2f} s, sha1sum {sha1sum_s:.3f} s")
    finally:
        if tracker:
            tracker.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    hash_s = statistics.median(r[0] for r in rows)
    cpu = statistics.median(r[1] for r in rows)
    sha1sum_s = statistics.median(r[2] for r in rows)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"sharing benchmark: {args.size} bytes, {'cold' if args.cold else 'warm'} page "
          f"cache, median of {len(rows)} runs, {os.cpu_count()} cores, load average {load}")
    print()
    print("| what | seconds | MB/s | CPU s | cores used |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| node: manifest built | {hash_s:.3f} | {args.size / hash_s / 1e6:.0f} | "
          f"{cpu:.2f} | {cpu / hash_s:.2f} |")
    print(f"| sha1sum (one core) | {sha1sum_s:.3f} | {args.size / sha1sum_s / 1e6:.0f} | | 1 |")
    print()
    print(f"node / sha1sum speed: {sha1sum_s / hash_s:.2f}. Node CPU includes its start and "
          f"registration (a few ms).")


if __name__ == "__main__":
    main()
