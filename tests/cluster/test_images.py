"""Images across real peers: an image imported on one peer is pulled by
another in chunks and assembles byte for byte; a pull goes on from the other
holder when one source is killed mid-pull; a tampered chunk is rejected and
fetched elsewhere; clear errors for bad imports and unknown images; the EC2
API shows an imported image to every account as public.

Chunk sources are slowed (MALLEE_TEST_CHUNK_DELAY_MS) so a pull of 64 MiB
lasts a few seconds and a source can be killed while it runs."""

import json
import os
import re
import shutil
import subprocess
import time
import unittest

from harness import Cluster, bounded_wait

AWS = shutil.which("aws") or "aws"
MIB = 1 << 20


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    return path


def same_bytes(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MIB), fb.read(MIB)
            if x != y:
                return False
            if not x:
                return True


def ami_in(text):
    m = re.search(r"\bami-[0-9a-f]{17}\b", text)
    return m.group(0) if m else None


def image_file(c, i, ami, name):
    return os.path.join(c.peers[i].data_dir, "images", ami, name)


def holders(c, i, ami):
    cp = c.cli(i, "admin", "image", "list", "--json")
    if cp.returncode != 0:
        return 0
    for it in json.loads(cp.stdout or "[]") or []:
        if it.get("ami") == ami:
            return it.get("holders", 0)
    return 0


def wait_holders(c, i, ami, n, timeout=30):
    bounded_wait(lambda: holders(c, i, ami) >= n, timeout,
                 f"peer {i} to see {n} holders of {ami}", interval=0.2)


def env_with_delay(ms):
    env = dict(os.environ)
    env["MALLEE_TEST_CHUNK_DELAY_MS"] = str(ms)
    return env


