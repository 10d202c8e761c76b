#!/usr/bin/env python3
"""Peer wire serving benchmark: libtorrent downloads a file from one of our nodes (over
TCP, the BitTorrent peer wire), against libtorrent downloading the same file, by the same
`.torrent`, from a libtorrent seed. Issue 18's goal: ours within 1.1x of libtorrent's.

Python 3 standard library; libtorrent through Debian's python3-libtorrent, run by
/usr/bin/python3. Figures are in the commit that added the script and in the report.

    python3 bench/peer_wire_serve.py                     # 1 GiB, 5 runs of each
    python3 bench/peer_wire_serve.py --size 256M --runs 3

Runs interleave (ours, libtorrent, ours, ...) so that drift on the machine hits both alike.
A run's time is the downloader's own: from adding the torrent to having every piece
(libtorrent checks each piece's SHA-1), excluding process start-up. The seeder's CPU
seconds over the download are read from /proc. Every wait is bounded; every process is
stopped and the scratch directory removed at the end.
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
PYTHON = "/usr/bin/python3"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NAME = "served.bin"
TIMEOUT = 600

SESSION = """
import libtorrent as lt
def session():
    return lt.session({
        'listen_interfaces': '127.0.0.1:0',
        'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
        'enable_natpmp': False, 'enable_outgoing_utp': False, 'enable_incoming_utp': False,
        'out_enc_policy': 2, 'in_enc_policy': 2,
    })
"""

# argv: .torrent, directory, host, port. Prints 'DONE <seconds> <is_seeding>'.
DOWNLOADER = SESSION + """
import sys, time
s = session()
p = lt.add_torrent_params()
p.ti = lt.torrent_info(sys.argv[1])
p.save_path = sys.argv[2]
start = time.monotonic()
h = s.add_torrent(p)
h.connect_peer((sys.argv[3], int(sys.argv[4])))
deadline = start + %d
while time.monotonic() < deadline and not h.status().is_seeding:
    s.wait_for_alert(50)
    s.pop_alerts()
print('DONE', time.monotonic() - start, h.status().is_seeding, flush=True)
""" % TIMEOUT

# argv: .torrent, directory. Prints 'SEEDING <port>' once checked; runs until stdin closes.
SEEDER = SESSION + """
import sys, time
s = session()
p = lt.add_torrent_params()
p.ti = lt.torrent_info(sys.argv[1])
p.save_path = sys.argv[2]
h = s.add_torrent(p)
deadline = time.monotonic() + %d
while time.monotonic() < deadline and not h.status().is_seeding:
    s.wait_for_alert(100)
    s.pop_alerts()
print('SEEDING', s.listen_port(), flush=True)
sys.stdin.read()
""" % TIMEOUT


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
    """A child whose stdout lines are kept; stderr goes to a log file."""

    def __init__(self, argv, cwd, log_path):
        self.err = open(log_path, "w")
        self.p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.err, text=True)
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

    def wait_line(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None and not self.lines_pending():
                    raise RuntimeError(f"no line matching {pattern!r}: {self.lines[-5:]}")
                self.cond.wait(min(left, 0.5))

    def lines_pending(self):
        return self.p.stdout is not None and not self.p.stdout.closed

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()


def download(scratch, torrent, port, label, run):
    out = os.path.join(scratch, f"out-{label}-{run}")
    os.makedirs(out)
    argv = [PYTHON, "-c", DOWNLOADER, torrent, out, "127.0.0.1", str(port)]
    d = Proc(argv, scratch, os.path.join(scratch, f"{label}-{run}-downloader.log"))
    try:
        line = d.wait_line(r"^DONE ", TIMEOUT + 30)
    finally:
        d.stop()
    _, seconds, seeding = line.split()
    if seeding != "True":
        raise RuntimeError(f"{label} run {run}: the download did not complete")
    shutil.rmtree(out)
    return float(seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("1G"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--chunk-size", default="1M", help="our chunk = BitTorrent piece")
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    binary = os.path.join(target, "release", "torrent")
    scratch = tempfile.mkdtemp(prefix="torrent-bench-pw-", dir=args.dir)
    procs = []
    try:
        node_dir = os.path.join(scratch, "node1")
        os.makedirs(node_dir)
        path = os.path.join(node_dir, NAME)
        with open(path, "wb") as f:
            left = args.size
            while left:
                block = os.urandom(min(left, 1 << 22))
                f.write(block)
                left -= len(block)
        tracker = Proc([binary, "tracker", "--listen", "127.0.0.1:0", "--db-dir",
                        os.path.join(scratch, "db"), "--log-dir", scratch],
                       scratch, os.path.join(scratch, "tracker.log"))
        procs.append(tracker)
        taddr = tracker.wait_line(r"listening on ", 30).split()[-1]
        node = Proc([binary, "node", "--id", "1", "--tracker", taddr, "--dir", node_dir,
                     "--log-dir", scratch, "--listen", "127.0.0.1:0", "--chunk-size",
                     args.chunk_size, "--send", NAME, "--export", NAME],
                    scratch, os.path.join(scratch, "node1.out"))
        procs.append(node)
        port = int(node.wait_line(r"^node 1 listening on ", 30).rsplit(":", 1)[1])
        node.wait_line(r"^exported ", TIMEOUT)
        torrent = path + ".torrent"
        seeder = Proc([PYTHON, "-c", SEEDER, torrent, node_dir], scratch,
                      os.path.join(scratch, "seeder.log"))
        procs.append(seeder)
        lt_port = int(seeder.wait_line(r"^SEEDING ", TIMEOUT).split()[1])

        times = {"ours": [], "libtorrent": []}
        cpu = {"ours": [], "libtorrent": []}
        for run in range(args.runs):
            for label, pid, p in (("ours", node.p.pid, port),
                                  ("libtorrent", seeder.p.pid, lt_port)):
                before = cpu_seconds(pid)
                seconds = download(scratch, torrent, p, label, run)
                cpu[label].append(cpu_seconds(pid) - before)
                times[label].append(seconds)
                log(f"run {run + 1} {label}: {seconds:.2f} s")

        mb = args.size / 1e6
        print(f"{args.size} bytes, {args.runs} runs each, interleaved; "
              f"chunk (piece) {args.chunk_size}")
        print(f"{'seeder':<12} {'median s':>9} {'min-max s':>13} {'MB/s':>7} {'seeder CPU s':>13}")
        for label in ("ours", "libtorrent"):
            t = times[label]
            med = statistics.median(t)
            print(f"{label:<12} {med:>9.2f} {min(t):>6.2f}-{max(t):<6.2f} {mb / med:>7.0f} "
                  f"{statistics.median(cpu[label]):>13.2f}")
        ratio = statistics.median(times["ours"]) / statistics.median(times["libtorrent"])
        print(f"ratio ours / libtorrent (medians): {ratio:.2f} (goal <= 1.10)")
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
