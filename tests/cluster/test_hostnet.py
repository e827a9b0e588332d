"""Host networking for real: two peers, each in its own network namespace
(flat topology), make their bridges and claim different /24 slices of the
cloud's CIDR. A veth from a "guest" namespace onto peer 0's bridge, with a
leased MAC, gets its address, router, host name and MTU from the peer's
DHCP server (`busybox udhcpc`) and then reads the metadata service at
169.254.169.254 (IMDSv1 and v2); a MAC without a lease gets no answer. A
restarted peer keeps its slice and its leases.

Leases are made with the control socket's diagnostic "hostnet-lease"
command (peers run with --virt-uri none: no instances, hostnet alone)."""

import json
import os
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from cloudtools import mp_pack, unpack
from harness import Cluster, bounded_wait


def ctl(peer, request):
    """One control socket request to a peer; the reply map."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(os.path.join(peer.data_dir, "ctl.sock"))
    body = mp_pack(request)
    s.sendall(struct.pack(">I", len(body)) + body)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return unpack(buf[4:])


def lease(peer, instance_id, timeout=20):
    """A lease; new addresses come only once the host's slice is confirmed
    (two claim checks, ~6 s after start), so it asks until then."""
    deadline = time.monotonic() + timeout
    while True:
        r = ctl(peer, {"cmd": "hostnet-lease", "id": instance_id})
        if r.get("ok"):
            return r
        if "temporarily unavailable" not in str(r) or \
                time.monotonic() > deadline:
            raise AssertionError(f"hostnet-lease: {r}")
        time.sleep(0.5)


def sh(*cmd, timeout=30, check=True):
    cp = subprocess.run(list(cmd), stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {cp.returncode} "
                             f"{cp.stdout} {cp.stderr}")
    return cp


UDHCPC_SCRIPT = """#!/bin/sh
# Records what udhcpc learnt and configures the interface.
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/24" dev "$interface"
	[ -n "$router" ] && ip route replace default via "$router"
	env | grep -E '^(ip|subnet|router|hostname|mtu|broadcast|lease|serverid)=' \
		> "$OUT"
	;;
esac
exit 0
"""

IMDS_CLIENT = r"""
import json, sys, urllib.request, urllib.error
base = "http://169.254.169.254"
def req(method, path, headers=None):
    r = urllib.request.Request(base + path, method=method,
                               headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=10) as f:
            return f.status, f.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
