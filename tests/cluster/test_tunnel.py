#!/usr/bin/env python3
"""The overlay datapath between two hosts, with ovl-node (no peer daemon).

Topology: a hub namespace with a bridge is the underlay (10.77.0.0/24);
hosts A and B each have an "instance" namespace on a bridge behind them
(10.9.1.0/24 and 10.9.2.0/24) and run ovl-node, which routes 10.9.0.0/16
through its TUN. A third namespace C on the underlay plays the attacker.

Checks: ping and a TCP transfer between the instances; packets of A's
captured on the wire and sent again from C (replayed), with a flipped byte
(forged), with another index, and handshakes from C under a key B does not
know or to a key that is not B's, are all dropped and counted by reason;
inner packets from outside a peer's prefixes are dropped; traffic still
flows afterwards.
"""
import hashlib
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from cloudtools import TUNNEL_SEND, TUNNEL_SNIFF

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "ovt%d" % (os.getpid() % 100000)
NS = {k: TAG + k for k in ("hub", "a", "b", "c", "ia", "ib")}
failures = []


def ovl_node_path():
    if os.environ.get("OVL_NODE"):
        return os.environ["OVL_NODE"]
    if os.environ.get("MALLEE_BIN"):
        return os.path.join(os.path.dirname(os.environ["MALLEE_BIN"]),
                            "ovl-node")
    return os.path.join(HERE, "..", "..", "build", "ovl-node")


def sh(*args, ns=None, check=True, **kw):
    cmd = (["ip", "netns", "exec", NS[ns]] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def check(cond, what):
    print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)
    if not cond:
        failures.append(what)


class Node:
    """One ovl-node process; counters read through SIGUSR1."""

    def __init__(self, ns, args):
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", NS[ns], ovl_node_path(), "run"] + args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self._wait("ready")
        if not self.ready:
            raise RuntimeError("ovl-node did not start: " +
                               self.p.stderr.read())

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)

    def _wait(self, event, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            try:
                line = self.lines.get(timeout=max(0.05, end - time.time()))
            except queue.Empty:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") == event:
                return msg
        return None

    def counters(self):
        self.p.send_signal(signal.SIGUSR1)
        return self._wait("counters")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        err = self.p.stderr.read()
        return self.p.returncode, err


def build(tmp):
    for ns in NS.values():
        sh("ip", "netns", "add", ns)
    for k in NS:
        sh("ip", "link", "set", "lo", "up", ns=k)
    sh("ip", "link", "add", "br0", "type", "bridge", ns="hub")
    sh("ip", "link", "set", "br0", "up", ns="hub")
    for i, h in enumerate("abc"):
        sh("ip", "link", "add", "u" + h, "netns", NS["hub"], "type", "veth",
           "peer", "name", "eth0", "netns", NS[h])
        sh("ip", "link", "set", "u" + h, "master", "br0", "up", ns="hub")
        sh("ip", "addr", "add", "10.77.0.%d/24" % (i + 1), "dev", "eth0",
           ns=h)
        sh("ip", "link", "set", "eth0", "up", ns=h)
    for i, h in enumerate("ab"):
        inst = "i" + h
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=h)
        sh("ip", "link", "add", "br-inst", "type", "bridge", ns=h)
        sh("ip", "addr", "add", "10.9.%d.1/24" % (i + 1), "dev", "br-inst",
           ns=h)
        sh("ip", "link", "set", "br-inst", "up", ns=h)
        sh("ip", "link", "add", "vi", "netns", NS[h], "type", "veth",
           "peer", "name", "eth0", "netns", NS[inst])
        sh("ip", "link", "set", "vi", "master", "br-inst", "up", ns=h)
        sh("ip", "addr", "add", "10.9.%d.10/24" % (i + 1), "dev", "eth0",
           ns=inst)
        sh("ip", "link", "set", "eth0", "up", ns=inst)
        sh("ip", "route", "add", "default", "via", "10.9.%d.1" % (i + 1),
           ns=inst)
    keys = {}
    for h in ("a", "b", "c", "x"):
        path = os.path.join(tmp, h + ".key")
        with open(path, "w") as f:
            f.write(sh(ovl_node_path(), "genkey").stdout)
        keys[h] = (path, sh(ovl_node_path(), "pubkey", path).stdout.strip())
    return keys


