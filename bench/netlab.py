#!/usr/bin/env python3
"""Our transfer against TCP on a real network of namespaces, in the same run, interleaved.

Needs root, `ip`, `tc`, `nft`, `ethtool`, `ping` and `curl` (`apt-get install -y iproute2
nftables ethtool iputils-ping curl`). Builds its own network and tears it down at the end:

    tr (tracker) 10.77.0.2 ─┐
    h1 (holder)  10.77.0.11 ┼─ br0 (bridge, namespace br) ── d (downloader) 10.77.0.21
    h2 (holder)  10.77.0.12 ┤
    r  (router)  10.77.0.254┘── 1,280-byte link ── r2 (router) ── dr (routed downloader) 10.79.0.2

Every link is a veth pair at MTU 1,500 (the r-r2 link 1,280) with offloads off (`ethtool -K`),
so every packet on a link is wire-sized. Impairments sit on the path into the downloader:
packet loss and policers are nftables rules in d's `prerouting` chain at priority -450, which
sees single IP fragments before reassembly; a bottleneck is `tc tbf` on the bridge's port
toward d (a real queue). `netem`, `fq_codel` and `cake` are not used (not available here).

For each case and run: ours (tracker in tr, holders in h1/h2, `torrent node --download F
--exit-when-done` in d) and TCP (`python3 -m http.server` in h1, `curl` in d, to a file and to
/dev/null), one after the other. Reported per case, medians over the runs with [min-max]:

  goodput MB/s   file bytes / time: ours, from the downloader's `registered with tracker`
                 line to its `downloaded` line (look-up, manifest, transfer, verification
                 and the final fsync; not the process start nor its registration, which a
                 tracker may hold up to a second to save the node's token first); TCP
                 twice, as `--tcp` says (both by default): `file`, curl writing a file
                 beside ours and `sync`ing it, timed from before curl starts to after the
                 sync (as ours ends with its fsync; the few milliseconds of starting curl
                 in the namespace count against TCP): the way its users fetch a file, and
                 as durable as ours; `null`, curl's time_total writing to /dev/null: the
                 link's TCP ceiling, which neither writes nor verifies anything
  ratio          ours / TCP writing a file, and ours / TCP to /dev/null
  drop %         packets dropped by the impairment / packets that reached it (nft and tc
                 counters, the kernel's own, not our logs)
  +delay ms      median ping RTT h1 -> d during the transfer minus the idle median (tbf cases)
  frags          Ip.FragCreates summed over every namespace (/proc/net/snmp) during the run
  trk dgr        datagrams from the downloader to the tracker (nft counter in tr): in the
                 whole download, and per 10 s (over the download, or over 10 s when it was
                 shorter: issue 14's goal is at most 20 in any 10 s)

Usage (as root):

  python3 bench/netlab.py                          # every case, 5 runs, 256 MiB
  python3 bench/netlab.py --cases clean,loss1,tbf --runs 3 --size 64M
  python3 bench/netlab.py --node-args '--piece-size 1400' --cases policer12M
  python3 bench/netlab.py --cases clean --variant 'off=--pace off' --variant 'main=bin:/tmp/t'

A `--variant LABEL=ARGS` runs ours once more per case and run with other node arguments (and,
when ARGS starts with `bin:PATH`, another binary), in the same rotation as ours and TCP, so
that two builds or two settings are compared on the same link at the same moment; each gets
its own row, its ratio taken against the TCP transfer of the same run.
  python3 bench/netlab.py --list                   # the cases

Python 3 standard library only. Every wait is bounded; every process it started is stopped
by PID, and every namespace it made is deleted, at the end, on error and on Ctrl-C.
"""

import argparse
import os
import queue
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
FILE_NAME = "netlab.bin"
# TCP's two transfers: curl writing a file and syncing it, and curl writing to /dev/null.
TCP_SYSTEMS = ("tcp", "tcp-null")
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
PREFIX = f"nl{os.getpid()}"

