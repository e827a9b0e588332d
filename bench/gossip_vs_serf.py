#!/usr/bin/env python3
"""Gossip benchmark: mallee peers against HashiCorp serf agents, same run.

For each cluster size N it starts, one side at a time, a serf cluster (LAN
profile, encryption on) and a mallee cluster on loopback addresses
127.0.X.Y, and measures on each:

  detect   kill -9 of one member -> every other member marks it failed
  dissem   one new user event (serf) / record (mallee) -> every other member
           has it
  bytes/s  gossip bytes sent per member per second at steady state, UDP and
           TCP, IP bytes, over a 30 s window (one push-pull period), from
           nftables counters in an output-hook chain: bytes from the
           member's address, plus bytes to it from outside the cluster's
           /24 (both serf and mallee dial TCP streams from 127.0.0.1)
  RSS      VmRSS per member process at steady state (and its RssAnon part)

It prints a table of the medians over --runs runs and one JSON line with all
figures and the ratios mallee/serf. The side that goes first alternates
between runs. Every process and temporary directory it starts is removed on
exit, Ctrl-C or failure; every wait is bounded.

Timestamps. mallee logs each event with its wall-clock time in ms
("... gossip: member ID (NAME, ADDR) dead", "records: applied KIND/ID").
serf logs with 1 s resolution, so each serf agent's output is read through a
pipe and stamped on arrival (wall clock, ms). serf's event handlers also
stamp member-failed and user events into a per-agent file; the serf agent
coalesces member events (1 s quiescent period, up to 3 s), so the handler
figure for detection carries that delay and is reported apart
("detect_alt_ms", "serf handler detect"); the primary serf detection figure is the
"serf: EventMemberFailed" log line, the moment serf itself marks the member
failed. User events are sent with -coalesce=false, so their handler stamps
are the primary serf dissemination figure.

Usage: bench/gossip_vs_serf.py [--sizes 10,30,50] [--runs 5] [--quick]
       [--mallee PATH] [--window 30] [--keep-logs DIR]
"""

import argparse
import base64
import datetime
import json
import os
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

SERF_PORT = 7946
SERF_RPC_PORT = 7373
MALLEE_PORT = 7700
MALLEE_API_PORT = 8773

NFT_TABLE = "mallee_gossip_bench_%d" % os.getpid()

# ---------------------------------------------------------------- cleanup

