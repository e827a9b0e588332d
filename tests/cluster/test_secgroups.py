"""Security groups enforced with nftables on the host: one peer (flat
topology, --edge, --virt-uri none) with three "instances", each a network
namespace on the peer's bridge through a veth with its leased MAC and
address (the hidden ctl command "hostnet-lease"). Their instance records
are written directly (`mallee admin record put`), naming the leased
addresses and their groups; the groups and their rules are made through
the EC2 API with boto3, the real path.

  A  in "web": ingress tcp/22 from 0.0.0.0/0 (and the default egress)
  B  in the default group
  C  in the default group

B reaches A on 22 but not on 8080; A does not reach B (the default group
admits only its own members); C reaches B. AuthorizeSecurityGroupIngress
for 8080 opens it within seconds, RevokeSecurityGroupIngress closes it
again.

The guests' host ends are named as the peer names instance taps, and
their records carry their MACs, so the anti-spoofing guard covers them:
C reaches B with UDP, but A sending as C (C's address, A's MAC) does not,
though B's group would admit C; the guard's counter shows the drop.

Then B's address changes hands: B is terminated, its lease released and
given to a new instance D in "web" (the same address, the same
namespace). A UDP flow C had with B (C and B share the default group)
must not let C into D, whom "web" admits on tcp/22 only: the host forgets
an address's tracked connections when its lease changes hands."""

import ipaddress
import os
import re
import select
import subprocess
import sys
import time
import unittest

from cloudtools import boto3_call, put_instance_record
from harness import Cluster, bounded_wait
from test_hostnet import Guest, ctl, lease, sh

PYTHON = sys.executable or "python3"


# Listens on the given ports; each connection gets "hi" and is closed.
SERVER = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        c.sendall(b"hi")
        c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Echoes UDP datagrams on the given port.
UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(2048)
    s.sendto(data, addr)
"""

# Prints the source and payload of each UDP datagram on the given port.
UDP_SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(2048)
    print("got", addr[0], data.decode(errors="replace"), flush=True)
"""

# One datagram from the given source address.
UDP_SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.sendto(sys.argv[4].encode(), (sys.argv[2], int(sys.argv[3])))
"""

# One datagram from a fixed source port (the same flow every time).
UDP_PROBE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 40999))
s.settimeout(1.5)
s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
try:
    print("echo" if s.recv(16) == b"ping" else "odd")
except OSError:
    print("silent")
"""

PROBE = r"""
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    print("open" if s.recv(2) == b"hi" else "odd")
except OSError as e:
    print("closed", e)
"""


