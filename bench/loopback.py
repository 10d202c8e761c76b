#!/usr/bin/env python3
"""Loopback benchmark of real processes: our swarm against the raw ceiling and rqbit.

Scenarios, each run --runs times (interleaved, so that drift hits all alike):

  S1       tracker + 2 holders -> 1 downloader (torrent node ... --download F --exit-when-done)
  S2       tracker + 1 holder  -> 1 downloader
  ceiling  examples/ceiling.rs: one sender thread -> one receiver mapping the copy and
           SHA-1ing its chunks, same datagram size, windowed so that it is never overrun
  rqbit    2 rqbit seeders -> 1 rqbit leecher (TCP on loopback, no tracker, DHT, LSD)

For each: wall time from starting the downloader to verified completion, MB/s (10^6 B/s),
CPU seconds (user+sys) and peak RSS of every process (wait4 rusage), sha256 of the copy
against the original, and the Udp counters of /proc/net/snmp over the run (InDatagrams,
RcvbufErrors, InErrors). Prints one table: medians over the runs, and the ratios.

Python 3 standard library only. Usage:

  python3 bench/loopback.py [--size 1G] [--runs 5] [--piece-size 65471] [--dir /tmp]
                            [--scenarios S1,S2,ceiling,rqbit] [--keep]
"""

import argparse
import hashlib
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_NAME = "bench.bin"
CHUNK_BYTES = 1 << 20  # the node's default chunk size (files up to 256K chunks)
READY_TIMEOUT = 300.0  # a holder hashes the file before it says "sharing"
STOP_TIMEOUT = 10.0


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def parse_size(text):
    units = {"K": 10, "M": 20, "G": 30}
    text = text.strip()
    if text and text[-1].upper() in units:
        return int(text[:-1]) << units[text[-1].upper()]
    return int(text)


def human(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------- processes


class Proc:
    """A child process: stdout and stderr lines into queues, reaped by wait4 on a thread."""

    live = []  # every Proc not yet reaped, for cleanup

    def __init__(self, name, argv, logdir, cwd=None):
        self.name = name
        self.lines = queue.Queue()  # stdout and stderr lines alike (rqbit logs to stdout)
        self.started = time.monotonic()
        self.ended = None
        self.status = None
        self.rusage = None
        self.log_path = os.path.join(logdir, f"{name}.log")
        self._log = open(self.log_path, "a", buffering=1)
        self._log.write(f"$ {' '.join(argv)}\n")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(os.environ, NO_COLOR="1"),
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children
        )
        self.pid = self.popen.pid
        Proc.live.append(self)
        self._done = threading.Event()
        for stream in (self.popen.stdout, self.popen.stderr):
            threading.Thread(target=self._read, args=(stream, self.lines), daemon=True).start()
        threading.Thread(target=self._reap, daemon=True).start()
        self.hwm_kib = 0
        threading.Thread(target=self._sample_hwm, daemon=True).start()

    def _sample_hwm(self):
        # ru_maxrss from wait4 keeps the high-water mark of the memory the child had before
        # exec, i.e. this Python's RSS at spawn (Linux carries it over in exec_mmap), so it
        # cannot show a peak smaller than ours. VmHWM of the program's own memory, sampled
        # every 20 ms until it exits, can; peak RSS is the smaller of the two.
        path = f"/proc/{self.pid}/status"
        while not self._done.is_set():
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
                            break
            except OSError:
                return
            time.sleep(0.02)

    def _read(self, stream, q):
        for raw in stream:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            q.put((time.monotonic(), text))
            self._log.write(text + "\n")

    def _reap(self):
        _, status, rusage = os.wait4(self.pid, 0)
        self.ended = time.monotonic()
        self.status = status
        self.rusage = rusage
        self.popen.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from reaping
        self._done.set()

    def exit_code(self):
        return None if self.status is None else os.waitstatus_to_exitcode(self.status)

    def wait(self, timeout):
        return self._done.wait(timeout)

    def wait_line(self, pred, timeout):
        """The (time, text) of the first line matching pred, or raises on timeout/exit."""
        q = self.lines
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.name}: no expected line within {timeout:.0f} s "
                                   f"(see {self.log_path})")
            try:
                when, text = q.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self._done.is_set() and q.empty():
                    raise RuntimeError(f"{self.name} exited with {self.exit_code()} before the "
                                       f"expected line (see {self.log_path})")
                continue
            if pred(text):
                return when, text

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout; returns once reaped."""
        if not self._done.is_set():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not self.wait(timeout):
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(timeout)
        if self in Proc.live:
            Proc.live.remove(self)

    def cpu(self):
        return self.rusage.ru_utime + self.rusage.ru_stime

    def rss_mib(self):
        kib = self.rusage.ru_maxrss  # KiB on Linux
        if self.hwm_kib:
            kib = min(kib, self.hwm_kib)
        return kib / 1024.0

    @classmethod
    def stop_all(cls):
        for p in list(cls.live):
            if not p._done.is_set():
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in list(cls.live):
            p.stop(3.0)


def udp_counters():
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    names, values = rows[0][1:], rows[1][1:]
    return dict(zip(names, map(int, values)))


def udp_delta(before, after):
    keys = ("InDatagrams", "RcvbufErrors", "InErrors")
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 22)
            if not block:
                return h.hexdigest()
            h.update(block)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- bencode / .torrent


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(value))


def write_torrent(path, data_path, name, piece_length):
    """A single-file v1 torrent; returns its info hash (hex), which our node's must equal."""
    pieces = bytearray()
    length = 0
    with open(data_path, "rb") as f:
        while True:
            block = f.read(piece_length)
            if not block:
                break
            length += len(block)
            pieces += hashlib.sha1(block).digest()
    info = {"length": length, "name": name, "piece length": piece_length, "pieces": bytes(pieces)}
    with open(path, "wb") as f:
        f.write(bencode({"info": info}))
    return hashlib.sha1(bencode(info)).hexdigest()


