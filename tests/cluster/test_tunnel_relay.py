#!/usr/bin/env python3
"""Relays through gateways and failover between them, with ovl-node.

Topology (TESTING.md, "two clusters"): a hub namespace holds three bridges.
Cluster A's private network 10.1.0.0/24 has host A1 (private only) and the
gateways GA and GA2; cluster B's 10.2.0.0/24 has host B1 (private only) and
the gateway GB; GA, GA2 and GB also sit on the "public" 198.18.0.0/24, with
an attacker C. The overlay addresses sit on the TUNs: 10.9.1.1 on A1 and
10.9.2.1 on B1.

No gateway reaches both private hosts, so packets go through a chain:
A1 -> GA -> GB -> B1. A1's paths to B1 are "via GA, then GA2"; GA's and
GA2's path to B1 is "via GB"; B1's to A1 is "via GB"; GB's to A1 is "via
GA, then GA2" and it learns which from where A1's packets come.

Checks: ping and a 2 MiB TCP echo A1 <-> B1 through the chain, the paths
each side reports, relay counters; GA killed: traffic resumes via GA2
within 10 s; packets captured at GB and sent again from C (replayed), with
a flipped byte (forged), are relayed by GB (which cannot tell) and dropped
by B1; relay headers naming peers GB does not know, or malformed, are
refused and counted at GB.
"""
import hashlib
import os
import signal
import sys
import tempfile
import time

from cloudtools import TUNNEL_SEND
from test_tunnel import (Node, capture_while_pinging, check, failures,
                         ovl_node_path, ping, stop_clean, teardown,
                         tcp_transfer)

import test_tunnel

TAG = "ovr%d" % (os.getpid() % 100000)
HOSTS = ("a1", "ga", "ga2", "b1", "gb", "c")
NS = {k: TAG + k for k in ("hub",) + HOSTS}
test_tunnel.NS = NS  # Node and sh run in our namespaces
sh = test_tunnel.sh

# host -> [(bridge, address)]
NETS = {
    "a1": [("bra", "10.1.0.1")],
    "ga": [("bra", "10.1.0.2"), ("brp", "198.18.0.2")],
    "ga2": [("bra", "10.1.0.3"), ("brp", "198.18.0.3")],
    "b1": [("brb", "10.2.0.1")],
    "gb": [("brb", "10.2.0.2"), ("brp", "198.18.0.4")],
    "c": [("brp", "198.18.0.9")],
}


def build(tmp):
    for ns in NS.values():
        sh("ip", "netns", "add", ns)
    for k in NS:
        sh("ip", "link", "set", "lo", "up", ns=k)
    for br in ("bra", "brb", "brp"):
        sh("ip", "link", "add", br, "type", "bridge", ns="hub")
        sh("ip", "link", "set", br, "up", ns="hub")
    for h, nets in NETS.items():
        for i, (br, addr) in enumerate(nets):
            outer = "%s%d" % (h, i)
            sh("ip", "link", "add", outer, "netns", NS["hub"], "type",
               "veth", "peer", "name", "eth%d" % i, "netns", NS[h])
            sh("ip", "link", "set", outer, "master", br, "up", ns="hub")
            mask = "/24"
            sh("ip", "addr", "add", addr + mask, "dev", "eth%d" % i, ns=h)
            sh("ip", "link", "set", "eth%d" % i, "up", ns=h)
    keys = {}
    for h in ("a1", "ga", "ga2", "b1", "gb", "x"):
        path = os.path.join(tmp, h + ".key")
        with open(path, "w") as f:
            f.write(sh(ovl_node_path(), "genkey").stdout)
        keys[h] = (path, sh(ovl_node_path(), "pubkey", path).stdout.strip())
    return keys


def peer_id(pk_hex):
    return hashlib.blake2b(bytes.fromhex(pk_hex),
                           digest_size=32).digest()[:8]


