"""The API edge over TLS with the cloud's own CA: `mallee init` makes the CA,
each edge issues its own certificate from it (a joining edge once the CA
record reaches it by gossip), and `mallee admin ca` prints what clients
pass as their CA bundle."""

import http.client
import os
import ssl
import unittest

from harness import Cluster, bounded_wait


def get(host, port, ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/?Action=DescribeRegions&Version=2016-11-15")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


class TlsTest(unittest.TestCase):

    def test_edges_serve_https_with_the_cloud_ca(self):
        args = ["--edge", "--api-tls", "on"]
        with Cluster(2, peer_args=args) as c:
            ca = c.cli(0, "admin", "ca", check=True).stdout
            self.assertTrue(ca.startswith("-----BEGIN CERTIFICATE-----"))
            ca_file = os.path.join(c.root, "ca.pem")
            with open(ca_file, "w") as f:
                f.write(ca)
            # The joined edge prints the same CA: one cloud, one CA.
            self.assertEqual(c.cli(1, "admin", "ca", check=True).stdout, ca)
            for i in (0, 1):
                host, port = c.peers[i].api_listen.rsplit(":", 1)
                status, body = bounded_wait(
                    lambda: self._try(host, int(port), ca_file), 20,
                    f"edge {i} to serve HTTPS", interval=0.2)
                # Unsigned: an EC2 error document, over verified TLS.
                self.assertEqual(status, 401)
                self.assertIn("<Code>MissingAuthenticationToken</Code>", body)
            # A client that does not trust the CA is refused.
            host, port = c.peers[0].api_listen.rsplit(":", 1)
            with self.assertRaises(ssl.SSLError):
                ctx = ssl.create_default_context()
                conn = http.client.HTTPSConnection(host, int(port),
                                                   context=ctx, timeout=10)
                conn.request("GET", "/")

    @staticmethod
    def _try(host, port, ca_file):
        try:
            return get(host, port, ca_file)
        except (OSError, ssl.SSLError):
            return None


if __name__ == "__main__":
    unittest.main(verbosity=2)
