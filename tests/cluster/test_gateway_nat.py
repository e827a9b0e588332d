"""Elastic IPs and SNAT on a gateway peer, through the EC2 API.

Topology (flat, plus a "public" bridge in the hub namespace):

  peer 0  --gateway --edge --public-pool 198.18.0.100-198.18.0.110
          eth0 10.77.0.10/24 on br0 (the cloud's network)
          eth1 198.18.0.1/24 on pub0 (the public network)
  outside eth0 198.18.0.2/24 on pub0: no route into the cloud at all
  instance  a network namespace on a host's bridge with a leased MAC and
          address (ctl "hostnet-lease"), its instance record written with
          `mallee admin record put`, as test_secgroups.py does.

Where the instance lives depends on the overlay: when peer/overlay.c is in
the tree and the gateway's status shows a running "overlay", a second peer
(peer 1, a plain host on br0) holds it, so the path is outside -> gateway
DNAT -> overlay -> host -> instance. Otherwise it sits on the gateway's own
bridge (the gateway hosts it) and the overlay is off; the test says which.

Checked: AllocateAddress gives the pool's first address; after
AssociateAddress the public address is on eth1, TCP from outside reaches
the instance's server, which sees the client's own address (DNAT keeps
the source); the instance's TCP to outside arrives from the public
address (SNAT); hairpin: a second instance without an elastic IP reaches
the first through its elastic IP (seen as from the gateway's public
address) and the first reaches itself through it (seen as from its
elastic IP); DescribeInstances shows ipAddress; DisassociateAddress
makes it unreachable again (and outbound traffic is masqueraded with the
gateway's address); ReleaseAddress leaves no address.
"""

import os
import subprocess
import sys
import time
import unittest

from cloudtools import boto3_call, put_instance_record
from harness import Cluster, bounded_wait
from test_hostnet import Guest, lease, sh

PYTHON = sys.executable or "python3"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))

POOL = "198.18.0.100-198.18.0.110"
GW_PUBLIC = "198.18.0.1"
OUTSIDE = "198.18.0.2"

# Each connection is answered with the address it came from, then closed.
ECHO_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, addr = s.accept()
    c.sendall(addr[0].encode())
    c.close()
"""

PROBE = r"""
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    s.settimeout(1.5)
    print("saw", s.recv(64).decode() or "-")
except OSError as e:
    print("closed", e)
