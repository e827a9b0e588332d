#!/usr/bin/env python3
"""Instance launch: mallee's RunInstances beside libvirt's `virsh create`.

One simulated host (tests/vm/cloud.py: network namespace, private
libvirtd, `mallee peer --edge` with QEMU TCG), the tiny image imported
with the command line "console=ttyS0" so the kernel's first line
("Linux version ...") reaches the serial console at once, and the tiny
init prints "mallee-tiny: up ip=ADDR ..." once DHCP gave it an address.

For N = 1 and 5 instances at once, alternating which side goes first:

  mallee   RunInstances (one signed request from a thread inside the
           host's network namespace) -> every instance "running" in
           DescribeInstances (polled every --poll s over one keep-alive
           connection), and -> every console (GetConsoleOutput, polled
           as often from a second thread and connection) showing the
           kernel's first line and the "up ip=" line;
  floor    `virsh create` of the same domain XML (virsh dumpxml of one of
           mallee's domains: renamed, new UUID, its own copy-on-write
           disk on the same base image, its own console file, and the MAC
           of a lease the peer made for a made-up instance id through the
           control socket's `hostnet-lease`), N at once, so that each copy
           gets its address from the same peer's DHCP server.

"running" is the same event on both sides: mallee marks an instance
running when its DHCP server ACKs the guest; the floor's running is that
ACK for the copy's MAC (the peer's "hostnet: ID has IP (DHCP)" log line,
millisecond wall-clock stamps).  mallee's figure is what DescribeInstances
shows, so it is late by up to one poll interval plus a call; the ACK of
mallee's own instances is shown too.  The console lines are read from the
console file on the floor side and through GetConsoleOutput on mallee's.

Prints a table and one JSON line: medians over --rounds rounds, the ratio
mallee/floor, and whether mallee is within 1.3x floor + 200 ms (the
target).  Never part of pass/fail.

    sudo python3 bench/launch_bench.py [--rounds 5] [--counts 1,5] [--poll S]
"""

import argparse
import base64
import ctypes
import datetime
import hashlib
import hmac
import http.client
import json
import os
import platform
import queue
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "vm"))
sys.path.insert(0, os.path.join(SRC, "tests", "cluster"))

from cloud import Cloud, smallest_type  # noqa: E402
from test_hostnet import ctl  # noqa: E402

FIRST = "Linux version"            # the kernel's first console line
UP = "mallee-tiny: up ip="         # the tiny init, once DHCP answered
CLONE_NEWNET = 0x40000000
LIMIT = 240.0   # seconds any one launch may take
ACK_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z \w+\s+"
                    r"hostnet: (i-[0-9a-z]+) has ([0-9.]+) \(DHCP\)", re.M)
STARTED_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z \w+\s+"
                        r"\S+: (i-[0-9a-f]+): domain started", re.M)