HOSTS = {  # namespace -> address on the bridge (r also has 10.78.0.1 toward dr)
    "tr": "10.77.0.2",
    "h1": "10.77.0.11",
    "h2": "10.77.0.12",
    "d": "10.77.0.21",
    "r": "10.77.0.254",
}
ROUTED = "10.79.0.2"
BOTTLENECK_RATE = "100mbit"
BOTTLENECK_BYTES_PER_S = 100e6 / 8

# case -> (downloader namespace, holders, impairment): loss is per 100,000 packets, a
# policer bytes/s, a tbf queue limit bytes; "compete" starts a TCP flow h2 -> d mid-way.
CASES = {
    "clean": dict(),
    "loss0.1": dict(loss=100),
    "loss1": dict(loss=1000),
    "loss3": dict(loss=3000),
    "policer12M": dict(police=12 << 20),
    "policer1M": dict(police=1 << 20),
    "tbf": dict(tbf=256_000),
    "tbf-deep": dict(tbf=4_000_000),
    "tbf-loss0.1": dict(tbf=256_000, loss=100),
    "tbf-loss1": dict(tbf=256_000, loss=1000),
    "tbf-2holders": dict(tbf=256_000, holders=2),
    "tbf-compete": dict(tbf=256_000, compete=True),
    "routed1280": dict(routed=True),
    "routed1280-noicmp": dict(routed=True, noicmp=True),
}


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def parse_size(text):
    units = {"K": 10, "M": 20, "G": 30}
    text = text.strip()
    if text and text[-1].upper() in units:
        return int(text[:-1]) << units[text[-1].upper()]
    return int(text)


def run(argv, check=True):
    """Runs a setup command; returns its stdout."""
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def ns_name(short):
    return f"{PREFIX}-{short}"


def in_ns(short, argv):
    return ["ip", "netns", "exec", ns_name(short)] + list(argv)


# ---------------------------------------------------------------- processes


class Proc:
    """A child process in a namespace; its output lines go to a queue and a log file."""

    live = []

    def __init__(self, name, ns, argv, logdir, cwd=None):
        self.name = name
        self.lines = queue.Queue()
        self.log_path = os.path.join(logdir, f"{name}.log")
        self._log = open(self.log_path, "a", buffering=1)
        full = in_ns(ns, argv)
        self._log.write(f"$ {' '.join(full)}\n")
        # `ip netns exec` enters the namespace and execs the program: the PID is the program's.
        self.popen = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, cwd=cwd,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self.started = time.monotonic()
        Proc.live.append(self)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.popen.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.put((time.monotonic(), text))
            self._log.write(text + "\n")
        self.lines.put((time.monotonic(), None))

    def wait_line(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.name}: no expected line within {timeout:.0f} s "
                                   f"(see {self.log_path})")
            try:
                when, text = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if text is None:
                self.popen.wait(timeout=STOP_TIMEOUT)
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode} before "
                                   f"the expected line (see {self.log_path})")
            if pred(text):
                return when, text

    def stop(self):
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT)
        if self in Proc.live:
            Proc.live.remove(self)

    @classmethod
    def stop_all(cls):
        for p in list(cls.live):
            p.stop()


# ---------------------------------------------------------------- the network


