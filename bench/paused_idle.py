#!/usr/bin/env python3
"""What a paused download costs: one holder (upload limited, so the download is caught half
way) and one downloader on loopback (real processes, release build). The downloader's
download is paused through its control socket; then, for a window, the script reads the
downloader's CPU time (/proc/PID/stat) and its piece counters, and prints the share of one
core it used and the pieces it received. Then the download is resumed, must finish, and the
copy must match the original (sha256).

    python3 bench/paused_idle.py --size 256M --window 20 --runs 3

The goal (issue 16): while only paused downloads remain, the node uses at most 1% of a core
and receives no piece.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from control_cost import Proc, parse_size, sha256, write_random  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_NAME = "paused.bin"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
WAIT_MAX_S = 120.0


def log(*parts):
    print(*parts, flush=True)


def cpu_seconds(pid):
    """User plus system CPU time of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


class Control:
    """A connection to a node's control socket, one JSON request and reply at a time."""

    def __init__(self, path):
        deadline = time.monotonic() + WAIT_MAX_S
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no control socket at {path}")
            time.sleep(0.05)
        self.conn = socket.socket(socket.AF_UNIX)
        self.conn.connect(path)
        self.reader = self.conn.makefile("rb")

    def ask(self, **request):
        request["version"] = 1
        self.conn.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(self.reader.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"{request} refused: {reply}")
        return reply

    def until(self, done, what):
        """Asks for download 1's state until `done(state)`; the last state."""
        deadline = time.monotonic() + WAIT_MAX_S
        while True:
            state = self.ask(command="download-state", id=1)["download"]
            if done(state):
                return state
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {WAIT_MAX_S} s for {what}; at {state}")
            time.sleep(0.05)


def one_run(binary, scratch, payload, window, run):
    base = os.path.join(scratch, f"run{run}")
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
        holder = Proc([binary, "node", "--id", "1", "--dir", holder_dir, "--send", FILE_NAME,
                       "--max-upload-rate", "8M"] + common, base)
        procs.append(holder)
        holder.wait_line(r"^sharing ")
        getter = Proc([binary, "node", "--id", "2", "--dir", getter_dir, "--download",
                       FILE_NAME] + common, base)
        procs.append(getter)
        control = Control(os.path.join(getter_dir, ".torrent", "control"))
        control.until(lambda d: d["verified_bytes"] > 0, "a verified chunk")
        control.ask(command="pause", target="1")
        # What was asked before the pause may still arrive: let it, then measure.
        time.sleep(2.0)
        pid = getter.popen.pid
        pieces = control.ask(command="status")["status"]["counters"]["pieces_received"]
        cpu, wall = cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        cpu, wall = cpu_seconds(pid) - cpu, time.monotonic() - wall
        pieces = control.ask(command="status")["status"]["counters"]["pieces_received"] - pieces
        paused = control.ask(command="download-state", id=1)["download"]
        control.ask(command="resume", target="1")
        control.until(lambda d: d["state"] != "running", "the resumed download to end")
        getter.wait_line(r"^downloaded \S+ ")
        if sha256(os.path.join(getter_dir, FILE_NAME)) != sha256(payload):
            raise RuntimeError("the copy differs from the original")
        return 100.0 * cpu / wall, pieces, paused["verified_bytes"]
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(base, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256M", help="file size (default 256M)")
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds measured while paused (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--dir", default=None, help="where the scratch directory goes")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    binary = os.path.join(REPO, "target", "release", "torrent")
    scratch = tempfile.mkdtemp(prefix="torrent-paused-idle-", dir=args.dir)
    try:
        payload = os.path.join(scratch, FILE_NAME)
        write_random(payload, parse_size(args.size))
        shares = []
        for run in range(args.runs):
            share, pieces, verified = one_run(binary, scratch, payload, args.window, run)
            shares.append(share)
            log(f"run {run + 1}: paused at {verified} bytes verified; over {args.window:.0f} s "
                f"it used {share:.2f}% of a core and received {pieces} pieces; resumed, the "
                f"copy matches")
        log(f"paused node's CPU: median {statistics.median(shares):.2f}% of a core "
            f"[{min(shares):.2f}-{max(shares):.2f}] (goal: at most 1%); "
            f"load {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