def wall_of(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f") \
        .replace(tzinfo=datetime.timezone.utc).timestamp()


class NetnsWorker:
    """A thread living in a network namespace: run(fn) calls fn there."""

    def __init__(self, ns):
        self.q = queue.Queue()
        self.err = None
        ready = threading.Event()

        def main():
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                self.err = OSError(ctypes.get_errno(), "setns")
            os.close(fd)
            ready.set()
            while True:
                item = self.q.get()
                if item is None:
                    return
                fn, box, done = item
                try:
                    box.append((True, fn()))
                except BaseException as e:  # noqa: BLE001
                    box.append((False, e))
                done.set()

        self.t = threading.Thread(target=main, daemon=True)
        self.t.start()
        ready.wait(10)
        if self.err:
            raise self.err

    def start(self, fn):
        """Queues fn; returns wait(timeout) giving its value."""
        box, done = [], threading.Event()
        self.q.put((fn, box, done))

        def wait(timeout=120):
            if not done.wait(timeout):
                raise TimeoutError("netns worker call timed out")
            ok, v = box[0]
            if not ok:
                raise v
            return v
        return wait

    def run(self, fn, timeout=120):
        return self.start(fn)(timeout)

    def stop(self):
        self.q.put(None)
        self.t.join(10)


class Api:
    """SigV4-signed EC2 Query calls to the edge over one keep-alive HTTP
    connection, made from a thread inside the edge's namespace (so its
    socket lives there)."""

    def __init__(self, cl):
        self.cl = cl
        self.w = NetnsWorker(cl.c.peers[0].ns)
        u = urllib.parse.urlsplit(cl.endpoint)
        self.host, self.port, self.netloc = u.hostname, u.port, u.netloc
        self.conn = None
        self.calls = 0

    def _request(self, params):
        """In the worker thread: (status, body)."""
        body = urllib.parse.urlencode(
            sorted(dict(params, Version="2016-11-15").items()),
            quote_via=urllib.parse.quote)
        now = datetime.datetime.now(datetime.timezone.utc)
        amz = now.strftime("%Y%m%dT%H%M%SZ")
        day, region = amz[:8], self.cl.region
        headers = {"host": self.netloc, "x-amz-date": amz,
                   "content-type":
                   "application/x-www-form-urlencoded; charset=utf-8"}
        signed = ";".join(sorted(headers))
        canon = "\n".join(["POST", "/", "", "".join(
            f"{k}:{headers[k]}\n" for k in sorted(headers)), signed,
            hashlib.sha256(body.encode()).hexdigest()])
        scope = f"{day}/{region}/ec2/aws4_request"
        sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                         hashlib.sha256(canon.encode()).hexdigest()])
        k = ("AWS4" + self.cl.secret).encode()
        for part in (day, region, "ec2", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.cl.key_id}/{scope}, "
            f"SignedHeaders={signed}, Signature="
            + hmac.new(k, sts.encode(), hashlib.sha256).hexdigest())
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=60)
            try:
                self.conn.request("POST", "/", body=body.encode(),
                                  headers=headers)
                r = self.conn.getresponse()
                text = r.read().decode(errors="replace")
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                self.calls += 1
                return r.status, text
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call_here(self, params):
        """In the worker thread (from a function run there)."""
        st, body = self._request(params)
        if st != 200:
            raise RuntimeError(f"{params.get('Action')}: {st} {body[:500]}")
        return body

    def call(self, params):
        return self.w.run(lambda: self.call_here(params))

    def states_here(self, ids):
        p = {"Action": "DescribeInstances"}
        for k, i in enumerate(ids, 1):
            p[f"InstanceId.{k}"] = i
        body = self.call_here(p)
        out = {}
        for m in re.finditer(r"<instanceId>(i-[0-9a-f]+)</instanceId>.*?"
                             r"<instanceState>.*?<name>(\w[\w-]*)</name>",
                             body, re.S):
            out[m.group(1)] = m.group(2)
        return out

    def states(self, ids):
        return self.w.run(lambda: self.states_here(ids))

    def console_here(self, iid):
        body = self.call_here({"Action": "GetConsoleOutput",
                               "InstanceId": iid})
        m = re.search(r"<output>([^<]*)</output>", body)
        if not m or not m.group(1).strip():
            return ""
        return base64.b64decode(m.group(1)).decode(errors="replace")

    def stop(self):
        def close():
            if self.conn is not None:
                self.conn.close()
        try:
            self.w.run(close, 10)
        finally:
            self.w.stop()


def until(pred, what, limit=LIMIT, interval=0.05):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {limit}s")


def poll_loop(step, interval, end, gaps):
    """Calls step() every interval (from the previous call's start) until
    it returns True or monotonic end; the gaps between calls' starts go to
    gaps (the resolution actually achieved)."""
    last = None
    while time.monotonic() < end:
        start = time.monotonic()
        if last is not None:
            gaps.append(start - last)
        last = start
        if step():
            return True
        rest = start + interval - time.monotonic()
        if rest > 0:
            time.sleep(rest)
    return False