"""


def overlay_in_tree():
    return os.path.exists(os.path.join(REPO, "peer", "overlay.c"))


def peer_flags():
    cp = subprocess.run([os.environ.get("MALLEE_BIN") or os.path.join(
        REPO, "build", "mallee"), "peer", "--help"], capture_output=True,
        text=True, timeout=10)
    return cp.stdout


class GatewayNatTest(unittest.TestCase):

    def try_ec2(self, c, op, **args):
        try:
            return boto3_call(c, op, **args)
        except AssertionError as e:
            print(e, file=sys.stderr)
            return None

    def probe(self, ns, ip, port):
        cp = sh("ip", "netns", "exec", ns, PYTHON, "-c", PROBE, ip, str(port),
                timeout=20)
        return cp.stdout.strip()

    def serve(self, ns, port):
        s = subprocess.Popen(["ip", "netns", "exec", ns, PYTHON, "-c",
                              ECHO_SERVER, str(port)],
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(s)
        self.assertEqual(s.stdout.readline().strip(), "ready")

    def public_addrs(self, c):
        out = sh("ip", "-n", c.peers[0].ns, "-o", "-4", "addr", "show",
                 "dev", "eth1").stdout
        return [w.split("/")[0] for w in out.split() if w.startswith("198.")]

    def test_elastic_ip_and_snat(self):
        pid = os.getpid()
        self.procs, guests = [], []
        flags = peer_flags()
        # MALLEE_TEST_NO_OVERLAY=1 forces the one-peer layout.
        want_overlay = (overlay_in_tree() and "--overlay" in flags and
                        not os.environ.get("MALLEE_TEST_NO_OVERLAY"))
        gw_args = ["--gateway", "--public-pool", POOL, "--edge",
                   "--api-tls", "off", "--virt-uri", "none",
                   "--log-level", "debug"]
        host_args = ["--virt-uri", "none", "--log-level", "debug"]
        if "--overlay" in flags and not want_overlay:
            gw_args += ["--overlay", "off"]
        n = 2 if want_overlay else 1
        with Cluster(n, topology="flat", start=False,
                     peer_args={0: gw_args, 1: host_args}) as c:
            try:
                self.run_test(c, pid, guests, want_overlay)
            finally:
                for s in self.procs:
                    s.kill()
                    s.wait(timeout=10)
                    s.stdout.close()
                for g in guests:
                    g.delete()

    def add_public(self, c):
        """pub0 in the hub; the gateway's eth1 on it; the outside host."""
        net = c.net
        net.add_bridge("pub0")
        ns = c.peers[0].ns
        sh("ip", "-n", ns, "link", "add", "eth1", "type", "veth", "peer",
           "name", "h0e1", "netns", net.hub)
        sh("ip", "-n", net.hub, "link", "set", "h0e1", "master", "pub0",
           "up")
        sh("ip", "-n", ns, "addr", "add", f"{GW_PUBLIC}/24", "dev", "eth1")
        sh("ip", "-n", ns, "link", "set", "eth1", "up")
        return net.add_host(99, [("pub0", f"{OUTSIDE}/24")])

    def instance(self, c, host_i, account, group, iid, tag, guests):
        """A namespace on host_i's bridge with a leased address and a
        default route through the host, and its instance record."""
        host = c.peers[host_i]
        ls = lease(host, iid)
        g = Guest(f"mgn{os.getpid()}{tag}", host.ns, "mallee0", ls["mac"])
        guests.append(g)
        router = ls["slice"][:-1] + "1"
        sh("ip", "-n", g.ns, "addr", "add", f"{ls['ip']}/24", "dev", "eth0")
        sh("ip", "-n", g.ns, "route", "add", "default", "via", router)
        put_instance_record(c, {
            "id": iid, "account": account, "host": c.peer_id(host_i),
            "private_ip": ls["ip"], "state": 16, "instance_type": "t2.micro",
            "mac": ls["mac"], "groups": [{"id": group, "name": "default"}]})
        return g, ls

    def run_test(self, c, pid, guests, want_overlay):
        outside = self.add_public(c)
        c.start_all()
        gw = c.peers[0]
        bounded_wait(lambda: "public pool 198.18.0.100-198.18.0.110" in
                     c.log(0), 20, "the pool record")
        self.assertIn("NAT for", c.log(0))
        host_i = 0
        if want_overlay:
            st = c.status(0)["self"]
            if not st.get("overlay", {}).get("running"):
                want_overlay = False
            else:
                host_i = 1
        where = ("on host peer 1, through the overlay" if want_overlay else
                 "on the gateway's own bridge (overlay not ready, or "
                 "MALLEE_TEST_NO_OVERLAY)")
        print(f"gateway NAT test: the instance is {where}", file=sys.stderr)
        host = c.peers[host_i]
        account = c.admin["account"]

        dflt = bounded_wait(lambda: (self.try_ec2(
            c, "describe_security_groups", GroupNames=["default"]) or
            {}).get("SecurityGroups", [{}])[0].get("GroupId"), 30,
            "the edge to answer")
        boto3_call(c, "authorize_security_group_ingress", GroupId=dflt,
                   IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8080,
                                   "ToPort": 8080,
                                   "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

        iid = f"i-0e{pid:015x}"[:19]
        g, ls = self.instance(c, host_i, account, dflt, iid, "i", guests)
        # A second instance, never given an elastic IP.
        g2, _ = self.instance(c, host_i, account, dflt,
                              f"i-0f{pid:015x}"[:19], "j", guests)
        self.serve(g.ns, 8080)
        self.serve(outside, 9000)

        # Before any elastic IP: outbound is masqueraded, inbound has no
        # address to reach.
        bounded_wait(lambda: self.probe(g.ns, OUTSIDE, 9000) ==
                     f"saw {GW_PUBLIC}", 20, "masqueraded outbound",
                     interval=0.5)

        alloc = boto3_call(c, "allocate_address", Domain="vpc")
        self.assertEqual(alloc["PublicIp"], "198.18.0.100")
        eip = alloc["PublicIp"]
        bounded_wait(lambda: (self.try_ec2(
            c, "describe_instances", InstanceIds=[iid]) or {}).get(
            "Reservations"), 20, "the instance record at the edge")
        assoc = boto3_call(c, "associate_address",
                           AllocationId=alloc["AllocationId"], InstanceId=iid)
        t0 = time.monotonic()
        bounded_wait(lambda: f"elastic IP {eip} forwarded" in c.log(0), 10,
                     "the gateway to forward the address")
        self.assertIn(eip, self.public_addrs(c))
        got = bounded_wait(lambda: (lambda r: r if r.startswith("saw")
                                    else None)(self.probe(outside, eip,
                                                          8080)),
                           15, "the instance through its elastic IP",
                           interval=0.3)
        took = time.monotonic() - t0
        self.assertEqual(got, f"saw {OUTSIDE}")  # DNAT keeps the source
        self.assertEqual(self.probe(g.ns, OUTSIDE, 9000), f"saw {eip}")
        rules = sh("ip", "netns", "exec", gw.ns, "nft", "list", "table",
                   "ip", "mallee-nat").stdout
        self.assertIn(f"{eip} : {ls['ip']}", rules)
        r = boto3_call(c, "describe_instances", InstanceIds=[iid])
        inst = r["Reservations"][0]["Instances"][0]
        self.assertEqual(inst.get("PublicIpAddress"), eip)
        print(f"elastic IP reachable {took:.2f} s after AssociateAddress",
              file=sys.stderr)

        # Hairpin: from inside the cloud to an elastic IP.
        self.assertEqual(self.probe(g2.ns, eip, 8080), f"saw {GW_PUBLIC}")
        self.assertEqual(self.probe(g.ns, eip, 8080), f"saw {eip}")

        boto3_call(c, "disassociate_address",
                   AssociationId=assoc["AssociationId"])
        bounded_wait(lambda: f"elastic IP {eip} no longer forwarded" in
                     c.log(0), 10, "the gateway to stop forwarding")
        bounded_wait(lambda: eip not in self.public_addrs(c), 5,
                     "the address off eth1")
        self.assertTrue(self.probe(outside, eip, 8080).startswith("closed"))
        self.assertEqual(self.probe(g.ns, OUTSIDE, 9000), f"saw {GW_PUBLIC}")
        r = boto3_call(c, "describe_instances", InstanceIds=[iid])
        self.assertNotIn("PublicIpAddress",
                         r["Reservations"][0]["Instances"][0])

        boto3_call(c, "release_address", AllocationId=alloc["AllocationId"])
        self.assertEqual(boto3_call(c, "describe_addresses")["Addresses"], [])
        self.assertNotIn("ruleset refused", c.log(0))
        for line in c.log(0).splitlines():
            if " gateway: " in line:
                print(line, file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