class Lab:
    def __init__(self):
        self.made = []  # namespaces made, deleted at the end
        self.bottleneck_dev = None  # the bridge's port toward d (tbf goes there)

    def build(self):
        for short in ["br", *HOSTS, "r2", "dr"]:
            run(["ip", "netns", "add", ns_name(short)])
            self.made.append(ns_name(short))
            run(["ip", "-n", ns_name(short), "link", "set", "lo", "up"])
        br = ns_name("br")
        run(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", br, "link", "set", "br0", "up"])
        for index, (short, addr) in enumerate(HOSTS.items()):
            port = f"p{index}"
            self._veth(short, "eth0", "br", port, 1500)
            run(["ip", "-n", br, "link", "set", port, "master", "br0"])
            run(["ip", "-n", ns_name(short), "addr", "add", f"{addr}/24", "dev", "eth0"])
            if short == "d":
                self.bottleneck_dev = port
        # The routed downloader: r -- r2 over a 1,280-byte link, r2 -- dr at 1,500, so that
        # neither end's own link tells it the path's MTU.
        self._veth("r2", "eth0", "r", "eth1", 1280)
        self._veth("dr", "eth0", "r2", "eth1", 1500)
        run(["ip", "-n", ns_name("r"), "addr", "add", "10.78.0.1/24", "dev", "eth1"])
        run(["ip", "-n", ns_name("r2"), "addr", "add", "10.78.0.2/24", "dev", "eth0"])
        run(["ip", "-n", ns_name("r2"), "addr", "add", "10.79.0.1/24", "dev", "eth1"])
        run(["ip", "-n", ns_name("dr"), "addr", "add", f"{ROUTED}/24", "dev", "eth0"])
        run(["ip", "-n", ns_name("dr"), "route", "add", "default", "via", "10.79.0.1"])
        run(["ip", "-n", ns_name("r2"), "route", "add", "default", "via", "10.78.0.1"])
        run(["ip", "-n", ns_name("r"), "route", "add", "10.79.0.0/24", "via", "10.78.0.2"])
        for router in ("r", "r2"):
            run(in_ns(router, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        for short in ("tr", "h1", "h2", "d"):
            run(["ip", "-n", ns_name(short), "route", "add", "10.78.0.0/15", "via",
                 HOSTS["r"]])

    def _veth(self, a_ns, a_dev, b_ns, b_dev, mtu):
        tmp_a, tmp_b = f"{PREFIX}a{len(self.made)}{a_ns}"[:15], f"{PREFIX}b{b_dev}{a_ns}"[:15]
        run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
        run(["ip", "link", "set", tmp_a, "netns", ns_name(a_ns)])
        run(["ip", "link", "set", tmp_b, "netns", ns_name(b_ns)])
        for ns, tmp, dev in ((a_ns, tmp_a, a_dev), (b_ns, tmp_b, b_dev)):
            run(["ip", "-n", ns_name(ns), "link", "set", tmp, "name", dev])
            run(["ip", "-n", ns_name(ns), "link", "set", dev, "mtu", str(mtu), "up"])
            # Offloads off: a GSO run or a GRO-merged packet would cross the link as one
            # large packet, which no real wire carries.
            for feature in ("gso", "tso", "gro", "tx-udp-segmentation", "rx-gro-list",
                            "rx-udp-gro-forwarding"):
                run(in_ns(ns, ["ethtool", "-K", dev, feature, "off"]), check=False)

    def impair(self, case):
        """Puts the case's impairments in place (after clearing the last ones)."""
        self.clear()
        down = "dr" if case.get("routed") else "d"
        rules = ["ip version 4 counter name seen"]
        if case.get("compete"):
            # Bytes that crossed the bottleneck from each holder's namespace: h1 carries the
            # measured flow (ours, or TCP's baseline), h2 the competing TCP flow.
            rules += [f"ip saddr {HOSTS['h1']} counter name from_h1",
                      f"ip saddr {HOSTS['h2']} counter name from_h2"]
        if "loss" in case:
            rules.append(f"numgen random mod 100000 < {case['loss']} counter name dropped drop")
        if "police" in case:
            rate = case["police"]
            burst = max(64 << 10, rate // 20)
            rules.append(f"limit rate over {rate} bytes/second burst {burst} bytes "
                         f"counter name dropped drop")
        nft = (f"table ip netlab {{\n counter seen {{}}\n counter dropped {{}}\n"
               f" counter from_h1 {{}}\n counter from_h2 {{}}\n"
               f" chain pre {{ type filter hook prerouting priority -450; policy accept;\n"
               + "\n".join(f"  {r}" for r in rules) + "\n }\n}\n")
        self.nft(down, nft)
        if "tbf" in case:
            run(in_ns("br", ["tc", "qdisc", "add", "dev", self.bottleneck_dev, "root", "tbf",
                             "rate", BOTTLENECK_RATE, "burst", "32kb",
                             "limit", str(case["tbf"])]))
        if case.get("noicmp"):
            # The routers drop the "fragmentation needed" they would send: a black hole.
            for router in ("r", "r2"):
                self.nft(router, "table ip netlab {\n chain out { type filter hook output "
                         "priority 0; policy accept;\n  icmp type destination-unreachable drop"
                         "\n }\n}\n")
        # Datagrams from the downloaders to the tracker, counted at the tracker.
        self.nft("tr", "table ip netlab {\n counter fromd {}\n chain in { type filter hook "
                 f"input priority 0; policy accept;\n  ip saddr {{ {HOSTS['d']}, {ROUTED} }}"
                 " udp dport != 0 counter name fromd\n }\n}\n")

    def nft(self, short, text):
        subprocess.run(in_ns(short, ["nft", "-f", "-"]), input=text, text=True, check=True,
                       timeout=30)

    def clear(self):
        for short in ("d", "dr", "r", "r2", "tr"):
            run(in_ns(short, ["nft", "delete", "table", "ip", "netlab"]), check=False)
        run(in_ns("br", ["tc", "qdisc", "del", "dev", self.bottleneck_dev, "root"]),
            check=False)

    def counter(self, short, name):
        out = run(in_ns(short, ["nft", "list", "counter", "ip", "netlab", name]), check=False)
        m = re.search(r"packets (\d+) bytes (\d+)", out)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    def tbf_stats(self):
        out = run(in_ns("br", ["tc", "-s", "qdisc", "show", "dev", self.bottleneck_dev]))
        m = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+)", out)
        return (int(m.group(2)), int(m.group(3))) if m else (0, 0)

    def frag_creates(self):
        total = 0
        for short in [*HOSTS, "r2", "dr"]:
            out = run(in_ns(short, ["cat", "/proc/net/snmp"]))
            rows = [line.split() for line in out.splitlines() if line.startswith("Ip:")]
            total += int(dict(zip(rows[0][1:], rows[1][1:]))["FragCreates"])
        return total

    def teardown(self):
        for name in reversed(self.made):
            run(["ip", "netns", "del", name], check=False)
        self.made.clear()


# ---------------------------------------------------------------- one run


class Pinger:
    """ping h1 -> the downloader every 50 ms until stopped; the RTTs in ms."""

    def __init__(self, target):
        self.proc = subprocess.Popen(in_ns("h1", ["ping", "-n", "-i", "0.05", target]),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, start_new_session=True)
        self.rtts = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            m = re.search(r"time=([0-9.]+) ms", line)
            if m:
                self.rtts.append(float(m.group(1)))

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.rtts


class ShareSampler:
    """Samples the downloader's per-holder byte counters (nft, after the bottleneck) every
    100 ms until stopped, so that each flow's rate over the overlap of the two can be read
    afterwards: (monotonic time, bytes from h1, bytes from h2)."""

    INTERVAL = 0.1

    def __init__(self, down):
        self.down = down
        self.samples = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            out = run(in_ns(self.down, ["nft", "list", "table", "ip", "netlab"]), check=False)
            got = dict(re.findall(r"counter (from_h[12]) \{\s*packets \d+ bytes (\d+)", out))
            if len(got) == 2:
                self.samples.append((time.monotonic(), int(got["from_h1"]),
                                     int(got["from_h2"])))
            self.stopped.wait(self.INTERVAL)

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=STOP_TIMEOUT)

    def at(self, when):
        """Both counters at `when`, interpolated between the samples around it."""
        before = [s for s in self.samples if s[0] <= when]
        after = [s for s in self.samples if s[0] >= when]
        if not before or not after:
            return None
        (t0, a0, b0), (t1, a1, b1) = before[-1], after[0]
        f = (when - t0) / (t1 - t0) if t1 > t0 else 0.0
        return a0 + f * (a1 - a0), b0 + f * (b1 - b0)

    def shares(self, start, end):
        """Each flow's rate over [start, end] as a share of the bottleneck's rate."""
        first, last = self.at(start), self.at(end)
        if first is None or last is None or end - start < 0.2:
            return None
        rate = BOTTLENECK_BYTES_PER_S * (end - start)
        return (last[0] - first[0]) / rate, (last[1] - first[1]) / rate, end - start


def idle_rtt(lab, target):
    out = run(in_ns("h1", ["ping", "-n", "-c", "10", "-i", "0.05", target]), check=False)
    rtts = [float(x) for x in re.findall(r"time=([0-9.]+) ms", out)]
    return statistics.median(rtts) if rtts else None


class Bench:
    def __init__(self, args, lab, scratch, binary):
        self.args, self.lab, self.scratch, self.binary = args, lab, scratch, binary
        self.logs = os.path.join(scratch, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.file = os.path.join(scratch, FILE_NAME)
        with open(self.file, "wb") as f:
            left = args.size
            while left:
                block = os.urandom(min(left, 1 << 20))
                f.write(block)
                left -= len(block)
        self.node_id = 0
        self.variants = variants(args, binary)
        self.http = {}  # holder namespace -> (Proc, port)

    def http_server(self, short):
        if short not in self.http:
            root = os.path.join(self.scratch, f"www-{short}")
            os.makedirs(root, exist_ok=True)
            os.link(self.file, os.path.join(root, FILE_NAME))
            proc = Proc(f"http-{short}", short,
                        ["/usr/bin/python3", "-u", "-m", "http.server", "0", "--bind",
                         HOSTS[short], "--directory", root], self.logs)
            _, line = proc.wait_line(lambda t: t.startswith("Serving HTTP"), READY_TIMEOUT)
            port = int(re.search(r"port (\d+)", line).group(1))
            self.http[short] = (proc, port)
        return self.http[short][1]

    def measure(self, system, case):
        """One transfer; returns a dict of figures."""
        down = "dr" if case.get("routed") else "d"
        target = ROUTED if case.get("routed") else HOSTS["d"]
        self.lab.impair(case)
        idle = idle_rtt(self.lab, target) if "tbf" in case else None
        self.lab.impair(case)  # counters from zero, after the idle pings
        frags0 = self.lab.frag_creates()
        compete = None
        pinger = Pinger(target) if "tbf" in case else None
        sampler = ShareSampler(down) if case.get("compete") else None
        if system in TCP_SYSTEMS:
            to_file = system == "tcp"
            port = self.http_server("h1")
            started = time.monotonic()
            if case.get("compete"):
                compete = self.start_competitor(down, started)
            dest = os.path.join(self.scratch, f"tcp-{FILE_NAME}") if to_file else "/dev/null"
            out = run(in_ns(down, ["curl", "-s", "-o", dest, "-w",
                                   "%{size_download} %{time_total}",
                                   f"http://{HOSTS['h1']}:{port}/{FILE_NAME}"]))
            ended = time.monotonic()
            got, seconds = out.split()
            if int(got) != self.args.size:
                raise RuntimeError(f"curl got {got} bytes of {self.args.size}")
            seconds = float(seconds)
            if to_file:
                # Ours is timed to after its fsync: so is TCP, and the copy is checked.
                run(["sync", dest])
                seconds = time.monotonic() - started
                if not same_file(self.file, dest):
                    raise RuntimeError("curl's copy differs from the original")
                os.remove(dest)
            tracker_dgrams = 0
        else:
            binary, node_args = self.variants.get(system, (self.binary, self.args.node_args))
            seconds, tracker_dgrams, compete, ended = self.ours(case, down, binary, node_args)
        rtts = pinger.stop() if pinger else []
        figures = dict(goodput=self.args.size / seconds / 1e6, seconds=seconds,
                       frags=self.lab.frag_creates() - frags0,
                       tracker_dgrams=tracker_dgrams,
                       tracker_per_10s=tracker_dgrams * 10.0 / max(seconds, 10.0))
        if compete is not None:
            figures["compete_mbs"] = compete.finish()
        if sampler is not None:
            # Wait for the competitor first (finish() above), so that the samples cover the
            # whole overlap: from the competing curl's start to whichever flow ended first.
            sampler.stop()
            if compete is not None and compete.started_at is not None:
                end = min(ended, compete.ended_at or ended)
                shares = sampler.shares(compete.started_at, end)
                if shares:
                    figures["share_ours"], figures["share_tcp"], figures["overlap_s"] = shares
        seen, _ = self.lab.counter(down, "seen")
        dropped, _ = self.lab.counter(down, "dropped")
        if "tbf" in case:
            sent, tbf_dropped = self.lab.tbf_stats()
            dropped += tbf_dropped
            seen += tbf_dropped + sent
        figures["drop_pct"] = 100.0 * dropped / seen if seen else 0.0
        if rtts and idle is not None:
            figures["delay_ms"] = statistics.median(rtts) - idle
        self.lab.clear()
        return figures

    def start_competitor(self, down, started):
        port = self.http_server("h2")
        return Competitor(down, port, started, self.args.size)

    def ours(self, case, down, binary, node_args):
        tracker_ns = "tr"
        tracker = Proc("tracker", tracker_ns,
                       [binary, "tracker", "--listen", f"{HOSTS['tr']}:0",
                        "--db-dir", os.path.join(self.scratch, "tracker_db"),
                        "--log-dir", self.logs], self.logs, cwd=self.scratch)
        procs = [tracker]
        try:
            _, line = tracker.wait_line(lambda t: t.startswith("tracker listening on "),
                                        READY_TIMEOUT)
            tracker_addr = line.split()[3]
            node_args = node_args.split()
            for short in ["h1", "h2"][: case.get("holders", 1)]:
                self.node_id += 1
                node_dir = os.path.join(self.scratch, "nodes", f"node{self.node_id}")
                os.makedirs(node_dir, exist_ok=True)
                os.link(self.file, os.path.join(node_dir, FILE_NAME))
                holder = Proc(f"holder-{short}", short,
                              [binary, "node", "--id", str(self.node_id), "--dir", node_dir,
                               "--tracker", tracker_addr, "--listen", f"{HOSTS[short]}:0",
                               "--log-dir", self.logs, "--send", FILE_NAME, *node_args],
                              self.logs, cwd=self.scratch)
                procs.append(holder)
                holder.wait_line(lambda t: t.startswith("sharing "), READY_TIMEOUT)
            self.node_id += 1
            node_dir = os.path.join(self.scratch, "nodes", f"node{self.node_id}")
            listen = ROUTED if down == "dr" else HOSTS["d"]
            before, _ = self.lab.counter("tr", "fromd")
            downloader = Proc(f"downloader-{down}", down,
                              [binary, "node", "--id", str(self.node_id), "--dir", node_dir,
                               "--tracker", tracker_addr, "--listen", f"{listen}:0",
                               "--log-dir", self.logs, "--download", FILE_NAME,
                               "--exit-when-done", "--give-up-after", str(self.args.timeout),
                               *node_args], self.logs, cwd=self.scratch)
            procs.append(downloader)
            compete = None
            if case.get("compete"):
                compete = self.start_competitor(down, downloader.started)
            registered, _ = downloader.wait_line(
                lambda t: t.startswith("registered with tracker"), READY_TIMEOUT)
            when, _ = downloader.wait_line(lambda t: t.startswith("downloaded "),
                                           self.args.timeout + 30)
            seconds = when - registered
            after, _ = self.lab.counter("tr", "fromd")
            if not same_file(self.file, os.path.join(node_dir, FILE_NAME)):
                raise RuntimeError("the downloaded copy differs from the original")
            shutil.rmtree(node_dir)
            return seconds, after - before, compete, when
        finally:
            for p in reversed(procs):
                p.stop()


class Competitor:
    """A TCP download h2 -> the downloader, started a quarter of TCP's expected time in."""

    def __init__(self, down, port, started, size):
        self.result = None
        self.started_at = self.ended_at = None
        self.thread = threading.Thread(target=self._run, args=(down, port, started, size),
                                       daemon=True)
        self.thread.start()

    def _run(self, down, port, started, size):
        delay = 0.25 * size / BOTTLENECK_BYTES_PER_S
        time.sleep(max(0.0, started + delay - time.monotonic()))  # pacing, not synchronising
        self.started_at = time.monotonic()
        out = run(in_ns(down, ["curl", "-s", "-o", "/dev/null", "--max-time", "600", "-w",
                               "%{size_download} %{time_total}",
                               f"http://{HOSTS['h2']}:{port}/{FILE_NAME}"]), check=False)
        self.ended_at = time.monotonic()
        parts = out.split()
        if len(parts) == 2 and float(parts[1]) > 0:
            self.result = int(parts[0]) / float(parts[1]) / 1e6

    def finish(self):
        self.thread.join(timeout=700)
        return self.result


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


# ---------------------------------------------------------------- report


def variants(args, binary):
    """LABEL -> (binary, node args) of each --variant."""
    out = {}
    for spec in args.variant:
        label, _, rest = spec.partition("=")
        words = rest.split()
        other = binary
        if words and words[0].startswith("bin:"):
            other = os.path.abspath(words.pop(0)[len("bin:"):])
        if not label or label == "ours" or label in TCP_SYSTEMS or not os.path.exists(other):
            raise SystemExit(f"bad --variant {spec!r}: LABEL=[bin:PATH] ARGS")
        out[label] = (other, " ".join(words))
    return out


def spread(values, fmt="{:.1f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def ratio_spread(ours, tcp):
    """Ours / TCP run by run (the same run's transfers, side by side)."""
    return spread([o["goodput"] / t["goodput"] for o, t in zip(ours, tcp) if o and t], "{:.2f}")


def report(results, args):
    lines = [f"netlab: {args.size >> 20} MiB, {args.runs} run(s) each, ours vs TCP interleaved; "
             f"node args: {args.node_args or '(defaults)'}; TCP: curl writing a file and "
             f"syncing it (`tcp`), and writing to /dev/null (`tcp-null`, the link's TCP "
             f"ceiling), as --tcp asked", ""]
    header = ("| case | ours MB/s | TCP (file) MB/s | ours/TCP | TCP to /dev/null MB/s "
              "| ours/TCP-null | ours drop % | TCP drop % | ours +delay ms | TCP +delay ms "
              "| ours frags | trk dgr | trk dgr per 10 s | failed |")
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    rows = [(name, label, by_system)
            for name, by_system in results.items()
            for label in by_system if label not in TCP_SYSTEMS]
    for name, label, by_system in rows:
        ours = by_system[label]
        tcp, null = by_system.get("tcp", []), by_system.get("tcp-null", [])
        ok_o = [r for r in ours if r]
        ok_t = [r for r in tcp + null if r]  # the link's drops and delay, whichever TCP
        if label != "ours":
            name = f"{name} [{label}]"
        failed = [f"{len(ours) - len(ok_o)}/{len(ours)} ours"] + [
            f"{sum(1 for r in runs if not r)}/{len(runs)} {who}"
            for who, runs in (("TCP", tcp), ("TCP-null", null)) if runs]
        lines.append(
            f"| {name} | {spread([r['goodput'] for r in ok_o])} "
            f"| {spread([r['goodput'] for r in tcp if r])} "
            f"| {ratio_spread(ours, tcp)} "
            f"| {spread([r['goodput'] for r in null if r])} "
            f"| {ratio_spread(ours, null)} "
            f"| {spread([r['drop_pct'] for r in ok_o], '{:.2f}')} "
            f"| {spread([r['drop_pct'] for r in ok_t], '{:.2f}')} "
            f"| {spread([r.get('delay_ms') for r in ok_o])} "
            f"| {spread([r.get('delay_ms') for r in ok_t])} "
            f"| {spread([r['frags'] for r in ok_o], '{:.0f}')} "
            f"| {spread([r['tracker_dgrams'] for r in ok_o], '{:.0f}')} "
            f"| {spread([r['tracker_per_10s'] for r in ok_o])} "
            f"| {', '.join(failed)} |")
        competing = [r["compete_mbs"] for r in ok_o if r.get("compete_mbs")]
        if competing:
            lines.append(f"|   competing TCP flow during ours | {spread(competing)} MB/s |")
        for who, runs in ((label, ok_o), ("tcp", ok_t)):
            shared = [r for r in runs if r.get("share_ours") is not None]
            if shared:
                lines.append(
                    f"|   overlap with the competing TCP flow, {who}: "
                    f"{who} {spread([r['share_ours'] for r in shared], '{:.2f}')} "
                    f"of the link, competing TCP {spread([r['share_tcp'] for r in shared], '{:.2f}')}, "
                    f"sum {spread([r['share_ours'] + r['share_tcp'] for r in shared], '{:.2f}')} "
                    f"over {spread([r['overlap_s'] for r in shared])} s |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256M", type=parse_size)
    parser.add_argument("--runs", default=5, type=int)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--node-args", default="")
    parser.add_argument("--variant", action="append", default=[],
                        help="LABEL=[bin:PATH] ARGS: another build or setting, run alongside")
    parser.add_argument("--timeout", default=120, type=int, help="per download, seconds")
    parser.add_argument("--binary", help="torrent binary (default: build target/release)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir and logs")
    parser.add_argument("--tcp", choices=("both", "file", "null"), default="both",
                        help="TCP's transfers: curl writing a file and syncing it, as ours "
                             "does (`file`), writing to /dev/null (`null`), or both")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        for name, case in CASES.items():
            print(f"{name:20} {case}")
        return 0
    if os.geteuid() != 0:
        print("SKIPPED: netlab needs root (network namespaces)", file=sys.stderr)
        return 0
    missing = [t for t in ("ip", "tc", "nft", "ethtool", "ping", "curl") if not shutil.which(t)]
    if missing:
        print(f"netlab needs {', '.join(missing)}: apt-get install -y iproute2 nftables "
              f"ethtool iputils-ping curl", file=sys.stderr)
        return 2
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        print(f"unknown case(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    binary = args.binary
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
        binary = os.path.join(target, "release", "torrent")
    binary = os.path.abspath(binary)
    scratch = tempfile.mkdtemp(prefix="torrent-netlab-")
    lab = Lab()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tcp = {"both": list(TCP_SYSTEMS), "file": ["tcp"], "null": ["tcp-null"]}[args.tcp]
    systems = ["ours"] + tcp + [spec.partition("=")[0] for spec in args.variant]
    results = {name: {system: [] for system in systems} for name in cases}
    try:
        lab.build()
        bench = Bench(args, lab, scratch, binary)
        for run_index in range(args.runs):
            for name in cases:
                # Each run starts with the next system: none always goes first.
                shift = run_index % len(systems)
                for system in systems[shift:] + systems[:shift]:
                    log(f"run {run_index + 1}/{args.runs} {name} {system} ...")
                    try:
                        figures = bench.measure(system, CASES[name])
                        log(f"  {figures}")
                    except (RuntimeError, subprocess.SubprocessError, ValueError) as error:
                        log(f"  FAILED: {error}")
                        figures = None
                        lab.clear()
                    results[name][system].append(figures)
        print(report(results, args))
    finally:
        Proc.stop_all()
        lab.teardown()
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