_procs = []          # every Popen we started (each in its own session)
_tmpdirs = []        # every temporary directory we created
_nft_tables = set()  # nft tables we created (family inet)
_lock = threading.Lock()


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def spawn(argv, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    with _lock:
        _procs.append(p)
    return p


def kill_proc(p, sig=signal.SIGKILL, wait=5.0):
    """Kill p's process group (p and e.g. serf's event handler scripts)."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    else:
        # the leader is gone; its group may still hold children
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        p.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            log("warning: pid %d did not exit" % p.pid)


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for p in procs:
        kill_proc(p)
    with _lock:
        for p in procs:
            if p in _procs:
                _procs.remove(p)


def make_tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def remove_tmpdir(d):
    shutil.rmtree(d, ignore_errors=True)
    if d in _tmpdirs:
        _tmpdirs.remove(d)


def cleanup_everything():
    with _lock:
        procs = list(_procs)
    kill_all(procs)
    for t in list(_nft_tables):
        nft_delete(t)
    for d in list(_tmpdirs):
        remove_tmpdir(d)


def _on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def run(argv, timeout=10.0, check=False, input=None):
    """Run a short command; bounded; returns CompletedProcess (text)."""
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          input=input, timeout=timeout, check=check, text=True)


# ---------------------------------------------------------------- nftables

def nft_available():
    if not shutil.which("nft"):
        return False
    t = NFT_TABLE + "_probe"
    try:
        r = run(["nft", "add", "table", "inet", t], timeout=5)
        if r.returncode != 0:
            return False
        run(["nft", "delete", "table", "inet", t], timeout=5)
        return True
    except (OSError, subprocess.TimeoutExpired):
        return False


def nft_create(addrs, subnet):
    """A table whose output-hook chain counts, per member, the UDP+TCP IP
    bytes sent from the member's address (o<i>) and those sent to it from
    an address outside the cluster's subnet (u<i>): serf and mallee both
    dial TCP streams (joins, push-pull) without binding the source
    address, so the initiator's half of a stream leaves from 127.0.0.1."""
    lines = ["table inet %s {" % NFT_TABLE]
    for i in range(len(addrs)):
        for c in ("o", "u", "t", "v"):
            lines.append("  counter %s%d { }" % (c, i))
    lines += ["  chain out {",
              "    type filter hook output priority 0; policy accept;"]
    for i, a in enumerate(addrs):
        lines.append('    ip saddr %s meta l4proto { tcp, udp } counter name "o%d"' % (a, i))
        lines.append('    ip daddr %s ip saddr != %s meta l4proto { tcp, udp } '
                     'counter name "u%d"' % (a, subnet, i))
        # the TCP part of both, apart (push-pull and joins)
        lines.append('    ip saddr %s meta l4proto tcp counter name "t%d"' % (a, i))
        lines.append('    ip daddr %s ip saddr != %s meta l4proto tcp '
                     'counter name "v%d"' % (a, subnet, i))
    lines += ["  }", "}", ""]
    nft_delete(NFT_TABLE)
    _nft_tables.add(NFT_TABLE)
    r = run(["nft", "-f", "-"], input="\n".join(lines), timeout=10)
    if r.returncode != 0:
        raise RuntimeError("nft: " + r.stderr.strip())


def nft_read():
    """{counter name: bytes} of the table's named counters."""
    r = run(["nft", "-j", "list", "counters", "table", "inet", NFT_TABLE], timeout=10)
    if r.returncode != 0:
        raise RuntimeError("nft list: " + r.stderr.strip())
    out = {}
    for item in json.loads(r.stdout).get("nftables", []):
        c = item.get("counter")
        if c and "name" in c:
            out[c["name"]] = c.get("bytes", 0)
    return out


def nft_delete(table):
    try:
        run(["nft", "delete", "table", "inet", table], timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        pass
    _nft_tables.discard(table)


# ---------------------------------------------------------------- helpers

def rss_kib(pid, field="VmRSS"):
    """A /proc/PID/status memory field in KiB (VmRSS, RssAnon, RssFile)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def now_ms():
    return time.time() * 1000.0


class Tail:
    """Reads the complete lines appended to a file since the last call."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.buf = b""

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return []
        self.off += len(data)
        data = self.buf + data
        parts = data.split(b"\n")
        self.buf = parts.pop()
        return [p.decode("utf-8", "replace") for p in parts]


def stamp_reader(pipe, path):
    """Copy a child's output to path, each line prefixed by its arrival ms."""
    with open(path, "w", buffering=1) as f:
        for raw in iter(pipe.readline, b""):
            f.write("%.1f %s\n" % (now_ms(),
                                   raw.decode("utf-8", "replace").rstrip("\n")))
    pipe.close()


class Addrs:
    """Hands out a fresh 127.0.X.0/24 block for every cluster started: X
    starts at an offset drawn from the pid (two invocations at once take
    different blocks), and a block whose addresses have any of the ports
    taken is skipped."""

    PORTS = [(socket.SOCK_DGRAM, SERF_PORT), (socket.SOCK_DGRAM, MALLEE_PORT),
             (socket.SOCK_STREAM, SERF_PORT), (socket.SOCK_STREAM, SERF_RPC_PORT),
             (socket.SOCK_STREAM, MALLEE_PORT), (socket.SOCK_STREAM, MALLEE_API_PORT)]

    def __init__(self):
        self.n = (os.getpid() * 37) % 240

    @classmethod
    def free(cls, x, n):
        for y in range(1, n + 1):
            for kind, port in cls.PORTS:
                sock = socket.socket(socket.AF_INET, kind)
                try:
                    sock.bind(("127.0.%d.%d" % (x, y), port))
                except OSError:
                    return False
                finally:
                    sock.close()
        return True

    def block(self, n):
        for _ in range(240):
            x = 10 + (self.n % 240)
            self.n += 1
            if self.free(x, n):
                return x
        raise RuntimeError("no free 127.0.X.0/24 block for %d members" % n)


def wait_until(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------- clusters

class Cluster:
    """Common driver: start, converge, steady state, dissemination, kill."""

    side = "?"

    def __init__(self, n, x, tmp, opts):
        self.n = n
        self.addrs = ["127.0.%d.%d" % (x, i + 1) for i in range(n)]
        self.subnet = "127.0.%d.0/24" % x
        self.tmp = tmp
        self.opts = opts
        self.procs = []
        self.names = ["%s%d" % (self.side[0], i) for i in range(n)]

    # subclasses: start(), converged_count(), pids(), self_bytes_out(),
    # send_broadcast(run), broadcast_times(run, since), failed_times(victim)

    def measure(self, run_no, use_nft):
        res = {"side": self.side, "n": self.n}
        t0 = time.monotonic()
        self.start()
        # serf agents that miss a join broadcast learn of the member only at
        # their next push-pull (60 s apart above 32 members): seen at 70 s
        conv_timeout = 90 + 1.0 * self.n
        ok = wait_until(lambda: self.converged_count() >= self.n,
                        conv_timeout, step=0.5)
        res["converge_s"] = round(time.monotonic() - t0, 2)
        if not ok:
            res["error"] = "not converged after %.0f s: %d/%d members see all %d alive" % (
                conv_timeout, self.converged_count(), self.n, self.n)
            return res
        time.sleep(self.opts.settle)

        self.check_alive("after convergence")

        # steady state: bytes/s per member, RSS per member
        win = self.opts.window
        own0, t_own0 = self.self_bytes_out(), time.monotonic()
        if use_nft:
            nft_create(self.addrs, self.subnet)
            c0 = nft_read()
        t_a = time.monotonic()
        time.sleep(win)
        if use_nft:
            c1 = nft_read()
        t_b = time.monotonic()
        own1, t_own1 = self.self_bytes_out(), time.monotonic()
        dt = t_b - t_a
        if use_nft:
            nft_delete(NFT_TABLE)
            d = lambda k: c1.get(k, 0) - c0.get(k, 0)
            bound = [d("o%d" % i) / dt for i in range(self.n)]
            unbound = [d("u%d" % i) / dt for i in range(self.n)]
            # all bytes the cluster sent, per member
            res["bytes_s"] = round((sum(bound) + sum(unbound)) / self.n, 1)
            # sent from the member's own address only (UDP + accepted streams)
            res["bytes_s_bound_p50"] = round(median(bound), 1)
            res["bytes_s_bound_max"] = round(max(bound), 1)
            tcp = sum(d("t%d" % i) + d("v%d" % i) for i in range(self.n)) / dt
            res["tcp_bytes_s"] = round(tcp / self.n, 1)
        else:
            res["bytes_s"] = None
        if own0 and own1:
            # mallee's own counters: UDP payload bytes out, and stream bytes
            # (TCP, both directions: each exchange is counted by both ends)
            ok = [i for i in range(self.n) if own0[i] and own1[i]]
            dto = t_own1 - t_own0
            udp = [(own1[i][0] - own0[i][0]) / dto for i in ok]
            tcp = [(own1[i][1] - own0[i][1]) / dto for i in ok]
            res["self_bytes_out_s"] = round(median(udp), 1) if udp else None
            res["self_stream_bytes_s"] = round(sum(tcp) / 2 / len(ok), 1) if ok else None
            if not use_nft:
                res["bytes_s"] = round(sum(udp) / len(ok) + res["self_stream_bytes_s"], 1)
        rss = [rss_kib(p) for p in self.pids()]
        res["rss_kib"] = median(rss)
        res["rss_kib_max"] = max([r for r in rss if r is not None], default=None)
        # the part of RSS that is the process's own (heap, stacks), apart
        # from the shared-library and binary pages (RssFile)
        res["rss_anon_kib"] = median([rss_kib(p, "RssAnon") for p in self.pids()])
        res["rss_file_kib"] = median([rss_kib(p, "RssFile") for p in self.pids()])
        self.check_alive("after the steady-state window")

        # dissemination: one new broadcast, from member 0
        t_send = now_ms()
        self.send_broadcast(run_no)
        others = list(range(1, self.n))

        def got_all():
            ts = self.broadcast_times(run_no)
            return all(i in ts for i in others)
        wait_until(got_all, self.opts.event_timeout, step=0.05)
        ts = self.broadcast_times(run_no)
        lat = [ts[i] - t_send for i in others if i in ts]
        res["dissem_reached"] = "%d/%d" % (len(lat), len(others))
        if len(lat) == len(others):
            res["dissem_ms"] = round(max(lat), 1)
            res["dissem_p50_ms"] = round(median(lat), 1)
        else:
            res["dissem_ms"] = None
            res.setdefault("error", "broadcast reached %s in %.0f s; missing: %s" % (
                res["dissem_reached"], self.opts.event_timeout,
                " ".join(self.names[i] for i in others if i not in ts)))
        late = getattr(self, "in_store", None)
        if late:
            res["dissem_found_in_store"] = sorted(self.names[i] for i in late)
        extra = self.broadcast_times_alt(run_no)
        if extra is not None:
            lat2 = [extra[i] - t_send for i in others if i in extra]
            res["dissem_alt_ms"] = round(max(lat2), 1) \
                if len(lat2) == len(others) else None
        time.sleep(2.0)  # let the broadcast's retransmissions drain
        self.check_alive("before the kill")
        h = self.health()
        if h:
            # Lifeguard local health (0 = healthy): a peer with a raised score
            # probes more slowly, which shows in detection times
            res["health_max_before_kill"] = max(h)

        # failure detection: kill -9 the last member
        victim = self.n - 1
        vproc = self.procs[victim]
        others = list(range(0, self.n - 1))
        t_kill = now_ms()
        os.kill(vproc.pid, signal.SIGKILL)

        def all_failed():
            ts = self.failed_times(victim)
            return all(i in ts for i in others)
        wait_until(all_failed, self.opts.detect_timeout, step=0.1)
        ts = self.failed_times(victim)
        lat = [ts[i] - t_kill for i in others if i in ts]
        res["detect_reached"] = "%d/%d" % (len(lat), len(others))
        if len(lat) == len(others):
            res["detect_ms"] = round(max(lat), 1)
            res["detect_first_ms"] = round(min(lat), 1)
            res["detect_p50_ms"] = round(median(lat), 1)
        else:
            res["detect_ms"] = None
            res.setdefault("error", "failure seen by %s in %.0f s; not by: %s" % (
                res["detect_reached"], self.opts.detect_timeout,
                " ".join(self.names[i] for i in others if i not in ts)))
        alt = self.failed_times_alt(victim)
        if alt is not None:
            wait_until(lambda: all(i in self.failed_times_alt(victim)
                                   for i in others), 6.0, step=0.1)
            alt = self.failed_times_alt(victim)
            lat2 = [alt[i] - t_kill for i in others if i in alt]
            res["detect_alt_ms"] = round(max(lat2), 1) \
                if len(lat2) == len(others) else None
        fp = self.false_positives(victim)
        if fp:
            res["false_positives"] = fp
        return res

    def check_alive(self, when):
        dead = [(i, p.returncode) for i, p in enumerate(self.procs)
                if p.poll() is not None]
        if dead:
            i, rc = dead[0]
            raise RuntimeError("%d member(s) exited %s, first %s (exit status %s); "
                               "last log lines: %s" % (
                                   len(dead), when, self.names[i], rc,
                                   " | ".join(self.log_tail(i))))

    def log_tail(self, i, k=4):
        try:
            with open(self.logs[i], errors="replace") as f:
                return [l.rstrip() for l in f.readlines()[-k:]]
        except OSError:
            return []

    def broadcast_times_alt(self, run_no):
        return None

    def health(self):
        return None

    def failed_times_alt(self, victim):
        return None

    def false_positives(self, victim):
        return []

    def stop(self):
        kill_all(self.procs)

    def pids(self):
        return [p.pid for p in self.procs]


class SerfCluster(Cluster):
    side = "serf"

    def __init__(self, *a):
        super().__init__(*a)
        self.key = base64.b64encode(os.urandom(32)).decode()
        self.handler = os.path.join(self.tmp, "handler.sh")
        with open(self.handler, "w") as f:
            f.write("#!/bin/sh\n"
                    "# serf event handler: FILE gets 'ms event user-event payload'\n"
                    "t=$(date +%s%3N)\n"
                    "p=$(cat | tr '\\n' ' ')\n"
                    "printf '%s %s %s %s\\n' \"$t\" \"$SERF_EVENT\" "
                    "\"$SERF_USER_EVENT\" \"$p\" >> \"$1\"\n")
        os.chmod(self.handler, 0o755)
        self.logs = [os.path.join(self.tmp, "serf%d.log" % i) for i in range(self.n)]
        self.evfiles = [os.path.join(self.tmp, "serf%d.events" % i) for i in range(self.n)]
        self.logtails = [Tail(p) for p in self.logs]
        self.evtails = [Tail(p) for p in self.evfiles]
        self.seen_log = [[] for _ in range(self.n)]   # (ms, line)
        self.seen_ev = [[] for _ in range(self.n)]    # (ms, event, user, payload)
        self.done = set()
        self.threads = []

    def rpc(self, i):
        return "%s:%d" % (self.addrs[i], SERF_RPC_PORT)

    def _start_one(self, i, join):
        argv = ["serf", "agent", "-node", self.names[i],
                "-bind", "%s:%d" % (self.addrs[i], SERF_PORT),
                "-rpc-addr", self.rpc(i), "-profile", "lan",
                "-encrypt", self.key, "-log-level", "info",
                "-event-handler", "member-failed=%s %s" % (self.handler, self.evfiles[i]),
                "-event-handler", "user=%s %s" % (self.handler, self.evfiles[i])]
        if join:
            argv += ["-join", "%s:%d" % (self.addrs[0], SERF_PORT)]
        p = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(p)
        t = threading.Thread(target=stamp_reader, args=(p.stdout, self.logs[i]),
                             daemon=True)
        t.start()
        self.threads.append(t)

    def start(self):
        self._start_one(0, False)
        if not wait_until(lambda: run(["serf", "members", "-rpc-addr", self.rpc(0)],
                                      timeout=5).returncode == 0, 15, step=0.2):
            raise RuntimeError("serf agent 0 did not come up")
        for i in range(1, self.n):
            self._start_one(i, True)

    def converged_count(self):
        for i in range(self.n):
            if i in self.done:
                continue
            if self.procs[i].poll() is not None:
                continue
            try:
                r = run(["serf", "members", "-rpc-addr", self.rpc(i),
                         "-status", "alive", "-format", "json"], timeout=5)
                if r.returncode == 0 and \
                        len(json.loads(r.stdout).get("members", [])) >= self.n:
                    self.done.add(i)
            except (subprocess.TimeoutExpired, ValueError):
                pass
        return len(self.done)

    def self_bytes_out(self):
        return None

    def _poll(self):
        for i in range(self.n):
            for line in self.logtails[i].lines():
                ms, _, rest = line.partition(" ")
                try:
                    self.seen_log[i].append((float(ms), rest))
                except ValueError:
                    pass
            for line in self.evtails[i].lines():
                parts = line.split(" ", 3)
                if len(parts) >= 3:
                    try:
                        self.seen_ev[i].append((float(parts[0]), parts[1], parts[2],
                                                parts[3] if len(parts) > 3 else ""))
                    except ValueError:
                        pass

    def send_broadcast(self, run_no):
        r = run(["serf", "event", "-rpc-addr", self.rpc(0), "-coalesce=false",
                 "bench", "k%d" % run_no], timeout=10)
        if r.returncode != 0:
            raise RuntimeError("serf event: " + r.stderr.strip())

    def broadcast_times(self, run_no):
        """Handler stamps of the user event (sent with -coalesce=false)."""
        self._poll()
        want = "k%d" % run_no
        out = {}
        for i in range(self.n):
            for ms, ev, user, payload in self.seen_ev[i]:
                if ev == "user" and user == "bench" and payload.strip() == want:
                    out[i] = ms
                    break
        return out

    def broadcast_times_alt(self, run_no):
        """Log line 'agent: Received event: user-event: bench' (arrival)."""
        self._poll()
        out = {}
        for i in range(self.n):
            for ms, line in self.seen_log[i]:
                if "Received event: user-event: bench" in line:
                    out[i] = ms
                    break
        return out

    def failed_times(self, victim):
        """serf's own 'EventMemberFailed: NAME' log line (arrival stamp)."""
        self._poll()
        pat = "serf: EventMemberFailed: %s " % self.names[victim]
        out = {}
        for i in range(self.n):
            for ms, line in self.seen_log[i]:
                if pat in line:
                    out[i] = ms
                    break
        return out

    def failed_times_alt(self, victim):
        """member-failed handler stamps (after serf's 1-3 s coalescing)."""
        self._poll()
        out = {}
        for i in range(self.n):
            for ms, ev, user, payload in self.seen_ev[i]:
                if ev == "member-failed" and payload.split("\t")[0].strip() == \
                        self.names[victim]:
                    out[i] = ms
                    break
        return out

    def false_positives(self, victim):
        self._poll()
        bad = set()
        for i in range(self.n):
            for ms, line in self.seen_log[i]:
                m = re.search(r"serf: EventMemberFailed: (\S+)", line)
                if m and m.group(1) != self.names[victim]:
                    bad.add("%s->%s" % (self.names[i], m.group(1)))
        return sorted(bad)


MALLEE_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+(\w+)\s+(.*)$")
MEMBER_EV = re.compile(r"gossip: member ([0-9a-f]+) \((.*?)\) (\w+)$")


def parse_mallee_ts(s):
    dt = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000.0


class MalleeCluster(Cluster):
    side = "mallee"

    def __init__(self, *a):
        super().__init__(*a)
        self.bin = self.opts.mallee
        self.dirs = [os.path.join(self.tmp, "d%d" % i) for i in range(self.n)]
        self.logs = [os.path.join(self.tmp, "mallee%d.log" % i) for i in range(self.n)]
        self.tails = [Tail(p) for p in self.logs]
        self.seen = [[] for _ in range(self.n)]   # (ms, message)
        self.ids = [None] * self.n
        self.done = set()
        self.logfiles = []

    def _start_one(self, i, token):
        argv = [self.bin, "peer", "--data-dir", self.dirs[i],
                "--listen", "%s:%d" % (self.addrs[i], MALLEE_PORT),
                "--api-listen", "%s:%d" % (self.addrs[i], MALLEE_API_PORT),
                "--name", self.names[i], "--log-level", "debug"]
        if token:
            argv += ["--join", token]
        f = open(self.logs[i], "wb")
        self.logfiles.append(f)
        p = spawn(argv, stdout=subprocess.DEVNULL, stderr=f)
        self.procs.append(p)

    def status(self, i):
        try:
            r = run([self.bin, "status", "--data-dir", self.dirs[i], "--json"], timeout=5)
            if r.returncode == 0:
                return json.loads(r.stdout)
        except (subprocess.TimeoutExpired, ValueError):
            pass
        return None

    def start(self):
        r = run([self.bin, "init", "--data-dir", self.dirs[0]], timeout=30)
        if r.returncode != 0:
            raise RuntimeError("mallee init: " + r.stderr.strip())
        self._start_one(0, None)
        if not wait_until(lambda: self.status(0), 15, step=0.2):
            raise RuntimeError("mallee peer 0 did not come up; log: %s" %
                               open(self.logs[0], errors="replace").read()[-2000:])
        r = run([self.bin, "token", "--data-dir", self.dirs[0]], timeout=10)
        if r.returncode != 0:
            raise RuntimeError("mallee token: " + r.stderr.strip())
        token = r.stdout.strip()
        for i in range(1, self.n):
            self._start_one(i, token)

    def converged_count(self):
        for i in range(self.n):
            if i in self.done or self.procs[i].poll() is not None:
                continue
            st = self.status(i)
            if not st:
                continue
            self.ids[i] = st.get("self", {}).get("id")
            alive = [m for m in st.get("members", []) if m.get("state") == "alive"]
            if len(alive) >= self.n:
                self.done.add(i)
        return len(self.done)

    def self_bytes_out(self):
        """Per peer: the gossip layer's own bytes_out + stream_bytes."""
        out = []
        for i in range(self.n):
            st = self.status(i)
            g = st.get("gossip") if st else None
            out.append((g.get("bytes_out", 0), g.get("stream_bytes", 0))
                       if g else None)
        return out

    def health(self):
        out = []
        for i in range(self.n):
            st = self.status(i)
            if st and "gossip" in st:
                out.append(st["gossip"].get("health", 0))
        return out

    def _poll(self):
        for i in range(self.n):
            for line in self.tails[i].lines():
                m = MALLEE_LINE.match(line)
                if m:
                    try:
                        self.seen[i].append((parse_mallee_ts(m.group(1)), m.group(3)))
                    except ValueError:
                        pass

    def send_broadcast(self, run_no):
        self.t_send = now_ms()
        self.in_store = {}
        self.last_store_poll = 0.0
        r = run([self.bin, "admin", "--data-dir", self.dirs[0], "record", "put",
                 "bench", "k%d" % run_no, "v"], timeout=10)
        if r.returncode != 0:
            raise RuntimeError("mallee admin record put: " + r.stderr.strip())

    def broadcast_times(self, run_no):
        """The debug line "records: applied bench/kRUN" of each peer. A
        record that comes by push-pull instead of broadcast (the writer
        push-pulls with one random peer 500 ms after a write) is applied
        without that line, so from 1 s on the stores of the peers still
        missing it are asked directly, every 0.25 s: a coarser stamp, an
        upper bound, counted in dissem_ms and named in
        dissem_found_in_store."""
        self._poll()
        pat = "records: applied bench/k%d " % run_no
        out = {}
        for i in range(self.n):
            for ms, msg in self.seen[i]:
                if msg.startswith(pat):
                    out[i] = ms
                    break
        t = now_ms()
        if t - self.t_send > 1000 and t - self.last_store_poll >= 250:
            self.last_store_poll = t
            for i in range(1, self.n):
                if i in out or i in self.in_store:
                    continue
                try:
                    r = run([self.bin, "admin", "--data-dir", self.dirs[i], "record",
                             "get", "bench", "k%d" % run_no], timeout=5)
                    if r.returncode == 0 and r.stdout.strip() == "v":
                        self.in_store[i] = now_ms()
                except subprocess.TimeoutExpired:
                    pass
        for i, ms in self.in_store.items():
            out.setdefault(i, ms)
        return out

    def failed_times(self, victim):
        self._poll()
        vid = self.ids[victim]
        out = {}
        for i in range(self.n):
            for ms, msg in self.seen[i]:
                m = MEMBER_EV.search(msg)
                if m and m.group(1) == vid and m.group(3) == "dead":
                    out[i] = ms
                    break
        return out

    def false_positives(self, victim):
        self._poll()
        vid = self.ids[victim]
        bad = set()
        for i in range(self.n):
            for ms, msg in self.seen[i]:
                m = MEMBER_EV.search(msg)
                if m and m.group(1) != vid and m.group(3) in ("suspect", "dead"):
                    bad.add("%s->%s %s" % (self.names[i], m.group(2).split(",")[0],
                                           m.group(3)))
        return sorted(bad)

    def stop(self):
        super().stop()
        for f in self.logfiles:
            f.close()


# ---------------------------------------------------------------- driver

def run_side(cls, n, run_no, addrs, opts, use_nft):
    """One cluster of one side; on an error, one fresh retry (the first
    error is kept in the result as retried_after)."""
    res = _run_side_once(cls, n, run_no, addrs, opts, use_nft, 0)
    for attempt in range(1, opts.retries + 1):
        if "error" not in res:
            break
        log("  %s N=%d run %d failed (%s); retrying" % (cls.side, n, run_no, res["error"]))
        first = res
        res = _run_side_once(cls, n, run_no, addrs, opts, use_nft, attempt)
        res["retried_after"] = first.get("error")
    return res


def _run_side_once(cls, n, run_no, addrs, opts, use_nft, attempt):
    tmp = make_tmpdir("gossip-bench-%s-" % cls.side)
    c = cls(n, addrs.block(n), tmp, opts)
    t0 = time.monotonic()
    try:
        res = c.measure(run_no, use_nft)
    except Exception as e:  # record the failure, go on with the next run
        res = {"side": cls.side, "n": n, "error": "%s: %s" % (type(e).__name__, e)}
    finally:
        c.stop()
        if NFT_TABLE in _nft_tables:
            nft_delete(NFT_TABLE)
        if opts.keep_logs:
            dst = os.path.join(opts.keep_logs, "n%d-run%d-%s%s" % (
                n, run_no, cls.side, "-retry%d" % attempt if attempt else ""))
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst, exist_ok=True)
            for name in os.listdir(tmp):
                if name.endswith((".log", ".events")):
                    try:
                        shutil.copy(os.path.join(tmp, name), dst)
                    except OSError as e:
                        log("warning: keeping %s: %s" % (name, e))
        remove_tmpdir(tmp)
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


METRICS = [  # key, label, unit
    ("detect_ms", "detect (all know)", "ms"),
    ("detect_p50_ms", "detect (p50 member)", "ms"),
    ("dissem_ms", "dissem (all have)", "ms"),
    ("dissem_p50_ms", "dissem (p50 member)", "ms"),
    ("bytes_s", "bytes/s per member", "B/s"),
    ("tcp_bytes_s", "  of which TCP", "B/s"),
    ("rss_kib", "RSS per member", "KiB"),
    ("rss_anon_kib", "  of which anonymous", "KiB"),
]


def summarize(results_by_size):
    summary = {}
    for n, runs in results_by_size.items():
        s = {}
        for side in ("serf", "mallee"):
            rs = [r for r in runs if r["side"] == side]
            d = {}
            for key in [m[0] for m in METRICS] + ["detect_alt_ms", "dissem_alt_ms",
                                                 "self_bytes_out_s", "converge_s",
                                                 "self_stream_bytes_s",
                                                 "bytes_s_bound_p50", "rss_file_kib"]:
                vals = [r.get(key) for r in rs if r.get(key) is not None]
                d[key] = round(median(vals), 1) if vals else None
            d["runs_ok"] = sum(1 for r in rs if "error" not in r)
            d["runs"] = len(rs)
            s[side] = d
        ratios = {}
        for key, _, _ in METRICS:
            a, b = s["mallee"].get(key), s["serf"].get(key)
            ratios[key] = round(a / b, 3) if a is not None and b else None
        s["ratio_mallee_over_serf"] = ratios
        summary[n] = s
    return summary


def print_table(summary, use_nft):
    print()
    print("%-5s %-22s %12s %12s %8s" % ("N", "metric", "serf", "mallee", "m/s"))
    for n, s in summary.items():
        for key, label, unit in METRICS:
            a, b = s["serf"].get(key), s["mallee"].get(key)
            r = s["ratio_mallee_over_serf"].get(key)
            fmt = lambda v: "-" if v is None else ("%.0f %s" % (v, unit))
            print("%-5d %-22s %12s %12s %8s" % (n, label, fmt(a), fmt(b),
                                                "-" if r is None else "%.2f" % r))
        print("%-5d %-22s %12s %12s" % (
            n, "serf handler detect", "-" if s["serf"]["detect_alt_ms"] is None
            else "%.0f ms" % s["serf"]["detect_alt_ms"], ""))
        ts = s["mallee"].get("self_stream_bytes_s")
        print("%-5d %-22s %12s %12s" % (
            n, "mallee stream B/s", "", "-" if ts is None else "%.0f B/s" % ts))
        print("%-5d %-22s %12s %12s" % (
            n, "runs ok", "%d/%d" % (s["serf"]["runs_ok"], s["serf"]["runs"]),
            "%d/%d" % (s["mallee"]["runs_ok"], s["mallee"]["runs"])))
    if not use_nft:
        print("(nft unavailable: bytes/s for serf not measured; mallee's from its own counters)")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,30,50", help="cluster sizes (default 10,30,50)")
    ap.add_argument("--runs", type=int, default=5, help="runs per size (default 5)")
    ap.add_argument("--quick", action="store_true", help="N=10, 2 runs")
    ap.add_argument("--mallee", default=None,
                    help="mallee binary (default: $MALLEE, /tmp/bbench/mallee, build/mallee)")
    ap.add_argument("--window", type=float, default=30.0,
                    help="steady-state measuring window, s (default 30: one "
                         "push-pull period of the LAN profile, so that each "
                         "member's periodic TCP anti-entropy is counted)")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="wait after convergence before measuring, s (default 5)")
    ap.add_argument("--event-timeout", type=float, default=30.0)
    ap.add_argument("--detect-timeout", type=float, default=90.0)
    ap.add_argument("--retries", type=int, default=1,
                    help="fresh retries of a side's run that failed (default 1)")
    ap.add_argument("--keep-logs", default=None, metavar="DIR",
                    help="copy each cluster's logs to DIR before removing it")
    ap.add_argument("--only", choices=("serf", "mallee"), default=None,
                    help="run one side only (for debugging)")
    opts = ap.parse_args()
    if opts.quick:
        opts.sizes, opts.runs = "10", 2
    sizes = [int(x) for x in opts.sizes.split(",") if x.strip()]
    if any(n < 3 or n > 250 for n in sizes):
        ap.error("sizes must be within 3..250")

    if not opts.mallee:
        here = os.path.dirname(os.path.abspath(__file__))
        for cand in (os.environ.get("MALLEE"), "/tmp/bbench/mallee",
                     os.path.join(here, "..", "build", "mallee")):
            if cand and os.access(cand, os.X_OK):
                opts.mallee = os.path.abspath(cand)
                break
    if opts.only != "serf" and not (opts.mallee and os.access(opts.mallee, os.X_OK)):
        ap.error("no mallee binary (build it, or pass --mallee)")
    if opts.only != "mallee" and not shutil.which("serf"):
        ap.error("serf not installed (apt-get install serf)")
    if opts.keep_logs:
        os.makedirs(opts.keep_logs, exist_ok=True)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    use_nft = nft_available()
    if not use_nft:
        log("nft unavailable: bytes/s from mallee's own counters only")

    sides = [SerfCluster, MalleeCluster]
    if opts.only:
        sides = [c for c in sides if c.side == opts.only]
    addrs = Addrs()
    results = {}
    t_start = time.monotonic()
    try:
        for n in sizes:
            results[n] = []
            for r in range(opts.runs):
                order = sides if r % 2 == 0 else list(reversed(sides))
                for cls in order:
                    log("N=%d run %d/%d: %s" % (n, r + 1, opts.runs, cls.side))
                    res = run_side(cls, n, r, addrs, opts, use_nft)
                    res["run"] = r
                    log("  " + json.dumps(res, sort_keys=True))
                    results[n].append(res)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        cleanup_everything()
        return 130
    finally:
        cleanup_everything()

    summary = summarize(results)
    print_table(summary, use_nft)
    out = {
        "bench": "gossip_vs_serf",
        "anchor": "serf " + (run(["serf", "version"]).stdout.split("\n")[0]
                             if shutil.which("serf") else "?") +
                  " (Debian serf 0.9.4), LAN profile, encrypted",
        "runs": opts.runs,
        "window_s": opts.window,
        "bytes_source": "nft output-hook counters, IP bytes, UDP+TCP" if use_nft
                        else "mallee self-reported bytes_out; serf unavailable",
        "seconds": round(time.monotonic() - t_start, 1),
        "summary": {str(k): v for k, v in summary.items()},
        "raw": {str(k): v for k, v in results.items()},
    }
    print(json.dumps(out, sort_keys=True))
    failed = any("error" in r for rs in results.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
