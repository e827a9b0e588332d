"""Peers start, answer status as themselves, stop cleanly, refuse a shared
data dir, share the cloud they joined; the harness leaves nothing behind."""

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import unittest

from harness import (Cluster, HarnessError, bounded_wait, host_capacity,
                     leftovers, netns_list, sanitizer_report)

SELF_KEYS = ("id", "name", "zone", "roles", "addr", "capacity", "records",
             "pid", "cloud")
MEMBER_KEYS = ("id", "name", "zone", "roles", "state", "addr")


def one_line(text):
    return [l for l in text.splitlines() if l.strip()]


class PeersTest(unittest.TestCase):

    def check_status(self, c, i, zone=None):
        p = c.peers[i]
        st = c.status(i)
        self.assertIn("self", st)
        self.assertIn("members", st)
        me = st["self"]
        for k in SELF_KEYS:
            self.assertIn(k, me, f"self lacks {k!r}: {me}")
        self.assertRegex(me["id"], r"^[0-9a-f]{16}$")
        self.assertEqual(me["name"], f"p{i}")
        self.assertEqual(me["addr"], p.listen)
        self.assertEqual(me["pid"], p.pid)
        self.assertEqual(me["cloud"], c.cloud_id)
        self.assertIsInstance(me["roles"], list)
        self.assertIsInstance(me["records"], int)
        self.assertEqual(me["zone"], zone or "us-east-1a")

        vcpus, mem_mib, disk_mib = host_capacity(p.data_dir)
        cap = me["capacity"]
        for what in ("vcpu", "memory_mib", "disk_mib"):
            self.assertGreater(cap[what]["total"], 0, what)
            self.assertGreaterEqual(cap[what]["free"], 0, what)
            self.assertLessEqual(cap[what]["free"], cap[what]["total"], what)
        self.assertEqual(cap["vcpu"]["total"], vcpus)
        self.assertAlmostEqual(cap["memory_mib"]["total"], mem_mib,
                               delta=max(64, mem_mib * 0.03))
        self.assertAlmostEqual(cap["disk_mib"]["total"], disk_mib,
                               delta=max(16, disk_mib * 0.01))

        members = st["members"]
        self.assertIsInstance(members, list)
        self.assertGreaterEqual(len(members), 1)
        for m in members:
            for k in MEMBER_KEYS:
                self.assertIn(k, m, f"member lacks {k!r}: {m}")
        ids = [m["id"] for m in members]
        self.assertEqual(len(ids), len(set(ids)), "a member listed twice")
        mine = [m for m in members if m["id"] == me["id"]]
        self.assertEqual(len(mine), 1, "self is not among the members")
        self.assertEqual(mine[0]["state"], "alive")
        self.assertEqual(mine[0]["addr"], p.listen)
        self.assertEqual(mine[0]["zone"], me["zone"])
        return st

    def check_in_use(self, c, i):
        """A second peer on a running peer's data dir is refused."""
        p = c.peers[i]
        before = os.listdir(p.data_dir)
        cp = c.run("peer", "--data-dir", p.data_dir, "--listen",
                   p.listen, "--api-listen", p.api_listen, peer=i,
                   timeout=20)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        lines = one_line(cp.stderr)
        self.assertEqual(len(lines), 1, cp.stderr)
        self.assertIn("in use by another peer", lines[0])
        self.assertIn(str(p.pid), lines[0])
        self.assertIsNone(sanitizer_report(cp.stderr))
        # ... and the running one is untouched.
        self.assertTrue(p.running)
        self.assertEqual(c.status(i)["self"]["pid"], p.pid)
        self.assertEqual(sorted(os.listdir(p.data_dir)), sorted(before))

    def check_stop(self, c, i, sig=signal.SIGTERM):
        p = c.peers[i]
        sock = os.path.join(p.data_dir, "ctl.sock")
        self.assertTrue(os.path.exists(sock))
        log_before = len(c.log(i))
        rc = c.stop(i, sig)
        self.assertEqual(rc, 0, c.log(i)[-2000:])
        tail = c.log(i)[log_before:]
        self.assertIn("stopped cleanly", tail)
        self.assertIsNone(sanitizer_report(tail), tail)
        self.assertFalse(os.path.exists(sock), "ctl.sock left behind")
        cp = c.cli(i, "status")
        self.assertEqual(cp.returncode, 1)
        self.assertIn("no peer is running on data dir", cp.stderr)

    def check_converged(self, c, ids):
        """Gossip: every peer comes to know every other, at its address."""
        c.wait_converged(len(c.peers), timeout=30)
        addr_of = {c.status(i)["self"]["id"]: c.peers[i].listen
                   for i in range(len(c.peers))}
        self.assertEqual(set(addr_of), ids)
        for i in range(len(c.peers)):
            members = c.members(i)
            self.assertEqual(set(members), ids)
            for mid, m in members.items():
                self.assertEqual(m["addr"], addr_of[mid])
                self.assertEqual(m["state"], "alive")

    def check_cluster(self, c):
        ids = set()
        for i in range(len(c.peers)):
            st = self.check_status(c, i)
            ids.add(st["self"]["id"])
        self.assertEqual(len(ids), len(c.peers), "peers share an id")

        self.check_converged(c, ids)
        self.check_in_use(c, 0)
        self.check_in_use(c, len(c.peers) - 1)

        # A restart keeps the peer's identity and cloud.
        old = c.status(1)["self"]
        c.restart(1)
        new = self.check_status(c, 1)["self"]
        self.assertEqual(new["id"], old["id"])
        self.assertEqual(new["cloud"], old["cloud"])
        self.assertNotEqual(new["pid"], old["pid"])

        id0 = c.peer_id(0)
        self.check_stop(c, 0, signal.SIGTERM)
        # A clean stop is a graceful leave, which the others hear of.
        for i in (1, 2):
            c.wait_member_state(i, id0, ("left", None), timeout=20)
        self.check_stop(c, 1, signal.SIGINT)
        self.check_stop(c, 2, signal.SIGTERM)
        for p in c.peers:
            self.assertTrue(all(rc == 0 for rc in p.exits), p.exits)
        return ids

    def test_loopback(self):
        t0 = time.monotonic()
        with Cluster(3) as c:
            root = c.root
            for p in c.peers:
                self.assertTrue(p.ip.startswith("127."))
            self.check_cluster(c)
            pids = c.pids()
        self.assertEqual(leftovers(root, []), ([], [], False))
        for pid in pids:
            self.assertFalse(os.path.exists(f"/proc/{pid}") and
                             _mentions(pid, root), pid)
        print(f"loopback: {time.monotonic() - t0:.1f}s", file=sys.stderr)

    def test_loopback_exact_base(self):
        """The addresses the brief names, 127.0.0.(10+i)."""
        with Cluster(2, loopback_base="127.0.0") as c:
            self.assertEqual(c.status(0)["self"]["addr"], "127.0.0.10:7700")
            self.assertEqual(c.status(1)["self"]["addr"], "127.0.0.11:7700")

    @unittest.skipUnless(os.geteuid() == 0, "namespaces need root")
    def test_namespaces(self):
        t0 = time.monotonic()
        with Cluster(3, topology="flat", zones=["za", "zb", "zb"]) as c:
            root = c.root
            made = c.namespaces()
            self.assertEqual(len(made), 4)  # hub + 3 hosts
            present = netns_list()
            for ns in made:
                self.assertIn(ns, present)
            for p in c.peers:
                self.assertEqual(p.ip, f"10.77.0.{10 + p.index}")
                # The peer really runs inside its host's namespace.
                self.assertEqual(os.stat(f"/proc/{p.pid}/ns/net").st_ino,
                                 os.stat(f"/run/netns/{p.ns}").st_ino)
            ids = set()
            for i, z in enumerate(["za", "zb", "zb"]):
                ids.add(self.check_status(c, i, zone=z)["self"]["id"])
            self.assertEqual(len(ids), 3)
            self.check_converged(c, ids)
            # The token peer 0 hands out names its namespaced address.
            token = c.make_token(0)
            self.assertTrue(token.startswith("mallee1-"))
            # The flat network carries traffic between host namespaces.
            self.assertEqual(udp_probe(c.peers[0].ns, c.peers[2].ns,
                                       c.peers[2].ip), "ok")
            # ... and none from the root namespace (no route to it).
            self.assertFalse(any("10.77.0." in l for l in subprocess.run(
                ["ip", "-4", "addr"], stdout=subprocess.PIPE,
                text=True).stdout.splitlines()))
            # Faults: a link taken down cuts the host off, and comes back.
            c.link(2, False)
            self.assertEqual(udp_probe(c.peers[0].ns, c.peers[2].ns,
                                       c.peers[2].ip, wait=0.5), "timeout")
            c.link(2, True)
            self.assertEqual(udp_probe(c.peers[0].ns, c.peers[2].ns,
                                       c.peers[2].ip), "ok")
            # Loss on what a host sends (tc netem, or nftables without it).
            c.netem(0, "loss 100%")
            self.assertEqual(udp_probe(c.peers[0].ns, c.peers[2].ns,
                                       c.peers[2].ip, wait=0.5), "timeout")
            self.assertEqual(udp_probe(c.peers[2].ns, c.peers[1].ns,
                                       c.peers[1].ip), "ok")
            c.netem(0, None)
            self.assertEqual(udp_probe(c.peers[0].ns, c.peers[2].ns,
                                       c.peers[2].ip), "ok")
            self.check_in_use(c, 1)
            for i in range(3):
                self.check_stop(c, i)
        self.assertEqual(leftovers(root, made), ([], [], False))
        left = [n for n in netns_list() if n in made]
        self.assertEqual(left, [])
        print(f"namespaces: {time.monotonic() - t0:.1f}s", file=sys.stderr)

    def test_cleanup_when_test_fails(self):
        """An exception inside the block: logs are printed, everything goes."""
        topology = "flat" if os.geteuid() == 0 else "loopback"
        err = io.StringIO()
        saved = sys.stderr
        sys.stderr = err
        try:
            with self.assertRaises(RuntimeError):
                with Cluster(2, topology=topology) as c:
                    root, made, pids = c.root, c.namespaces(), c.pids()
                    c.pause(1)  # even a stopped peer is cleaned up
                    raise RuntimeError("a test failing")
        finally:
            sys.stderr = saved
        self.assertIn("[p0]", err.getvalue())
        self.assertIn("up: cloud", err.getvalue())
        self.assertEqual(leftovers(root, made), ([], [], False))
        for pid in pids:
            self.assertFalse(_mentions(pid, root))

    def test_cleanup_when_start_fails(self):
        """A peer that cannot start: the harness raises, with its log, and
        cleans up what it had started."""
        err = io.StringIO()
        saved = sys.stderr
        sys.stderr = err
        c = Cluster(2, peer_args={1: ["--log-level", "loud"]})
        try:
            with self.assertRaises(HarnessError) as cm:
                with c:
                    pass
        finally:
            sys.stderr = saved
        self.assertIn("peer 1 exited (2)", str(cm.exception))
        self.assertIn("loud", str(cm.exception))
        self.assertEqual(leftovers(c.root, []), ([], [], False))
        self.assertEqual(c.peers[1].exits, [2])

    def test_cleanup_on_sigterm_and_sigkill(self):
        """A test process that is SIGTERMed cleans up; one that is SIGKILLed
        takes its peers with it and the next cluster sweeps its
        namespaces and files."""
        topology = "flat" if os.geteuid() == 0 else "loopback"
        script = textwrap.dedent(f"""
            import sys, time
            from harness import Cluster
            c = Cluster(2, topology={topology!r}).__enter__()
            print(c.root, *c.namespaces(), flush=True)
            for _ in range(600):
                time.sleep(0.1)
        """)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.dirname(os.path.abspath(__file__))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            child = subprocess.Popen([sys.executable, "-c", script],
                                     stdout=subprocess.PIPE, text=True,
                                     env=env)
            try:
                line = child.stdout.readline().split()
                self.assertTrue(line, "child cluster did not start")
                root, made = line[0], line[1:]
                self.assertTrue(os.path.isdir(root))
                self.assertEqual(len(processes_of(root)), 2)
                child.send_signal(sig)
                rc = child.wait(timeout=30)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                child.stdout.close()
            self.assertEqual(rc, -sig)
            # Peers go with their test (PR_SET_PDEATHSIG after SIGKILL).
            bounded_wait(lambda: not processes_of(root), 10,
                         "the child's peers to exit")
            if sig == signal.SIGKILL:
                # The next cluster sweeps what a killed run left.
                with Cluster(1):
                    pass
            self.assertEqual(leftovers(root, made), ([], [], False), sig)