class PeerLog:
    """The edge peer's log: DHCP ACKs after a point."""

    def __init__(self, path):
        self.path = path

    def offset(self):
        return os.path.getsize(self.path)

    def _text(self, since):
        with open(self.path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def acks(self, since):
        """{instance id: (wall time, ip)} of ACK lines after byte since
        (the first one per id)."""
        out = {}
        for m in ACK_RE.finditer(self._text(since)):
            out.setdefault(m.group(2), (wall_of(m.group(1)), m.group(3)))
        return out

    def started(self, since):
        """{instance id: wall time} of "domain started" lines."""
        out = {}
        for m in STARTED_RE.finditer(self._text(since)):
            out.setdefault(m.group(2), wall_of(m.group(1)))
        return out


def mallee_round(cl, api, capi, plog, ami, itype, n, poll, cpoll):
    off = plog.offset()
    t0w = time.time()
    t0 = time.monotonic()
    body = api.call({"Action": "RunInstances", "ImageId": ami,
                     "InstanceType": itype, "MinCount": str(n),
                     "MaxCount": str(n)})
    t_api = time.monotonic() - t0
    ids = list(dict.fromkeys(
        re.findall(r"<instanceId>(i-[0-9a-f]{17})</instanceId>", body)))
    if len(ids) != n:
        raise RuntimeError(f"RunInstances gave {ids}")
    end = t0 + LIMIT
    running, first, up, gaps, cgaps = {}, {}, {}, [], []

    def states():
        for i, s in api.states_here(ids).items():
            if s == "running" and i not in running:
                running[i] = time.monotonic() - t0
            elif s in ("terminated", "shutting-down"):
                raise RuntimeError(f"{i} {s} while launching")
        return len(running) == n

    def consoles():
        for i in ids:
            if i in up:
                continue
            text = capi.console_here(i)
            now = time.monotonic() - t0
            if FIRST in text and i not in first:
                first[i] = now
            if UP in text:
                first.setdefault(i, now)
                up[i] = now
        return len(up) == n

    wait_c = capi.w.start(lambda: poll_loop(consoles, cpoll, end, cgaps))
    api.w.run(lambda: poll_loop(states, poll, end, gaps), LIMIT + 30)
    wait_c(LIMIT + 30)
    if len(running) < n or len(up) < n:
        raise TimeoutError(f"mallee: {len(running)}/{n} running, "
                           f"{len(up)}/{n} consoles up in {LIMIT}s")
    acks = plog.acks(off)
    ack = [acks[i][0] - t0w for i in ids if i in acks]
    started = plog.started(off)
    st = [started[i] - t0w for i in ids if i in started]
    return ids, {"api": t_api,
                 "created": max(st) if len(st) == n else None,
                 "running": max(running.values()),
                 "ack": max(ack) if len(ack) == n else None,
                 "first": max(first.values()), "up": max(up.values()),
                 "poll_ms": 1000 * statistics.mean(gaps) if gaps else None}


def terminate(cl, api, ids):
    p = {"Action": "TerminateInstances"}
    for k, i in enumerate(ids, 1):
        p[f"InstanceId.{k}"] = i
    api.call(p)
    until(lambda: all(s == "terminated" for s in api.states(ids).values()),
          "terminate", 120, 0.2)


def floor_template(cl, iid):
    """The domain XML of mallee's instance iid, and its disk's base."""
    name = cl.domain_name(0, iid)
    xml = cl.virsh(0, "dumpxml", "--inactive", name).stdout
    root = ET.fromstring(xml)
    disk = root.find("./devices/disk[@device='disk']/source")
    base = fmt = None
    if disk is not None and disk.get("file"):
        info = json.loads(subprocess.run(
            ["qemu-img", "info", "-U", "--output", "json", disk.get("file")],
            capture_output=True, text=True, timeout=30).stdout or "{}")
        base = info.get("full-backing-filename") or \
            info.get("backing-filename")
        fmt = info.get("backing-filename-format") or "raw"
        if not base:
            base, fmt = disk.get("file"), info.get("format", "raw")
    return root, base, fmt


def floor_leases(cl, n):
    """Leases for made-up instance ids on the edge peer (hostnet-lease):
    [(id, ip, mac)]."""
    out = []
    for k in range(n):
        iid = f"i-f1000{k:012x}"
        for _ in range(40):  # until the host's slice is confirmed
            r = ctl(cl.c.peers[0], {"cmd": "hostnet-lease", "id": iid})
            if r.get("ok"):
                break
            time.sleep(0.5)
        if not r.get("ok"):
            raise RuntimeError(f"hostnet-lease {iid}: {r}")
        out.append((iid, r["ip"], r["mac"]))
    return out


def floor_domain(root, base, fmt, workdir, k, mac):
    """A copy of the template as domain bench-floor-K with the given MAC:
    (name, xml path, console path)."""
    r = ET.fromstring(ET.tostring(root))
    name = f"bench-floor-{k}"
    r.find("name").text = name
    e = r.find("uuid")
    if e is not None:
        r.remove(e)
    for iface in r.findall("./devices/interface"):
        m = iface.find("mac")
        if m is None:
            m = ET.SubElement(iface, "mac")
        m.set("address", mac)
        t = iface.find("target")
        if t is not None:
            iface.remove(t)
    console = os.path.join(workdir, f"{name}.console")
    if os.path.exists(console):
        os.unlink(console)
    for dev in r.findall("./devices/serial") + r.findall("./devices/console"):
        src = dev.find("source")
        if src is not None and src.get("path"):
            src.set("path", console)
        log = dev.find("log")
        if log is not None:
            log.set("file", console + ".log")
    d = r.find("./devices/disk[@device='disk']")
    if d is not None and base:
        overlay = os.path.join(workdir, f"{name}.qcow2")
        if os.path.exists(overlay):
            os.unlink(overlay)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt,
                        "-b", base, overlay], check=True, timeout=30)
        os.chmod(overlay, 0o666)
        d.find("source").set("file", overlay)
        drv = d.find("driver")
        if drv is not None:
            drv.set("type", "qcow2")
        bs = d.find("backingStore")
        if bs is not None:
            d.remove(bs)
    path = os.path.join(workdir, f"{name}.xml")
    with open(path, "w") as f:
        f.write(ET.tostring(r, encoding="unicode"))
    return name, path, console