out = {}
out["v1_id"] = req("GET", "/latest/meta-data/instance-id")
out["ip"] = req("GET", "/latest/meta-data/local-ipv4")
out["mac"] = req("GET", "/latest/meta-data/mac")
out["root"] = req("GET", "/")
st, tok = req("PUT", "/latest/api/token",
              {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
out["put"] = st
out["v2_id"] = req("GET", "/latest/meta-data/instance-id",
                   {"X-aws-ec2-metadata-token": tok})
out["bad_token"] = req("GET", "/latest/meta-data/instance-id",
                       {"X-aws-ec2-metadata-token": "x" + tok})
out["bad_ttl"] = req("PUT", "/latest/api/token",
                     {"X-aws-ec2-metadata-token-ttl-seconds": "0"})
out["fwd"] = req("PUT", "/latest/api/token",
                 {"X-aws-ec2-metadata-token-ttl-seconds": "60",
                  "X-Forwarded-For": "1.2.3.4"})
print(json.dumps(out))
"""


class Guest:
    """A namespace with eth0, a veth whose other end is on a bridge in
    host_ns; hostend names that end (as a tap the peer guards, say)."""

    def __init__(self, name, host_ns, bridge, mac, hostend=None):
        self.ns = name
        self.host_ns = host_ns
        self.hostend = hostend or "g" + name[-10:]
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer",
           "name", self.hostend, "netns", host_ns)
        sh("ip", "-n", host_ns, "link", "set", self.hostend, "master",
           bridge, "up")
        sh("ip", "-n", name, "link", "set", "eth0", "address", mac, "up")

    def dhcp(self, out, script, tries=5):
        env = dict(os.environ, OUT=out)
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, "busybox", "udhcpc", "-i",
             "eth0", "-n", "-q", "-f", "-t", str(tries), "-T", "1", "-A",
             "1", "-O", "mtu", "-s", script],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=60, env=env)

    def delete(self):
        sh("ip", "netns", "del", self.ns, check=False)


def read_env(path):
    vals = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            vals[k] = v
    return vals


class HostnetTest(unittest.TestCase):

    def test_slices_dhcp_and_metadata(self):
        tmp = tempfile.mkdtemp(prefix="mallee-hostnet-")
        script = os.path.join(tmp, "udhcpc.sh")
        with open(script, "w") as f:
            f.write(UDHCPC_SCRIPT)
        os.chmod(script, 0o755)
        guests = []
        with Cluster(2, topology="flat",
                     peer_args=["--virt-uri", "none", "--overlay", "off",
                                "--log-level", "debug"]) as c:
            try:
                c.wait_converged(timeout=30)
                p0, p1 = c.peers
                iid = "i-0123456789abcdef0"
                a = lease(p0, iid)
                b = lease(p1, "i-0fedcba9876543210")
                self.assertEqual(a["bridge"], "mallee0")
                # The same lease again for the same id.
                self.assertEqual(lease(p0, iid)["ip"], a["ip"])
                self.assertTrue(a["ip"].startswith(a["slice"][:-1]))
                self.assertEqual(a["mac"], "02:00:" + ":".join(
                    f"{int(x):02x}" for x in a["ip"].split(".")))

                # Each claim confirmed after a gossip round; distinct.
                def settled():
                    x, y = lease(p0, iid), lease(p1, "i-0fedcba9876543210")
                    return (x["confirmed"] and y["confirmed"]) and (x, y)
                a, b = bounded_wait(settled, 30, "slice claims settle",
                                    interval=0.5)
                self.assertNotEqual(a["slice"], b["slice"])
                # The bridge carries .1/24 and the metadata address.
                addrs = sh("ip", "-n", p0.ns, "-o", "addr", "show", "dev",
                           "mallee0").stdout
                gw = a["slice"][:-1] + "1"
                self.assertIn(f"{gw}/24", addrs)
                self.assertIn("169.254.169.254/32", addrs)

                # A guest with the leased MAC gets its address.
                g = Guest(f"mg{os.getpid()}a", p0.ns, "mallee0", a["mac"])
                guests.append(g)
                out = os.path.join(tmp, "lease.env")
                cp = g.dhcp(out, script)
                self.assertEqual(cp.returncode, 0, cp.stdout)
                got = read_env(out)
                self.assertEqual(got["ip"], a["ip"])
                self.assertEqual(got["router"], gw)
                self.assertEqual(got["subnet"], "255.255.255.0")
                self.assertEqual(got["serverid"], gw)
                self.assertEqual(got["lease"], "86400")
                self.assertEqual(got["mtu"], "1500")
                self.assertEqual(got["hostname"],
                                 "ip-" + a["ip"].replace(".", "-"))
                bounded_wait(lambda: f"has {a['ip']} (DHCP)" in c.log(0),
                             10, "the ACK logged")

                # The metadata service, from the guest's address.
                cp = sh("ip", "netns", "exec", g.ns, "python3", "-c",
                        IMDS_CLIENT, timeout=60)
                md = json.loads(cp.stdout)
                self.assertEqual(md["v1_id"], [200, iid])
                self.assertEqual(md["ip"], [200, a["ip"]])
                self.assertEqual(md["mac"], [200, a["mac"]])
                self.assertTrue(md["root"][1].endswith("\nlatest"))
                self.assertEqual(md["put"], 200)
                self.assertEqual(md["v2_id"], [200, iid])
                self.assertEqual(md["bad_token"][0], 401)
                self.assertEqual(md["bad_ttl"][0], 400)
                self.assertEqual(md["fwd"][0], 403)

                # A MAC without a lease gets no answer.
                g2 = Guest(f"mg{os.getpid()}b", p0.ns, "mallee0",
                           "02:00:0a:0b:0c:0d")
                guests.append(g2)
                cp = g2.dhcp(os.path.join(tmp, "none.env"), script,
                             tries=2)
                self.assertNotEqual(cp.returncode, 0, cp.stdout)

                # A restart keeps the slice and the lease.
                for g in guests:
                    g.delete()
                guests.clear()
                c.restart(0)
                again = lease(p0, iid)
                self.assertEqual(again["slice"], a["slice"])
                self.assertEqual(again["ip"], a["ip"])
                other = lease(p0, "i-00000000000000001")
                self.assertNotEqual(other["ip"], a["ip"])
                r = ctl(p0, {"cmd": "hostnet-lease", "id": iid,
                             "release": True})
                self.assertTrue(r.get("ok"))
            finally:
                for g in guests:
                    g.delete()


if __name__ == "__main__":
    unittest.main()
