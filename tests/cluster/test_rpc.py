"""Peer-to-peer RPC between real peers: `mallee admin ping` by name and by id
across the cluster (and to itself); a peer that left cannot be pinged, and
says why; connections to the gossip port that claim to be RPC but are
garbage, forged, stale, replayed or reflected are refused without a crash,
and push-pull on the same port keeps working.

The forged frames are made here with libsodium (ctypes) and a small msgpack
writer: the test reads peer 1's identity key from its data dir and speaks
as peer 1, exactly as the peer would (peer/rpc.c's wire format)."""

import ctypes
import ctypes.util
import os
import re
import socket
import struct
import time
import unittest

from cloudtools import mp_pack, unpack
from harness import Cluster, bounded_wait

MAGIC = b"MRP1"
PONG = re.compile(r"pong from (\S+) \(([0-9a-f]{16})\) in ([0-9.]+) ms")

_sodium = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so")
_sodium.sodium_init()


def box_public(sk):
    pk = ctypes.create_string_buffer(32)
    _sodium.crypto_scalarmult_base(pk, sk)
    return pk.raw


def box_key(pk, sk):
    k = ctypes.create_string_buffer(32)
    assert _sodium.crypto_box_beforenm(k, pk, sk) == 0
    return k.raw


def box_seal(key, msg):
    nonce = os.urandom(24)
    out = ctypes.create_string_buffer(len(msg) + 16)
    _sodium.crypto_box_easy_afternm(out, msg, ctypes.c_ulonglong(len(msg)),
                                    nonce, key)
    return nonce + out.raw


def box_open(key, sealed):
    nonce, ct = sealed[:24], sealed[24:]
    out = ctypes.create_string_buffer(max(1, len(ct) - 16))
    if _sodium.crypto_box_open_easy_afternm(
            out, ct, ctypes.c_ulonglong(len(ct)), nonce, key) != 0:
        return None
    return out.raw[:len(ct) - 16]


# -- speaking RPC as a member ---------------------------------------------


def load_box_sk(data_dir):
    with open(os.path.join(data_dir, "identity.key"), "rb") as f:
        raw = f.read()
    return raw[-32:]  # magic, Ed25519 secret (64), X25519 secret (32)


def frame(sender_id, key, msg):
    body = sender_id.encode() + box_seal(key, mp_pack(msg))
    return struct.pack(">I", len(body)) + body


