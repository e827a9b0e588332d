#!/usr/bin/env python3
"""Tunnel throughput and latency: mallee's overlay beside wireguard-go and
the raw veth, in the same run (TESTING.md, "tunnel throughput and latency").

Two network namespaces joined by a veth pair are the two hosts. Each tunnel
in turn is brought up between them, and iperf3 runs between the two tunnel
addresses: one stream, then two (-P 2), then ping round trips. The raw veth
(the same measurements on the underlay addresses) is the ceiling. Rounds
alternate between the tunnels so that drift on a shared machine hits all of
them alike; each figure is the median over the rounds.

    sudo bench/tunnel_bench.py [--seconds 4] [--rounds 2] [--ovl-node PATH]

Prints a table and one JSON line. Needs root, iperf3, busybox, and for the
anchors wireguard-go + wireguard-tools (skipped with a note if absent).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "otb%d" % os.getpid()
NS_A, NS_B = TAG + "a", TAG + "b"
UNDER_A, UNDER_B = "10.77.0.1", "10.77.0.2"


def sh(*args, check=True, ns=None, **kw):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


class Lab:
    def __init__(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix=TAG)

    def __enter__(self):
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "add", "va", "netns", NS_A, "type", "veth",
           "peer", "name", "vb", "netns", NS_B)
        sh("ip", "addr", "add", UNDER_A + "/24", "dev", "va", ns=NS_A)
        sh("ip", "addr", "add", UNDER_B + "/24", "dev", "vb", ns=NS_B)
        sh("ip", "link", "set", "va", "up", ns=NS_A)
        sh("ip", "link", "set", "vb", "up", ns=NS_B)
        return self

    def spawn(self, ns, args, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", ns] + args,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __exit__(self, *exc):
        for p in self.procs:
            self.stop(p)
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_ping(ns, addr, tries=50):
    for _ in range(tries):
        if sh("busybox", "ping", "-c", "1", "-W", "1", addr, ns=ns,
              check=False).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def iperf(lab, addr, seconds, streams):
    srv = lab.spawn(NS_B, ["iperf3", "-s", "-1", "-B", addr])
    time.sleep(0.3)
    try:
        out = sh("iperf3", "-c", addr, "-t", str(seconds), "-P",
                 str(streams), "-J", ns=NS_A, check=False,
                 timeout=seconds + 20).stdout
        res = json.loads(out)
        return res["end"]["sum_received"]["bits_per_second"] / 1e9
    except (ValueError, KeyError, subprocess.TimeoutExpired):
        return 0.0
    finally:
        lab.stop(srv)


def ping_rtt(addr, count=40):
    out = sh("busybox", "ping", "-c", str(count), "-i", "0.05", addr,
             ns=NS_A, check=False, timeout=60).stdout
    for line in out.splitlines():
        if "min/avg/max" in line:
            return float(line.split("=")[1].split("/")[1])
    return float("nan")


class Raw:
    name = "raw veth"

    def up(self, lab):
        return UNDER_B

    def down(self, lab):
        pass


class Mallee:
    name = "mallee"

    def __init__(self, binary):
        self.bin = binary

    def up(self, lab):
        keys = []
        for h in "ab":
            path = os.path.join(lab.tmp, "mallee-%s.key" % h)
            with open(path, "w") as f:
                f.write(sh(self.bin, "genkey").stdout)
            keys.append((path, sh(self.bin, "pubkey", path).stdout.strip()))
        self.procs = []
        for i, (ns, me, other) in enumerate(((NS_A, UNDER_A, UNDER_B),
                                             (NS_B, UNDER_B, UNDER_A))):
            peer_pk = keys[1 - i][1]
            self.procs.append(lab.spawn(ns, [
                self.bin, "run", "--key", keys[i][0], "--listen",
                me + ":7701", "--ifname", "mallee0", "--address",
                "10.9.%d.1/24" % (i + 1), "--route", "10.9.0.0/16",
                "--peer", "%s@%s:7701=10.9.%d.0/24" % (peer_pk, other,
                                                      2 - i)]))
        for p in self.procs:
            line = p.stdout.readline()
            if '"ready"' not in line:
                raise RuntimeError("ovl-node did not start: " + line +
                                   p.stderr.read())
        return "10.9.2.1"

    def down(self, lab):
        for p in self.procs:
            lab.stop(p)


class WireguardGo:
    name = "wireguard-go"

    def up(self, lab):
        keys = []
        for h in "ab":
            sk = sh("wg", "genkey").stdout.strip()
            pk = sh("wg", "pubkey", input=sk + "\n").stdout.strip()
            path = os.path.join(lab.tmp, "wg-%s.key" % h)
            with open(path, "w") as f:
                f.write(sk + "\n")
            keys.append((path, pk))
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1")
        self.procs = []
        # The control sockets live in /var/run/wireguard, which every
        # namespace shares: the two interfaces need different names.
        dev = ["wg%d%s" % (os.getpid() % 100000, h) for h in "ab"]
        for i, ns in enumerate((NS_A, NS_B)):
            self.procs.append(lab.spawn(ns, ["wireguard-go", dev[i]],
                                        env=env))
        for i, (ns, other) in enumerate(((NS_A, UNDER_B), (NS_B, UNDER_A))):
            for _ in range(50):
                if sh("ip", "link", "show", dev[i], ns=ns,
                      check=False).returncode == 0:
                    break
                time.sleep(0.1)
            sh("wg", "set", dev[i], "private-key", keys[i][0], "listen-port",
               "51820", "peer", keys[1 - i][1], "allowed-ips",
               "10.8.%d.0/24" % (2 - i), "endpoint", other + ":51820",
               ns=ns)
            sh("ip", "addr", "add", "10.8.%d.1/16" % (i + 1), "dev", dev[i],
               ns=ns)
            sh("ip", "link", "set", dev[i], "mtu", "1420", "up", ns=ns)
        return "10.8.2.1"

    def down(self, lab):
        for p in self.procs:
            lab.stop(p)


class Nebula:
    name = "nebula"

    def up(self, lab):
        d = os.path.join(lab.tmp, "nebula")
        shutil.rmtree(d, ignore_errors=True)  # nebula-cert never overwrites
        os.makedirs(d)
        ca = [os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")]
        sh("nebula-cert", "ca", "-name", "bench", "-out-crt", ca[0],
           "-out-key", ca[1])
        self.procs = []
        for i, (ns, me, other) in enumerate(((NS_A, UNDER_A, UNDER_B),
                                             (NS_B, UNDER_B, UNDER_A))):
            crt, key = (os.path.join(d, "%d.crt" % i),
                        os.path.join(d, "%d.key" % i))
            sh("nebula-cert", "sign", "-ca-crt", ca[0], "-ca-key", ca[1],
               "-name", "h%d" % i, "-ip", "10.6.0.%d/24" % (i + 1),
               "-out-crt", crt, "-out-key", key)
            conf = os.path.join(d, "%d.yml" % i)
            with open(conf, "w") as f:
                f.write(NEBULA_CONF % {
                    "ca": ca[0], "crt": crt, "key": key,
                    "other_ip": "10.6.0.%d" % (2 - i), "other": other,
                    "dev": "neb%d%d" % (os.getpid() % 10000, i)})
            self.procs.append(lab.spawn(ns, ["nebula", "-config", conf]))
        return "10.6.0.2"

    def down(self, lab):
        for p in self.procs:
            lab.stop(p)


NEBULA_CONF = """
pki: {ca: %(ca)s, cert: %(crt)s, key: %(key)s}
static_host_map: {"%(other_ip)s": ["%(other)s:4242"]}
lighthouse: {am_lighthouse: false, hosts: []}
listen: {host: 0.0.0.0, port: 4242}
punchy: {punch: false}
tun: {dev: %(dev)s, mtu: 1400}
logging: {level: error}
firewall:
  outbound: [{port: any, proto: any, host: any}]
  inbound: [{port: any, proto: any, host: any}]
