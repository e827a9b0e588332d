"""A host runs an image it does not have: it pulls the image from a peer.

Two hosts in different zones; the tiny image is imported on host 0 only.
An instance asked for in host 1's zone (Placement.AvailabilityZone) lands
on host 1, which fetches the image's chunks from host 0 and boots it: the
console shows the instance's id.  Host 1 had no chunks before, and holds
the image's bytes afterwards.
"""

import os
import unittest

from cloud import Cloud, smallest_type, main, log

ZONES = ["us-east-1a", "us-east-1b"]


def chunk_bytes(data_dir):
    """Bytes of files under DATA_DIR/chunks."""
    total = 0
    for root, _, files in os.walk(os.path.join(data_dir, "chunks")):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


class ImagePullTest(unittest.TestCase):

    def test_pull_and_boot(self):
        with Cloud(2, zones=ZONES) as cl:
            ami = cl.import_image(host=0)
            cl.wait_image_visible(ami)
            img_bytes = chunk_bytes(cl.c.peers[0].data_dir)
            self.assertGreater(img_bytes, 0, "host 0 holds no chunks")
            self.assertEqual(chunk_bytes(cl.c.peers[1].data_dir), 0,
                             "host 1 holds chunks before any pull")
            itype, _, _ = smallest_type(cl)
            r = cl.ec2("run-instances", "--image-id", ami, "--instance-type",
                       itype, "--count", "1", "--placement",
                       f"AvailabilityZone={ZONES[1]}")
            iid = r["Instances"][0]["InstanceId"]
            insts = cl.wait_state([iid], "running", 240)
            self.assertEqual(
                insts[iid]["Placement"]["AvailabilityZone"], ZONES[1])
            self.assertEqual(cl.host_of(iid), 1)
            cl.wait_console(iid, f"instance-id: {iid}", 120)
            got = chunk_bytes(cl.c.peers[1].data_dir)
            log(f"host 0 chunks {img_bytes} bytes, host 1 pulled {got}")
            # Every chunk came (empty regions of a raw disk may be left
            # out by both sides alike).
            self.assertEqual(got, img_bytes)
            cl.ec2("terminate-instances", "--instance-ids", iid)
            cl.wait_state([iid], "terminated", 120)


if __name__ == "__main__":
    main()
