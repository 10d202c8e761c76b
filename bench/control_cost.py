#!/usr/bin/env python3
"""What the control socket costs a transfer: one holder and one downloader on loopback
(real processes, release build), a file downloaded with and without a script asking the
downloader for `status` over its control socket 200 times a second, the two kinds of run
interleaved. Prints each kind's goodput (median, min-max) and the ratio of each pair.

    python3 bench/control_cost.py --size 1G --runs 5

The goodput is the file's size over the time from the downloader's `registered with tracker`
line to its `downloaded` line (after fsync), as bench/loopback.py's wall time: not its start-up
nor its wait for the tracker's registry save. Every copy is compared with the original (sha256) before it counts.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_NAME = "cost.bin"
CALLS_PER_S = 200
LINE_TIMEOUT = 300.0


def log(*parts):
    print(*parts, flush=True)


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def write_random(path, size):
    """Writes `size` random bytes to `path`, a MiB at a time."""
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            left -= len(block)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Proc:
    """A child whose stdout lines are read on a thread."""

    def __init__(self, argv, cwd):
        self.popen = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.popen.stdout:
            with self.cond:
                text = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append((time.monotonic(), text))
                self.cond.notify_all()

    def wait_line(self, pattern):
        """The match of the first line like `pattern`, and when the line was read."""
        deadline = time.monotonic() + LINE_TIMEOUT
        seen = 0
        with self.cond:
            while True:
                for when, line in self.lines[seen:]:
                    match = re.search(pattern, line)
                    if match:
                        return match, when
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.popen.poll() is not None and seen == len(self.lines):
                    raise RuntimeError(f"no line like {pattern!r}; got {self.lines[-5:]}")
                self.cond.wait(min(left, 0.2))

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def poll_status(socket_path, stop, counts):
    """Asks for status CALLS_PER_S times a second until `stop` is set; counts the replies."""
    deadline = time.monotonic() + LINE_TIMEOUT
    while not os.path.exists(socket_path):
        if stop.is_set() or time.monotonic() > deadline:
            return
        time.sleep(0.01)
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(socket_path)
    reader = conn.makefile("rb")
    request = json.dumps({"version": 1, "command": "status"}).encode() + b"\n"
    due = counts["started"] = time.monotonic()
    while not stop.is_set():
        try:
            conn.sendall(request)
            line = reader.readline()
        except OSError:
            break  # the node left, its download done
        if not line:
            break
        counts["ok" if json.loads(line).get("ok") else "refused"] += 1
        counts["ended"] = time.monotonic()
        due += 1.0 / CALLS_PER_S
        time.sleep(max(0.0, due - time.monotonic()))
    conn.close()


def one_run(binary, scratch, payload, polled, run):
    base = os.path.join(scratch, f"run{run}-{'polled' if polled else 'quiet'}")
    holder_dir, getter_dir, logs = (os.path.join(base, d) for d in ("h", "d", "logs"))
    for d in (holder_dir, getter_dir, logs):
        os.makedirs(d)
    os.link(payload, os.path.join(holder_dir, FILE_NAME))
    procs = []
    try:
        tracker = Proc([binary, "tracker", "--listen", "127.0.0.1:0", "--db-dir",
                        os.path.join(base, "db"), "--log-dir", logs], base)
        procs.append(tracker)
        addr = tracker.wait_line(r"listening on (\S+)")[0].group(1)
        common = ["--tracker", addr, "--log-dir", logs, "--listen", "127.0.0.1:0"]
        holder = Proc([binary, "node", "--id", "1", "--dir", holder_dir, "--send", FILE_NAME]
                      + common, base)
        procs.append(holder)
        holder.wait_line(r"^sharing ")
        stop, counts = threading.Event(), {"ok": 0, "refused": 0}
        getter = Proc([binary, "node", "--id", "2", "--dir", getter_dir, "--download",
                       FILE_NAME, "--exit-when-done"] + common, base)
        procs.append(getter)
        poller = None
        if polled:
            path = os.path.join(getter_dir, ".torrent", "control")
            poller = threading.Thread(target=poll_status, args=(path, stop, counts))
            poller.start()
        _, registered = getter.wait_line(r"^registered with tracker ")
        _, downloaded = getter.wait_line(r"^downloaded \S+ ")
        seconds = downloaded - registered
        stop.set()
        if poller:
            poller.join(10)
        getter.popen.wait(LINE_TIMEOUT)
        if sha256(os.path.join(getter_dir, FILE_NAME)) != sha256(payload):
            raise RuntimeError("the copy differs from the original")
        return os.path.getsize(payload) / seconds, counts, seconds
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(base, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="file size (default 1G)")
    parser.add_argument("--runs", type=int, default=5, help="pairs of runs (default 5)")
    parser.add_argument("--dir", default=None, help="where the scratch directory goes")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    binary = os.path.join(REPO, "target", "release", "torrent")
    scratch = tempfile.mkdtemp(prefix="torrent-control-cost-", dir=args.dir)
    try:
        payload = os.path.join(scratch, FILE_NAME)
        write_random(payload, parse_size(args.size))
        rates = {False: [], True: []}
        ratios = []
        for run in range(args.runs):
            # Alternate which kind goes first, so that neither always meets a warm cache.
            order = (False, True) if run % 2 == 0 else (True, False)
            pair = {}
            for polled in order:
                rate, counts, seconds = one_run(binary, scratch, payload, polled, run)
                pair[polled] = rate
                rates[polled].append(rate)
                span = counts.get("ended", 0) - counts.get("started", 0)
                calls = f", {counts['ok']} status replies ({counts['ok'] / max(span, 1e-9):.0f}/s)" \
                    if polled else ""
                log(f"run {run + 1} {'polled' if polled else 'quiet '}: "
                    f"{rate / 1e6:8.1f} MB/s in {seconds:.3f} s{calls}")
            ratios.append(pair[True] / pair[False])
        for polled in (False, True):
            r = [x / 1e6 for x in rates[polled]]
            log(f"{'polled' if polled else 'quiet '}: median {statistics.median(r):.1f} MB/s "
                f"[{min(r):.1f}-{max(r):.1f}]")
        log(f"polled / quiet, pair by pair: median {statistics.median(ratios):.3f} "
            f"[{min(ratios):.3f}-{max(ratios):.3f}]; load {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
