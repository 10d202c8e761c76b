#!/usr/bin/env python3
"""Standard BitTorrent clients and our node, over the peer wire on loopback (issue 18).

Each scenario is one seed and one leecher of one file, run --runs times, interleaved:

  lt-lt        libtorrent seeds, libtorrent downloads (the comparison for lt-ours)
  lt-ours      our node seeds (tracker + node sharing the file), libtorrent downloads
  rqbit-rqbit  `rqbit share FILE` seeds, rqbit downloads its magnet link (as rqbit's users
               share), given the seed as --initial-peers
  rqbit-ours   our node seeds, rqbit downloads our .torrent, given the node as --initial-peers

Every leecher is given the seed's address; no DHT or LSD. The .torrent is the one our node
exports for the file (1 MiB pieces), its tracker a live one of ours started for the run;
libtorrent's seed uses the same, so both sides of a comparison move the same pieces.
libtorrent runs over TCP only (see the script). rqbit runs with its trackers off. Time: from starting the leecher to
its saying it has the whole file (libtorrent's torrent_finished alert, rqbit's exit with
--exit-on-finish); sha256 of the copy against the original, every run. Prints medians
[slowest–fastest], the seed's CPU seconds (user+sys, from the leecher's start to the seed's
stop), and each of ours against its comparison, the ratio of the medians and the median of
the per-run ratios.

libtorrent is Debian's python3-libtorrent, run with /usr/bin/python3 (apt-get install -y
python3-libtorrent); rqbit is `cargo install rqbit --locked`. A scenario whose client is
absent is left out with the reason. Usage:

  python3 bench/interop.py [--size 1G] [--runs 5] [--scenarios lt-lt,lt-ours,rqbit-rqbit,rqbit-ours]
                           [--dir /tmp] [--keep] [--node-args ARGS] [--binary PATH]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loopback import (  # noqa: E402  (the same processes, files and tables as loopback.py)
    READY_TIMEOUT, REPO, Proc, free_ports, human, log, parse_size,
    sha256_file)

PYTHON = "/usr/bin/python3"
FILE_NAME = "interop.bin"
SCENARIOS = ["lt-lt", "lt-ours", "rqbit-rqbit", "rqbit-ours"]
# Each of ours, and what it is compared with.
PAIRS = [("lt-ours", "lt-lt"), ("rqbit-ours", "rqbit-rqbit")]

# One script for both libtorrent roles. It prints "ready" once seeding (the check done), and
# "done SECONDS" once a leecher has every piece, checked.
LIBTORRENT = r"""
import os, sys, time, libtorrent as lt
role, torrent, save, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
peer = sys.argv[5] if len(sys.argv) > 5 else None
verbose = bool(os.environ.get('INTEROP_VERBOSE'))
session = lt.session({
    'listen_interfaces': '127.0.0.1:%d' % port,
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
    'enable_natpmp': False,
    # TCP only: our nodes speak no uTP, and libtorrent between two of its own is at its best
    # on TCP here (64 MiB in 0.7 s; 3.5-10 s over uTP when a tracker is in the .torrent).
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'alert_mask': lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
})
params = lt.add_torrent_params()
params.ti = lt.torrent_info(torrent)
params.save_path = save
start = time.monotonic()
handle = session.add_torrent(params)
if peer:
    host, peer_port = peer.rsplit(':', 1)
    handle.connect_peer((host, int(peer_port)))
said_ready = False
while True:
    session.wait_for_alert(1000)
    for alert in session.pop_alerts():
        if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
            print('error', alert.message(), flush=True)
            sys.exit(1)
    status = handle.status()
    if verbose:
        print('%.2f s: %.1f%%, %d peers, %.1f MB/s' % (time.monotonic() - start,
              100 * status.progress, status.num_peers, status.download_rate / 1e6), flush=True)
    if role == 'seed' and status.is_seeding and not said_ready:
        print('ready', flush=True)
        said_ready = True
    if role == 'leech' and status.is_seeding:
        print('done %.3f' % (time.monotonic() - start), flush=True)
        sys.exit(0)
    if role == 'leech' and peer and status.num_peers == 0:
        handle.connect_peer((host, int(peer_port)))