def exchange(addr, data, timeout=5.0, half_close=False):
    """Sends data on a fresh connection (then, with half_close, says it
    has no more); returns what came back before the peer closed (b"" when
    it closed without a word)."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    got = b""
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    return got


def open_reply(got, key):
    if len(got) < 4:
        return None
    n = struct.unpack(">I", got[:4])[0]
    plain = box_open(key, got[4 + 16:4 + n])
    return unpack(plain) if plain is not None else None


class RpcTest(unittest.TestCase):

    def ping(self, c, frm, target):
        return c.cli(frm, "admin", "ping", target, timeout=30)

    def test_ping_forgeries_and_leaving(self):
        with Cluster(3, peer_args=["--gossip-pushpull-ms", "1000"]) as c:
            c.wait_converged(timeout=30)
            ids = [c.peer_id(i) for i in range(3)]

            # Every peer pings every other, by name and by id, and itself.
            for i in range(3):
                for j in range(3):
                    for target in (f"p{j}", ids[j]):
                        cp = self.ping(c, i, target)
                        self.assertEqual(cp.returncode, 0, cp.stderr)
                        m = PONG.search(cp.stdout)
                        self.assertIsNotNone(m, cp.stdout)
                        self.assertEqual(m.group(1), f"p{j}")
                        self.assertEqual(m.group(2), ids[j])
                        self.assertLess(float(m.group(3)), 5000)
            cp = self.ping(c, 0, "nobody")
            self.assertNotEqual(cp.returncode, 0)
            self.assertIn("no member has the id or name nobody", cp.stderr)

            self.forgeries(c, ids)

            # A peer that left: the ping fails and names the state.
            c.stop(2)
            c.wait_member_state(0, ids[2], "left", timeout=30)
            for target in ("p2", ids[2]):
                cp = self.ping(c, 0, target)
                self.assertNotEqual(cp.returncode, 0, cp.stdout)
                self.assertIn("left", cp.stderr)
                self.assertIn(ids[2], cp.stderr)
            cp = self.ping(c, 0, "p1")
            self.assertEqual(cp.returncode, 0, cp.stderr)

    def forgeries(self, c, ids):
        target = c.peers[0].listen
        me = ids[1]  # the test speaks as peer 1, with its key
        sk1 = load_box_sk(c.peers[1].data_dir)
        pk0 = box_public(load_box_sk(c.peers[0].data_dir))
        key = box_key(pk0, sk1)
        pp_before = c.status(0)["gossip"]["pushpulls"]

        def request(**over):
            msg = {"t": "req", "from": me, "to": ids[0],
                   "rid": os.urandom(16),
                   "time": int(time.time() * 1000), "method": "ping",
                   "args": {}}
            msg.update(over)
            return msg

        # A well-formed request from a member is answered.
        req = frame(me, key, request())
        rep = open_reply(exchange(target, MAGIC + req), key)
        self.assertIsNotNone(rep)
        self.assertEqual(rep["t"], "rep")
        self.assertEqual(rep["status"], 0)
        self.assertEqual(rep["from"], ids[0])
        self.assertEqual(rep["to"], me)

        # The same frame again: a replay, refused.
        rep = open_reply(exchange(target, MAGIC + req), key)
        self.assertLess(rep["status"], 0)
        self.assertIn("already seen", rep["message"])

        # Stamped two minutes ago, or two minutes ahead: refused.
        for skew in (-120000, 120000):
            old = request(time=int(time.time() * 1000) + skew)
            rep = open_reply(exchange(target, MAGIC + frame(me, key, old)),
                             key)
            self.assertLess(rep["status"], 0)
            self.assertIn("60 s", rep["message"])

        # A method nobody serves: answered, with why.
        rep = open_reply(exchange(target, MAGIC + frame(
            me, key, request(method="no-such-method"))), key)
        self.assertLess(rep["status"], 0)
        self.assertIn("no-such-method", rep["message"])

        silent = [
            # garbage after the magic
            MAGIC + os.urandom(200),
            # a length past 64 MiB
            MAGIC + struct.pack(">I", (64 << 20) + 1) + me.encode(),
            # an id no member has, claiming a huge frame
            MAGIC + struct.pack(">I", 60 << 20) + b"0123456789abcdef",
            # a member's id, but a box that does not open
            MAGIC + struct.pack(">I", 16 + 80) + me.encode() +
            os.urandom(80),
            # a request meant for another peer (reflected)
            MAGIC + frame(me, key, request(to=ids[2])),
            # claims to come from peer 2 inside, from peer 1 outside
            MAGIC + frame(me, key, request(**{"from": ids[2]})),
            # a reply where a request belongs
            MAGIC + frame(me, key, dict(request(), t="rep")),
            # not RPC and not push-pull
            os.urandom(300),
            b"",
        ]
        for data in silent:
            got = exchange(target, data, half_close=True)
            self.assertEqual(got, b"", data[:40])

        # Still alive and serving both RPC and push-pull.
        cp = self.ping(c, 1, "p0")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        c.cli(2, "admin", "record", "put", "test", "after-garbage", "x",
              check=True)
        bounded_wait(lambda: c.cli(0, "admin", "record", "get", "test",
                                   "after-garbage").returncode == 0,
                     20, "the record to reach peer 0")
        bounded_wait(lambda: c.status(0)["gossip"]["pushpulls"]
                     >= pp_before + 2, 20, "push-pulls on peer 0")
        self.assertIn("refused", c.log(0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
