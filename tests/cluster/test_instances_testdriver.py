"""Instances on libvirt's test driver: admission and lifecycle, no guests.

One peer, an edge, in a network namespace of its own (so host networking's
bridge lives there), with --virt-uri test:///default: libvirt's in-process
fake hypervisor, which "runs" any domain (kernel or not) without QEMU.  No
guest ever asks for an address there, so instances stay pending; what is
checked is what the host does:

  * admission within --capacity-vcpu / --capacity-memory-mib: the third
    instance of a type is refused, the records name this host, an address,
    a MAC, x86_64 and /dev/vda;
  * stop -> stopped frees capacity, start takes it again (refused while
    another instance holds it), modify is refused unless stopped,
    terminate -> terminated frees it and deletes the instance's directory;
  * a started guest without an address stays pending, and past the due
    time (shortened to 3 s here) its state reason says so and
    DescribeInstanceStatus calls it impaired;
  * kill -9 and restart: pending instances are booted again (boots + 1:
    the test driver forgets its domains with the process), a stopped one
    stays stopped, nothing is admitted twice.

States are read from the host's own records (`mallee admin record list
instance --json`), capacity from `mallee status --json`, and the EC2 calls
go through the aws cli run inside the peer's namespace.  Real guests are
tested in the vm tier.
"""

import os
import sys
import unittest

from cloudtools import (STATES, AwsError, edge_cli, import_fake_image,
                        instance_records, vcpu_free)
from harness import Cluster, bounded_wait

ITYPE = "t2.micro"  # 1 vCPU, 1024 MiB
PEER_ARGS = ["--edge", "--api-tls", "off", "--virt-uri", "test:///default",
             "--capacity-vcpu", "2", "--capacity-memory-mib", "4096",
             "--bridge", "mltest0"]


class Host:
    """The one peer, seen through its CLI and the aws cli."""

    def __init__(self, c):
        self.c = c
        self.cli = edge_cli(c, 0)

    def records(self):
        """{instance id: record} of every instance record."""
        return instance_records(self.c, 0)

    def state(self, iid):
        return STATES.get(self.records()[iid]["state"], "?")

    def wait_state(self, iid, name, timeout=20):
        return bounded_wait(lambda: self.state(iid) == name, timeout,
                            f"{iid} {name}", interval=0.2)

    def vcpu_free(self):
        return vcpu_free(self.c, 0)

    def wait_vcpu_free(self, n, timeout=10):
        return bounded_wait(lambda: self.vcpu_free() == n, timeout,
                            f"{n} vCPU free", interval=0.2)

    def aws(self, *args):
        return self.cli.ec2(*args)

    def run(self, ami, count=1):
        r = self.aws("run-instances", "--image-id", ami, "--instance-type",
                     ITYPE, "--count", count)
        return [i["InstanceId"] for i in r["Instances"]]


