#!/usr/bin/env python3
"""Loopback benchmark of real processes: our swarm against the raw ceiling and rqbit.

Scenarios, each run --runs times (interleaved, so that drift hits all alike):

  S1       tracker + 2 holders -> 1 downloader (torrent node ... --download F --exit-when-done)
  S2       tracker + 1 holder  -> 1 downloader
  S1-1400  S1 in 1,400-byte pieces (what a 1,500-byte path carries), beside S1's large ones
  ceiling  examples/ceiling.rs: one sender thread -> one receiver mapping the copy and
           SHA-1ing its chunks, same datagram size, windowed so that it is never overrun
  rqbit    2 rqbit seeders -> 1 rqbit leecher (TCP on loopback, no tracker, DHT, LSD);
           seeders re-check the file with `download --overwrite` of the .torrent
  rqbit-share  the same as rqbit's users share: seeders run `rqbit share FILE`, the leecher
           is given the magnet link it prints and the seeders as --initial-peers
  S3       tracker + 1 holder capped at 64 MiB/s -> 8 downloaders started together
           (--s3-size, 256 MiB by default); they should trade chunks among themselves
  rqbit-S3 1 rqbit seeder capped at 64 MiB/s -> 8 rqbit leechers started together, each
           given the seeder and the 7 others as --initial-peers

For each: wall time from starting the (first) downloader to the (last) verified copy,
MB/s (10^6 B/s), CPU seconds (user+sys) and peak RSS of every process (wait4 rusage; for our
tracker and holders, CPU from the downloaders' start, so not a holder's hashing of the file it
shares), sha256
of every copy against the original, and the Udp counters of /proc/net/snmp over the run
(InDatagrams, RcvbufErrors, InErrors); for S3 also how many copies of the file the source
uploaded. Prints two tables (one downloader; eight): medians over the runs, and the ratios.

Python 3 standard library only. Usage:

  python3 bench/loopback.py [--size 1G] [--s3-size 256M] [--runs 5] [--piece-size 65471]
                            [--dir /tmp] [--scenarios S1,S2,S1-1400,ceiling,rqbit,rqbit-share,S3,rqbit-S3] [--keep]
                            [--before OLD_TARGET/release]   (also runs S1 etc. with an older build)
                            [--variant LABEL=ARGS]   (also runs S1 etc. with more node arguments)
"""

import argparse
import hashlib
import os
import queue
import re
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
SWARM_UPLOAD_CAP = 64 << 20  # S3: the one source's upload rate, bytes/s
SWARM_DOWNLOADERS = 8


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