def processes_of(root):
    from harness import processes_mentioning
    return processes_mentioning(root)


def _mentions(pid, root):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return root.encode() in f.read()
    except OSError:
        return False


def udp_probe(src_ns, dst_ns, dst_ip, port=7799, wait=3.0):
    """Sends one UDP datagram from src_ns to dst_ip:port in dst_ns; "ok" if it
    arrived, "timeout" if not."""
    recv = subprocess.Popen(
        ["ip", "netns", "exec", dst_ns, sys.executable, "-c", textwrap.dedent(f"""
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(({dst_ip!r}, {port}))
            s.settimeout({wait})
            print("bound", flush=True)
            try:
                s.recvfrom(100)
                print("ok")
            except socket.timeout:
                print("timeout")
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "bound"
        for _ in range(int(wait / 0.1)):
            subprocess.run(["ip", "netns", "exec", src_ns, sys.executable,
                            "-c", "import socket; socket.socket(socket.AF_INET,"
                            f" socket.SOCK_DGRAM).sendto(b'x', ({dst_ip!r}, "
                            f"{port}))"], stderr=subprocess.DEVNULL)
            if recv.poll() is not None:
                break
            time.sleep(0.1)
        out, _ = recv.communicate(timeout=wait + 5)
        return out.strip()
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()


if __name__ == "__main__":
    unittest.main(verbosity=2)