def ping(src, dst, count=3, extra=()):
    return sh("busybox", "ping", "-c", str(count), "-W", "2", *extra, dst,
              ns=src, check=False, timeout=30).returncode == 0


def tcp_transfer(src="ia", dst="ib", addr="10.9.2.10"):
    """2 MiB from namespace src to an echo server at addr in dst; prints
    whether the echo matched, and its length."""
    server = ("import socket\n"
              "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,"
              "socket.SO_REUSEADDR,1)\n"
              "s.bind((%r,5001));s.listen(1);s.settimeout(20)\n"
              "c,_=s.accept();c.settimeout(20)\n"
              "while True:\n d=c.recv(65536)\n if not d: break\n"
              " c.sendall(d)\n"
              "c.close()\n") % addr
    srv = subprocess.Popen(["ip", "netns", "exec", NS[dst], sys.executable,
                            "-c", server])
    time.sleep(0.5)
    client = ("import socket,hashlib,os,threading\n"
              "data=os.urandom(2<<20)\n"
              "c=socket.create_connection((%r,5001),timeout=20)\n"
              "def w():\n c.sendall(data);c.shutdown(socket.SHUT_WR)\n"
              "threading.Thread(target=w).start()\n"
              "got=b''\n"
              "while True:\n d=c.recv(65536)\n if not d: break\n got+=d\n"
              "print(hashlib.sha256(data).hexdigest()==\n"
              "      hashlib.sha256(got).hexdigest(), len(got))\n") % addr
    r = sh(sys.executable, "-c", client, ns=src, check=False, timeout=60)
    try:
        srv.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()
    return r.stdout.strip()