class InstancesTestDriver(unittest.TestCase):

    def import_image(self, c):
        cp = c.cli(0, "admin", "--help")
        if "image import" not in cp.stdout + cp.stderr:
            self.skipTest("mallee admin has no `image import` yet")
        return import_fake_image(c)

    def test_admission_and_lifecycle(self):
        env = dict(os.environ, MALLEE_TEST_ADDRESS_DUE_MS="3000")
        with Cluster(1, topology="flat", peer_args=PEER_ARGS,
                     env=env) as c:
            h = Host(c)
            bounded_wait(lambda: "connected to test:///default" in c.log(0),
                         20, "the hypervisor connection")
            me = c.peer_id(0)
            self.assertEqual(h.vcpu_free(), 2)
            ami = self.import_image(c)

            # Admission: two fit, the third does not.
            a, b = h.run(ami, 2)
            recs = h.records()
            for iid in (a, b):
                r = recs[iid]
                self.assertEqual(r["host"], me)
                self.assertEqual(STATES[r["state"]], "pending")
                self.assertRegex(r["private_ip"], r"^\d+\.\d+\.\d+\.\d+$")
                self.assertRegex(r["mac"], r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
                self.assertEqual(r["architecture"], "x86_64")
                self.assertEqual(r["root_device"], "/dev/vda")
                self.assertEqual(r["boots"], 1)
            self.assertNotEqual(recs[a]["private_ip"], recs[b]["private_ip"])
            h.wait_vcpu_free(0)
            with self.assertRaises(AwsError):
                h.run(ami, 1)
            self.assertEqual(len(h.records()), 2, "a refused launch left a "
                             "record")
            bounded_wait(lambda: "domain started" in c.log(0), 10,
                         "the test driver's domains")

            # No guest asks for an address here: past the due time the
            # instances say so, still pending.
            def overdue():
                recs = h.records()
                return all(recs[i].get("state_reason_code") == "pending"
                           for i in (a, b)) and recs
            recs = bounded_wait(overdue, 15, "the address to be overdue",
                                interval=0.5)
            for iid in (a, b):
                self.assertEqual(STATES[recs[iid]["state"]], "pending")
                self.assertIn("no address 3 s after its start",
                              recs[iid]["state_reason"])
            out = h.aws("describe-instances", "--instance-ids", a)
            inst = out["Reservations"][0]["Instances"][0]
            self.assertEqual(inst["StateReason"]["Code"], "pending")
            self.assertIn("console output", inst["StateReason"]["Message"])
            st = h.aws("describe-instance-status", "--instance-ids", a,
                       "--include-all-instances")["InstanceStatuses"][0]
            self.assertEqual(st["InstanceStatus"]["Status"], "impaired")

            # Modify only when stopped; stop frees a vCPU.
            with self.assertRaises(AwsError) as e:
                h.aws("modify-instance-attribute", "--instance-id", a,
                      "--instance-type", "Value=t2.nano")
            self.assertEqual(e.exception.code, "IncorrectInstanceState")
            h.aws("stop-instances", "--instance-ids", a)
            h.wait_state(a, "stopped")
            h.wait_vcpu_free(1)

            # Another instance takes that vCPU; then a start is refused.
            d = h.run(ami, 1)[0]
            h.wait_vcpu_free(0)
            with self.assertRaises(AwsError) as e:
                h.aws("start-instances", "--instance-ids", a)
            self.assertEqual(h.state(a), "stopped")

            # Terminate frees it and cleans the host up.
            h.aws("terminate-instances", "--instance-ids", d)
            h.wait_state(d, "terminated")
            h.wait_vcpu_free(1)
            self.assertFalse(os.path.exists(os.path.join(
                c.peers[0].data_dir, "instances", d)))

            h.aws("start-instances", "--instance-ids", a)
            self.assertEqual(h.state(a), "pending")
            self.assertEqual(h.records()[a]["boots"], 2)
            h.wait_vcpu_free(0)

            # Stop b, then kill -9: a (pending) boots again, b stays
            # stopped, nothing is admitted twice.
            h.aws("stop-instances", "--instance-ids", b)
            h.wait_state(b, "stopped")
            c.kill9(0)
            c.restart(0)
            bounded_wait(lambda: h.records()[a]["boots"] == 3, 20,
                         f"{a} booted again after the restart")
            recs = h.records()
            self.assertEqual(STATES[recs[a]["state"]], "pending")
            self.assertEqual(STATES[recs[b]["state"]], "stopped")
            self.assertEqual(recs[b]["boots"], 1)
            self.assertEqual(len(recs), 3)
            h.wait_vcpu_free(1)

            # Terminate everything: all capacity back.
            h.aws("terminate-instances", "--instance-ids", a, b)
            h.wait_state(a, "terminated")
            h.wait_state(b, "terminated")
            h.wait_vcpu_free(2)
            left = os.listdir(os.path.join(c.peers[0].data_dir, "instances"))
            self.assertEqual(left, [])
            if os.environ.get("MALLEE_TEST_VERBOSE"):
                print(c.log(0), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
