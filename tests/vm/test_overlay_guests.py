"""Two real guests on two hosts talk through mallee's overlay.

A 2-host cloud (tests/vm/cloud.py), each host offering one vCPU, so two
instances of the smallest type land on different hosts, in different
address slices: what one sends the other leaves its host through mlt0,
encrypted, and arrives on the other host's bridge.

Round 1, both in the default group (its members reach each other):
  A  the server: its user data serves /hello ("hello-from-<its id>") and
     /big (64 KiB of random bytes, md5 on its console) with busybox httpd
     on tcp/8080 and tcp/22.
  B  the client, launched once A is up, with A's address in its user
     data: `busybox ping -c 3 -W 2 A` (up to three tries), wget of /hello on
     8080 and 22, and of /big on 22 (larger than the overlay's MTU: the
     tiny image's udhcpc script ignores the DHCP MTU option, so the guests
     keep 1500 and the big reply needs path MTU discovery across the host).
  B's console shows the ping answered, A's page on both ports, and /big
  whole (same size and md5 as A printed).  Each host's overlay counters
  (`mallee status --json`) moved data both ways meanwhile (bytes, as a
  keepalive counts as a received packet of no bytes), the tunnel direct.
  A's tap is named from its address and guarded against spoofing (only
  its own MAC and address leave it), and everything above passed that.

Round 2, after both are terminated, A in a group "web" that admits only
tcp/22 from anywhere (no ICMP), B again in the default group: B's pings
all go unanswered and 8080 does not connect, while /hello and /big on 22
still come (so the path works, the group refused).
"""

import ipaddress
import subprocess
import time
import unittest

from cloud import Cloud, smallest_type, main, log

RUN_TIMEOUT = 180
CONSOLE_TIMEOUT = 150
BIG = 65536

SERVER = r"""#!/bin/sh
id=$(timeout 5 wget -q -O - http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /www
echo "hello-from-$id" >/www/hello
head -c %d /dev/urandom >/www/big
echo "ovl-big-md5 $(md5sum </www/big | cut -d' ' -f1)"
httpd -p 8080 -h /www && httpd -p 22 -h /www && echo "ovl-server-ready"
""" % BIG

CLIENT = r"""#!/bin/sh
T=@TARGET@
r=fail
for try in 1 2 3; do
	if ping -c 3 -W 2 $T >/run/ping.log 2>&1; then
		r=ok
		break
	fi
done
echo "ovl-ping $T $r try=$try rx=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /run/ping.log)"
for port in 8080 22; do
	if body=$(timeout 10 wget -q -O - http://$T:$port/hello 2>/dev/null); then
		echo "ovl-tcp $T:$port ok body=$body"
	else
		echo "ovl-tcp $T:$port fail"
	fi
done
if timeout 30 wget -q -O /run/big http://$T:22/big 2>/dev/null; then
	echo "ovl-big $(wc -c </run/big) $(md5sum </run/big | cut -d' ' -f1)"
else
	echo "ovl-big fail $(wc -c </run/big 2>/dev/null)"
fi
echo "ovl-client-done"
"""


def line_of(text, prefix):
    """The last console line starting with prefix (kernel noise aside)."""
    found = None
    for l in text.splitlines():
        l = l.strip()
        if l.startswith(prefix):
            found = l
    return found


