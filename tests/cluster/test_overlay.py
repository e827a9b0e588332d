"""The peer's overlay for real: two peers, each in its own network namespace
(flat topology), host instances (libvirt's test driver, so host networking
starts without QEMU) and run the overlay datapath (TUN mlt0, UDP 7701).
An "instance" namespace on each peer's bridge (a veth with a leased MAC,
addressed by the peer's DHCP) pings and opens TCP to the other, in another
slice on the other host, through the tunnel. The MTU DHCP hands out is the
overlay's; `mallee status --json` shows the tunnel's peers, prefixes and
counters. One peer is killed with SIGKILL and restarted: traffic resumes."""

import os
import subprocess
import tempfile
import time
import unittest

from cloudtools import TCP_ECHO_CLIENT, TCP_ECHO_SERVER
from harness import Cluster, bounded_wait
from test_hostnet import Guest, UDHCPC_SCRIPT, lease, read_env, sh

PEER_ARGS = ["--virt-uri", "test:///default", "--log-level", "debug"]




def overlay(c, i):
    return c.status(i)["self"]["overlay"]


class OverlayTest(unittest.TestCase):

    def ping(self, guest, ip, timeout=30):
        def ping(count):
            return sh("ip", "netns", "exec", guest.ns, "busybox", "ping",
                      "-c", str(count), "-W", "2", ip, check=False)
        try:
            bounded_wait(lambda: ping(1).returncode == 0, timeout,
                         f"{guest.ns} pings {ip}", interval=0.2)
        except AssertionError:
            for cmd in (["ip", "-n", guest.ns, "addr"],
                        ["ip", "-n", guest.ns, "route"]):
                print("$", " ".join(cmd), sh(*cmd, check=False).stdout)
            self.explain()
            raise
        cp = ping(3)
        self.assertEqual(cp.returncode, 0, cp.stdout)

    def explain(self):
        """What the overlay and the kernel hold, for a failure."""
        import json
        for i, p in enumerate(self.c.peers):
            try:
                print(f"--- peer {i}", json.dumps(overlay(self.c, i),
                                                   indent=1))
            except Exception as e:  # noqa: BLE001 - diagnostics only
                print(f"--- peer {i}: no status: {e}")
            for cmd in (["ip", "-n", p.ns, "route"],
                        ["ip", "-n", p.ns, "rule"],
                        ["ip", "-n", p.ns, "-s", "link"],
                        ["ip", "netns", "exec", p.ns, "nft", "list",
                         "ruleset"]):
                print("$", " ".join(cmd))
                print(sh(*cmd, check=False).stdout)

    def tcp(self, client, server, ip):
        srv = subprocess.Popen(
            ["ip", "netns", "exec", server.ns, "python3", "-c",
             TCP_ECHO_SERVER, "60"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            def answered():
                cp = sh("ip", "netns", "exec", client.ns, "python3", "-c",
                        TCP_ECHO_CLIENT, ip, "200000", "10", "10",
                        timeout=60, check=False)
                return cp.returncode == 0 and cp.stdout.startswith("ok")
            bounded_wait(answered, 30, f"TCP {client.ns} -> {ip}",
                         interval=0.5)
        finally:
            srv.kill()
            srv.wait()

    def test_instances_across_hosts(self):
        tmp = tempfile.mkdtemp(prefix="mallee-overlay-")
        script = os.path.join(tmp, "udhcpc.sh")
        with open(script, "w") as f:
            f.write(UDHCPC_SCRIPT)
        os.chmod(script, 0o755)
        guests = []
        with Cluster(2, topology="flat", peer_args=PEER_ARGS) as c:
            self.c = c
            try:
                c.wait_converged(timeout=30)
                p0, p1 = c.peers
                ids = ["i-0000000000000a000", "i-0000000000000b000"]

                def settled():
                    x, y = lease(p0, ids[0]), lease(p1, ids[1])
                    return (x["confirmed"] and y["confirmed"]) and (x, y)
                a, b = bounded_wait(settled, 30, "slice claims settle",
                                    interval=0.5)
                self.assertNotEqual(a["slice"], b["slice"])

                # Both run the overlay, and each routes the other's slice.
                def routed(i, slice_):
                    ov = overlay(c, i)
                    if not ov.get("running"):
                        return False
                    return any(slice_ + "/24" in x["prefixes"]
                               for x in ov["peers"])
                bounded_wait(lambda: routed(0, b["slice"]), 30,
                             "peer 0 routes peer 1's slice", interval=0.5)
                bounded_wait(lambda: routed(1, a["slice"]), 30,
                             "peer 1 routes peer 0's slice", interval=0.5)
                ov0 = overlay(c, 0)
                self.assertEqual(ov0["ifname"], "mlt0")
                mtu = ov0["mtu"]
                self.assertLess(mtu, 1500)
                self.assertEqual(ov0["port"], 7701)
                self.assertEqual(len(ov0["peers"]), 1)
                self.assertEqual(ov0["peers"][0]["id"], c.peer_id(1))
                self.assertTrue(ov0["peers"][0]["endpoint"]
                                .endswith(":7701"))
                # The kernel side, in the peer's namespace.
                routes = sh("ip", "-n", p0.ns, "route").stdout
                self.assertIn("mlt0", routes)
                rules = sh("ip", "-n", p0.ns, "rule").stdout
                self.assertIn(f"from {a['slice']}/24 iif mallee0 lookup "
                              "7701", rules)
                fwd = sh("ip", "netns", "exec", p0.ns, "cat",
                         "/proc/sys/net/ipv4/ip_forward").stdout
                self.assertEqual(fwd.strip(), "1")

                # An instance on each host, addressed by its host's DHCP
                # with the overlay's MTU.
                ga = Guest(f"mo{os.getpid()}a", p0.ns, "mallee0", a["mac"])
                guests.append(ga)
                gb = Guest(f"mo{os.getpid()}b", p1.ns, "mallee0", b["mac"])
                guests.append(gb)
                for g, want, name in ((ga, a, "a"), (gb, b, "b")):
                    out = os.path.join(tmp, f"{name}.env")
                    cp = g.dhcp(out, script)
                    self.assertEqual(cp.returncode, 0, cp.stdout)
                    got = read_env(out)
                    self.assertEqual(got["ip"], want["ip"])
                    self.assertEqual(got["mtu"], str(mtu))
                    sh("ip", "-n", g.ns, "link", "set", "eth0", "mtu",
                       got["mtu"])

                # Ping and TCP both ways, through the tunnel.
                self.ping(ga, b["ip"])
                self.ping(gb, a["ip"])
                self.tcp(ga, gb, b["ip"])
                self.tcp(gb, ga, a["ip"])
                ctr = overlay(c, 0)["counters"]
                self.assertGreater(ctr["tx_packets"], 100)
                self.assertGreater(ctr["rx_packets"], 100)
                self.assertGreaterEqual(ctr["handshakes_done"], 1)
                self.assertEqual(ctr["dropped"]["decrypt"], 0)
                self.assertEqual(overlay(c, 0)["peers"][0]["path"],
                                 "direct")

                # SIGKILL one host and start it again: its TUN went with
                # the process; a new one, a new handshake, traffic again.
                c.kill9(1)
                c.start(1)
                bounded_wait(lambda: routed(1, a["slice"]), 60,
                             "restarted peer 1 routes peer 0's slice",
                             interval=0.5)
                self.ping(ga, b["ip"], timeout=60)
                self.ping(gb, a["ip"], timeout=60)
                self.tcp(ga, gb, b["ip"])
                self.assertGreater(overlay(c, 1)["counters"]["rx_packets"],
                                   0)
            finally:
                for g in guests:
                    g.delete()


if __name__ == "__main__":
    unittest.main()
