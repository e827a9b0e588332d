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


if __name__ == "__main__":
    unittest.main(verbosity=2)