def floor_round(cl, tmpl, workdir, leases, plog, n, poll):
    root, base, fmt = tmpl
    doms = [floor_domain(root, base, fmt, workdir, k, leases[k][2])
            for k in range(n)]
    want = {leases[k][0]: leases[k][1] for k in range(n)}
    created, errors = {}, []
    off = plog.offset()
    t0w = time.time()
    t0 = time.monotonic()

    def create(name, path):
        cp = cl.virsh(0, "create", path, timeout=120)
        if cp.returncode != 0:
            errors.append(cp.stderr.strip())
        created[name] = time.monotonic() - t0
    ts = [threading.Thread(target=create, args=(nm, p)) for nm, p, _ in doms]
    for t in ts:
        t.start()
    first, up, acks = {}, {}, {}
    end = t0 + LIMIT
    up_all = None
    try:
        while time.monotonic() < end and not errors:
            for (nm, _, con), (iid, ip, _) in zip(doms, leases):
                if nm in up:
                    continue
                try:
                    with open(con, errors="replace") as f:
                        text = f.read()
                except OSError:
                    continue
                now = time.monotonic() - t0
                if FIRST in text and nm not in first:
                    first[nm] = now
                # A whole line only (the file may end mid-line).
                m = re.search(re.escape(UP) + r"(\S*)\s", text)
                if m:
                    if m.group(1) != ip:
                        raise RuntimeError(f"{nm} came up with ip="
                                           f"{m.group(1)}, not {ip}")
                    first.setdefault(nm, now)
                    up[nm] = now
            if len(up) == n:
                acks = {i: a for i, a in plog.acks(off).items() if i in want}
                if len(acks) == n:
                    break
                up_all = up_all or time.monotonic()
                if time.monotonic() - up_all > 5:
                    break
            time.sleep(poll)
    finally:
        for t in ts:
            t.join(120)
        dest = [threading.Thread(target=cl.virsh, args=(0, "destroy", nm))
                for nm, _, _ in doms]
        for t in dest:
            t.start()
        for t in dest:
            t.join(60)
    if errors:
        raise RuntimeError("virsh create: " + "; ".join(errors))
    if len(up) < n:
        raise TimeoutError(f"floor: {len(up)}/{n} consoles up")
    if len(acks) < n:
        raise RuntimeError(f"floor: {len(acks)}/{n} DHCP ACKs in the peer "
                           f"log ({sorted(acks)})")
    for i, (_, ip) in acks.items():
        if ip != want[i]:
            raise RuntimeError(f"floor: {i} was ACKed {ip}, not {want[i]}")
    ack = max(a[0] for a in acks.values()) - t0w
    return {"created": max(created.values()), "ack": ack, "running": ack,
            "first": max(first.values()), "up": max(up.values())}


