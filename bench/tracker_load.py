#!/usr/bin/env python3
"""BEP 15 tracker load benchmark: aquatic_udp_load_test against our tracker, aquatic_udp
and opentracker, one after another in the same run, same load settings, one tracker
thread each (the tracker pinned to one core, the load generator to the other).

Python 3 standard library only. See bench/README.md ("Tracker load benchmark").

    python3 bench/tracker_load.py                 # 3 runs of 20 s per tracker
    python3 bench/tracker_load.py --runs 1 --duration 10 --trackers ours,aquatic
    python3 bench/tracker_load.py --trackers ours,before,aquatic --before OLD/torrent
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARGO_BIN = os.path.expanduser("~/.cargo/bin")
TRACKERS = ("ours", "before", "aquatic", "opentracker")
CLK_TCK = os.sysconf("SC_CLK_TCK")
INTERVAL = 5  # aquatic_udp_load_test prints a line of rates every 5 s

children = []  # every process we started and have not reaped yet
scratch = None
keep = False


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cleanup():
    for p in list(children):
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    children.clear()
    if scratch and not keep:
        shutil.rmtree(scratch, ignore_errors=True)


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


# ---------------------------------------------------------------------------
# Tools


def find_bin(name):
    path = shutil.which(name)
    if path:
        return path
    cand = os.path.join(CARGO_BIN, name)
    return cand if os.access(cand, os.X_OK) else None


def cargo_install(name):
    path = find_bin(name)
    if path:
        return path
    for extra in (["--locked"], []):
        log(f"installing {name}: cargo install {name} {' '.join(extra)} (minutes, once)")
        if subprocess.run(["cargo", "install", name] + extra).returncode == 0:
            break
    path = find_bin(name)
    if not path:
        sys.exit(f"cannot install {name} with cargo install")
    return path


def apt_install_opentracker():
    path = find_bin("opentracker")
    if path:
        return path
    log("installing opentracker: apt-get install -y opentracker")
    subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "opentracker"], stdout=subprocess.DEVNULL)
    path = find_bin("opentracker")
    if not path:
        sys.exit("cannot install opentracker with apt-get")
    return path


def build_ours():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    if not os.path.isabs(target):
        target = os.path.join(REPO, target)
    log("cargo build --release")
    if subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO).returncode != 0:
        sys.exit("cargo build --release failed")
    return os.path.join(target, "release", "torrent")


def taskset(cpu):
    if cpu is None or cpu == "" or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def free_udp_port():
    # Picked just before the tracker starts; neither aquatic_udp nor opentracker binds port 0.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        udp = s.getsockname()[1]
    return udp


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# The load test's info hashes (for opentracker's whitelist)
#
# Debian builds opentracker with WANT_ACCESSLIST_WHITE (README.Debian): only listed info
# hashes may be announced. aquatic_udp_load_test 0.9 draws its info hashes from
# SmallRng::seed_from_u64(0xc3aa8be617b3acce) (rand 0.8: Xoshiro256++ seeded by rand_core's PCG32),
# 20 `gen::<u8>()` (the high 32 bits of next_u64, truncated) per hash, `number_of_torrents`
# of them. The same sequence here gives the whitelist; a wrong list would show as error
# responses in the opentracker row.

M64 = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def load_test_info_hashes(n, seed=0xC3AA8BE617B3ACCE):
    # SmallRng::seed_from_u64 is rand_core 0.6's default: 8 PCG32 outputs, little-endian,
    # make the 32-byte seed, read as four little-endian u64 words of Xoshiro256++'s state.
    state = seed
    seed_bytes = b""
    for _ in range(8):
        state = (state * 6364136223846793005 + 11634580027462260723) & M64
        xorshifted = (((state >> 18) ^ state) >> 27) & 0xFFFFFFFF
        rot = state >> 59
        x = ((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & 0xFFFFFFFF
        seed_bytes += x.to_bytes(4, "little")
    s = list(struct.unpack("<4Q", seed_bytes))
    s0, s1, s2, s3 = s
    out = []
    for _ in range(n):
        b = bytearray(20)
        for i in range(20):
            r = (_rotl((s0 + s3) & M64, 23) + s0) & M64
            t = (s1 << 17) & M64
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = _rotl(s3, 45)
            b[i] = (r >> 32) & 0xFF
        out.append(bytes(b).hex())
    return out


# ---------------------------------------------------------------------------
# /proc


def proc_cpu_s(pid):
    """user + system CPU seconds of the process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def udp_snmp():
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


