"""Anti-entropy compares digests first: two peers in sync with 100,000
records exchange less than 10 KB per push-pull, and a peer that joins late
receives every record."""

import time
import unittest

from harness import Cluster, bounded_wait

N_RECORDS = 100_000


def gossip(c, i):
    st = c.status(i)
    return st["self"], st["gossip"]


class AntiEntropyTest(unittest.TestCase):

    def test_in_sync_exchange_is_small(self):
        args = ["--gossip-pushpull-ms", "1000"]
        with Cluster(2, peer_args=args, start=False) as c:
            c.init(0)
            c.start(0)
            lines = "".join(f"bench r{i:06d} body-{i}-{'x' * 24}\n"
                            for i in range(N_RECORDS))
            cp = c.cli(0, "admin", "record", "load", input=lines,
                       timeout=120, check=True)
            self.assertIn(f"loaded {N_RECORDS}", cp.stdout)

            c.token = c.make_token(0)
            c.start(1)
            want = gossip(c, 0)[0]["records_digest"]

            def synced():
                me, _ = gossip(c, 1)
                return me["records_digest"] == want and me
            me = bounded_wait(synced, 120, "the late peer to catch up",
                              interval=0.5)
            self.assertGreaterEqual(me["records"], N_RECORDS)

            # Let in-flight bulk exchanges finish, then measure.
            time.sleep(3)
            _, g0 = gossip(c, 0)
            time.sleep(8)
            _, g1 = gossip(c, 0)
            exchanges = g1["pushpulls"] - g0["pushpulls"]
            sent = g1["stream_bytes"] - g0["stream_bytes"]
            self.assertGreaterEqual(exchanges, 4)
            per_exchange = sent / exchanges
            print(f"{N_RECORDS} records in sync: {per_exchange:.0f} bytes "
                  f"per push-pull (both directions), {exchanges} exchanges")
            self.assertLess(per_exchange, 10_000)
            self.assertEqual(gossip(c, 1)[0]["records_digest"], want)


    def test_client_pulls_newer_versions_from_the_server(self):
        """After a partition only peer 0 starts push-pulls (peer 1's period
        is ten minutes), so every newer version peer 1 wrote must come to
        peer 0 as something peer 0 asked for."""
        args = {0: ["--gossip-pushpull-ms", "1000"],
                1: ["--gossip-pushpull-ms", "600000"]}
        with Cluster(2, topology="flat", peer_args=args) as c:
            c.wait_converged(timeout=30)
            c.cli(1, "admin", "record", "put", "test", "v", "old",
                  check=True)
            bounded_wait(lambda: c.cli(0, "admin", "record", "get", "test",
                                       "v").stdout == "old", 15,
                         "peer 0 to get the first version", interval=0.2)
            c.net.link_set(1, False)
            time.sleep(1)
            c.cli(1, "admin", "record", "put", "test", "v", "new",
                  check=True)
            c.cli(1, "admin", "record", "put", "test", "w", "only-on-1",
                  check=True)
            time.sleep(2)  # peer 1's broadcasts and its early pull fail
            c.net.link_set(1, True)
            for key, want in (("v", "new"), ("w", "only-on-1")):
                bounded_wait(lambda key=key, want=want: c.cli(
                    0, "admin", "record", "get", "test", key).stdout == want,
                    30, f"peer 0 to pull {key}={want}", interval=0.3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