def aws(edge, key_id, secret, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key_id,
               AWS_SECRET_ACCESS_KEY=secret, AWS_EC2_METADATA_DISABLED="true",
               AWS_MAX_ATTEMPTS="1", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return subprocess.run([AWS, "--endpoint-url", f"http://{edge}",
                           "--output", "json"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60, env=env)


class ImagesTest(unittest.TestCase):

    def test_import_pull_errors_and_api(self):
        with Cluster(2, peer_args={0: ["--edge"]}) as c:
            c.wait_converged(timeout=30)
            kernel = write_random(os.path.join(c.root, "vmlinuz"), 300000)
            disk = write_random(os.path.join(c.root, "disk.raw"),
                                6 * MIB + 123)

            # Bad imports say what is wrong.
            cp = c.cli(0, "admin", "image", "import", "--name", "bad",
                       "--disk", os.path.join(c.root, "absent"))
            self.assertNotEqual(cp.returncode, 0)
            self.assertIn("absent", cp.stderr)
            self.assertIn("No such file", cp.stderr)
            cp = c.cli(0, "admin", "image", "import", "--name", "bad")
            self.assertEqual(cp.returncode, 2)
            self.assertIn("--kernel", cp.stderr)
            cp = c.cli(0, "admin", "image", "import", "--name", "bad",
                       "--disk", disk, "--disk-format", "qcow2")
            self.assertNotEqual(cp.returncode, 0)
            self.assertIn("not a qcow2 image", cp.stderr)
            cp = c.cli(0, "admin", "image", "import", "--name", "x",
                       "--disk", disk)
            self.assertNotEqual(cp.returncode, 0)
            self.assertIn("--name", cp.stderr)

            cp = c.cli(0, "admin", "image", "import", "--name", "tiny one",
                       "--kernel", kernel, "--disk", disk, "--disk-format",
                       "raw", "--cmdline", "console=ttyS0",
                       "--description", "random bytes", check=True)
            ami = ami_in(cp.stdout)
            self.assertIsNotNone(ami, cp.stdout)
            self.assertTrue(same_bytes(image_file(c, 0, ami, "disk"), disk))
            cp = c.cli(0, "admin", "image", "import", "--name", "tiny one",
                       "--kernel", kernel)
            self.assertNotEqual(cp.returncode, 0)
            self.assertIn("exists already", cp.stderr)

            # Peer 1 pulls it once the records have reached it.
            wait_holders(c, 1, ami, 1)
            cp = c.cli(1, "admin", "image", "pull", ami, timeout=60,
                       check=True)
            self.assertIn(f"{300000 + 6 * MIB + 123} bytes pulled",
                          cp.stdout)
            self.assertTrue(same_bytes(image_file(c, 1, ami, "vmlinuz"),
                                       kernel))
            self.assertTrue(same_bytes(image_file(c, 1, ami, "disk"), disk))
            cp = c.cli(1, "admin", "image", "pull", ami, check=True)
            self.assertIn(" 0 bytes pulled", cp.stdout)
            wait_holders(c, 0, ami, 2)

            cp = c.cli(1, "admin", "image", "pull", "ami-0000000000000000f")
            self.assertEqual(cp.returncode, 1)
            self.assertIn("no image ami-0000000000000000f", cp.stderr)
            cp = c.cli(1, "admin", "image", "pull", "ami-nothex")
            self.assertNotEqual(cp.returncode, 0)

            # Every account sees it as public, owned by the admin account.
            edge = c.peers[0].api_listen
            cp = c.cli(0, "admin", "account", "create", "team-b", check=True)
            kid = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", cp.stdout).group(1)
            sec = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)",
                            cp.stdout).group(1)
            r = bounded_wait(
                lambda: (lambda r: r if r.returncode == 0 else None)(
                    aws(edge, kid, sec, "ec2", "describe-images")),
                20, "team-b's key on the edge", interval=0.3)
            imgs = json.loads(r.stdout)["Images"]
            self.assertEqual([i["ImageId"] for i in imgs], [ami])
            self.assertTrue(imgs[0]["Public"])
            self.assertEqual(imgs[0]["OwnerId"], c.admin["account"])
            self.assertEqual(imgs[0]["Name"], "tiny one")
            for args, want in (
                    (["--owners", "self"], []),
                    (["--owners", "amazon"], [ami]),
                    (["--executable-users", "all"], [ami]),
                    (["--filters", "Name=is-public,Values=false"], []),
                    (["--image-ids", ami], [ami])):
                r = aws(edge, kid, sec, "ec2", "describe-images", *args)
                self.assertEqual(r.returncode, 0, r.stderr)
                got = [i["ImageId"] for i in json.loads(r.stdout)["Images"]]
                self.assertEqual(got, want, args)

    def test_pull_survives_a_killed_source_and_a_bad_chunk(self):
        with Cluster(4, env=env_with_delay(250)) as c:
            c.wait_converged(timeout=30)
            src = write_random(os.path.join(c.root, "big.raw"), 64 * MIB)
            cp = c.cli(0, "admin", "image", "import", "--name", "big",
                       "--disk", src, timeout=120, check=True)
            ami = ami_in(cp.stdout)

            # Peer 2 takes a copy, so peers 0 and 2 both hold it.
            wait_holders(c, 2, ami, 1)
            c.cli(2, "admin", "image", "pull", ami, timeout=120, check=True)
            wait_holders(c, 1, ami, 2)

            # Peer 1 pulls; peer 2 dies under it.
            t0 = time.monotonic()
            pull = subprocess.Popen(
                c._wrap(c.peers[1], [c.bin, "admin", "--data-dir",
                                     c.peers[1].data_dir, "image", "pull",
                                     ami]),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=c.env)
            time.sleep(1.0)
            self.assertIsNone(pull.poll(), "the pull ended before the kill")
            c.kill9(2)
            out, err = pull.communicate(timeout=120)
            self.assertEqual(pull.returncode, 0, err)
            self.assertIn(f"{64 * MIB} bytes pulled", out)
            self.assertTrue(same_bytes(image_file(c, 1, ami, "disk"), src))
            log1 = c.log(1)
            self.assertRegex(log1, r"chunk [0-9a-f]+ from [0-9a-f]+ failed")
            print(f"pull with a source killed: {time.monotonic() - t0:.1f}s",
                  flush=True)

            # Every chunk on peer 0 tampered: what it serves is rejected and
            # fetched from peer 1 instead.
            chunks = os.path.join(c.peers[0].data_dir, "chunks")
            n = 0
            for root, _, files in os.walk(chunks):
                for f in files:
                    with open(os.path.join(root, f), "r+b") as fh:
                        b = fh.read(1)
                        fh.seek(0)
                        fh.write(bytes([b[0] ^ 0xff]))
                    n += 1
            self.assertEqual(n, 16)
            wait_holders(c, 3, ami, 3)
            cp = c.cli(3, "admin", "image", "pull", ami, timeout=120)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertTrue(same_bytes(image_file(c, 3, ami, "disk"), src))
            self.assertIn("does not match its hash", c.log(3))


if __name__ == "__main__":
    unittest.main()