class HwmSampler(threading.Thread):
    """Samples VmHWM every 100 ms so that the peak is known even if the process dies."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.1)

    def sample(self):
        try:
            v = proc_status(self.pid, "VmHWM")
            if v:
                self.peak_kib = max(self.peak_kib, v)
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Trackers


def bep15_connect_ok(port, timeout=0.2):
    """Sends one BEP 15 connect request; true when a well-formed connect reply comes back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        tid = 0x1234ABCD
        s.sendto(struct.pack(">QII", 0x41727101980, 0, tid), ("127.0.0.1", port))
        try:
            data = s.recv(2048)
        except (socket.timeout, OSError):
            return False
        return len(data) >= 16 and struct.unpack(">II", data[:8]) == (0, tid)


def wait_ready(proc, port, name, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with code {proc.returncode} before answering; see its log")
        if bep15_connect_ok(port):
            return
    sys.exit(f"{name} did not answer a BEP 15 connect on 127.0.0.1:{port} within {timeout:.0f} s")


def start_ours(bins, work, args, name="ours"):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    cmd = taskset(args.tracker_cpu) + [
        bins[name], "tracker", "--listen", "127.0.0.1:0",
        "--db-dir", os.path.join(d, "db"), "--log-dir", os.path.join(d, "logs"),
    ]
    if args.ours_log_level:
        cmd += ["--log-level", args.ours_log_level]
    err = open(os.path.join(d, "stderr.log"), "ab")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    children.append(proc)
    result = {}

    def first_line():
        result["line"] = proc.stdout.readline().decode(errors="replace").strip()

    t = threading.Thread(target=first_line, daemon=True)
    t.start()
    t.join(15)
    m = re.match(r"tracker listening on .*:(\d+)$", result.get("line", ""))
    if not m:
        sys.exit(f"our tracker did not print 'tracker listening on IP:PORT' (got {result.get('line')!r})")
    port = int(m.group(1))
    # Drain stdout so the tracker never blocks on a full pipe.
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    wait_ready(proc, port, "our tracker")
    return proc, port


def aquatic_config(bins, port, path):
    default = subprocess.run([bins["aquatic"], "-p"], capture_output=True, text=True, check=True).stdout
    out = []
    for line in default.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in ("socket_workers", "swarm_workers", "request_workers"):
            line = f"{key} = 1"
        elif key == "address_ipv4":
            line = f'address_ipv4 = "127.0.0.1:{port}"'
        elif key == "address":
            line = f'address = "127.0.0.1:{port}"'
        elif key == "use_ipv6":
            line = "use_ipv6 = false"
        elif key == "only_ipv6":
            line = "only_ipv6 = false"
        out.append(line)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def start_aquatic(bins, work, args):
    d = os.path.join(work, "aquatic")
    os.makedirs(d, exist_ok=True)
    port = free_udp_port()
    conf = os.path.join(d, "aquatic_udp.toml")
    aquatic_config(bins, port, conf)
    cmd = taskset(args.tracker_cpu) + [bins["aquatic"], "-c", conf]
    out = open(os.path.join(d, "output.log"), "ab")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    children.append(proc)
    wait_ready(proc, port, "aquatic_udp")
    return proc, port


def start_opentracker(bins, work, args):
    # opentracker refuses to run as root: it chroots to -d and drops to -u. The Debian package
    # creates the _opentracker user; the chroot holds the whitelist (read after the chroot).
    d = os.path.join(work, "opentracker")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    wl = os.path.join(d, "whitelist.txt")
    if not os.path.exists(wl):
        with open(wl, "w") as f:
            f.write("\n".join(load_test_info_hashes(args.torrents)) + "\n")
        os.chmod(wl, 0o644)
    conf = os.path.join(d, "opentracker.conf")
    with open(conf, "w") as f:
        f.write("access.whitelist /whitelist.txt\n")
    port = free_udp_port()
    user = "_opentracker"
    try:
        import pwd
        pwd.getpwnam(user)
    except KeyError:
        user = "nobody"
    cmd = taskset(args.tracker_cpu) + [
        bins["opentracker"], "-f", conf, "-i", "127.0.0.1", "-P", str(port),
        "-p", str(free_tcp_port()), "-d", d, "-u", user,
    ]
    out = open(os.path.join(d, "output.log"), "ab")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    children.append(proc)
    wait_ready(proc, port, "opentracker")
    return proc, port


def start_before(bins, work, args):
    return start_ours(bins, work, args, name="before")


STARTERS = {"ours": start_ours, "before": start_before, "aquatic": start_aquatic,
            "opentracker": start_opentracker}


def stop(proc, timeout=10.0):
    """SIGTERM, bounded wait (then SIGKILL), reap with wait4; returns (exit code, rusage)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status, ru = proc.pid, 0, None
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            timeout = 1e9
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status) if ru is not None else proc.returncode
    if proc in children:
        children.remove(proc)
    return proc.returncode, ru


# ---------------------------------------------------------------------------
# The load test


def load_config(args, port, path):
    summarize = max(args.duration - args.warmup, INTERVAL)
    text = f"""server_address = "127.0.0.1:{port}"
log_level = "error"
workers = 1
duration = {args.duration}
summarize_last = {summarize}
extra_statistics = false

[network]
multiple_client_ipv4s = true
sockets_per_worker = {args.sockets}
recv_buffer = 8000000

[requests]
number_of_torrents = {args.torrents}
number_of_peers = {args.peers}
scrape_max_torrents = 10
announce_peers_wanted = {args.peers_wanted}
weight_connect = {args.weights[0]}
weight_announce = {args.weights[1]}
weight_scrape = {args.weights[2]}
peer_seeder_probability = 0.75
"""
    with open(path, "w") as f:
        f.write(text)


def parse_load_output(stdout, stderr):
    r = {}
    m = re.search(r"Average responses per second: ([\d.]+)", stdout)
    r["responses_s"] = float(m.group(1)) if m else float("nan")
    report = stdout.split("# aquatic load test report", 1)
    tail = report[1] if len(report) == 2 else ""
    for key, name in (("connect", "Connect"), ("announce", "Announce"), ("scrape", "Scrape"), ("error", "Error")):
        m = re.search(rf"- {name} responses:\s+([\d.]+)", tail)
        r[key + "_s"] = float(m.group(1)) if m else float("nan")
    head = report[0]
    rates = [float(x) for x in re.findall(r"Responses in: ([\d.]+)/second", head)]
    reqs = [float(x) for x in re.findall(r"Requests out: ([\d.]+)/second", head)]
    peers = [float(x) for x in re.findall(r"Peers per announce response: ([\d.]+)", head)]
    r["responses_total"] = sum(rates) * INTERVAL
    r["requests_s"] = statistics.mean(reqs[1:] or reqs) if reqs else float("nan")
    r["peers_per_announce"] = statistics.mean(peers[1:] or peers) if peers else float("nan")
    r["invalid"] = stderr.count("Received invalid response")
    r["other_errors"] = len(re.findall(r"recv error|Couldn't send packet|non-connect response", stderr))
    return r


def run_one(name, bins, work, args, run_index):
    proc, port = STARTERS[name](bins, work, args)
    sampler = HwmSampler(proc.pid)
    sampler.start()
    d = os.path.join(work, name)
    conf = os.path.join(d, f"load-{run_index}.toml")
    load_config(args, port, conf)
    cmd = taskset(args.load_cpu) + [bins["load"], "-c", conf]
    snmp0 = udp_snmp()
    cpu0 = proc_cpu_s(proc.pid)
    t0 = time.monotonic()
    lp = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    children.append(lp)
    perf = None
    if args.perf and name in ("ours", "before"):
        perf_data = os.path.join(args.perf, f"perf-{name}-{run_index}.data")
        os.makedirs(args.perf, exist_ok=True)
        perf = subprocess.Popen(
            ["perf", "record", "-g", "-o", perf_data, "-p", str(proc.pid), "--", "sleep",
             str(max(args.duration - args.warmup - 2, 3))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(perf)
    try:
        out, err = lp.communicate(timeout=args.duration + 120)
    except subprocess.TimeoutExpired:
        lp.kill()
        out, err = lp.communicate()
        sys.exit(f"load test against {name} did not finish in time")
    wall = time.monotonic() - t0
    children.remove(lp)
    if perf:
        try:
            perf.wait(timeout=30)
        except subprocess.TimeoutExpired:
            perf.kill()
            perf.wait()
        children.remove(perf)
    alive = proc.poll() is None
    cpu1 = proc_cpu_s(proc.pid) if alive else float("nan")
    snmp1 = udp_snmp()
    sampler.sample()
    threads = proc_status(proc.pid, "Threads") if alive else None
    sampler.stop.set()
    sampler.join()
    code, ru = stop(proc)
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    with open(os.path.join(d, f"load-{run_index}.out"), "w") as f:
        f.write(out)
    with open(os.path.join(d, f"load-{run_index}.err"), "w") as f:
        f.write(err)
    if lp.returncode != 0:
        sys.exit(f"load test against {name} exited {lp.returncode}: {err.strip()[-500:]}")
    r = parse_load_output(out, err)
    r["cpu_s"] = cpu1 - cpu0
    r["cpu_total_s"] = (ru.ru_utime + ru.ru_stime) if ru else float("nan")
    r["cpu_us_per_response"] = r["cpu_s"] / r["responses_total"] * 1e6 if r["responses_total"] else float("nan")
    r["rss_mib"] = sampler.peak_kib / 1024
    r["threads"] = threads
    r["alive"] = alive
    r["wall_s"] = wall
    r["rcvbuf_errors"] = snmp1.get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0)
    r["in_datagrams"] = snmp1.get("InDatagrams", 0) - snmp0.get("InDatagrams", 0)
    log(f"  {name:<11} {r['responses_s']:>10.0f} responses/s  errors {r['error_s']:.0f}/s  invalid {r['invalid']}  "
        f"cpu {r['cpu_s']:.2f} s ({r['cpu_us_per_response']:.2f} us/response)  peak RSS {r['rss_mib']:.1f} MiB  "
        f"threads {threads}  RcvbufErrors {r['rcvbuf_errors']}")
    return r


# ---------------------------------------------------------------------------


def fmt(v, nd=0):
    if v is None or v != v:
        return "–"
    return f"{v:,.{nd}f}"


def main():
    global scratch, keep
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=20, help="seconds of load per tracker per run (multiple of 5)")
    ap.add_argument("--warmup", type=int, default=5, help="first seconds left out of responses/s (multiple of 5)")
    ap.add_argument("--trackers", default=",".join(TRACKERS))
    ap.add_argument("--torrents", type=int, default=16000, help="load test number_of_torrents")
    ap.add_argument("--peers", type=int, default=100000, help="load test number_of_peers")
    ap.add_argument("--peers-wanted", type=int, default=30, help="load test announce_peers_wanted")
    ap.add_argument("--sockets", type=int, default=4, help="load test sockets_per_worker")
    ap.add_argument("--weights", default="50,50,1", help="connect,announce,scrape weights")
    ap.add_argument("--tracker-cpu", default="0", help="core for the tracker under test ('' for none)")
    ap.add_argument("--load-cpu", default="1", help="core for the load generator ('' for none)")
    ap.add_argument("--before", metavar="BIN", default=None,
                    help="an older build of our binary: tracker 'before' runs it, beside 'ours'")
    ap.add_argument("--ours-log-level", default=None, help="our tracker's --log-level (default: its own, info)")
    ap.add_argument("--perf", metavar="DIR", default=None, help="perf record -g our tracker during each run, into DIR")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (configs, outputs, logs)")
    args = ap.parse_args()
    args.weights = [int(x) for x in args.weights.split(",")]
    if args.duration % INTERVAL or args.warmup % INTERVAL or args.warmup >= args.duration:
        sys.exit("--duration and --warmup must be multiples of 5, warmup < duration")
    names = [t for t in args.trackers.split(",") if t]
    for t in names:
        if t not in TRACKERS:
            sys.exit(f"unknown tracker {t!r}: choose from {', '.join(TRACKERS)}")
    keep = args.keep
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    bins = {"load": cargo_install("aquatic_udp_load_test")}
    if "aquatic" in names:
        bins["aquatic"] = cargo_install("aquatic_udp")
    if "opentracker" in names:
        bins["opentracker"] = apt_install_opentracker()
    if "ours" in names:
        bins["ours"] = build_ours()
    if "before" in names:
        if not args.before or not os.access(args.before, os.X_OK):
            sys.exit("tracker 'before' needs --before BIN, an older build of our binary")
        bins["before"] = os.path.abspath(args.before)
    if args.perf:
        args.perf = os.path.abspath(args.perf)

    scratch = tempfile.mkdtemp(prefix="tracker-load-", dir=args.dir)
    os.chmod(scratch, 0o755)
    load_before = os.getloadavg()
    results = {t: [] for t in names}
    try:
        for i in range(args.runs):
            log(f"run {i + 1}/{args.runs}")
            for t in names:
                results[t].append(run_one(t, bins, scratch, args, i))
    finally:
        cleanup()
    load_after = os.getloadavg()

    def med(t, key):
        vals = [r[key] for r in results[t] if r[key] == r[key]]
        return statistics.median(vals) if vals else float("nan")

    labels = {"ours": "ours (torrent tracker)", "before": "ours before (--before)",
              "aquatic": "aquatic_udp", "opentracker": "opentracker"}
    print(f"tracker load benchmark: aquatic_udp_load_test, {args.duration} s per tracker per run "
          f"(responses/s over the last {args.duration - args.warmup} s), median of {args.runs} runs, "
          f"{os.cpu_count()} cores, tracker on core {args.tracker_cpu or 'any'}, load generator on core "
          f"{args.load_cpu or 'any'}, load average {' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in load_after)} after")
    print(f"load: 1 worker, {args.sockets} sockets, {args.torrents} torrents, {args.peers} peers, "
          f"weights connect/announce/scrape {'/'.join(map(str, args.weights))}, {args.peers_wanted} peers wanted")
    print()
    print("| tracker | responses/s | connect/s | announce/s | scrape/s | error/s | invalid responses | "
          "peers per announce | tracker CPU s | CPU µs per response | peak RSS MiB | threads | RcvbufErrors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in names:
        invalid = sum(r["invalid"] + r["other_errors"] for r in results[t])
        threads = results[t][-1]["threads"]
        print(f"| {labels[t]} | {fmt(med(t, 'responses_s'))} | {fmt(med(t, 'connect_s'))} | "
              f"{fmt(med(t, 'announce_s'))} | {fmt(med(t, 'scrape_s'))} | {fmt(med(t, 'error_s'))} | "
              f"{invalid} | {fmt(med(t, 'peers_per_announce'), 1)} | {fmt(med(t, 'cpu_s'), 2)} | "
              f"{fmt(med(t, 'cpu_us_per_response'), 2)} | {fmt(med(t, 'rss_mib'), 1)} | {threads} | "
              f"{fmt(med(t, 'rcvbuf_errors'))} |")
    print()
    if "ours" in names:
        for other in ("before", "aquatic", "opentracker"):
            if other not in names:
                continue
            rs = med("ours", "responses_s") / med(other, "responses_s")
            cpu = med("ours", "cpu_us_per_response") / med(other, "cpu_us_per_response")
            rss = med("ours", "rss_mib") / med(other, "rss_mib")
            print(f"ours/{labels[other]}: responses/s {rs:.2f}, CPU per response {cpu:.2f}, peak RSS {rss:.2f}")
    print("per run responses/s: " + "; ".join(
        f"{labels[t]} " + ", ".join(fmt(r["responses_s"]) for r in results[t]) for t in names))
    print("responses/s: the load test's summary (connect + announce + scrape + error replies). tracker CPU s: "
          "user+system of the tracker process over the whole load test; CPU per response: that over all "
          "responses of the run (5 s x the sum of the per-interval rates). peak RSS: VmHWM. invalid: the load "
          "test's 'Received invalid response' and socket errors, all runs. RcvbufErrors: /proc/net/snmp delta "
          "(whole machine).")
    if keep:
        print(f"kept: {scratch}")


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