def parse_iec(text):
    """rqbit's sizes: "8.00Mi", "1.00Gi", "512.00Ki", "0" (bytes)."""
    m = re.fullmatch(r"([0-9.]+)\s*([KMGT]i)?B?", text.strip())
    if not m:
        raise ValueError(text)
    shift = {None: 0, "Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40}[m.group(2)]
    return float(m.group(1)) * (1 << shift)


# ---------------------------------------------------------------- processes


class Proc:
    """A child process: stdout and stderr lines into queues, reaped by wait4 on a thread."""

    live = []  # every Proc not yet reaped, for cleanup

    def __init__(self, name, argv, logdir, cwd=None, stdin=False):
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
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
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
        self.cpu_base = 0.0  # CPU s spent before the measured span (see mark_cpu)
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

    def send(self, text):
        """Writes text to the child's stdin (a console command; needs stdin=True)."""
        self.popen.stdin.write(text.encode())
        self.popen.stdin.flush()

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

    def mark_cpu(self):
        """Counts CPU from now on: what the process spent so far (user+sys, from
        /proc/PID/stat) is left out of cpu()."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            self.cpu_base = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            self.cpu_base = 0.0

    def cpu(self):
        return self.rusage.ru_utime + self.rusage.ru_stime - self.cpu_base

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


def free_ports(n):
    """n distinct free TCP ports on loopback (free when asked; pick them just before use)."""
    ports = set()
    while len(ports) < n:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            ports.add(s.getsockname()[1])
    return list(ports)


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


class Scenario:
    """What one row runs: our swarm (kind "ours"), rqbit's, or the ceiling."""

    def __init__(self, key, label, kind, sources=0, downloaders=1, cap=None, swarm=False,
                 before=False, piece_size=None, extra_args=(), share=False):
        self.key = key  # as given to --scenarios
        self.label = label  # as shown in the table
        self.kind = kind
        self.sources = sources  # holders or seeders, each with the whole file
        self.downloaders = downloaders  # started together
        self.cap = cap  # the sources' upload rate, bytes/s (None: unlimited)
        self.swarm = swarm  # sized by --s3-size, shown in the second table
        self.before = before  # run with the binaries of --before
        self.piece_size = piece_size  # bytes per piece (None: --piece-size)
        self.extra_args = list(extra_args)  # more node arguments (--variant)
        # rqbit as its users share: seeders run `rqbit share FILE`, leechers are given the
        # magnet link it prints (else seeders re-check the file with `download --overwrite`
        # of the .torrent, and leechers are given the .torrent).
        self.share = share

    def as_before(self):
        """The same scenario run with the binaries of --before (an older build)."""
        return Scenario(self.key + "-before", self.label + " before", self.kind, self.sources,
                        self.downloaders, self.cap, self.swarm, before=True,
                        piece_size=self.piece_size, extra_args=self.extra_args)

    def as_variant(self, label, args):
        """The same scenario with more node arguments (--variant LABEL=ARGS)."""
        return Scenario(f"{self.key}-{label}", f"{self.label} {label}", self.kind, self.sources,
                        self.downloaders, self.cap, self.swarm, before=self.before,
                        piece_size=self.piece_size, extra_args=self.extra_args + args)


SCENARIOS = {s.key: s for s in (
    Scenario("S1", "S1", "ours", sources=2),
    Scenario("S2", "S2", "ours", sources=1),
    # Issue 14 asks MTU-sized pieces (what a 1,500-byte path carries) to keep 0.8 of S1.
    Scenario("S1-1400", "S1 1400 B", "ours", sources=2, piece_size=1400),
    Scenario("ceiling", "ceiling", "ceiling"),
    Scenario("rqbit", "rqbit S1", "rqbit", sources=2),
    Scenario("rqbit-share", "rqbit S1 share", "rqbit", sources=2, share=True),
    Scenario("S3", "S3", "ours", sources=1, downloaders=SWARM_DOWNLOADERS,
             cap=SWARM_UPLOAD_CAP, swarm=True),
    Scenario("rqbit-S3", "rqbit S3", "rqbit", sources=1, downloaders=SWARM_DOWNLOADERS,
             cap=SWARM_UPLOAD_CAP, swarm=True),
)}


class Payload:
    """One random file of one size, its sha256 and .torrent; shared by the scenarios of that size."""

    def __init__(self, scratch, size):
        self.size = size
        self.chunk_bytes = CHUNK_BYTES  # the node doubles its 1 MiB chunk until <= 256K chunks
        while -(-size // self.chunk_bytes) > 262144:
            self.chunk_bytes *= 2
        directory = os.path.join(scratch, f"payload-{size}")
        os.makedirs(directory)
        self.path = os.path.join(directory, FILE_NAME)
        log(f"writing {human(size)} of random bytes to {self.path}")
        h = hashlib.sha256()
        with open(self.path, "wb") as f:
            left = size
            while left:
                block = os.urandom(min(left, 1 << 20))
                f.write(block)
                h.update(block)
                left -= len(block)
        self.sha256 = h.hexdigest()
        self.torrent = self.path + ".torrent"
        self.info_hash = write_torrent(self.torrent, self.path, FILE_NAME, self.chunk_bytes)


class Result:
    def __init__(self, scenario, size):
        self.scenario = scenario
        self.size = size
        self.wall = None  # start of the (first) downloader to the last verified copy
        self.first = None  # the same to the first verified copy
        self.xfer = None  # the same without the final fsync (and, ours, without start-up)
        self.copies_ok = 0  # copies whose sha256 equals the original's
        self.copies = 0
        self.procs = []  # (role, cpu s, rss MiB)
        self.udp = {}
        self.uploaded = None  # bytes the sources sent, by their own count
        self.from_sources = None  # verified chunks the downloaders got from the sources
        self.from_others = None  # ... and from each other
        self.tracker_dgrams = None  # datagrams our tracker received over its life (its own count)
        self.note = ""

    @property
    def ok(self):
        return self.copies > 0 and self.copies_ok == self.copies


def stop_and_account(res, procs):
    """Stops every process (last started first) and records its CPU and peak RSS."""
    for _, p in reversed(procs):
        p.stop()
    res.procs = [(role, p.cpu(), p.rss_mib()) for role, p in procs if p.rusage]


class Bench:
    def __init__(self, args):
        self.args = args
        self.scenarios = [SCENARIOS[k] for k in args.scenarios]
        if args.before:
            # Each of ours and the ceiling twice, new beside old, interleaved in every run.
            self.scenarios = [x for sc in self.scenarios
                              for x in ([sc, sc.as_before()] if sc.kind != "rqbit" else [sc])]
        for label, extra in args.variants:
            # Each of ours again with more node arguments, interleaved in every run.
            self.scenarios = [x for sc in self.scenarios
                              for x in ([sc, sc.as_variant(label, extra)]
                                        if sc.kind == "ours" else [sc])]
        self.scratch = tempfile.mkdtemp(prefix="torrent-bench-", dir=args.dir)
        self.logdir = os.path.join(self.scratch, "logs")
        os.makedirs(self.logdir)
        self.payloads = {}  # size -> Payload
        self.torrent_bin = None
        self.ceiling_bin = None
        self.rqbit_bin = None
        self.rqbit_why = ""

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
        if self.args.before:
            for path in (self.bin(True), self.bin(True, "ceiling")):
                if not os.access(path, os.X_OK):
                    raise RuntimeError(f"--before: no program {path}")

    def bin(self, before, program="torrent"):
        """Our binary or the ceiling's, built here or (before) found under --before."""
        if before:
            sub = ["examples"] if program == "ceiling" else []
            return os.path.join(self.args.before, *sub, program)
        return self.ceiling_bin if program == "ceiling" else self.torrent_bin

    def find_rqbit(self):
        if not any(s.kind == "rqbit" for s in self.scenarios):
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

    def size_of(self, scenario):
        return self.args.s3_size_bytes if scenario.swarm else self.args.size_bytes

    def payload(self, scenario):
        size = self.size_of(scenario)
        if size not in self.payloads:
            self.payloads[size] = Payload(self.scratch, size)
        return self.payloads[size]

    def node_dir(self, scenario, role):
        path = os.path.join(self.scratch, scenario, role)
        os.makedirs(path, exist_ok=True)
        return path

    def fresh_dir(self, scenario, role):
        path = os.path.join(self.scratch, scenario, role)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    @staticmethod
    def place(payload, directory):
        """The original in a holder's directory: a hard link (same data, no copy)."""
        dest = os.path.join(directory, FILE_NAME)
        if not os.path.exists(dest):
            try:
                os.link(payload.path, dest)
            except OSError:
                shutil.copyfile(payload.path, dest)
        return dest

    def check_copies(self, res, payload, dirs):
        """sha256 of every downloaded copy against the original; each copy is then removed."""
        for d in dirs:
            copy = os.path.join(d, FILE_NAME)
            res.copies += 1
            if os.path.exists(copy):
                res.copies_ok += sha256_file(copy) == payload.sha256
                os.remove(copy)

    # -- our swarm

    def run_ours(self, sc):
        payload = self.payload(sc)
        res = Result(sc.label, payload.size)
        base = os.path.join(self.scratch, sc.key)
        tracker_db = os.path.join(base, "tracker_db")
        shutil.rmtree(tracker_db, ignore_errors=True)
        # Each scenario logs to its own directory: node<N>.log names only the node id.
        node_logs = os.path.join(self.logdir, sc.key)
        os.makedirs(node_logs, exist_ok=True)
        procs = []
        try:
            tracker = Proc(f"{sc.key}-tracker", [
                self.bin(sc.before), "tracker", "--listen", "127.0.0.1:0",
                "--db-dir", tracker_db, "--log-dir", node_logs], self.logdir)
            procs.append(("tracker", tracker))
            _, line = tracker.wait_line(lambda t: t.startswith("tracker listening on "),
                                        READY_TIMEOUT)
            addr = line.rsplit(" ", 1)[1]
            common = ["--tracker", addr, "--log-dir", node_logs,
                      "--piece-size", str(sc.piece_size or self.args.piece_size)]
            common += self.args.node_args.split() + sc.extra_args
            cap = ["--max-upload-rate", str(sc.cap)] if sc.cap else []
            holders = []
            for i in range(1, sc.sources + 1):
                d = self.node_dir(sc.key, f"node{i}")
                self.place(payload, d)
                # A fresh tracker each run: forget the old one's token, keep the manifest.
                identity = os.path.join(d, ".torrent", "identity")
                if os.path.exists(identity):
                    os.remove(identity)
                p = Proc(f"{sc.key}-holder{i}", [
                    self.bin(sc.before), "node", "--id", str(i), "--dir", d,
                    "--send", FILE_NAME] + cap + common, self.logdir, stdin=True)
                procs.append((f"holder{i}", p))
                holders.append(p)
            for p in holders:
                _, line = p.wait_line(lambda t: t.startswith("sharing "), READY_TIMEOUT)
                if payload.info_hash not in line:
                    res.note = f"info hash differs from the .torrent's: {line}"
            # A holder hashes the file to share it unless its cached manifest is still valid
            # (in a run with rqbit it was hashed again every run): that is the sharing
            # benchmark's measure (bench/share.py), not the transfer's, so the tracker's and
            # holders' CPU is counted from here.
            for _, p in procs:
                p.mark_cpu()
            ids = range(sc.sources + 1, sc.sources + sc.downloaders + 1)
            dirs = [self.fresh_dir(sc.key, f"node{n}") for n in ids]
            before = udp_counters()
            dls = []
            for n, d in zip(ids, dirs):
                role = "downloader" if sc.downloaders == 1 else f"downloader{n}"
                p = Proc(f"{sc.key}-{role}", [
                    self.bin(sc.before), "node", "--id", str(n), "--dir", d,
                    "--download", FILE_NAME, "--exit-when-done"] + common, self.logdir)
                procs.append((role, p))
                dls.append(p)
            deadline = time.monotonic() + self.args.timeout
            # Timed from the first downloader's registration with the tracker, not from its
            # start: since 2026-12-06 a tracker may hold a new node's registration up to a
            # second, until the save that holds its token is written (issue 13), and that is
            # not transfer time. `registered` is when each downloader could first ask.
            registered = []
            for p in dls:
                when, _ = p.wait_line(lambda t: t.startswith("registered with tracker"),
                                      max(1.0, deadline - time.monotonic()))
                registered.append(when)
            t0 = min(registered)
            done, own, sources = [], [], {}
            for p, reg in zip(dls, registered):
                when, line = p.wait_line(lambda t: t.startswith("downloaded "),
                                         max(1.0, deadline - time.monotonic()))
                done.append(when - t0)
                # "downloaded NAME (HASH) BYTES bytes in S s (R MiB/s) from node 1: K chunks, ...":
                # the node's own time, from the download's start (the process's) to the last
                # chunk verified, before data and directory are synced; less its wait for
                # the registration.
                in_s = float(line.split(" bytes in ", 1)[1].split(" ", 1)[0])
                own.append(max(0.0, in_s - (reg - p.started)))
                for node, chunks in re.findall(r"node (\d+): (\d+) chunks", line):
                    sources[int(node)] = sources.get(int(node), 0) + int(chunks)
            res.wall, res.first, res.xfer = max(done), min(done), max(own)
            for p in dls:
                if not p.wait(STOP_TIMEOUT):
                    raise RuntimeError(f"{p.name} did not exit after 'downloaded'")
            res.udp = udp_delta(before, udp_counters())
            for p in dls:
                if p.exit_code() != 0:
                    raise RuntimeError(f"{p.name} exited with {p.exit_code()}")
            res.from_sources = sum(k for n, k in sources.items() if n <= sc.sources)
            res.from_others = sum(k for n, k in sources.items() if n > sc.sources)
            # The holders' own count of bytes sent (pieces sent again included).
            res.uploaded = 0
            for p in holders:
                p.send("status\n")
                _, line = p.wait_line(lambda t: t.startswith("uploaded "), STOP_TIMEOUT)
                # "uploaded N pieces (B bytes); sent to node 2: ..."
                res.uploaded += int(line.split("(", 1)[1].split(" ", 1)[0])
            self.check_copies(res, payload, dirs)
        finally:
            stop_and_account(res, procs)
        # "tracker stopping (received N, ...)": every datagram it received, from the holders'
        # registration to the downloaders' exit (issue 14: at most 2 a second per downloader).
        try:
            _, line = tracker.wait_line(lambda t: t.startswith("tracker stopping ("), 1.0)
            res.tracker_dgrams = int(line.split("received ", 1)[1].split(",", 1)[0])
        except (RuntimeError, ValueError, IndexError):
            pass
        return res

    @staticmethod
    def tracker_per_10s(sc, r):
        """Datagrams our tracker received per downloader per 10 s of the transfer (last
        verified; a run shorter than 10 s counts as 10 s, as issue 14's goal is averaged over
        any 10 s), holders' registrations, heartbeats and announces included."""
        return r.tracker_dgrams / sc.downloaders / max(r.wall, 10.0) * 10.0

    def tracker_rate(self, sc, good):
        rates = [self.tracker_per_10s(sc, r) for r in good
                 if r.tracker_dgrams is not None and r.wall]
        return f"{statistics.median(rates):.1f}" if rates else "–"

    # -- the ceiling

    def run_ceiling(self, sc):
        payload = self.payload(sc)
        res = Result(sc.label, payload.size)
        out = self.node_dir(sc.key, "out")
        copy = os.path.join(out, FILE_NAME)
        before = udp_counters()
        p = Proc(sc.key, [self.bin(sc.before, "ceiling"), "--file", payload.path, "--out", copy,
                             "--piece-size", str(self.args.piece_size),
                             "--chunk-size", str(payload.chunk_bytes)], self.logdir)
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
        res.first = res.wall
        res.xfer = float(line.split("(transfer ", 1)[1].split(" ", 1)[0])
        res.note = line.split("), ", 1)[1]
        self.check_copies(res, payload, [out])
        res.procs = [("ceiling", p.cpu(), p.rss_mib())]
        return res

    # -- rqbit

    def rqbit_argv(self, payload, port, out_dir, extra, cap=None, what=None):
        """A leecher (or an old-style seeder) downloading `what` (default: the .torrent)."""
        return self.rqbit_global(port, cap) + [
            "download", "--disable-http-api", "--output-folder", out_dir] + extra + [
            what or payload.torrent]

    def rqbit_global(self, port, cap=None):
        limit = ["--ratelimit-upload", str(cap)] if cap else []
        return [self.rqbit_bin,
                "--disable-dht", "--disable-dht-persistence", "--disable-lsd",
                "--disable-trackers", "--disable-upnp-port-forward",
                # `share` serves an HTTP API it cannot be told to drop: loopback only.
                "--http-api-listen-addr", "127.0.0.1:0",
                "--listen-ip", "127.0.0.1", "--listen-port", str(port)] + limit

    @staticmethod
    def rqbit_uploaded(seeder, after):
        """The seeder's bytes uploaded, from its first stats line after `after`:
        "[0]: 100.00% (8.00Mi / 8.00Mi), ↓0.00 MiB/s, ↑0.00 MiB/s (8.00Mi), {...}"."""
        when = 0.0
        while when <= after:
            when, line = seeder.wait_line(lambda t: "↑" in t and "%" in t, 5.0)
        return parse_iec(line.split("↑", 1)[1].split("(", 1)[1].split(")", 1)[0])

    def run_rqbit(self, sc):
        payload = self.payload(sc)
        res = Result(sc.label, payload.size)
        base = sc.key
        procs = []
        try:
            seeders = []
            seed_ports = []
            for i in range(1, sc.sources + 1):
                d = self.node_dir(base, f"seed{i}")
                self.place(payload, d)
                port, = free_ports(1)
                seed_ports.append(port)
                if sc.share:
                    argv = self.rqbit_global(port, sc.cap) + [
                        "share", self.place(payload, d)]
                else:
                    argv = self.rqbit_argv(payload, port, d, ["--overwrite"], sc.cap)
                p = Proc(f"{base}-seed{i}", argv, self.logdir)
                procs.append((f"seeder{i}", p))
                seeders.append(p)
            magnet = None
            if sc.share:
                # "share this magnet link: magnet:?xt=urn:btih:..." (the same for every
                # seeder of the same file).
                _, line = seeders[0].wait_line(lambda t: "magnet:?" in t, READY_TIMEOUT)
                magnet = "magnet:?" + line.split("magnet:?", 1)[1].split()[0]
            for p in seeders:
                # The stats line of a checked, complete torrent.
                p.wait_line(lambda t: "100.00%" in t and "initializing" not in t,
                            READY_TIMEOUT)
            n = sc.downloaders
            dirs = [self.fresh_dir(base, "leech" if n == 1 else f"leech{i}")
                    for i in range(1, n + 1)]
            # Every leecher is told the seeders and the other leechers, so their listen
            # ports are picked now, just before they start.
            ports = free_ports(n)
            before = udp_counters()
            leechers = []
            for i, (port, d) in enumerate(zip(ports, dirs)):
                peers = ",".join(f"127.0.0.1:{q}" for q in seed_ports + ports if q != port)
                role = "leecher" if n == 1 else f"leecher{i + 1}"
                p = Proc(f"{base}-{role}", self.rqbit_argv(payload, port, d, [
                    "--initial-peers", peers, "--exit-on-finish"], what=magnet), self.logdir)
                procs.append((role, p))
                leechers.append(p)
            t0 = leechers[0].started
            deadline = time.monotonic() + self.args.timeout
            for p in leechers:
                if not p.wait(max(1.0, deadline - time.monotonic())):
                    raise RuntimeError(f"{p.name} did not finish in time")
            ends = [p.ended - t0 for p in leechers]
            res.wall, res.first = max(ends), min(ends)
            res.xfer = res.wall  # rqbit never fsyncs the data it downloads
            res.udp = udp_delta(before, udp_counters())
            for p in leechers:
                if p.exit_code() != 0:
                    raise RuntimeError(f"{p.name} exited with {p.exit_code()} "
                                       f"(see {p.log_path})")
            try:
                last = max(p.ended for p in leechers)
                res.uploaded = sum(self.rqbit_uploaded(p, last) for p in seeders)
            except (RuntimeError, ValueError, IndexError) as e:
                log(f"{sc.label}: seeders' bytes uploaded not read: {e}")
            self.check_copies(res, payload, dirs)
        finally:
            stop_and_account(res, procs)
        return res

    # -- the tables

    @staticmethod
    def per_process(good, column):
        """'role value, ...' per process: medians of CPU (column 1) or maxima of RSS (2) over
        the runs; three or more processes of one kind (downloader3, ...) in one entry."""
        pick = statistics.median if column == 1 else max
        fmt = "{:.2f}" if column == 1 else "{:.0f}"
        values = {}  # role -> [value per run]
        for r in good:
            for proc in r.procs:
                values.setdefault(proc[0], []).append(proc[column])
        kinds = {}
        for role in values:
            kinds.setdefault(re.sub(r"\d+$", "", role), []).append(role)
        parts = []
        for kind, roles in kinds.items():
            if len(roles) < 3:
                parts += [f"{role} {fmt.format(pick(values[role]))}" for role in roles]
            else:
                each = sorted(pick(values[role]) for role in roles)
                parts.append(f"{len(roles)} {kind}s {fmt.format(statistics.median(each))} "
                             f"(max {fmt.format(each[-1])})")
        return ", ".join(parts)

    @staticmethod
    def udp_cells(good):
        dgrams = statistics.median(r.udp.get("InDatagrams", 0) for r in good)
        rcvbuf = statistics.median(r.udp.get("RcvbufErrors", 0) for r in good)
        inerr = statistics.median(r.udp.get("InErrors", 0) for r in good)
        drops = f"{100.0 * inerr / dgrams:.2f}%" if dgrams else "–"
        return f"{dgrams:.0f} | {rcvbuf:.0f} | {inerr:.0f} | {drops}"

    @staticmethod
    def label(name, runs, good):
        failed = len(runs) - len(good)
        return name + (f" ({failed} failed)" if failed else "")

    def single_table(self, results, out):
        out.append("| scenario | wall s | MB/s [slowest–fastest run] | no-sync s | no-sync MB/s | CPU s (user+sys) per process | peak RSS MiB "
                   "per process | sha256 | UDP datagrams | RcvbufErrors | InErrors | drops |")
        out.append("| --- | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |")
        medians, medians_xfer = {}, {}
        for sc in self.scenarios:
            if sc.swarm:
                continue
            runs = results[sc.label]
            good = [r for r in runs if r.wall is not None]
            if not good:
                why = (runs[0].note if runs else "") or "not run"
                out.append(f"| {sc.label} | – | – | – | – | {why} | | | | | | |")
                continue
            size = good[0].size
            wall = statistics.median(r.wall for r in good)
            xfer = statistics.median(r.xfer for r in good)
            medians[sc.label] = size / wall / 1e6
            medians_xfer[sc.label] = size / xfer / 1e6
            ok = sum(r.ok for r in runs)
            # The spread beside the median: the slowest and fastest run.
            rates = sorted(size / r.wall / 1e6 for r in good)
            spread = f" [{rates[0]:.0f}–{rates[-1]:.0f}]" if len(rates) > 1 else ""
            out.append(f"| {self.label(sc.label, runs, good)} | {wall:.3f} | "
                       f"{medians[sc.label]:.0f}{spread} | {xfer:.3f} | "
                       f"{medians_xfer[sc.label]:.0f} | "
                       f"{self.per_process(good, 1)} | {self.per_process(good, 2)} | "
                       f"{ok}/{len(runs)} equal | {self.udp_cells(good)} |")
        out.append("")
        ratios = []
        pairs = [(ours, other) for ours in ("S1", "S2")
                 for other in ("ceiling", "rqbit S1", "rqbit S1 share")]
        pairs += [(x + " before", "ceiling before") for x in ("S1", "S2")]
        pairs += [(x, x + " before") for x in ("S1", "S2", "ceiling")]
        pairs += [("S1 1400 B", "S1")]
        pairs += [(f"{x} {label}", x) for label, _ in self.args.variants for x in ("S1", "S2")]
        for ours, other in pairs:
            if ours in medians and other in medians:
                ratios.append(f"{ours}/{other} = {medians[ours] / medians[other]:.2f} "
                              f"(no-sync {medians_xfer[ours] / medians_xfer[other]:.2f})")
        # rqbit driven both ways: we are compared with the faster, as its users would pick.
        rqbits = [x for x in ("rqbit S1", "rqbit S1 share") if x in medians]
        if len(rqbits) > 1 and "S1" in medians:
            fastest = max(rqbits, key=lambda x: medians[x])
            ratios.append(f"S1 / the faster rqbit ({fastest}) = "
                          f"{medians['S1'] / medians[fastest]:.2f}")
        if ratios:
            out.append("ratios of MB/s: " + ", ".join(ratios))

    def swarm_table(self, results, out):
        out.append("| scenario | last verified s | first verified s | no-sync last s | copies uploaded by "
                   "the source | chunks from the source / from other downloaders | CPU s (user+sys) "
                   "per process | peak RSS MiB per process | sha256 | UDP datagrams | RcvbufErrors "
                   "| InErrors | drops | tracker datagrams per downloader per 10 s |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: "
                   "| ---: | ---: |")
        for sc in self.scenarios:
            if not sc.swarm:
                continue
            runs = results[sc.label]
            good = [r for r in runs if r.wall is not None]
            if not good:
                why = (runs[0].note if runs else "") or "not run"
                out.append(f"| {sc.label} | – | – | – | – | – | {why} | | | | | | | |")
                continue
            size = good[0].size
            wall = statistics.median(r.wall for r in good)
            first = statistics.median(r.first for r in good)
            xfer = statistics.median(r.xfer for r in good)
            up = [r.uploaded / size for r in good if r.uploaded is not None]
            copies = f"{statistics.median(up):.2f}" if up else "–"
            if all(r.from_sources is not None for r in good):
                chunks = (f"{statistics.median(r.from_sources for r in good):.0f} / "
                          f"{statistics.median(r.from_others for r in good):.0f}")
            else:
                chunks = "–"
            ok = sum(r.copies_ok for r in runs)
            total = sum(r.copies for r in runs)
            out.append(f"| {self.label(sc.label, runs, good)} | {wall:.3f} | {first:.3f} | "
                       f"{xfer:.3f} | {copies} | {chunks} | {self.per_process(good, 1)} | "
                       f"{self.per_process(good, 2)} | {ok}/{total} copies equal | "
                       f"{self.udp_cells(good)} | {self.tracker_rate(sc, good)} |")
        out.append("")
        out.append("tracker datagrams per downloader per 10 s: every datagram our tracker "
                   "received (its own count at its stop, holders' registrations and announces "
                   "included) / downloaders / last verified s (at least 10) x 10 (issue 14's "
                   "goal: at most 20 in any 10 s).")
        out.append(f"{SWARM_DOWNLOADERS} downloaders started together; the one source's upload "
                   f"capped at {human(SWARM_UPLOAD_CAP)}/s (ours: --max-upload-rate; rqbit: "
                   "--ratelimit-upload). last/first verified: from starting the first downloader "
                   "to the last/first 'downloaded' line (ours, after fsync) or exit (rqbit). "
                   "no-sync last: the largest of our nodes' own 'in S s'; rqbit's last verified. "
                   "copies uploaded: the source's bytes sent / file size (ours: the holder's "
                   "'status' after the last copy, pieces sent again included; rqbit: the "
                   "seeder's stats line). chunks: summed over the downloaders' 'downloaded ... "
                   f"from node X: K chunks' lines (the file has "
                   f"{-(-size // self.payloads[size].chunk_bytes)} chunks; "
                   f"{SWARM_DOWNLOADERS} copies are "
                   f"{SWARM_DOWNLOADERS * -(-size // self.payloads[size].chunk_bytes)}).")
        out.append("goals (issue 6): S3 all 8 verified in at most 8 s, the holder uploading at most "
                   "2 copies; rqbit S3 measured earlier: 28.8 s, its seeder sent 7.9 copies.")

    def table(self, results):
        a = self.args
        sizes = {}
        for sc in self.scenarios:
            sizes.setdefault(self.size_of(sc), []).append(sc.label)
        files = "; ".join(f"{human(size)} ({size} bytes, chunk "
                          f"{human(self.payloads[size].chunk_bytes)}) for {', '.join(labels)}"
                          for size, labels in sizes.items() if size in self.payloads)
        out = [f"loopback benchmark: {files}; piece {a.piece_size} B (datagram "
               f"{a.piece_size + 36} B), median of {a.runs} runs, {os.cpu_count()} cores, "
               f"load average {self.load_before} before, "
               f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after", ""]
        if any(not sc.swarm for sc in self.scenarios):
            self.single_table(results, out)
        if any(sc.swarm for sc in self.scenarios):
            if len(out) > 2:
                out.append("")
            self.swarm_table(results, out)
        for label, runs in results.items():
            if runs and runs[0].note and runs[0].wall is not None:
                out.append(f"note, {label}: {runs[0].note}")
        if self.rqbit_why:
            out.append(f"rqbit: {self.rqbit_why}")
        if any(not sc.swarm for sc in self.scenarios):
            out.append("wall: downloader registered (ours) or started (rqbit) to its "
                       "'downloaded' line (ours, after fsync) or exit (rqbit, which never "
                       "fsyncs), the program's own transfer+fsync time (ceiling). no-sync: the "
                       "node's own 'in S s' less its wait to register (download start to last "
                       "chunk verified), the ceiling's transfer time, rqbit's wall.")
        out.append("UDP counters are the whole machine's over the span; drops = "
                   "InErrors/InDatagrams. CPU of our tracker and holders: from the "
                   "downloaders' start (not a holder's hashing of the file it shares).")
        return "\n".join(out)

    def run(self):
        self.build()
        self.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        self.find_rqbit()
        for sc in self.scenarios:
            self.payload(sc)
        results = {sc.label: [] for sc in self.scenarios}
        runners = {"ours": self.run_ours, "ceiling": self.run_ceiling, "rqbit": self.run_rqbit}
        for i in range(1, self.args.runs + 1):
            for sc in self.scenarios:
                if sc.kind == "rqbit" and not self.rqbit_bin:
                    if not results[sc.label]:
                        r = Result(sc.label, self.size_of(sc))
                        r.note = self.rqbit_why
                        results[sc.label].append(r)
                    continue
                try:
                    r = runners[sc.kind](sc)
                except RuntimeError as e:
                    r = Result(sc.label, self.size_of(sc))
                    r.note = str(e)
                    log(f"run {i} {sc.label}: FAILED: {e}")
                else:
                    extra = ""
                    if r.uploaded is not None:
                        extra += f", source uploaded {r.uploaded / r.size:.2f} copies"
                    if r.tracker_dgrams is not None:
                        extra += (f", tracker received {r.tracker_dgrams} datagrams "
                                  f"({self.tracker_per_10s(sc, r):.1f} per downloader per "
                                  "10 s)")
                    if r.from_sources is not None and sc.downloaders > 1:
                        extra += (f", chunks from source {r.from_sources}, from each other "
                                  f"{r.from_others}, first {r.first:.3f} s")
                    log(f"run {i} {sc.label}: {r.wall:.3f} s, {r.size / r.wall / 1e6:.0f} MB/s, "
                        f"{r.copies_ok}/{r.copies} equal{extra}, udp {r.udp}, "
                        + ", ".join(f"{role} {c:.2f} s {m:.0f} MiB" for role, c, m in r.procs))
                results[sc.label].append(r)
        return self.table(results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="file size, e.g. 256M, 1G (default 1G)")
    ap.add_argument("--s3-size", default="256M",
                    help="file size of S3 and rqbit-S3 (default 256M)")
    ap.add_argument("--runs", type=int, default=5, help="runs per scenario (default 5)")
    ap.add_argument("--piece-size", type=int, default=65471,
                    help="bytes of file per datagram, for our nodes and the ceiling")
    ap.add_argument("--dir", default="/tmp", help="where the scratch directory goes")
    ap.add_argument("--scenarios", default="S1,S2,ceiling,rqbit",
                    help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds one download may take")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--node-args", default="", metavar="ARGS",
                    help="more arguments for each of our nodes, e.g. '--log-level debug' "
                         "with --keep to study a run (bench/swarm_timeline.py reads those logs)")
    ap.add_argument("--before", metavar="DIR", default=None,
                    help="a release directory of an older build (DIR/torrent, "
                         "DIR/examples/ceiling): each of our scenarios and the ceiling also "
                         "runs with it, as 'S1 before' etc., interleaved, with ratios")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=ARGS",
                    help="each of our scenarios also runs with these node arguments, as "
                         "'S1 LABEL' etc., interleaved, with ratios (e.g. 'paced=--pace all')")
    args = ap.parse_args()
    args.variants = []
    for text in args.variant:
        label, sep, extra = text.partition("=")
        if not sep or not label or " " in label:
            ap.error(f"--variant {text!r}: expected LABEL=ARGS")
        args.variants.append((label, extra.split()))
    args.size_bytes = parse_size(args.size)
    args.s3_size_bytes = parse_size(args.s3_size)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")
    if args.runs < 1 or args.size_bytes < 1 or args.s3_size_bytes < 1:
        ap.error("--runs, --size and --s3-size must be positive")

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