# ---------------------------------------------------------------- scenarios


class Result:
    def __init__(self, scenario):
        self.scenario = scenario
        self.wall = None
        self.xfer = None  # the same without the final fsync (and, ours, without start-up)
        self.ok = False
        self.procs = []  # (role, cpu s, rss MiB)
        self.udp = {}
        self.note = ""


class Bench:
    def __init__(self, args):
        self.args = args
        self.size = args.size_bytes
        self.scratch = tempfile.mkdtemp(prefix="torrent-bench-", dir=args.dir)
        self.logdir = os.path.join(self.scratch, "logs")
        os.makedirs(self.logdir)
        self.original = os.path.join(self.scratch, FILE_NAME)
        self.torrent_bin = None
        self.ceiling_bin = None
        self.rqbit_bin = None
        self.rqbit_why = ""
        self.original_sha256 = None
        self.info_hash = None

    # -- setup

    def build(self):
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
        target = os.path.join(REPO, target) if not os.path.isabs(target) else target
        for cmd in (["cargo", "build", "--release"],
                    ["cargo", "build", "--release", "--example", "ceiling"]):
            log("$", " ".join(cmd))
            subprocess.run(cmd, cwd=REPO, check=True, timeout=1800)
        self.torrent_bin = os.path.join(target, "release", "torrent")
        self.ceiling_bin = os.path.join(target, "release", "examples", "ceiling")

    def find_rqbit(self):
        if "rqbit" not in self.args.scenarios:
            return
        found = shutil.which("rqbit") or shutil.which(
            os.path.expanduser("~/.cargo/bin/rqbit"))
        if not found:
            log("$ cargo install rqbit --locked   (minutes, once)")
            try:
                subprocess.run(["cargo", "install", "rqbit", "--locked"], check=True,
                               timeout=3600)
                found = shutil.which("rqbit") or shutil.which(
                    os.path.expanduser("~/.cargo/bin/rqbit"))
            except (subprocess.SubprocessError, OSError) as e:
                self.rqbit_why = f"cargo install rqbit --locked failed: {e}"
        if found:
            self.rqbit_bin = found
        elif not self.rqbit_why:
            self.rqbit_why = "rqbit not found after install"

    def make_file(self):
        log(f"writing {human(self.size)} of random bytes to {self.original}")
        h = hashlib.sha256()
        with open(self.original, "wb") as f:
            left = self.size
            while left:
                block = os.urandom(min(left, 1 << 20))
                f.write(block)
                h.update(block)
                left -= len(block)
        self.original_sha256 = h.hexdigest()
        torrent_path = os.path.join(self.scratch, FILE_NAME + ".torrent")
        self.info_hash = write_torrent(torrent_path, self.original, FILE_NAME, self.chunk_bytes())
        self.torrent_file = torrent_path

    def chunk_bytes(self):
        # The node doubles its 1 MiB chunk until the file has at most 256K chunks.
        chunk = CHUNK_BYTES
        while -(-self.size // chunk) > 262144:
            chunk *= 2
        return chunk

    def node_dir(self, scenario, role):
        path = os.path.join(self.scratch, scenario, role)
        os.makedirs(path, exist_ok=True)
        return path

    def place(self, directory):
        """The original in a holder's directory: a hard link (same data, no copy)."""
        dest = os.path.join(directory, FILE_NAME)
        if not os.path.exists(dest):
            try:
                os.link(self.original, dest)
            except OSError:
                shutil.copyfile(self.original, dest)
        return dest

    # -- our swarm

    def run_ours(self, scenario, holders):
        res = Result(scenario)
        base = os.path.join(self.scratch, scenario)
        tracker_db = os.path.join(base, "tracker_db")
        shutil.rmtree(tracker_db, ignore_errors=True)
        procs = []
        try:
            tracker = Proc(f"{scenario}-tracker", [
                self.torrent_bin, "tracker", "--listen", "127.0.0.1:0",
                "--db-dir", tracker_db, "--log-dir", self.logdir], self.logdir)
            procs.append(("tracker", tracker))
            _, line = tracker.wait_line(lambda t: t.startswith("tracker listening on "),
                                        READY_TIMEOUT)
            addr = line.rsplit(" ", 1)[1]
            common = ["--tracker", addr, "--log-dir", self.logdir,
                      "--piece-size", str(self.args.piece_size)]
            holder_procs = []
            for i in range(1, holders + 1):
                d = self.node_dir(scenario, f"node{i}")
                self.place(d)
                # A fresh tracker each run: forget the old one's token, keep the manifest.
                identity = os.path.join(d, ".torrent", "identity")
                if os.path.exists(identity):
                    os.remove(identity)
                p = Proc(f"{scenario}-holder{i}", [
                    self.torrent_bin, "node", "--id", str(i), "--dir", d,
                    "--send", FILE_NAME] + common, self.logdir)
                procs.append((f"holder{i}", p))
                holder_procs.append(p)
            for p in holder_procs:
                _, line = p.wait_line(lambda t: t.startswith("sharing "), READY_TIMEOUT)
                if self.info_hash not in line:
                    res.note = f"info hash differs from the .torrent's: {line}"
            dl_id = holders + 1
            dl_dir = os.path.join(base, f"node{dl_id}")
            shutil.rmtree(dl_dir, ignore_errors=True)
            os.makedirs(dl_dir)
            before = udp_counters()
            dl = Proc(f"{scenario}-downloader", [
                self.torrent_bin, "node", "--id", str(dl_id), "--dir", dl_dir,
                "--download", FILE_NAME, "--exit-when-done"] + common, self.logdir)
            procs.append(("downloader", dl))
            when, line = dl.wait_line(lambda t: t.startswith("downloaded "), self.args.timeout)
            res.wall = when - dl.started
            # "downloaded NAME (HASH) BYTES bytes in S s ...": the node's own time, from the
            # download's start to the last chunk verified, before data and directory are synced.
            res.xfer = float(line.split(" bytes in ", 1)[1].split(" ", 1)[0])
            if not dl.wait(STOP_TIMEOUT):
                raise RuntimeError("downloader did not exit after 'downloaded'")
            res.udp = udp_delta(before, udp_counters())
            if dl.exit_code() != 0:
                raise RuntimeError(f"downloader exited with {dl.exit_code()}")
            copy = os.path.join(dl_dir, FILE_NAME)
            res.ok = sha256_file(copy) == self.original_sha256
            os.remove(copy)
        finally:
            for _, p in reversed(procs):
                p.stop()
        res.procs = [(role, p.cpu(), p.rss_mib()) for role, p in procs if p.rusage]
        return res

    # -- the ceiling

    def run_ceiling(self):
        res = Result("ceiling")
        copy = os.path.join(self.node_dir("ceiling", "out"), FILE_NAME)
        before = udp_counters()
        p = Proc("ceiling", [self.ceiling_bin, "--file", self.original, "--out", copy,
                             "--piece-size", str(self.args.piece_size),
                             "--chunk-size", str(self.chunk_bytes())], self.logdir)
        try:
            if not p.wait(self.args.timeout):
                raise RuntimeError("ceiling did not finish in time")
        finally:
            p.stop()
        res.udp = udp_delta(before, udp_counters())
        if p.exit_code() != 0:
            raise RuntimeError(f"ceiling exited with {p.exit_code()} (see {p.log_path})")
        _, line = p.wait_line(lambda t: t.startswith("ceiling: "), 1.0)
        # "ceiling: N bytes in S s (...)": its own timing, setup (hashing the source) excluded
        res.wall = float(line.split(" in ", 1)[1].split(" ", 1)[0])
        res.xfer = float(line.split("(transfer ", 1)[1].split(" ", 1)[0])
        res.note = line.split("), ", 1)[1]
        res.ok = sha256_file(copy) == self.original_sha256
        os.remove(copy)
        res.procs = [("ceiling", p.cpu(), p.rss_mib())]
        return res

    # -- rqbit

    def rqbit_argv(self, port, out_dir, extra):
        return [self.rqbit_bin,
                "--disable-dht", "--disable-dht-persistence", "--disable-lsd",
                "--disable-trackers", "--disable-upnp-port-forward",
                "--listen-ip", "127.0.0.1", "--listen-port", str(port),
                "download", "--disable-http-api", "--output-folder", out_dir] + extra + [
                    self.torrent_file]

    def run_rqbit(self):
        res = Result("rqbit S1")
        procs = []
        env_note = ""
        try:
            ports = []
            seeders = []
            for i in (1, 2):
                d = self.node_dir("rqbit", f"seed{i}")
                self.place(d)
                port = free_port()
                ports.append(port)
                p = Proc(f"rqbit-seed{i}", self.rqbit_argv(port, d, ["--overwrite"]),
                         self.logdir)
                procs.append((f"seeder{i}", p))
                seeders.append(p)
            for p in seeders:
                # The stats line of a checked, complete torrent.
                p.wait_line(lambda t: "100.00%" in t and "initializing" not in t,
                            READY_TIMEOUT)
            dl_dir = os.path.join(self.scratch, "rqbit", "leech")
            shutil.rmtree(dl_dir, ignore_errors=True)
            os.makedirs(dl_dir)
            before = udp_counters()
            peers = ",".join(f"127.0.0.1:{port}" for port in ports)
            dl = Proc("rqbit-leech", self.rqbit_argv(free_port(), dl_dir, [
                "--initial-peers", peers, "--exit-on-finish"]), self.logdir)
            procs.append(("leecher", dl))
            if not dl.wait(self.args.timeout):
                raise RuntimeError("rqbit leecher did not finish in time")
            res.wall = dl.ended - dl.started
            res.xfer = res.wall  # rqbit never fsyncs the data it downloads
            res.udp = udp_delta(before, udp_counters())
            if dl.exit_code() != 0:
                raise RuntimeError(f"rqbit leecher exited with {dl.exit_code()} "
                                   f"(see {dl.log_path})")
            copy = os.path.join(dl_dir, FILE_NAME)
            res.ok = sha256_file(copy) == self.original_sha256
            os.remove(copy)
        finally:
            for _, p in reversed(procs):
                p.stop()
        res.procs = [(role, p.cpu(), p.rss_mib()) for role, p in procs if p.rusage]
        res.note = env_note
        return res

    # -- the table

    def table(self, results):
        a = self.args
        out = []
        out.append(f"loopback benchmark: {human(self.size)} ({self.size} bytes), "
                   f"piece {a.piece_size} B (datagram {a.piece_size + 36} B), "
                   f"chunk {human(self.chunk_bytes())}, median of {a.runs} runs, "
                   f"{os.cpu_count()} cores, load average {self.load_before} before, "
                   f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after")
        out.append("")
        out.append("| scenario | wall s | MB/s | no-sync s | no-sync MB/s | CPU s (user+sys) per process | peak RSS MiB "
                   "per process | sha256 | UDP datagrams | RcvbufErrors | InErrors | drops |")
        out.append("| --- | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |")
        medians = {}
        medians_xfer = {}
        for name in self.order():
            runs = results.get(name, [])
            good = [r for r in runs if r.wall is not None]
            if not good:
                why = (runs[0].note if runs else "") or "not run"
                out.append(f"| {name} | – | – | – | – | {why} | | | | | | |")
                continue
            wall = statistics.median(r.wall for r in good)
            medians[name] = self.size / wall / 1e6
            xfer = statistics.median(r.xfer for r in good)
            medians_xfer[name] = self.size / xfer / 1e6
            roles = [role for role, _, _ in good[0].procs]
            cpu = ", ".join(
                f"{role} {statistics.median(dict((x, c) for x, c, _ in r.procs).get(role, 0) for r in good):.2f}"
                for role in roles)
            rss = ", ".join(
                f"{role} {max(dict((x, m) for x, _, m in r.procs).get(role, 0) for r in good):.0f}"
                for role in roles)
            ok = sum(r.ok for r in runs)
            dgrams = statistics.median(r.udp.get("InDatagrams", 0) for r in good)
            rcvbuf = statistics.median(r.udp.get("RcvbufErrors", 0) for r in good)
            inerr = statistics.median(r.udp.get("InErrors", 0) for r in good)
            drops = f"{100.0 * inerr / dgrams:.2f}%" if dgrams else "–"
            failed = len(runs) - len(good)
            label = name + (f" ({failed} failed)" if failed else "")
            out.append(f"| {label} | {wall:.3f} | {medians[name]:.0f} | {xfer:.3f} | "
                       f"{medians_xfer[name]:.0f} | {cpu} | {rss} | "
                       f"{ok}/{len(runs)} equal | {dgrams:.0f} | {rcvbuf:.0f} | {inerr:.0f} | "
                       f"{drops} |")
        out.append("")
        ratios = []
        for ours in ("S1", "S2"):
            for other in ("ceiling", "rqbit S1"):
                if ours in medians and other in medians:
                    ratios.append(f"{ours}/{other} = {medians[ours] / medians[other]:.2f} "
                                  f"(no-sync {medians_xfer[ours] / medians_xfer[other]:.2f})")
        if ratios:
            out.append("ratios of MB/s: " + ", ".join(ratios))
        notes = [f"{n}: {r.note}" for n, runs in results.items() for r in runs[:1] if r.note
                 and r.wall is not None]
        for note in notes:
            out.append(f"note, {note}")
        if self.rqbit_why:
            out.append(f"rqbit: {self.rqbit_why}")
        out.append("wall: downloader start to its 'downloaded' line (ours, after fsync), to "
                   "its exit (rqbit, which never fsyncs), the program's own transfer+fsync "
                   "time (ceiling). no-sync: the node's own 'in S s' (download start to last "
                   "chunk verified), the ceiling's transfer time, rqbit's wall. UDP counters "
                   "are the whole machine's over the span; drops = InErrors/InDatagrams.")
        return "\n".join(out)

    def order(self):
        names = {"S1": "S1", "S2": "S2", "ceiling": "ceiling", "rqbit": "rqbit S1"}
        return [names[s] for s in self.args.scenarios]

    def run(self):
        self.build()
        self.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        self.find_rqbit()
        self.make_file()
        results = {name: [] for name in self.order()}
        for i in range(1, self.args.runs + 1):
            for s in self.args.scenarios:
                name = {"rqbit": "rqbit S1"}.get(s, s)
                if s == "rqbit" and not self.rqbit_bin:
                    if not results[name]:
                        r = Result(name)
                        r.note = self.rqbit_why
                        results[name].append(r)
                    continue
                try:
                    if s == "S1":
                        r = self.run_ours("S1", 2)
                    elif s == "S2":
                        r = self.run_ours("S2", 1)
                    elif s == "ceiling":
                        r = self.run_ceiling()
                    else:
                        r = self.run_rqbit()
                except RuntimeError as e:
                    r = Result(name)
                    r.note = str(e)
                    if s == "rqbit" and not self.rqbit_why:
                        self.rqbit_why = str(e)
                    log(f"run {i} {name}: FAILED: {e}")
                else:
                    log(f"run {i} {name}: {r.wall:.3f} s, {self.size / r.wall / 1e6:.0f} MB/s, "
                        f"{'equal' if r.ok else 'DIFFERENT'}, udp {r.udp}, "
                        + ", ".join(f"{role} {c:.2f} s {m:.0f} MiB" for role, c, m in r.procs))
                results[name].append(r)
        return self.table(results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="file size, e.g. 256M, 1G (default 1G)")
    ap.add_argument("--runs", type=int, default=5, help="runs per scenario (default 5)")
    ap.add_argument("--piece-size", type=int, default=65471,
                    help="bytes of file per datagram, for our nodes and the ceiling")
    ap.add_argument("--dir", default="/tmp", help="where the scratch directory goes")
    ap.add_argument("--scenarios", default="S1,S2,ceiling,rqbit",
                    help="comma-separated subset of S1,S2,ceiling,rqbit")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds one download may take")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    args.size_bytes = parse_size(args.size)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in args.scenarios:
        if s not in ("S1", "S2", "ceiling", "rqbit"):
            ap.error(f"unknown scenario {s}")
    if args.runs < 1 or args.size_bytes < 1:
        ap.error("--runs and --size must be positive")

    # SIGTERM ends the run like Ctrl-C: every child is stopped, the scratch dir removed.
    def on_term(*_):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_term)
    bench = Bench(args)
    code = 0
    try:
        print(bench.run(), flush=True)
    except KeyboardInterrupt:
        log("interrupted: stopping every process")
        code = 130
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        log(f"error: {e}")
        code = 1
    finally:
        Proc.stop_all()
        if args.keep:
            log(f"kept {bench.scratch}")
        else:
            shutil.rmtree(bench.scratch, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