class SecurityGroupTest(unittest.TestCase):

    def probe(self, guest, ip, port):
        cp = sh("ip", "netns", "exec", guest.ns, PYTHON, "-c", PROBE, ip,
                str(port), timeout=20)
        return cp.stdout.split()[0]

    def udp_probe(self, guest, ip, port):
        cp = sh("ip", "netns", "exec", guest.ns, PYTHON, "-c", UDP_PROBE,
                ip, str(port), timeout=20)
        return cp.stdout.split()[0]

    def next_line(self, proc, timeout):
        """The sink's next line, or None after timeout seconds."""
        r, _, _ = select.select([proc.stdout], [], [], timeout)
        return proc.stdout.readline().strip() if r else None

    def put_instance(self, c, host, account, iid, ip, mac, groups,
                     state=16):
        put_instance_record(c, {
            "id": iid, "account": account, "host": host, "private_ip": ip,
            "mac": mac, "state": state,
            "groups": [{"id": g, "name": n} for g, n in groups]})

    def test_ingress_authorize_revoke(self):
        pid = os.getpid()
        guests, servers = [], []
        args = ["--virt-uri", "none", "--edge", "--api-tls", "off",
                "--log-level", "debug"]
        with Cluster(1, topology="flat", peer_args=args) as c:
            try:
                p0 = c.peers[0]
                host = c.peer_id(0)
                account = c.admin["account"]
                # The edge serves once the cloud's CA record is in.
                dflt = bounded_wait(lambda: self.try_default(c), 30,
                                    "the edge to answer")
                web = boto3_call(c, "create_security_group", GroupName="web",
                                 Description="web")["GroupId"]
                ssh = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
                boto3_call(c, "authorize_security_group_ingress", GroupId=web,
                           IpPermissions=ssh)

                ids = {k: f"i-0{k}{pid:015x}"[:19] for k in "abcd"}
                leases = {k: lease(p0, ids[k]) for k in "abc"}
                ip = {k: leases[k]["ip"] for k in "abc"}
                g = {}
                for k in "abc":
                    tap = "mlv%08x" % int(ipaddress.IPv4Address(ip[k]))
                    g[k] = Guest(f"msg{pid}{k}", p0.ns, "mallee0",
                                 leases[k]["mac"], hostend=tap)
                    guests.append(g[k])
                    sh("ip", "-n", g[k].ns, "addr", "add",
                       f"{ip[k]}/24", "dev", "eth0")
                groups = {"a": [(web, "web")], "b": [(dflt, "default")],
                          "c": [(dflt, "default")]}
                for k in "abc":
                    self.put_instance(c, host, account, ids[k], ip[k],
                                      leases[k]["mac"], groups[k])
                for k in "ab":
                    s = subprocess.Popen(
                        ["ip", "netns", "exec", g[k].ns, PYTHON, "-c",
                         SERVER, "22", "8080"], stdout=subprocess.PIPE,
                        text=True)
                    servers.append(s)
                    self.assertEqual(s.stdout.readline().strip(), "ready")

                bounded_wait(lambda: "3 taps guarded" in c.log(0), 20,
                             "the ruleset applied")
                rules = sh("ip", "netns", "exec", p0.ns, "nft", "list",
                           "table", "inet", "mallee").stdout
                self.assertIn("tcp dport 22 accept", rules)

                # Only what the groups allow.
                self.assertEqual(self.probe(g["b"], ip["a"], 22), "open")
                self.assertEqual(self.probe(g["b"], ip["a"], 8080), "closed")
                self.assertEqual(self.probe(g["a"], ip["b"], 8080), "closed")
                self.assertEqual(self.probe(g["c"], ip["b"], 8080), "open")

                # A as C: the guard drops what B's group would admit.
                sink = subprocess.Popen(
                    ["ip", "netns", "exec", g["b"].ns, PYTHON, "-c",
                     UDP_SINK, "9997"], stdout=subprocess.PIPE, text=True)
                servers.append(sink)
                self.assertEqual(sink.stdout.readline().strip(), "ready")
                sh("ip", "netns", "exec", g["c"].ns, PYTHON, "-c", UDP_SEND,
                   ip["c"], ip["b"], "9997", "from-c")
                self.assertEqual(self.next_line(sink, 5),
                                 f"got {ip['c']} from-c")
                sh("ip", "-n", g["a"].ns, "addr", "add", f"{ip['c']}/32",
                   "dev", "eth0")
                sh("ip", "-n", g["a"].ns, "neigh", "replace", ip["b"],
                   "lladdr", leases["b"]["mac"], "dev", "eth0")
                for _ in range(3):
                    sh("ip", "netns", "exec", g["a"].ns, PYTHON, "-c",
                       UDP_SEND, ip["c"], ip["b"], "9997", "spoofed-by-a")
                self.assertIsNone(self.next_line(sink, 2),
                                  "B got A's datagram sent as C")
                sh("ip", "-n", g["a"].ns, "addr", "del", f"{ip['c']}/32",
                   "dev", "eth0")
                guard = sh("ip", "netns", "exec", p0.ns, "nft", "list",
                           "chain", "bridge", "mallee_guard",
                           f"g_{g['a'].hostend}").stdout
                dropped = [int(x) for x in re.findall(
                    r"counter packets (\d+) bytes \d+ drop\n\t}", guard)]
                self.assertEqual(len(dropped), 1, guard)
                self.assertGreaterEqual(dropped[0], 3, guard)

                # Authorize 8080: open within seconds.
                web8080 = [{"IpProtocol": "tcp", "FromPort": 8080,
                            "ToPort": 8080,
                            "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
                t0 = time.monotonic()
                boto3_call(c, "authorize_security_group_ingress", GroupId=web,
                           IpPermissions=web8080)
                bounded_wait(lambda: self.probe(g["b"], ip["a"], 8080) ==
                             "open", 10, "8080 to open", interval=0.2)
                opened = time.monotonic() - t0
                self.assertEqual(self.probe(g["c"], ip["a"], 8080), "open")

                # Revoke: closed again.
                t0 = time.monotonic()
                boto3_call(c, "revoke_security_group_ingress", GroupId=web,
                           IpPermissions=web8080)
                bounded_wait(lambda: self.probe(g["b"], ip["a"], 8080) ==
                             "closed", 10, "8080 to close", interval=0.2)
                closed = time.monotonic() - t0
                self.assertEqual(self.probe(g["b"], ip["a"], 22), "open")
                print(f"authorize took effect in {opened:.2f} s, revoke in "
                      f"{closed:.2f} s", file=sys.stderr)

                # B's address changes hands: C's flow with B is forgotten.
                s = subprocess.Popen(
                    ["ip", "netns", "exec", g["b"].ns, PYTHON, "-c",
                     UDP_ECHO, "9999"], stdout=subprocess.PIPE, text=True)
                servers.append(s)
                self.assertEqual(s.stdout.readline().strip(), "ready")
                for _ in range(3):   # replies seen: an assured flow
                    self.assertEqual(self.udp_probe(g["c"], ip["b"], 9999),
                                     "echo")
                self.put_instance(c, host, account, ids["b"], ip["b"],
                                  leases["b"]["mac"], groups["b"], state=48)
                r = ctl(p0, {"cmd": "hostnet-lease", "id": ids["b"],
                             "release": True})
                self.assertTrue(r.get("ok"), r)
                d = lease(p0, ids["d"])
                self.assertEqual(d["ip"], ip["b"], "the lease is reused")
                self.assertIn(f"{ip['b']} changes hands: forgot", c.log(0))
                self.put_instance(c, host, account, ids["d"], ip["b"],
                                  d["mac"], [(web, "web")])
                chain = f"chain in_{ids['d'][2:]}"
                bounded_wait(lambda: chain in sh(
                    "ip", "netns", "exec", p0.ns, "nft", "list", "table",
                    "inet", "mallee").stdout, 20, "D's ingress chain")
                self.assertEqual(self.probe(g["c"], ip["b"], 22), "open")
                self.assertEqual(self.udp_probe(g["c"], ip["b"], 9999),
                                 "silent")
                self.assertNotIn("ruleset refused", c.log(0))
            finally:
                for s in servers:
                    s.kill()
                    s.wait(timeout=10)
                for x in guests:
                    x.delete()

    def try_default(self, c):
        try:
            r = boto3_call(c, "describe_security_groups",
                           GroupNames=["default"])
            return r["SecurityGroups"][0]["GroupId"]
        except AssertionError:
            return None


if __name__ == "__main__":
    unittest.main()