"""


class Bench:
    def __init__(self, args):
        self.args = args
        self.scratch = tempfile.mkdtemp(prefix="interop-", dir=args.dir)
        self.logdir = os.path.join(self.scratch, "logs")
        os.makedirs(self.logdir)
        self.script = os.path.join(self.scratch, "libtorrent_role.py")
        with open(self.script, "w") as f:
            f.write(LIBTORRENT)
        self.binary = args.binary or os.path.join(REPO, "target", "release", "torrent")
        self.rqbit = shutil.which("rqbit") or shutil.which(
            os.path.expanduser("~/.cargo/bin/rqbit"))
        self.original = os.path.join(self.scratch, "original", FILE_NAME)
        self.torrent = os.path.join(self.scratch, FILE_NAME + ".torrent")
        self.original_sha = None

    def missing(self, scenario):
        """Why `scenario` cannot run here, or None."""
        if scenario.startswith("lt-"):
            probe = subprocess.run([PYTHON, "-c", "import libtorrent"], capture_output=True)
            if probe.returncode != 0:
                return f"{PYTHON} cannot import libtorrent (apt-get install -y python3-libtorrent)"
        if scenario.startswith("rqbit-") and not self.rqbit:
            return "rqbit is not installed (cargo install rqbit --locked)"
        return None

    def prepare(self):
        if not self.args.binary:
            log("$ cargo build --release")
            subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
        os.makedirs(os.path.dirname(self.original))
        size = parse_size(self.args.size)
        with open(self.original, "wb") as f:
            left = size
            while left:
                block = os.urandom(min(left, 1 << 22))
                f.write(block)
                left -= len(block)
        self.original_sha = sha256_file(self.original)
        # The node's own .torrent of the file: shared once, exported, kept.
        tracker = self.tracker("prepare")
        try:
            with Ours(self, "prepare", tracker.addr) as ours:
                ours.holder.send(f"export {FILE_NAME}\n")
                _, line = ours.holder.wait_line(lambda t: t.startswith("exported "),
                                                READY_TIMEOUT)
                with open(line.split(" to ", 1)[1].split(" (", 1)[0], "rb") as f:
                    exported = f.read()
        finally:
            tracker.stop()
        # The info dictionary, as written: the last value of the sorted top-level keys
        # (announce, created by, info).
        at = exported.index(b"4:info") + len(b"4:info")
        self.info = exported[at:-1]

    def tracker(self, label):
        """Our tracker on loopback (it speaks BEP 15 to standard clients); `addr` set."""
        p = Proc(f"{label}-tracker", [self.binary, "tracker", "--listen", "127.0.0.1:0",
                                      "--db-dir", self.fresh(f"{label}-db"),
                                      "--log-dir", self.logdir], self.logdir)
        _, line = p.wait_line(lambda t: t.startswith("tracker listening on "), READY_TIMEOUT)
        p.addr = line.rsplit(" ", 1)[1]
        return p

    def torrent_for(self, tracker):
        """The .torrent of the file, announcing to `tracker`."""
        announce = f"udp://{tracker.addr}/announce".encode()
        with open(self.torrent, "wb") as f:
            f.write(b"d8:announce%d:%s4:info%se" % (len(announce), announce, self.info))
        return self.torrent

    def fresh(self, *parts):
        d = os.path.join(self.scratch, *parts)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def seed_dir(self, name):
        """A directory holding the original (a hard link: no copy, the same page cache)."""
        d = self.fresh(name)
        os.link(self.original, os.path.join(d, FILE_NAME))
        return d

    def check(self, copy):
        if not os.path.exists(copy):
            return "no copy"
        if sha256_file(copy) != self.original_sha:
            return "the copy differs from the original"
        return None

    # -- one run of a scenario: (seconds, failure or None)

    def run(self, scenario, n):
        seed_kind, leech_kind = scenario.split("-")[1], scenario.split("-")[0]
        out = self.fresh(f"{scenario}-leech")
        procs = []
        try:
            tracker = self.tracker(scenario)
            procs.append(tracker)
            self.torrent_for(tracker)
            if seed_kind == "ours":
                seed = Ours(self, scenario, tracker.addr).__enter__()
                procs.append(seed)
                peer = seed.addr
            elif seed_kind == "lt":
                port, = free_ports(1)
                p = Proc(f"{scenario}-seed", [PYTHON, self.script, "seed", self.torrent,
                                              self.seed_dir(f"{scenario}-seed"), str(port)],
                         self.logdir)
                procs.append(p)
                p.wait_line(lambda t: t == "ready", READY_TIMEOUT)
                peer = f"127.0.0.1:{port}"
            else:
                port, = free_ports(1)
                p = Proc(f"{scenario}-seed", self.rqbit_global(port) + [
                    "share", os.path.join(self.seed_dir(f"{scenario}-seed"), FILE_NAME)],
                         self.logdir)
                procs.append(p)
                _, line = p.wait_line(lambda t: "magnet:?" in t, READY_TIMEOUT)
                magnet = "magnet:?" + line.split("magnet:?", 1)[1].split()[0]
                p.wait_line(lambda t: "100.00%" in t and "initializing" not in t,
                            READY_TIMEOUT)
                peer = f"127.0.0.1:{port}"
            seeder = seed.holder if seed_kind == "ours" else procs[-1]
            seeder.mark_cpu()  # the seed's CPU from the leecher's start (not its check)
            port, = free_ports(1)
            if leech_kind == "lt":
                leecher = Proc(f"{scenario}-leech", [PYTHON, self.script, "leech", self.torrent,
                                                     out, str(port), peer], self.logdir)
                procs.append(leecher)
                _, line = leecher.wait_line(lambda t: t.startswith(("done", "error")),
                                            self.args.timeout)
                if not line.startswith("done"):
                    return None, f"libtorrent: {line}"
                seconds = time.monotonic() - leecher.started
            else:
                what = magnet if seed_kind == "rqbit" else self.torrent
                leecher = Proc(f"{scenario}-leech", self.rqbit_global(port) + [
                    "download", "--disable-http-api", "--output-folder", out,
                    "--initial-peers", peer, "--exit-on-finish", what], self.logdir)
                procs.append(leecher)
                if not leecher.wait(self.args.timeout):
                    return None, f"rqbit did not finish in {self.args.timeout:.0f} s"
                if leecher.exit_code() != 0:
                    return None, f"rqbit exited with {leecher.exit_code()}"
                seconds = leecher.ended - leecher.started
            failure = self.check(os.path.join(out, FILE_NAME))
            for p in reversed(procs):
                p.stop() if isinstance(p, Proc) else p.__exit__(None, None, None)
            return (None, None, failure) if failure else (seconds, seeder.cpu(), None)
        except RuntimeError as e:
            return None, None, str(e)
        finally:
            for p in reversed(procs):
                p.stop() if isinstance(p, Proc) else p.__exit__(None, None, None)

    def rqbit_global(self, port):
        return [self.rqbit, "--disable-dht", "--disable-dht-persistence", "--disable-lsd",
                "--disable-trackers", "--disable-upnp-port-forward",
                "--http-api-listen-addr", "127.0.0.1:0",
                "--listen-ip", "127.0.0.1", "--listen-port", str(port)]


class Ours:
    """One node of ours sharing the original (linked into its directory), registered with
    the tracker at `tracker`: `addr` is where it listens (UDP, and TCP for the peer wire)."""

    def __init__(self, bench, label, tracker):
        self.bench, self.label, self.tracker = bench, label, tracker
        self.procs = []

    def __enter__(self):
        b = self.bench
        d = b.seed_dir(f"{self.label}-node")
        self.holder = Proc(f"{self.label}-node", [
            b.binary, "node", "--id", "1", "--dir", d, "--tracker", self.tracker,
            "--log-dir", b.logdir, "--send", FILE_NAME] + b.args.node_args.split(), b.logdir, stdin=True)
        self.procs.append(self.holder)
        _, line = self.holder.wait_line(lambda t: t.startswith("node 1 listening on "),
                                        READY_TIMEOUT)
        self.addr = line.split("listening on ", 1)[1].split()[0].rstrip(",;:")
        self.holder.wait_line(lambda t: t.startswith("sharing "), READY_TIMEOUT)
        return self

    def __exit__(self, *_):
        for p in reversed(self.procs):
            p.stop()


def spread(values):
    return f"[{min(values):.2f}–{max(values):.2f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="file size, e.g. 256M, 1G (default 1G)")
    ap.add_argument("--runs", type=int, default=5, help="runs per scenario (default 5)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated, of {','.join(SCENARIOS)}")
    ap.add_argument("--dir", default="/tmp", help="where the scratch directory goes")
    ap.add_argument("--timeout", type=float, default=600.0, help="per download, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--binary", metavar="PATH", default=None,
                    help="our torrent binary (default: this checkout's, built in release)")
    ap.add_argument("--node-args", default="", metavar="ARGS",
                    help="more arguments for our node, e.g. '--log-level debug'")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    try:
        parse_size(args.size)
    except ValueError:
        ap.error(f"--size: not a size: {args.size}")
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")

    bench = Bench(args)
    try:
        scenarios = []
        for s in wanted:
            why = bench.missing(s)
            if why:
                log(f"{s}: SKIPPED: {why}")
            else:
                scenarios.append(s)
        bench.prepare()
        times = {s: [] for s in scenarios}
        cpus = {s: [] for s in scenarios}
        failures = {s: [] for s in scenarios}
        for run in range(1, args.runs + 1):
            for s in scenarios:
                seconds, cpu, failure = bench.run(s, run)
                if failure:
                    failures[s].append(failure)
                    log(f"run {run} {s}: FAILED: {failure}")
                else:
                    times[s].append(seconds)
                    cpus[s].append(cpu)
                    log(f"run {run} {s}: {seconds:.2f} s, seed CPU {cpu:.2f} s")
        size = parse_size(args.size)
        print(f"\n{human(size)}, {args.runs} runs, interleaved; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
        print("| scenario | seconds, median [slowest–fastest] | MB/s | seed CPU s | failed |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for s in scenarios:
            t = times[s]
            cell = f"{statistics.median(t):.2f} {spread(t)}" if t else "–"
            rate = f"{size / statistics.median(t) / 1e6:.0f}" if t else "–"
            cpu = f"{statistics.median(cpus[s]):.2f}" if t else "–"
            print(f"| {s} | {cell} | {rate} | {cpu} | {len(failures[s])} |")
        print()
        for ours, other in PAIRS:
            a, b = times.get(ours), times.get(other)
            if a and b:
                per_run = [x / y for x, y in zip(a, b)]
                print(f"{ours} / {other}: time ratio {statistics.median(a) / statistics.median(b):.2f} "
                      f"(per run: median {statistics.median(per_run):.2f} {spread(per_run)}; "
                      f"issue 18's goal ≤ 1.1)")
        for s in scenarios:
            for failure in sorted(set(failures[s])):
                print(f"{s} failed: {failure}")
    finally:
        Proc.stop_all()
        if args.keep:
            log(f"kept {bench.scratch}")
        else:
            shutil.rmtree(bench.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