def capture_while_pinging(at, iface, dst, kind, src, target):
    """The hex of the tunnel packets of kind to dst that namespace at sees
    on iface while src pings target 8 times (TUNNEL_SNIFF keeps 5)."""
    sniff = subprocess.Popen(["ip", "netns", "exec", NS[at],
                              sys.executable, "-c", TUNNEL_SNIFF,
                              iface, "dst", dst, kind],
                             stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    ping(src, target, count=8, extra=("-i", "0.1", "-s", "200"))
    return sniff.communicate(timeout=20)[0].split()


def stop_clean(nodes):
    """Stops the nodes, each of which must exit 0 with no sanitizer
    report."""
    for n in nodes:
        rc, err = n.stop()
        check(rc == 0, "ovl-node exits cleanly")
        check("ERROR: AddressSanitizer" not in err and
              "runtime error" not in err, "no sanitizer report")


def teardown(nodes, tmp):
    """Whatever happened: nodes stopped, namespaces and tmp removed."""
    for n in nodes:
        n.stop()
    for ns in NS.values():
        sh("ip", "netns", "del", ns, check=False)
    subprocess.run(["rm", "-rf", tmp])


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 0
    tmp = tempfile.mkdtemp(prefix=TAG)
    nodes = []
    try:
        keys = build(tmp)
        a = Node("a", ["--key", keys["a"][0], "--listen", "10.77.0.1:7701",
                       "--ifname", "ovl0", "--address", "10.9.1.1/32",
                       "--route", "10.9.0.0/16", "--peer",
                       "%s@10.77.0.2:7701=10.9.2.0/24" % keys["b"][1]])
        nodes.append(a)
        b = Node("b", ["--key", keys["b"][0], "--listen", "10.77.0.2:7701",
                       "--ifname", "ovl0", "--address", "10.9.2.1/32",
                       "--route", "10.9.0.0/16", "--peer",
                       "%s@10.77.0.1:7701=10.9.1.0/24" % keys["a"][1]])
        nodes.append(b)
        check(a.ready["mtu"] == 1500 - 20 - 8 - 32 - 20,
              "overlay MTU 1420 (room for a relay header)")
        # The first packets wait for the handshake; retry a little.
        ok = any(ping("ia", "10.9.2.10", count=1) for _ in range(10))
        check(ok, "instance A pings instance B through the tunnel")
        check(ping("ib", "10.9.1.10"), "and B pings A")
        check(tcp_transfer() == "True 2097152",
              "2 MiB over TCP echoed intact")
        c0 = b.counters()
        check(c0 and c0["handshakes_done"] >= 1 and c0["rx_packets"] > 100,
              "B counted a handshake and received packets")

        # Capture some of A's transport packets on B's underlay.
        captured = capture_while_pinging("b", "eth0", "10.77.0.2",
                                         "transport", "ia", "10.9.2.10")
        check(len(captured) == 5, "captured 5 transport packets")
        forged, other_index = [], []
        for h in captured:
            # A counter not yet seen (else the replay check drops it first)
            # and a flipped ciphertext bit.
            p = bytearray.fromhex(h)
            p[14] ^= 0x01
            p[40] ^= 0x20
            forged.append(p.hex())
            q = bytearray.fromhex(h)
            q[4] ^= 0xff
            other_index.append(q.hex())
        junk = ["01000000" + "00" * 128, "02000000" + "11" * 72, "0400",
                "07000000" + "00" * 40, "04010000" + "00" * 40]
        before = b.counters()
        sh(sys.executable, "-c", TUNNEL_SEND, "10.77.0.2", *captured,
           *forged, *other_index,
           *junk, ns="c")
        time.sleep(0.5)
        after = b.counters()
        d0, d1 = before["drops"], after["drops"]

        print("drops during the attack:",
              {k: d1[k] - d0[k] for k in d1 if d1[k] != d0[k]})

        def grew(reason, n):
            return d1[reason] - d0[reason] >= n

        check(grew("replay", 5), "5 replayed packets dropped as replay")
        check(grew("decrypt", 5), "5 forged packets dropped as decrypt")
        check(grew("unknown_index", 5),
              "5 packets under another index dropped as unknown_index")
        check(grew("bad_mac", 2), "junk handshakes dropped as bad_mac")
        check(grew("short", 1), "a short packet dropped as short")
        check(grew("bad_type", 2), "bad type and reserved bits dropped")
        check(after["rx_packets"] == before["rx_packets"],
              "none of them was accepted")

        # Handshakes from C: its key unknown to B, then a wrong key for B.
        wrong_key = Node("c", ["--key", keys["c"][0], "--listen",
                               "10.77.0.3:7701", "--ifname", "ovlc",
                               "--address", "10.9.3.1/32", "--route",
                               "10.9.2.0/24", "--peer",
                               "%s@10.77.0.2:7701=10.9.2.0/24" %
                               keys["b"][1]])
        nodes.append(wrong_key)
        ping("c", "10.9.2.10", count=1, extra=("-W", "1"))
        wrong_key.stop()
        wrong_peer = Node("c", ["--key", keys["c"][0], "--listen",
                                "10.77.0.3:7702", "--ifname", "ovld",
                                "--address", "10.9.4.1/32", "--route",
                                "10.9.2.0/24", "--peer",
                                "%s@10.77.0.2:7701=10.9.2.0/24" %
                                keys["x"][1]])
        nodes.append(wrong_peer)
        ping("c", "10.9.2.10", count=1, extra=("-W", "1"))
        wrong_peer.stop()
        time.sleep(0.3)
        final = b.counters()
        check(final["drops"]["unknown_peer"] >= 1,
              "initiation under a key B does not know: unknown_peer")
        check(final["drops"]["bad_mac"] - d1["bad_mac"] >= 1,
              "initiation to a key that is not B's: bad_mac")
        check(final["handshakes_done"] == after["handshakes_done"],
              "no handshake with C completed")

        # A source outside A's prefixes, sent by A itself: B drops it.
        sh("ip", "addr", "add", "10.9.5.1/32", "dev", "lo", ns="a")
        ping("a", "10.9.2.10", count=2, extra=("-I", "10.9.5.1", "-W", "1"))
        spoof = b.counters()
        check(spoof["drops"]["bad_inner"] - final["drops"]["bad_inner"] >= 1,
              "inner source outside the peer's prefixes: bad_inner")
        check(ping("ia", "10.9.2.10"), "traffic still flows afterwards")
        stop_clean((a, b))
    finally:
        teardown(nodes, tmp)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
