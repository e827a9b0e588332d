#!/usr/bin/env python3
"""Instance launch: mallee's RunInstances beside libvirt's `virsh create`.

One simulated host (tests/vm/cloud.py: network namespace, private
libvirtd, `mallee peer --edge` with QEMU TCG), the tiny image imported
with the command line "console=ttyS0" so the kernel's first line
("Linux version ...") reaches the serial console at once.

For N = 1 and 5 instances at once, alternating in the same run:

  mallee   RunInstances (one signed request, sent from a thread inside the
           host's network namespace) -> every instance "running" in
           DescribeInstances, and -> every console (GetConsoleOutput)
           showing the first line;
  floor    `virsh create` of the same domain XML (virsh dumpxml of one of
           mallee's domains: renamed, new UUID and MAC, its own copy-on-
           write disk on the same base image and its own console file),
           N at once -> every virsh create returned (the domain runs), and
           -> every console file showing the same first line.

The two "running" moments are not the same event: mallee calls an
instance running once its guest took its DHCP lease (the guest is up and
networked), libvirt once QEMU started.  The console line is the like-for-
like figure.

Prints a table and one JSON line: medians over --rounds rounds, the ratio
mallee/floor, and whether mallee is within 1.3x floor + 200 ms (the
target).  Never part of pass/fail.

    sudo python3 bench/launch_bench.py [--rounds 3] [--counts 1,5]
"""

import argparse
import ctypes
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "vm"))
sys.path.insert(0, os.path.join(SRC, "tests", "cluster"))
sys.path.insert(0, os.path.join(SRC, "tests", "clients"))

from cloud import Cloud, smallest_type, unpack  # noqa: E402,F401
from fixture import Account, sigv4_request  # noqa: E402

MARKER = "Linux version"
CLONE_NEWNET = 0x40000000
POLL = 0.05
LIMIT = 240.0   # seconds any one launch may take


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

    def run(self, fn, timeout=120):
        box, done = [], threading.Event()
        self.q.put((fn, box, done))
        if not done.wait(timeout):
            raise TimeoutError("netns worker call timed out")
        ok, v = box[0]
        if not ok:
            raise v
        return v

    def stop(self):
        self.q.put(None)
        self.t.join(10)


class Api:
    """Signed EC2 Query calls to the edge, made from inside its netns."""

    def __init__(self, cl):
        self.cl = cl
        self.w = NetnsWorker(cl.c.peers[0].ns)
        self.acct = Account("admin", cl.account, cl.key_id, cl.secret)

    def call(self, params):
        p = dict(params, Version="2016-11-15")
        st, body = self.w.run(lambda: sigv4_request(
            self.cl.endpoint, self.acct, p, region=self.cl.region,
            timeout=60))
        if st != 200:
            raise RuntimeError(f"{params.get('Action')}: {st} {body[:500]}")
        return body

    def states(self, ids):
        p = {"Action": "DescribeInstances"}
        for k, i in enumerate(ids, 1):
            p[f"InstanceId.{k}"] = i
        body = self.call(p)
        out = {}
        for m in re.finditer(r"<instanceId>(i-[0-9a-f]+)</instanceId>.*?"
                             r"<instanceState>.*?<name>(\w[\w-]*)</name>",
                             body, re.S):
            out[m.group(1)] = m.group(2)
        return out

    def console(self, iid):
        import base64
        body = self.call({"Action": "GetConsoleOutput", "InstanceId": iid})
        m = re.search(r"<output>([^<]*)</output>", body)
        if not m or not m.group(1).strip():
            return ""
        return base64.b64decode(m.group(1)).decode(errors="replace")


def until(pred, what, limit=LIMIT):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(POLL)
    raise TimeoutError(f"{what} not within {limit}s")


def mallee_round(cl, api, ami, itype, n):
    t0 = time.monotonic()
    body = api.call({"Action": "RunInstances", "ImageId": ami,
                     "InstanceType": itype, "MinCount": str(n),
                     "MaxCount": str(n)})
    ids = re.findall(r"<instanceId>(i-[0-9a-f]{17})</instanceId>", body)
    ids = list(dict.fromkeys(ids))
    t_api = time.monotonic() - t0
    running, consoles = {}, {}
    end = t0 + LIMIT
    while (len(running) < n or len(consoles) < n) and \
            time.monotonic() < end:
        if len(running) < n:
            for i, s in api.states(ids).items():
                if s == "running" and i not in running:
                    running[i] = time.monotonic() - t0
        for i in ids:
            if i not in consoles and MARKER in api.console(i):
                consoles[i] = time.monotonic() - t0
        time.sleep(POLL)
    if len(running) < n or len(consoles) < n:
        raise TimeoutError(f"mallee: {len(running)}/{n} running, "
                           f"{len(consoles)}/{n} consoles in {LIMIT}s")
    return ids, {"api": t_api, "running": max(running.values()),
                 "console": max(consoles.values())}


