"""The image collector across real peers (flat topology, --virt-uri none).

Two images share their kernel (one chunk); peer 0 imports both, peer 1
pulls both. Temporary files planted in peer 1's store while it is down (as
a kill -9 mid-write leaves them) are gone once it is back, and nothing
else is. Image A is deregistered through the EC2 API (boto3): a pass with
the default grace keeps everything; a pass with grace 0 (the hidden
control command "image-gc") removes A's chunks and assembled files on
peer 0 and withdraws its copy record, while image B keeps every chunk,
the shared kernel included. On peer 1 a stopped instance of A (its record
written as a host would) keeps A's files until that instance is
terminated; then they go too, and no peer holds A any more. A pull under
way (peer 0 taking A back from peer 1) keeps the chunks it needs through
a pass."""

import hashlib
import json
import os
import subprocess
import time
import unittest

from cloudtools import boto3_call, import_image, put_instance_record, unpack
from harness import Cluster, bounded_wait
from test_hostnet import ctl

MIB = 1 << 20
CHUNK = 4 * MIB


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def write_random(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return path


def chunk_hashes(path):
    """The BLAKE2b-256 of each 4 MiB piece of path, as the peer cuts it."""
    out = []
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                return out
            out.append(hashlib.blake2b(b, digest_size=32).hexdigest())


def chunk_path(c, i, h):
    return os.path.join(c.peers[i].data_dir, "chunks", h[:2], h)


def image_dir(c, i, ami):
    return os.path.join(c.peers[i].data_dir, "images", ami)


def chunks_here(c, i):
    """Every chunk file name in peer i's store."""
    root = os.path.join(c.peers[i].data_dir, "chunks")
    return {f for _, _, files in os.walk(root) for f in files}


def holders(c, i, ami):
    cp = c.cli(i, "admin", "image", "list", "--json")
    if cp.returncode != 0:
        return None
    for it in json.loads(cp.stdout or "[]") or []:
        if it.get("ami") == ami:
            return it.get("holders", 0)
    return 0


def collect(c, i, grace_ms=None):
    """One collection pass on peer i (the hidden "image-gc"), waited for;
    the bytes it removed."""
    req = {"cmd": "image-gc"}
    if grace_ms is not None:
        req["grace_ms"] = grace_ms
    r = ctl(c.peers[i], req)
    if not r.get("ok"):
        raise AssertionError(f"image-gc: {r}")

    def done():
        j = ctl(c.peers[i], {"cmd": "image-job", "job": r["job"]})
        if not j.get("ok"):
            raise AssertionError(f"image-gc job: {j}")
        return j if j.get("done") else None
    return bounded_wait(done, 30, f"peer {i}'s collection",
                        interval=0.1)["bytes"]


def has_record(c, i, kind, rid):
    r = ctl(c.peers[i], {"cmd": "record-get", "kind": kind, "id": rid})
    return bool(r.get("ok"))


class ImageGcTest(unittest.TestCase):

    def test_collect(self):
        args = {0: ["--edge", "--api-tls", "off"]}
        # Chunks are served slowly, so a pull lasts while a pass runs.
        env = dict(os.environ, MALLEE_TEST_CHUNK_DELAY_MS="1500")
        with Cluster(2, topology="flat", peer_args=args, env=env) as c:
            c.wait_converged(timeout=30)
            t0 = time.monotonic()
            p1 = c.peer_id(1)
            kernel = write_random(os.path.join(c.root, "vmlinuz"), 300000)
            disk_a = write_random(os.path.join(c.root, "a.raw"),
                                  6 * MIB + 123)
            disk_b = write_random(os.path.join(c.root, "b.raw"), 5 * MIB)
            ami_a = import_image(c, 0, "--name", "gc-a", "--kernel", kernel,
                                 "--disk", disk_a, "--disk-format", "raw")
            ami_b = import_image(c, 0, "--name", "gc-b", "--kernel", kernel,
                                 "--disk", disk_b, "--disk-format", "raw")
            k = chunk_hashes(kernel)
            only_a = chunk_hashes(disk_a)
            only_b = chunk_hashes(disk_b)
            self.assertEqual(len(k), 1)
            self.assertEqual(chunks_here(c, 0), set(k + only_a + only_b))

            for ami in (ami_a, ami_b):
                bounded_wait(lambda ami=ami: holders(c, 1, ami), 30,
                             f"peer 1 to see a holder of {ami}",
                             interval=0.2)
                c.cli(1, "admin", "image", "pull", ami, timeout=60,
                      check=True)
            self.assertEqual(chunks_here(c, 1), set(k + only_a + only_b))

            # A crash mid-write leaves temporary files: gone at start.
            c.kill9(1)
            stale = [chunk_path(c, 1, k[0]) + ".tmp.99999.3",
                     os.path.join(c.peers[1].data_dir, "chunks", "00",
                                  "00" * 32 + ".tmp.1.0"),
                     os.path.join(image_dir(c, 1, ami_a), "disk.tmp"),
                     os.path.join(image_dir(c, 1, ami_b),
                                  ".complete.tmp.4242.0")]
            os.makedirs(os.path.dirname(stale[1]), exist_ok=True)
            for i, path in enumerate(stale):
                with open(path, "wb") as f:
                    f.write(b"x" * (1000 + i))
            c.restart(1)
            for path in stale:
                self.assertFalse(os.path.exists(path), path)
            self.assertIn("removed 4 temporary files (4006 bytes)",
                          c.log(1))
            self.assertEqual(chunks_here(c, 1), set(k + only_a + only_b))
            for ami in (ami_a, ami_b):
                self.assertTrue(os.path.exists(
                    os.path.join(image_dir(c, 1, ami), ".complete")))

            # Deregistered through the EC2 API: its "image" record goes.
            bounded_wait(lambda: self.try_call(c, "describe_images"), 30,
                         "the edge to answer")
            boto3_call(c, "deregister_image", ImageId=ami_a)
            for i in (0, 1):
                bounded_wait(lambda i=i: ami_a not in c.cli(
                    i, "admin", "record", "list", "image").stdout, 30,
                    f"peer {i} to see {ami_a} deregistered", interval=0.2)

            # A stopped instance of A on peer 1, as its host wrote it.
            acct = c.admin["account"]
            rec = {"id": "i-0123456789abcdef0", "account": acct,
                   "host": p1, "image_id": ami_a, "state": 80,
                   "instance_type": "t3.micro"}
            rid = f"{acct}:{rec['id']}"
            put_instance_record(c, rec)
            bounded_wait(lambda: has_record(c, 1, "instance", rid), 30,
                         "peer 1 to learn the instance")

            # Within the grace nothing goes.
            self.assertEqual(collect(c, 0), 0)
            self.assertEqual(chunks_here(c, 0), set(k + only_a + only_b))

            # Grace 0: peer 0 drops A but keeps B whole (shared kernel).
            removed = collect(c, 0, grace_ms=0)
            self.assertGreater(removed, 6 * MIB)
            self.assertEqual(chunks_here(c, 0), set(k + only_b))
            self.assertFalse(os.path.exists(image_dir(c, 0, ami_a)))
            for name in ("vmlinuz", "disk", ".complete"):
                self.assertTrue(os.path.exists(
                    os.path.join(image_dir(c, 0, ami_b), name)), name)
            p0 = c.peer_id(0)
            self.assertFalse(has_record(c, 0, "image-copy",
                                        f"{ami_a}:{p0}"))
            self.assertTrue(has_record(c, 0, "image-copy",
                                       f"{ami_b}:{p0}"))
            # The manifest stays: instances of A may boot again.
            self.assertTrue(has_record(c, 0, "image-content", ami_a))
            self.assertIn("collected", c.log(0))

            # Peer 1's stopped instance keeps A there.
            collect(c, 1, grace_ms=0)
            self.assertEqual(chunks_here(c, 1), set(k + only_a + only_b))
            self.assertTrue(os.path.exists(
                os.path.join(image_dir(c, 1, ami_a), "disk")))
            self.assertTrue(has_record(c, 1, "image-copy",
                                       f"{ami_a}:{p1}"))

            # A pull under way keeps what it needs: peer 0 takes A back
            # from peer 1 (slow to serve) while a pass runs.
            bounded_wait(lambda: holders(c, 0, ami_a) == 1, 30,
                         "peer 0 to see its copy of A withdrawn",
                         interval=0.2)
            pull = subprocess.Popen(
                c._wrap(c.peers[0], [c.bin, "admin", "--data-dir",
                                     c.peers[0].data_dir, "image", "pull",
                                     ami_a]),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=c.env)
            try:
                # The kernel is here (B's): two chunks to fetch.
                bounded_wait(lambda: f"{ami_a}: pulling 2 of 3 chunks"
                             in c.log(0), 20, "peer 0's pull to begin",
                             interval=0.05)
                self.assertEqual(collect(c, 0, grace_ms=0), 0)
                self.assertIsNone(pull.poll(),
                                  "the pull ended before the pass")
                out, err = pull.communicate(timeout=60)
            finally:
                if pull.poll() is None:
                    pull.kill()
                    pull.communicate()
            self.assertEqual(pull.returncode, 0, err)
            self.assertTrue(same_bytes(
                os.path.join(image_dir(c, 0, ami_a), "disk"), disk_a))
            self.assertEqual(chunks_here(c, 0), set(k + only_a + only_b))
            self.assertRegex(c.log(0), r"kept [1-9]\d* files in use")
            # Then, nobody using it, it goes again.
            self.assertGreater(collect(c, 0, grace_ms=0), 6 * MIB)
            self.assertEqual(chunks_here(c, 0), set(k + only_b))

            # Terminated: A goes from peer 1 too, B stays.
            rec["state"] = 48
            put_instance_record(c, rec)

            def terminated():
                r = ctl(c.peers[1], {"cmd": "record-get",
                                     "kind": "instance", "id": rid})
                return r.get("ok") and \
                    unpack(r["record"]["body"]).get("state") == 48
            bounded_wait(terminated, 30, "peer 1 to see it terminated",
                         interval=0.2)
            self.assertGreater(collect(c, 1, grace_ms=0), 6 * MIB)
            self.assertEqual(chunks_here(c, 1), set(k + only_b))
            self.assertFalse(os.path.exists(image_dir(c, 1, ami_a)))
            self.assertTrue(os.path.exists(
                os.path.join(image_dir(c, 1, ami_b), "disk")))
            self.assertFalse(has_record(c, 1, "image-copy",
                                        f"{ami_a}:{p1}"))
            for i in (0, 1):
                bounded_wait(lambda i=i: holders(c, i, ami_a) == 0, 30,
                             f"peer {i} to see nobody hold {ami_a}",
                             interval=0.2)
                self.assertEqual(holders(c, i, ami_b), 2)
            # A second pass finds nothing more to do.
            self.assertEqual(collect(c, 1, grace_ms=0), 0)
            print(f"image gc: {time.monotonic() - t0:.1f}s", flush=True)

    @staticmethod
    def try_call(c, op, **args):
        try:
            return boto3_call(c, op, **args)
        except AssertionError:
            return None


if __name__ == "__main__":
    unittest.main()