def node(h, keys, listen, peers, relay=False, address=None):
    args = ["--key", keys[h][0], "--listen", listen, "--ifname", "ovl0"]
    if address:
        args += ["--address", address, "--route", "10.9.0.0/16"]
    if relay:
        args.append("--relay")
    for p in peers:
        args += ["--peer", p]
    return Node(h, args)


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 0
    tmp = tempfile.mkdtemp(prefix=TAG)
    nodes = []
    try:
        keys = build(tmp)
        pk = {h: keys[h][1] for h in keys}
        gw = "%s@%s:7701="
        a1 = node("a1", keys, "10.1.0.1:7701", [
            gw % (pk["ga"], "10.1.0.2"), gw % (pk["ga2"], "10.1.0.3"),
            "%s@-=10.9.2.0/24;via=%s,%s" % (pk["b1"], pk["ga"], pk["ga2"])],
            address="10.9.1.1/32")
        b1 = node("b1", keys, "10.2.0.1:7701", [
            gw % (pk["gb"], "10.2.0.2"),
            "%s@-=10.9.1.0/24;via=%s" % (pk["a1"], pk["gb"])],
            address="10.9.2.1/32")
        ga_peers = [gw % (pk["a1"], "10.1.0.1"),
                    gw % (pk["gb"], "198.18.0.4"),
                    "%s@-=;via=%s" % (pk["b1"], pk["gb"])]
        ga = node("ga", keys, "0.0.0.0:7701", ga_peers, relay=True)
        ga2 = node("ga2", keys, "0.0.0.0:7701", ga_peers, relay=True)
        gb = node("gb", keys, "0.0.0.0:7701", [
            gw % (pk["b1"], "10.2.0.1"), gw % (pk["ga"], "198.18.0.2"),
            gw % (pk["ga2"], "198.18.0.3"),
            "%s@-=;via=%s,%s" % (pk["a1"], pk["ga"], pk["ga2"])],
            relay=True)
        nodes += [a1, b1, ga, ga2, gb]
        check(a1.ready["mtu"] == 1420, "overlay MTU 1420")
        check(not ping("a1", "10.2.0.1", count=1, extra=("-W", "1")),
              "A1 cannot reach B1's underlay address")

        ok = any(ping("a1", "10.9.2.1", count=1) for _ in range(10))
        check(ok, "A1 pings B1 through GA and GB")
        check(ping("b1", "10.9.1.1"), "and B1 pings A1")
        check(tcp_transfer("a1", "b1", "10.9.2.1") == "True 2097152",
              "2 MiB over TCP echoed intact through two gateways")
        ca, cb = a1.counters(), b1.counters()
        cga, cgb, cga2 = ga.counters(), gb.counters(), ga2.counters()
        print("paths: a1", ca["paths"], "b1", cb["paths"], "gb",
              cgb["paths"])
        check(ca["paths"].get(pk["b1"][:8]) == "via " + pk["ga"][:8],
              "A1's path to B1 is via GA")
        check(cb["paths"].get(pk["a1"][:8]) == "via " + pk["gb"][:8],
              "B1's path to A1 is via GB")
        check(cgb["paths"].get(pk["a1"][:8]) == "via " + pk["ga"][:8],
              "GB's path to A1 is via GA")
        check(cga["relayed_packets"] > 1000 and cgb["relayed_packets"] > 1000,
              "GA and GB relayed the traffic (%d, %d)" %
              (cga["relayed_packets"], cgb["relayed_packets"]))
        check(cga2["relayed_packets"] == 0, "GA2 idle while GA is up")
        check(cga["handshakes_done"] == 0 and cgb["handshakes_done"] == 0,
              "the gateways hold no session for the relayed traffic")

        # Kill GA; A1 keeps pinging; B1 must answer again within 10 s.
        ga.p.send_signal(signal.SIGKILL)
        ga.p.wait()
        t0 = time.time()
        back = None
        while time.time() - t0 < 20:
            if ping("a1", "10.9.2.1", count=1, extra=("-W", "1")):
                back = time.time() - t0
                break
        print("traffic back after %s s" % (None if back is None
                                           else round(back, 2)))
        check(back is not None and back <= 10,
              "after GA dies, traffic resumes via GA2 within 10 s")
        ca, cgb, cga2 = a1.counters(), gb.counters(), ga2.counters()
        check(ca["paths"].get(pk["b1"][:8]) == "via " + pk["ga2"][:8],
              "A1's path to B1 is now via GA2")
        check(cgb["paths"].get(pk["a1"][:8]) == "via " + pk["ga2"][:8],
              "GB learned A1 is now via GA2")
        check(cga2["relayed_packets"] > 0, "GA2 relays")
        check(ca["path_changes"] >= 1, "A1 counted the path change")
        check(ping("b1", "10.9.1.1"), "B1 pings A1 via GB and GA2")
        check(tcp_transfer("a1", "b1", "10.9.2.1") == "True 2097152",
              "2 MiB over TCP echoed intact via GA2")

        # Capture A1's relayed transport packets arriving at GB.
        captured = capture_while_pinging("gb", "eth1", "198.18.0.4", "relay",
                                         "a1", "10.9.2.1")
        check(len(captured) == 5, "captured 5 relayed transport packets")
        forged = []
        for h in captured:
            p = bytearray.fromhex(h)
            p[20 + 14] ^= 0x01  # a counter not seen yet
            p[20 + 40] ^= 0x20  # and a flipped ciphertext bit
            forged.append(p.hex())
        unknown = peer_id(pk["x"])
        refused = [
            # destination not in GB's table
            ("0504" "0000" + unknown.hex() + peer_id(pk["a1"]).hex() +
             captured[0][40:]),
            # source not in GB's table
            ("0504" "0000" + peer_id(pk["b1"]).hex() + unknown.hex() +
             captured[0][40:]),
            # hops spent
            "0500" "0000" + captured[0][8:],
            # malformed: nonzero reserved byte, nested relay, too short
            "0504" "0100" + captured[0][8:],
            captured[0][:40] + captured[0],
            "0504",
        ]
        before = {n: x.counters() for n, x in (("b1", b1), ("gb", gb))}
        sh(sys.executable, "-c", TUNNEL_SEND, "198.18.0.4", *captured,
           *forged, *refused,
           ns="c")
        time.sleep(0.5)
        after = {n: x.counters() for n, x in (("b1", b1), ("gb", gb))}

        def grew(n, key, reason=None):
            a, b = after[n], before[n]
            if reason:
                a, b = a["drops"], b["drops"]
                key = reason
            return a[key] - b[key]

        print("B1 drops:", {k: v - before["b1"]["drops"][k] for k, v in
                            after["b1"]["drops"].items()
                            if v != before["b1"]["drops"][k]})
        print("GB drops:", {k: v - before["gb"]["drops"][k] for k, v in
                            after["gb"]["drops"].items()
                            if v != before["gb"]["drops"][k]})
        check(grew("gb", "relayed_packets") >= 10,
              "GB relayed the 10 injected packets (it cannot read them)")
        check(grew("b1", None, "replay") >= 5,
              "B1 dropped the 5 replayed packets as replay")
        check(grew("b1", None, "decrypt") >= 5,
              "B1 dropped the 5 forged packets as decrypt")
        check(grew("gb", None, "relay_refused") >= len(refused),
              "GB refused relay headers for unknown peers, spent or "
              "malformed (%d)" % grew("gb", None, "relay_refused"))
        check(after["gb"]["paths"].get(pk["a1"][:8]) ==
              "via " + pk["ga2"][:8],
              "injected packets did not move GB's path to A1")
        check(ping("a1", "10.9.2.1"), "traffic still flows afterwards")
        stop_clean((a1, b1, ga2, gb))
    finally:
        teardown(nodes, tmp)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