def terminate(cl, api, ids):
    p = {"Action": "TerminateInstances"}
    for k, i in enumerate(ids, 1):
        p[f"InstanceId.{k}"] = i
    api.call(p)
    until(lambda: all(s == "terminated" for s in api.states(ids).values()),
          "terminate", 120)


def floor_template(cl, iid, workdir):
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


def floor_domain(root, base, fmt, workdir, k):
    """A copy of the template as domain bench-K: (name, xml, console)."""
    r = ET.fromstring(ET.tostring(root))
    name = f"bench-floor-{k}"
    r.find("name").text = name
    for tag in ("uuid",):
        e = r.find(tag)
        if e is not None:
            r.remove(e)
    for iface in r.findall("./devices/interface"):
        m = iface.find("mac")
        if m is not None:
            iface.remove(m)
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


def floor_round(cl, tmpl, workdir, n):
    root, base, fmt = tmpl
    doms = [floor_domain(root, base, fmt, workdir, k) for k in range(n)]
    created, errors = {}, []
    t0 = time.monotonic()

    def create(name, path):
        cp = cl.virsh(0, "create", path, timeout=120)
        if cp.returncode != 0:
            errors.append(cp.stderr.strip())
        created[name] = time.monotonic() - t0
    ts = [threading.Thread(target=create, args=(nm, p)) for nm, p, _ in doms]
    for t in ts:
        t.start()
    consoles = {}
    end = t0 + LIMIT
    while len(consoles) < n and time.monotonic() < end and not errors:
        for nm, _, con in doms:
            if nm in consoles:
                continue
            try:
                with open(con, errors="replace") as f:
                    if MARKER in f.read():
                        consoles[nm] = time.monotonic() - t0
            except OSError:
                pass
        time.sleep(POLL)
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
    if len(consoles) < n:
        raise TimeoutError(f"floor: {len(consoles)}/{n} consoles")
    return {"running": max(created.values()),
            "console": max(consoles.values())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--counts", default="1,5")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    res = {n: {"mallee": [], "floor": []} for n in counts}
    with Cloud(1, capacity_vcpu=16) as cl:
        api = Api(cl)
        try:
            ami = cl.import_image(host=0)
            cl.wait_image_visible(ami)
            itype, _, mem = smallest_type(cl)
            workdir = os.path.join(cl.hosts[0].dir, "bench")
            os.makedirs(workdir)
            os.chmod(workdir, 0o777)
            # A warm-up instance: the template, and the image in place.
            ids, _ = mallee_round(cl, api, ami, itype, 1)
            tmpl = floor_template(cl, ids[0], workdir)
            terminate(cl, api, ids)
            for r in range(args.rounds):
                for n in counts:
                    # Alternate which side goes first.
                    order = ("mallee", "floor") if r % 2 == 0 else \
                        ("floor", "mallee")
                    for side in order:
                        if side == "mallee":
                            ids, m = mallee_round(cl, api, ami, itype, n)
                            terminate(cl, api, ids)
                        else:
                            m = floor_round(cl, tmpl, workdir, n)
                        res[n][side].append(m)
                        print(f"round {r + 1} n={n} {side}: " + ", ".join(
                            f"{k} {v * 1000:.0f} ms" for k, v in m.items()),
                            file=sys.stderr, flush=True)
        except BaseException:
            cl.dump()
            raise
        finally:
            api.w.stop()
    out = {"bench": "launch", "type": itype, "memory_mib": mem,
           "rounds": args.rounds, "results": []}
    print(f"\n{'N':>3} {'what':<22} {'mallee ms':>10} {'floor ms':>10} "
          f"{'ratio':>6} {'target ms':>10} ok")
    for n in counts:
        for what in ("running", "console"):
            mv = statistics.median(x[what] for x in res[n]["mallee"])
            fv = statistics.median(x[what] for x in res[n]["floor"])
            target = 1.3 * fv + 0.2
            ok = mv <= target
            label = "-> running" if what == "running" else \
                f"-> '{MARKER}'"
            print(f"{n:>3} {label:<22} {mv * 1000:>10.0f} {fv * 1000:>10.0f}"
                  f" {mv / fv:>6.2f} {target * 1000:>10.0f} "
                  f"{'yes' if ok else 'NO'}")
            out["results"].append({
                "n": n, "what": what, "mallee_ms": round(mv * 1000),
                "floor_ms": round(fv * 1000), "ratio": round(mv / fv, 3),
                "within_1.3x_plus_200ms": ok})
        api_ms = statistics.median(x["api"] for x in res[n]["mallee"])
        print(f"{n:>3} {'RunInstances answer':<22} {api_ms * 1000:>10.0f}")
    print("(running: mallee = the guest took its DHCP lease; floor = "
          "virsh create returned)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