"""


class Tinc:
    name = "tinc"

    def up(self, lab):
        dirs = []
        for i, (ns, me) in enumerate(((NS_A, UNDER_A), (NS_B, UNDER_B))):
            d = os.path.join(lab.tmp, "tinc%d" % i)
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(os.path.join(d, "hosts"))
            with open(os.path.join(d, "tinc.conf"), "w") as f:
                f.write("Name = h%d\nInterface = tinc%d%d\nMode = router\n"
                        "AddressFamily = ipv4\n%s" % (
                            i, os.getpid() % 10000, i,
                            "ConnectTo = h1\n" if i == 0 else ""))
            with open(os.path.join(d, "hosts", "h%d" % i), "w") as f:
                f.write("Address = %s\nSubnet = 10.5.%d.0/24\n" % (
                    me, i + 1))
            up = os.path.join(d, "tinc-up")
            with open(up, "w") as f:
                f.write("#!/bin/sh\nip addr add 10.5.%d.1/16 dev $INTERFACE"
                        "\nip link set $INTERFACE mtu 1400 up\n" % (i + 1))
            os.chmod(up, 0o755)
            sh("tincd", "-c", d, "-K", "2048", input="")
            dirs.append(d)
        for i in range(2):
            src = os.path.join(dirs[i], "hosts", "h%d" % i)
            shutil.copy(src, os.path.join(dirs[1 - i], "hosts"))
        self.procs = []
        for i, ns in enumerate((NS_A, NS_B)):
            self.procs.append(lab.spawn(ns, [
                "tincd", "-c", dirs[i], "-D", "--pidfile",
                os.path.join(dirs[i], "pid")]))
        return "10.5.2.1"

    def down(self, lab):
        for p in self.procs:
            lab.stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-others", action="store_true",
                    help="only mallee, wireguard-go and the raw veth")
    ap.add_argument("--ovl-node", default=os.environ.get(
        "OVL_NODE", os.path.join(HERE, "..", "build", "ovl-node")))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tunnel_bench: needs root (network namespaces)")
    kinds = [Raw(), Mallee(os.path.abspath(args.ovl_node))]
    notes = []
    if shutil.which("wireguard-go") and shutil.which("wg"):
        kinds.append(WireguardGo())
    else:
        notes.append("wireguard-go or wg missing: install wireguard-go "
                     "wireguard-tools (scripts/setup)")
    if not args.no_others:
        for tool, kind in (("nebula", Nebula), ("tincd", Tinc)):
            if shutil.which(tool):
                kinds.append(kind())
            else:
                notes.append(tool + " missing (scripts/setup installs it)")
    res = {k.name: {"1": [], "2": [], "rtt": []} for k in kinds}
    kinds = list(kinds)
    with Lab() as lab:
        for r in range(args.rounds):
            order = list(kinds) if r % 2 == 0 else kinds[::-1]
            for k in order:
                try:
                    addr = k.up(lab)
                    if not wait_ping(NS_A, addr):
                        raise RuntimeError(k.name + ": no ping through")
                    res[k.name]["rtt"].append(ping_rtt(addr))
                    res[k.name]["1"].append(
                        iperf(lab, addr, args.seconds, 1))
                    res[k.name]["2"].append(
                        iperf(lab, addr, args.seconds, 2))
                except RuntimeError as e:
                    if k.name in ("mallee", "raw veth"):
                        raise
                    notes.append("%s failed: %s" % (k.name, e))
                    res.pop(k.name, None)
                    kinds.remove(k)
                finally:
                    if hasattr(k, "procs") or isinstance(k, Raw):
                        k.down(lab)
                time.sleep(0.5)
    med = {n: {m: statistics.median(v) for m, v in d.items()}
           for n, d in res.items()}
    raw, wg = med["raw veth"], med.get("wireguard-go")
    print("%-14s %10s %10s %9s %9s %9s" % ("tunnel", "1 stream", "2 streams",
                                           "rtt ms", "vs wg-go", "vs veth"))
    for n, m in med.items():
        vs_wg = ("%.2fx" % (m["1"] / wg["1"]) if wg and wg["1"] else "-")
        vs_raw = "%.0f%%" % (100 * m["1"] / raw["1"]) if raw["1"] else "-"
        print("%-14s %8.2f G %8.2f G %9.3f %9s %9s" % (
            n, m["1"], m["2"], m["rtt"], vs_wg, vs_raw))
    for n in notes:
        print("note:", n)
    out = {"bench": "tunnel", "seconds": args.seconds, "rounds": args.rounds,
           "gbit": {n: {"1": m["1"], "2": m["2"]} for n, m in med.items()},
           "rtt_ms": {n: m["rtt"] for n, m in med.items()},
           "runs": res}
    if wg:
        out["mallee_vs_wg"] = {
            s: med["mallee"][s] / wg[s] if wg[s] else None for s in "12"}
        out["rtt_mallee_vs_wg"] = med["mallee"]["rtt"] / wg["rtt"]
    out["mallee_vs_veth"] = {
        s: med["mallee"][s] / raw[s] if raw[s] else None for s in "12"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