class OverlayGuestsTest(unittest.TestCase):

    def run_one(self, cl, ami, itype, user_data, groups=None):
        args = ["run-instances", "--image-id", ami, "--instance-type", itype,
                "--count", "1", "--user-data", user_data]
        if groups:
            args += ["--security-group-ids"] + list(groups)
        r = cl.ec2(*args)
        iid = r["Instances"][0]["InstanceId"]
        inst = cl.wait_state([iid], "running", RUN_TIMEOUT)[iid]
        ip = inst.get("PrivateIpAddress")
        self.assertTrue(ip, f"{iid} has no private address: {inst}")
        return iid, ip, cl.host_of(iid)

    def counters(self, cl):
        return [cl.status(i)["self"]["overlay"]["counters"]
                for i in range(cl.n)]

    def nft(self, cl, h, table="inet mallee"):
        cp = subprocess.run(["ip", "netns", "exec", cl.c.peers[h].ns, "nft",
                             "list", "table"] + table.split(),
                            capture_output=True, text=True, timeout=30)
        return cp.stdout if cp.returncode == 0 else ""

    def check_guarded(self, cl, h, ip):
        """The guest's tap is named from its address, on the bridge, and
        guarded against spoofing; its frames have passed the guard."""
        tap = "mlv%08x" % int(ipaddress.IPv4Address(ip))
        cp = subprocess.run(["ip", "-n", cl.c.peers[h].ns, "-o", "link",
                             "show", tap], capture_output=True, text=True,
                            timeout=30)
        self.assertIn(" master ", cp.stdout, cp.stderr)   # the bridge
        guard = self.nft(cl, h, "bridge mallee_guard")
        self.assertIn(f'"{tap}" : jump g_{tap}', guard)
        self.assertIn(f"ip saddr {ip} accept", guard)

    def round(self, cl, ami, itype, server_groups=None):
        """Server A, then client B aimed at it; returns what B's console
        said, both ids, hosts and addresses, and the counters' moves."""
        t = time.monotonic()
        a, a_ip, ha = self.run_one(cl, ami, itype, SERVER, server_groups)
        text = cl.wait_console(a, "ovl-server-ready", CONSOLE_TIMEOUT)
        md5 = line_of(text, "ovl-big-md5").split()[1]
        # A's own chains are in its host's ruleset before anyone knocks.
        cl.wait(lambda: f"chain in_{a[2:]}" in self.nft(cl, ha), 30,
                f"{a}'s ingress chain on host {ha}")
        self.check_guarded(cl, ha, a_ip)
        log(f"server {a} on host {ha} at {a_ip}, up in "
            f"{time.monotonic() - t:.1f}s")
        before = self.counters(cl)
        b, b_ip, hb = self.run_one(cl, ami, itype,
                                   CLIENT.replace("@TARGET@", a_ip))
        log(f"client {b} on host {hb} at {b_ip}")
        self.assertIsNotNone(ha)
        self.assertIsNotNone(hb)
        self.assertNotEqual(ha, hb, "both guests on one host: no overlay")
        self.assertNotEqual(a_ip.rsplit(".", 1)[0], b_ip.rsplit(".", 1)[0],
                            "two hosts, one /24 slice?")
        text = cl.wait_console(b, "ovl-client-done", CONSOLE_TIMEOUT)
        after = self.counters(cl)
        out = {k: line_of(text, k) for k in ("ovl-ping", "ovl-big")}
        for port in (8080, 22):
            out[port] = line_of(text, f"ovl-tcp {a_ip}:{port}")
        log(f"round done in {time.monotonic() - t:.1f}s: {out}")
        for k, v in out.items():
            self.assertIsNotNone(v, f"{b}'s console lacks {k}:\n{text}")
        moved = [{k: after[h][k] - before[h][k]
                  for k in ("tx_bytes", "rx_bytes", "tx_packets",
                            "rx_packets")} for h in range(cl.n)]
        log(f"overlay counters moved: {moved}")
        return dict(a=a, b=b, a_ip=a_ip, b_ip=b_ip, ha=ha, hb=hb, md5=md5,
                    out=out, moved=moved, after=after, text=text)

    def finish(self, cl, ids):
        cl.ec2("terminate-instances", "--instance-ids", *ids)
        cl.wait_state(ids, "terminated", 120)
        for h in range(cl.n):
            cl.wait(lambda h=h: cl.free_vcpu(h) == 1, 30,
                    f"host {h}'s vCPU back")
            cl.wait(lambda h=h: cl.free_vcpu(h, seen_by=0) == 1, 30,
                    f"the edge to see host {h}'s vCPU free")

    def test_guests_across_hosts(self):
        t0 = time.monotonic()
        with Cloud(2, capacity_vcpu=1) as cl:
            ami = cl.import_image(host=0)
            cl.wait_image_visible(ami)
            itype, vcpus, _ = smallest_type(cl)
            self.assertEqual(vcpus, 1, "the test gives each host one vCPU")
            for h in range(cl.n):
                ov = cl.status(h)["self"]["overlay"]
                self.assertTrue(ov.get("running"), f"host {h}: {ov}")
                # Below the guests' 1500 (the tiny image keeps it): /big's
                # full-size segments need path MTU discovery.
                self.assertLess(ov["mtu"], 1500, ov)
                log(f"host {h}: {ov['ifname']} MTU {ov['mtu']}")

            # Round 1: the default group, all open between its members.
            r1 = self.round(cl, ami, itype)
            a_ip, out = r1["a_ip"], r1["out"]
            self.assertRegex(out["ovl-ping"],
                             rf"^ovl-ping {a_ip} ok try=\d rx=[1-3]$",
                             r1["text"])
            for port in (8080, 22):
                self.assertEqual(out[port], f"ovl-tcp {a_ip}:{port} ok "
                                 f"body=hello-from-{r1['a']}", r1["text"])
            self.assertEqual(out["ovl-big"], f"ovl-big {BIG} {r1['md5']}",
                             r1["text"])
            # Data both ways through each host's tunnel: pings, replies,
            # and at least /big (bytes; keepalives carry none).
            for h in range(cl.n):
                m = r1["moved"][h]
                self.assertGreater(m["tx_bytes"], 0, f"host {h}: {m}")
                self.assertGreater(m["rx_bytes"], 0, f"host {h}: {m}")
                self.assertGreater(m["tx_packets"], 0, f"host {h}: {m}")
                self.assertGreater(m["rx_packets"], 0, f"host {h}: {m}")
            ha, hb = r1["ha"], r1["hb"]
            # The server's host sent /big, the client's host received it.
            self.assertGreaterEqual(r1["moved"][ha]["tx_bytes"], BIG)
            self.assertGreaterEqual(r1["moved"][hb]["rx_bytes"], BIG)
            for h in range(cl.n):
                c = r1["after"][h]
                self.assertGreaterEqual(c["handshakes_done"], 1, c)
                self.assertEqual(c["dropped"].get("decrypt", 0), 0, c)
                ov = cl.status(h)["self"]["overlay"]
                self.assertEqual([p["path"] for p in ov["peers"]],
                                 ["direct"], ov)
            other = r1["b_ip"].rsplit(".", 1)[0] + ".0/24"
            ov = cl.status(ha)["self"]["overlay"]
            self.assertIn(other, ov["peers"][0]["prefixes"], ov)
            self.finish(cl, [r1["a"], r1["b"]])

            # Round 2: A in "web" (tcp/22 only), B in the default group.
            web = cl.ec2("create-security-group", "--group-name", "web",
                         "--description", "ssh only")["GroupId"]
            cl.ec2("authorize-security-group-ingress", "--group-id", web,
                   "--protocol", "tcp", "--port", "22",
                   "--cidr", "0.0.0.0/0")
            r2 = self.round(cl, ami, itype, server_groups=[web])
            a_ip, out = r2["a_ip"], r2["out"]
            rules = self.nft(cl, r2["ha"])
            self.assertIn("tcp dport 22 accept", rules)
            self.assertRegex(out["ovl-ping"],
                             rf"^ovl-ping {a_ip} fail try=3 rx=0$",
                             r2["text"])
            self.assertEqual(out[8080], f"ovl-tcp {a_ip}:8080 fail",
                             r2["text"])
            self.assertEqual(out[22], f"ovl-tcp {a_ip}:22 ok "
                             f"body=hello-from-{r2['a']}", r2["text"])
            self.assertEqual(out["ovl-big"], f"ovl-big {BIG} {r2['md5']}",
                             r2["text"])
            self.finish(cl, [r2["a"], r2["b"]])
        log(f"test took {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