ROWS = [  # key, label, goal applies
    ("running", "-> running", True),
    ("ack", "-> DHCP ACK (peer log)", True),
    ("first", f"-> console '{FIRST}'", True),
    ("up", "-> console 'up ip='", True),
]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    qemu = subprocess.run(["qemu-system-x86_64", "--version"],
                          capture_output=True, text=True).stdout
    virsh = subprocess.run(["virsh", "--version"], capture_output=True,
                           text=True).stdout
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "qemu": qemu.split("\n")[0].replace("QEMU emulator version ", ""),
            "libvirt": virsh.strip()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--counts", default="1,5")
    ap.add_argument("--poll", type=float, default=0.05,
                    help="DescribeInstances poll interval, s (and the "
                    "floor's console files)")
    ap.add_argument("--console-poll", type=float, default=None,
                    help="GetConsoleOutput poll interval, s (default: "
                    "--poll)")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    cpoll = args.console_poll or args.poll
    res = {n: {"mallee": [], "floor": []} for n in counts}
    loads = [os.getloadavg()[0]]
    t_start = time.monotonic()
    with Cloud(1, capacity_vcpu=16) as cl:
        api = Api(cl)
        capi = Api(cl)
        try:
            plog = PeerLog(cl.c.peers[0].log_path)
            ami = cl.import_image(host=0)
            cl.wait_image_visible(ami)
            itype, _, mem = smallest_type(cl)
            workdir = os.path.join(cl.hosts[0].dir, "bench")
            os.makedirs(workdir)
            os.chmod(workdir, 0o777)
            # A warm-up instance: the template, and the image in place.
            ids, _ = mallee_round(cl, api, capi, plog, ami, itype, 1,
                                  args.poll, cpoll)
            tmpl = floor_template(cl, ids[0])
            terminate(cl, api, ids)
            leases = floor_leases(cl, max(counts))
            for r in range(args.rounds):
                for n in counts:
                    # Alternate which side goes first.
                    order = ("mallee", "floor") if r % 2 == 0 else \
                        ("floor", "mallee")
                    for side in order:
                        loads.append(os.getloadavg()[0])
                        if side == "mallee":
                            ids, m = mallee_round(cl, api, capi, plog, ami,
                                                  itype, n, args.poll, cpoll)
                            terminate(cl, api, ids)
                        else:
                            m = floor_round(cl, tmpl, workdir, leases, plog,
                                            n, args.poll)
                        res[n][side].append(m)
                        print(f"round {r + 1} n={n} {side}: " + ", ".join(
                            f"{k} {v * 1000:.0f} ms" if k != "poll_ms" else
                            f"poll {v:.0f} ms" for k, v in m.items()
                            if v is not None),
                            file=sys.stderr, flush=True)
        except BaseException:
            cl.dump()
            raise
        finally:
            api.stop()
            capi.stop()
    loads.append(os.getloadavg()[0])
    polls = [x["poll_ms"] for n in counts for x in res[n]["mallee"]
             if x.get("poll_ms")]
    out = {"bench": "launch", "type": itype, "memory_mib": mem,
           "rounds": args.rounds, "poll_ms": round(args.poll * 1000),
           "console_poll_ms": round(cpoll * 1000),
           "poll_ms_achieved": round(statistics.mean(polls), 1)
           if polls else None,
           "load_1min": [round(min(loads), 2), round(max(loads), 2)],
           "wall_s": round(time.monotonic() - t_start),
           "machine": machine(), "results": []}
    print(f"\n{'N':>3} {'what':<30} {'mallee ms':>10} {'floor ms':>10} "
          f"{'ratio':>6} {'target ms':>10} ok")
    for n in counts:
        api_ms = med(x["api"] for x in res[n]["mallee"])
        print(f"{n:>3} {'RunInstances answered':<30} {api_ms * 1000:>10.0f}")
        cr = med(x["created"] for x in res[n]["floor"])
        mcr = med(x["created"] for x in res[n]["mallee"])
        print(f"{n:>3} {'domain started / virsh create':<30} "
              f"{mcr * 1000 if mcr else 0:>10.0f} {cr * 1000:>10.0f}")
        for key, label, goal in ROWS:
            mv = med(x[key] for x in res[n]["mallee"])
            fv = med(x[key] for x in res[n]["floor"])
            if mv is None or fv is None:
                continue
            target = 1.3 * fv + 0.2
            ok = mv <= target
            print(f"{n:>3} {label:<30} {mv * 1000:>10.0f} {fv * 1000:>10.0f}"
                  f" {mv / fv:>6.2f} {target * 1000:>10.0f} "
                  f"{'yes' if ok else 'NO'}")
            out["results"].append({
                "n": n, "what": key, "mallee_ms": round(mv * 1000),
                "floor_ms": round(fv * 1000), "ratio": round(mv / fv, 3),
                "mallee_runs_ms": [round(x[key] * 1000)
                                   for x in res[n]["mallee"]
                                   if x[key] is not None],
                "floor_runs_ms": [round(x[key] * 1000)
                                  for x in res[n]["floor"]],
                "within_1.3x_plus_200ms": ok})
        out["results"].append({"n": n, "what": "api",
                               "mallee_ms": round(api_ms * 1000)})
        out["results"].append({"n": n, "what": "created",
                               "mallee_ms": round(mcr * 1000) if mcr
                               else None, "floor_ms": round(cr * 1000)})
    print(f"(running: mallee = DescribeInstances shows it, polled every "
          f"{args.poll * 1000:.0f} ms (achieved "
          f"{out['poll_ms_achieved']} ms); floor = the peer's DHCP ACK of "
          f"the copy's MAC; load average {out['load_1min'][0]}-"
          f"{out['load_1min'][1]})")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
