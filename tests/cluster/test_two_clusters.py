"""Issue 7's tests on TESTING.md's "two clusters" topology (harness
topology "two_clusters"): real peers, instance stand-ins, the EC2 API.

  peer 0  FA   cluster A front-end: --gateway --edge --public-pool
               198.18.0.100-198.18.0.110; makes the cloud
  peer 1  FB   cluster B front-end: --gateway --edge
  peer 2  FA2  cluster A's second front-end: --gateway
  peer 3,4     private hosts of A (10.1.0.0/24 only; zone us-east-1a)
  peer 5,6     private hosts of B (10.2.0.0/24 only; zone us-east-1b)
  outside      a namespace on the public bridge only (198.18.0.200)

Private hosts run --virt-uri test:///default, so their bridge, DHCP and
overlay run without QEMU. An instance stand-in is a namespace on a host's
bridge through a veth with a MAC leased by the host (control socket
"hostnet-lease"), addressed by the host's DHCP (udhcpc), its instance record
written with `mallee admin record put` (as test_secgroups.py does):

  ia  on peer 3 (A), group default     ib  on peer 5 (B), group default
  iw  on peer 6 (B), group "web" (ingress tcp/22 only)

Checked, with timings printed:
  * underlay: a private host of A reaches its front-ends' public addresses
    and nothing of B; front-ends forward nothing between their links;
  * the cloud converges and, watched for 20 s, no peer sees any member
    leave "alive" (members of the other cluster are "never reached");
  * ia <-> ib: ping and TCP both ways through the tunnels; the paths are
    relays (A host via an A front-end, B host via FB) and the front-ends
    count relayed packets;
  * iw: tcp/8080 from ia refused until AuthorizeSecurityGroupIngress (edge
    FA), and refused again after RevokeSecurityGroupIngress (edge FB);
    tcp/22 open throughout;
  * an elastic IP on FA reaches ia from outside, and ia's TCP to outside
    arrives from the elastic IP (SNAT on the front-end);
  * from outside, to the tunnel port of the A front-end that relays ia's
    traffic: relayed packets captured on its private link and sent again
    (replayed), the same with a flipped bit (forged), relay headers naming
    unknown peers, junk, and initiations whose MACs are not under the
    front-end's key (wrong key): the receiving host counts replay/decrypt,
    the front-end relay_refused/short/bad_type/bad_mac, and traffic still
    flows;
  * the A front-end carrying ia's traffic is killed with SIGKILL: ia <-> ib
    resumes through the other A front-end (path shows it), and again after
    the killed one is restarted.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

from cloudtools import (TCP_ECHO_CLIENT, TCP_ECHO_SERVER, TUNNEL_SEND,
                        TUNNEL_SNIFF, boto3_call, put_instance_record)
from harness import Cluster, bounded_wait
from test_hostnet import Guest, UDHCPC_SCRIPT, lease, read_env, sh
from test_secgroups import SERVER, PROBE as PROBE_SG
from test_gateway_nat import ECHO_SERVER, PROBE as PROBE_SRC

PYTHON = sys.executable or "python3"
POOL = "198.18.0.100-198.18.0.110"
EIP = "198.18.0.100"
FA, FB, FA2, HA, HA2, HB, HB2 = range(7)






def log(msg):
    print(f"[two_clusters] {msg}", file=sys.stderr, flush=True)


class TwoClustersTest(unittest.TestCase):

    # -- helpers -----------------------------------------------------------

    def ec2(self, edge, op, **args):
        return boto3_call(self.c, op, i=edge, **args)

    def try_ec2(self, edge, op, **args):
        try:
            return self.ec2(edge, op, **args)
        except AssertionError:
            return None

    def overlay(self, i):
        return self.c.status(i)["self"]["overlay"]

    def ov_peer(self, i, j):
        """Peer i's overlay entry for peer j (or None)."""
        want = self.ids[j]
        return next((x for x in self.overlay(i).get("peers", [])
                     if x["id"] == want), None)

    def key_names(self, i):
        """{first 8 hex of a key: peer name} from peer i's overlay log."""
        out = {}
        for m in re.finditer(r"peer (\S+) \([0-9a-f]+\) at \S+, key "
                             r"([0-9a-f]{8})", self.c.log(i)):
            out[m.group(2)] = m.group(1)
        return out

    def via_name(self, i, j):
        """The name of the gateway peer i's path to peer j goes through,
        "direct", or None."""
        x = self.ov_peer(i, j)
        if not x:
            return None
        path = x["path"]
        if path.startswith("via "):
            return self.key_names(i).get(path[4:], path)
        return path

    def ping(self, ns, ip, count=1, wait=2):
        return sh("ip", "netns", "exec", ns, "busybox", "ping", "-c",
                  str(count), "-W", str(wait), ip, check=False,
                  timeout=30).returncode == 0

    def wait_ping(self, ns, ip, timeout, what):
        t0 = time.monotonic()
        bounded_wait(lambda: self.ping(ns, ip, wait=1), timeout, what,
                     interval=0.1)
        return time.monotonic() - t0

    def tcp(self, client_ns, ip):
        cp = sh("ip", "netns", "exec", client_ns, PYTHON, "-c",
                TCP_ECHO_CLIENT, ip, "300000", "5", "10", timeout=60,
                check=False)
        return cp.returncode == 0 and cp.stdout.startswith("ok")

    def serve(self, ns, script, *args):
        s = subprocess.Popen(["ip", "netns", "exec", ns, PYTHON, "-c",
                              script] + [str(a) for a in args],
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(s)
        self.assertEqual(s.stdout.readline().strip(), "ready")

    def probe(self, ns, ip, port):
        cp = sh("ip", "netns", "exec", ns, PYTHON, "-c", PROBE_SG, ip,
                str(port), timeout=20)
        return cp.stdout.split()[0]

    def probe_src(self, ns, ip, port):
        cp = sh("ip", "netns", "exec", ns, PYTHON, "-c", PROBE_SRC, ip,
                str(port), timeout=20)
        return cp.stdout.strip()

    def instance(self, name, host, groups):
        """A stand-in instance on peer host: lease, namespace, DHCP,
        record. Returns (Guest, lease)."""
        c = self.c
        hexname = {"a": "a", "b": "b", "w": "c"}[name]
        iid = f"i-0{hexname}{os.getpid():015x}"[:19]
        ls = lease(c.peers[host], iid)
        g = Guest(f"mc{c.tag}ng{name}", c.peers[host].ns, "mallee0",
                  ls["mac"])
        c.net.made.append(g.ns)  # deleted with the cluster's namespaces
        self.guests.append(g)
        out = os.path.join(self.tmp, f"{name}.env")
        cp = g.dhcp(out, self.script)
        self.assertEqual(cp.returncode, 0, cp.stdout)
        got = read_env(out)
        self.assertEqual(got["ip"], ls["ip"])
        sh("ip", "-n", g.ns, "link", "set", "eth0", "mtu", got["mtu"])
        put_instance_record(c, {
            "id": iid, "account": self.account, "host": self.ids[host],
            "private_ip": ls["ip"], "state": 16, "instance_type": "t2.micro",
            "groups": [{"id": x, "name": n} for x, n in groups]}, FA)
        return g, ls, iid

    def explain(self):
        c = self.c
        for i in (FA, FB, FA2, HA, HB):
            try:
                print(f"--- peer {i} overlay", json.dumps(self.overlay(i)),
                      file=sys.stderr)
            except Exception as e:  # noqa: BLE001 - diagnostics only
                print(f"--- peer {i}: {e}", file=sys.stderr)
            for cmd in (["ip", "-n", c.peers[i].ns, "route"],
                        ["ip", "-n", c.peers[i].ns, "rule"]):
                print("$", " ".join(cmd), sh(*cmd, check=False).stdout,
                      file=sys.stderr)

    # -- the test ----------------------------------------------------------

    def test_two_clusters(self):
        # Anti-entropy every 10 s (default 30 s): a record that gossip's
        # broadcast does not carry into cluster B (FB is its only way in)
        # arrives with the next push-pull through FB.
        pp = ["--gossip-pushpull-ms", "10000"]
        host = ["--virt-uri", "test:///default", "--log-level", "debug"] + pp
        front = ["--log-level", "debug"] + pp
        args = {FA: front + ["--edge", "--api-tls", "off", "--public-pool",
                             POOL],
                FB: front + ["--edge", "--api-tls", "off"], FA2: front,
                HA: host, HA2: host, HB: host, HB2: host}
        self.procs, self.guests = [], []
        self.tmp = tempfile.mkdtemp(prefix="mallee-two-clusters-")
        self.script = os.path.join(self.tmp, "udhcpc.sh")
        with open(self.script, "w") as f:
            f.write(UDHCPC_SCRIPT)
        os.chmod(self.script, 0o755)
        self.timings = {}
        t0 = time.monotonic()
        try:
            with Cluster(7, topology="two_clusters", peer_args=args) as c:
                self.c = c
                self.timings["start"] = time.monotonic() - t0
                try:
                    self.run_phases()
                except BaseException:
                    self.explain()
                    raise
                finally:
                    for s in self.procs:
                        s.kill()
                        s.wait(timeout=10)
        finally:
            subprocess.run(["rm", "-rf", self.tmp])
            log("timings (s): " + ", ".join(
                f"{k} {v:.2f}" for k, v in self.timings.items()))

    def run_phases(self):
        c = self.c
        self.outside = c.add_outside()
        self.ids = [c.peer_id(i) for i in range(7)]
        self.account = c.admin["account"]
        self.underlay()
        self.converged()
        self.instances()
        self.cross_traffic()
        self.security_group()
        self.bad_packets()
        self.gateway_restart()
        self.elastic_ip()

    def underlay(self):
        c = self.c
        pa, pb = c.peers[HA], c.peers[HB]
        for f in c.fronts():
            fwd = sh("ip", "netns", "exec", c.peers[f].ns, "cat",
                     "/proc/sys/net/ipv4/ip_forward").stdout.strip()
            rules = sh("ip", "netns", "exec", c.peers[f].ns, "nft", "list",
                       "table", "inet", "mcisolate").stdout
            log(f"front-end {f}: ip_forward={fwd} (the overlay turns it on);"
                " eth0<->eth1 forwarding dropped")
            self.assertIn('iifname "eth0" oifname "eth1" drop', rules)
        for f in c.fronts("A"):
            self.assertTrue(self.ping(pa.ns, c.peers[f].public_ip),
                            "a private host of A reaches its front-ends")
        for ip in (pb.private_ip, c.peers[FB].private_ip,
                   c.peers[FB].public_ip, c.peers[FA].private_ip.replace(
                       "10.1.0", "10.2.0")):
            self.assertFalse(self.ping(pa.ns, ip, wait=1),
                             f"a private host of A reaches {ip}")
        self.assertFalse(self.ping(pb.ns, pa.private_ip, wait=1))
        self.assertFalse(self.ping(pb.ns, c.peers[FA].public_ip, wait=1))
        self.assertFalse(self.ping(self.outside, pa.private_ip, wait=1))

    def converged(self):
        c = self.c
        t0 = time.monotonic()
        c.wait_converged(7, timeout=60)
        self.timings["converged"] = time.monotonic() - t0
        flaps = []
        t0 = time.monotonic()
        rounds = 0
        while time.monotonic() - t0 < 20 and rounds < 60:
            rounds += 1
            for i in range(7):
                st = c.status(i)
                for m in st["members"]:
                    if m["state"] != "alive":
                        flaps.append((i, m["name"], m["state"],
                                      round(time.monotonic() - t0, 1)))
            time.sleep(1)
        self.assertEqual(flaps, [], "members left 'alive' while watched")
        st = c.status(HA)
        reached = {m["name"]: m.get("reached") for m in st["members"]}
        log(f"converged in {self.timings['converged']:.2f} s; 20 s without"
            f" a flap ({rounds} rounds); host A1 reached: {reached}")
        if "reached" in st["members"][0]:
            self.assertFalse(reached["p5"])
            self.assertFalse(reached["p1"])
            self.assertTrue(reached["p0"])

    def instances(self):
        c = self.c
        t0 = time.monotonic()
        self.dflt = bounded_wait(lambda: (self.try_ec2(
            FA, "describe_security_groups", GroupNames=["default"]) or
            {}).get("SecurityGroups", [{}])[0].get("GroupId"), 30,
            "edge FA to answer")
        # The outside reaches 9000 on the default group (the elastic IP).
        self.ec2(FA, "authorize_security_group_ingress", GroupId=self.dflt,
                 IpPermissions=[{"IpProtocol": "tcp", "FromPort": 9000,
                                 "ToPort": 9000,
                                 "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        self.web = self.ec2(FA, "create_security_group", GroupName="web",
                            Description="web")["GroupId"]
        self.ec2(FA, "authorize_security_group_ingress", GroupId=self.web,
                 IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22,
                                 "ToPort": 22,
                                 "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        d = [(self.dflt, "default")]
        self.ga, self.la, self.ia = self.instance("a", HA, d)
        self.gb, self.lb, self.ib = self.instance("b", HB, d)
        self.gw, self.lw, self.iw = self.instance("w", HB2,
                                                  [(self.web, "web")])
        self.assertNotEqual(self.la["slice"], self.lb["slice"])
        self.timings["instances"] = time.monotonic() - t0
        # Each host enforces its instance's groups once the records came
        # (the B hosts get them through FB).
        t0 = time.monotonic()
        for h in (HA, HB, HB2):
            bounded_wait(lambda h=h: "applied: 1 local instances" in
                         c.log(h), 45, f"p{h} to apply its instance's "
                         "groups", interval=0.2)
        self.timings["groups applied"] = time.monotonic() - t0
        log(f"instances: a {self.la['ip']} on p3, b {self.lb['ip']} on p5, "
            f"w {self.lw['ip']} on p6")
        self.serve(self.gb.ns, TCP_ECHO_SERVER)
        self.serve(self.ga.ns, TCP_ECHO_SERVER)

    def cross_traffic(self):
        c = self.c
        a, b = self.la["ip"], self.lb["ip"]
        self.timings["ping A->B"] = self.wait_ping(
            self.ga.ns, b, 60, "instance a pings b across the clusters")
        self.timings["ping B->A"] = self.wait_ping(
            self.gb.ns, a, 30, "instance b pings a")
        self.assertTrue(self.ping(self.ga.ns, b, count=3))
        self.assertTrue(self.ping(self.gb.ns, a, count=3))
        t0 = time.monotonic()
        bounded_wait(lambda: self.tcp(self.ga.ns, b), 30, "TCP a -> b",
                     interval=0.5)
        bounded_wait(lambda: self.tcp(self.gb.ns, a), 30, "TCP b -> a",
                     interval=0.5)
        self.timings["tcp both ways"] = time.monotonic() - t0
        pa, pb = self.ov_peer(HA, HB), self.ov_peer(HB, HA)
        va, vb = self.via_name(HA, HB), self.via_name(HB, HA)
        log(f"paths: p3->p5 {pa['path']} ({va}), via {pa['via']}; "
            f"p5->p3 {pb['path']} ({vb}), via {pb['via']}")
        self.assertFalse(pa["direct_ok"])
        self.assertFalse(pb["direct_ok"])
        self.assertIn(va, ("p0", "p2"), "A host's path is an A front-end")
        self.assertEqual(vb, "p1", "B host's path is via FB")
        self.assertEqual(set(pa["via"][:2]), {self.ids[FA], self.ids[FA2]})
        self.assertEqual(pb["via"][0], self.ids[FB])
        self.relay_a = FA if va == "p0" else FA2
        self.other_a = FA2 if self.relay_a == FA else FA
        ctr = {i: self.overlay(i)["counters"] for i in
               (self.relay_a, FB, HA)}
        self.assertGreater(ctr[self.relay_a]["relayed_packets"], 100)
        self.assertGreater(ctr[FB]["relayed_packets"], 100)
        self.assertGreaterEqual(ctr[HA]["handshakes_done"], 1)
        self.assertEqual(ctr[self.relay_a]["handshakes_done"], 0,
                         "the front-end holds no session for relayed "
                         "traffic")

    def security_group(self):
        w = self.lw["ip"]
        self.serve(self.gw.ns, SERVER, 22, 8080)
        t0 = time.monotonic()
        bounded_wait(lambda: self.probe(self.ga.ns, w, 22) == "open", 30,
                     "tcp/22 to w across the clusters", interval=0.5)
        self.timings["w reachable"] = time.monotonic() - t0
        self.assertEqual(self.probe(self.ga.ns, w, 8080), "closed")
        self.assertEqual(self.probe(self.gb.ns, w, 8080), "closed")
        perm = [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                 "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        t0 = time.monotonic()
        self.ec2(FA, "authorize_security_group_ingress", GroupId=self.web,
                 IpPermissions=perm)
        bounded_wait(lambda: self.probe(self.ga.ns, w, 8080) == "open", 20,
                     "8080 to open after Authorize", interval=0.3)
        self.timings["authorize -> open"] = time.monotonic() - t0
        self.assertEqual(self.probe(self.gb.ns, w, 8080), "open")
        # Revoke through the other cluster's edge.
        bounded_wait(lambda: self.try_ec2(FB, "describe_security_groups",
                                          GroupIds=[self.web]), 20,
                     "edge FB to answer")
        t0 = time.monotonic()
        self.ec2(FB, "revoke_security_group_ingress", GroupId=self.web,
                 IpPermissions=perm)
        bounded_wait(lambda: self.probe(self.ga.ns, w, 8080) == "closed",
                     20, "8080 to close after Revoke", interval=0.3)
        self.timings["revoke -> closed"] = time.monotonic() - t0
        self.assertEqual(self.probe(self.ga.ns, w, 22), "open")
        for i in (HB2,):
            self.assertNotIn("ruleset refused", self.c.log(i))

    def elastic_ip(self):
        c = self.c
        out_ip = c.net.hosts[self.outside][0][2].split("/")[0]
        self.serve(self.ga.ns, ECHO_SERVER, 9000)
        self.serve(self.outside, ECHO_SERVER, 9001)
        og = self.overlay(HA)["outside_gateway"]
        log(f"p3's outside gateway: {og} (p0 {self.ids[FA]}, p2 "
            f"{self.ids[FA2]})")
        alloc = self.ec2(FA, "allocate_address", Domain="vpc")
        self.assertEqual(alloc["PublicIp"], EIP)
        bounded_wait(lambda: (self.try_ec2(
            FA, "describe_instances", InstanceIds=[self.ia]) or {}).get(
            "Reservations"), 20, "ia at the edge")
        t0 = time.monotonic()
        assoc = self.ec2(FA, "associate_address",
                         AllocationId=alloc["AllocationId"],
                         InstanceId=self.ia)
        got = bounded_wait(lambda: (lambda r: r if r.startswith("saw")
                                    else None)(self.probe_src(
                                        self.outside, EIP, 9000)),
                           30, "ia through its elastic IP from outside "
                           f"(p3's outside gateway is {og}; FA, which holds "
                           f"the address, is {self.ids[FA]})",
                           interval=0.3)
        self.timings["EIP reachable"] = time.monotonic() - t0
        self.assertEqual(got, f"saw {out_ip}")
        t0 = time.monotonic()
        src = bounded_wait(lambda: (lambda r: r if r.startswith("saw")
                                    else None)(self.probe_src(
                                        self.ga.ns, out_ip, 9001)),
                           20, "ia's TCP to outside", interval=0.3)
        self.timings["outbound to outside"] = time.monotonic() - t0
        log(f"outbound from ia arrives from {src}")
        self.assertEqual(src, f"saw {EIP}", "SNAT to the elastic IP")
        # The other cluster's edge learns the association by gossip,
        # across the front-ends: eventually, not at once.
        def public_ip_at_fb():
            r = self.ec2(FB, "describe_instances", InstanceIds=[self.ia])
            return r["Reservations"][0]["Instances"][0].get(
                "PublicIpAddress")
        bounded_wait(lambda: public_ip_at_fb() == EIP, 10,
                     "the association at the other cluster's edge",
                     interval=0.5)
        self.assertEqual(public_ip_at_fb(), EIP)
        self.ec2(FA, "disassociate_address",
                 AssociationId=assoc["AssociationId"])
        bounded_wait(lambda: self.probe_src(self.outside, EIP, 9000)
                     .startswith("closed"), 15, "the EIP to stop forwarding",
                     interval=0.3)
        self.ec2(FA, "release_address", AllocationId=alloc["AllocationId"])

    def bad_packets(self):
        c = self.c
        g = c.peers[self.relay_a]
        sniff = subprocess.Popen(["ip", "netns", "exec", g.ns, PYTHON, "-c",
                                  TUNNEL_SNIFF, "eth0", "src",
                                  c.peers[HA].private_ip, "relay"],
                                 stdout=subprocess.PIPE, text=True)
        self.procs.append(sniff)
        time.sleep(0.5)
        self.ping(self.ga.ns, self.lb["ip"], count=8, wait=2)
        captured = sniff.communicate(timeout=20)[0].split()
        self.assertEqual(len(captured), 5, "captured 5 relayed packets")
        forged = []
        for h in captured:
            p = bytearray.fromhex(h)
            p[20 + 14] ^= 0x01  # a counter not seen yet
            p[20 + 40] ^= 0x20  # and a flipped ciphertext bit
            forged.append(p.hex())
        unknown = "77" * 8
        refused = ["0504" "0000" + unknown + captured[0][24:40] +
                   captured[0][40:],
                   "0504" "0000" + captured[0][8:24] + unknown +
                   captured[0][40:],
                   "0504" "0100" + captured[0][8:]]
        junk = ["01", "0401ffff" + "00" * 40, "09000000" + "00" * 40]
        names = ("replay", "decrypt", "relay_refused", "short", "bad_type",
                 "bad_mac")

        def drops():
            return {i: self.overlay(i)["counters"]["dropped"]
                    for i in (g.index, HB)}
        before = drops()
        sh("ip", "netns", "exec", self.outside, PYTHON, "-c", TUNNEL_SEND,
           g.public_ip, *captured, *forged, *refused,
           *junk, timeout=30)
        # Initiations of the right size whose MACs are not under the
        # front-end's key (what an initiation made for a wrong key is).
        wrong = ["01000000" + os.urandom(128).hex() for _ in range(3)]
        sh("ip", "netns", "exec", self.outside, PYTHON, "-c", TUNNEL_SEND,
           g.public_ip, *wrong, timeout=30)
        time.sleep(0.5)
        after = drops()
        grew = {i: {k: after[i][k] - before[i][k] for k in names
                    if after[i][k] != before[i][k]} for i in after}
        log(f"drops at front-end p{g.index}: {grew[g.index]}; at p5: "
            f"{grew[HB]}")
        self.assertGreaterEqual(grew[HB].get("replay", 0), 5)
        self.assertGreaterEqual(grew[HB].get("decrypt", 0), 5)
        self.assertGreaterEqual(grew[g.index].get("relay_refused", 0), 3)
        self.assertGreaterEqual(grew[g.index].get("short", 0), 1)
        self.assertGreaterEqual(grew[g.index].get("bad_type", 0), 1)
        self.assertGreaterEqual(grew[g.index].get("bad_mac", 0), 1)
        self.assertTrue(self.ping(self.ga.ns, self.lb["ip"], count=2))

    def gateway_restart(self):
        c = self.c
        k, other = self.relay_a, self.other_a
        a, b = self.la["ip"], self.lb["ip"]
        log(f"killing front-end p{k} (carries p3's traffic); p{other} "
            "takes over")
        t0 = time.monotonic()
        c.kill9(k)
        back = self.wait_ping(self.ga.ns, b, 45,
                              "a -> b after the front-end's death")
        self.timings["failover a->b"] = time.monotonic() - t0
        self.assertTrue(self.wait_ping(self.gb.ns, a, 30, "b -> a") >= 0)
        self.timings["failover b->a"] = time.monotonic() - t0
        bounded_wait(lambda: self.via_name(HA, HB) == f"p{other}", 15,
                     f"p3's path to p5 via p{other}", interval=0.5)
        self.assertTrue(self.tcp(self.ga.ns, b))
        self.assertTrue(self.tcp(self.gb.ns, a))
        self.assertGreater(self.overlay(other)["counters"]
                           ["relayed_packets"], 0)
        log(f"failover: a->b back after {back:.2f} s, path p3->p5 "
            f"{self.via_name(HA, HB)}, p5->p3 {self.via_name(HB, HA)}")
        t0 = time.monotonic()
        c.start(k)
        self.timings["restart ready"] = time.monotonic() - t0
        bounded_wait(lambda: self.ov_peer(HA, k) is not None, 30,
                     f"p3 to have p{k} again", interval=0.5)
        # Traffic through the restart: a ping each 0.2 s for 15 s.
        lost, sent = 0, 0
        t1 = time.monotonic()
        while time.monotonic() - t1 < 15 and sent < 100:
            sent += 1
            lost += not self.ping(self.ga.ns, b, wait=1)
            time.sleep(0.2)
        self.timings["after restart"] = time.monotonic() - t0
        log(f"after p{k}'s restart: {sent - lost}/{sent} pings a->b "
            f"answered; path p3->p5 {self.via_name(HA, HB)}")
        self.assertTrue(self.ping(self.ga.ns, b, count=3))
        self.assertTrue(self.ping(self.gb.ns, a, count=3))
        self.assertTrue(self.tcp(self.ga.ns, b))
        self.assertLessEqual(lost, 3, "pings lost after the restart")


if __name__ == "__main__":
    unittest.main()
