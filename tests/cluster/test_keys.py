"""Accounts and access keys across edges: a key made on one peer works on
another edge once gossip has carried it, and a revoked key fails on every
edge within seconds."""

import os
import re
import shutil
import subprocess
import time
import unittest

from harness import Cluster, bounded_wait

# Installed by scripts/setup; a missing cli fails the test, never skips it.
AWS = shutil.which("aws") or "aws"


def aws(edge, key_id, secret, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key_id,
               AWS_SECRET_ACCESS_KEY=secret, AWS_EC2_METADATA_DISABLED="true",
               AWS_MAX_ATTEMPTS="1", AWS_DEFAULT_REGION="us-east-1")
    return subprocess.run([AWS, "--endpoint-url", f"http://{edge}",
                           "--output", "text"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60, env=env)


def parse_key(text):
    acct = re.search(r"account\s+(\d{12})", text).group(1)
    kid = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", text).group(1)
    secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", text).group(1)
    return acct, kid, secret


class KeysTest(unittest.TestCase):

    def test_new_key_spreads_and_revocation_reaches_every_edge(self):
        with Cluster(3, peer_args={0: ["--edge"], 2: ["--edge"]}) as c:
            c.wait_converged(timeout=30)
            edges = [c.peers[0].api_listen, c.peers[2].api_listen]
            cp = c.cli(1, "admin", "account", "create", "team-b", check=True)
            acct, kid, secret = parse_key(cp.stdout)

            # Made on a peer that is not an edge: both edges learn it.
            for edge in edges:
                cp = bounded_wait(
                    lambda edge=edge: (lambda r: r if r.returncode == 0
                                       else None)(
                        aws(edge, kid, secret, "sts",
                            "get-caller-identity")),
                    20, f"edge {edge} to accept the new key", interval=0.3)
                self.assertIn(acct, cp.stdout)

            c.cli(1, "admin", "key", "revoke", kid, check=True)
            t0 = time.monotonic()
            for edge in edges:
                def refused(edge=edge):
                    r = aws(edge, kid, secret, "ec2", "describe-regions")
                    return r if r.returncode != 0 else None
                r = bounded_wait(refused, 10, f"edge {edge} to refuse "
                                 "the revoked key", interval=0.2)
                self.assertIn("AuthFailure", r.stderr)
            took = time.monotonic() - t0
            print(f"revoked key refused by both edges after {took:.2f}s")
            self.assertLess(took, 10)

            # The admin key still works; the list shows the revocation.
            admin = c.admin
            r = aws(edges[1], admin["AWS_ACCESS_KEY_ID"],
                    admin["AWS_SECRET_ACCESS_KEY"], "ec2", "describe-regions")
            self.assertEqual(r.returncode, 0, r.stderr)
            listing = c.cli(0, "admin", "key", "list", check=True).stdout
            self.assertRegex(listing, rf"{kid}\s+{acct}\s+admin\s+revoked")


if __name__ == "__main__":
    unittest.main(verbosity=2)
