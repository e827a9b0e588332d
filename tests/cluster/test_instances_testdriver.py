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
  * kill -9 and restart: pending instances are booted again (boots + 1:
    the test driver forgets its domains with the process), a stopped one
    stays stopped, nothing is admitted twice.

States are read from the host's own records (`mallee admin record list
instance --json`), capacity from `mallee status --json`, and the EC2 calls
go through the aws cli run inside the peer's namespace.  Real guests are
tested in the vm tier.
"""

import json
import os
import re
import struct
import subprocess
import sys
import unittest

from harness import Cluster, HarnessError, bounded_wait

AWS_BIN = os.environ.get("MALLEE_AWS_CLI", "/usr/bin/aws")
REGION = "us-east-1"
ITYPE = "t2.micro"  # 1 vCPU, 1024 MiB
PEER_ARGS = ["--edge", "--api-tls", "off", "--virt-uri", "test:///default",
             "--capacity-vcpu", "2", "--capacity-memory-mib", "4096",
             "--bridge", "mltest0"]


def unpack(b):
    """A small msgpack decoder (maps, arrays, strings, bins, ints, bools)."""
    def one(i):
        t = b[i]
        i += 1
        if t <= 0x7F:
            return t, i
        if t >= 0xE0:
            return t - 0x100, i
        if 0x80 <= t <= 0x8F:
            return pairs(i, t & 0x0F)
        if 0x90 <= t <= 0x9F:
            return items(i, t & 0x0F)
        if 0xA0 <= t <= 0xBF:
            n = t & 0x1F
            return b[i:i + n].decode(errors="replace"), i + n
        if t in (0xC0, 0xC2, 0xC3):
            return {0xC0: None, 0xC2: False, 0xC3: True}[t], i
        fixed = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b",
                 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
        if t in fixed:
            n = struct.calcsize(fixed[t])
            return struct.unpack(fixed[t], b[i:i + n])[0], i + n
        lens = {0xD9: (">B", "s"), 0xDA: (">H", "s"), 0xDB: (">I", "s"),
                0xC4: (">B", "b"), 0xC5: (">H", "b"), 0xC6: (">I", "b"),
                0xDC: (">H", "a"), 0xDD: (">I", "a"), 0xDE: (">H", "m"),
                0xDF: (">I", "m")}
        f, kind = lens[t]
        k = struct.calcsize(f)
        n = struct.unpack(f, b[i:i + k])[0]
        i += k
        if kind == "s":
            return b[i:i + n].decode(errors="replace"), i + n
        if kind == "b":
            return bytes(b[i:i + n]), i + n
        return items(i, n) if kind == "a" else pairs(i, n)

    def pairs(i, n):
        out = {}
        for _ in range(n):
            k, i = one(i)
            v, i = one(i)
            out[k] = v
        return out, i

    def items(i, n):
        out = []
        for _ in range(n):
            v, i = one(i)
            out.append(v)
        return out, i

    return one(0)[0]


class Host:
    """The one peer, seen through its CLI and the aws cli."""

    def __init__(self, c):
        self.c = c
        self.p = c.peers[0]

    def records(self):
        """{instance id: record} of every instance record."""
        cp = self.c.cli(0, "admin", "record", "list", "instance", "--json",
                        check=True)
        out = {}
        for r in json.loads(cp.stdout or "[]"):
            if r.get("deleted"):
                continue
            rec = unpack(bytes.fromhex(r["body"]))
            out[rec["id"]] = rec
        return out

    def state(self, iid):
        return STATES.get(self.records()[iid]["state"], "?")

    def wait_state(self, iid, name, timeout=20):
        return bounded_wait(lambda: self.state(iid) == name, timeout,
                            f"{iid} {name}", interval=0.2)

    def vcpu_free(self):
        cp = self.c.cli(0, "status", "--json", check=True)
        return json.loads(cp.stdout)["self"]["capacity"]["vcpu"]["free"]

    def wait_vcpu_free(self, n, timeout=10):
        return bounded_wait(lambda: self.vcpu_free() == n, timeout,
                            f"{n} vCPU free", interval=0.2)

    def aws(self, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_PAGER": "",
            "AWS_ACCESS_KEY_ID": self.c.admin["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": self.c.admin["AWS_SECRET_ACCESS_KEY"],
        })
        cmd = ["ip", "netns", "exec", self.p.ns, AWS_BIN, "--endpoint-url",
               f"http://{self.p.api_listen}", "--region", REGION,
               "--output", "json", "ec2"] + [str(a) for a in args]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, env=env)
        if cp.returncode == 0:
            return json.loads(cp.stdout) if cp.stdout.strip() else {}
        m = re.search(r"An error occurred \(([^)]+)\)", cp.stderr)
        raise AwsError(m.group(1) if m else "?", cp.stderr.strip())

    def run(self, ami, count=1):
        r = self.aws("run-instances", "--image-id", ami, "--instance-type",
                     ITYPE, "--count", count)
        return [i["InstanceId"] for i in r["Instances"]]


class AwsError(Exception):
    def __init__(self, code, text):
        super().__init__(f"{code}: {text}")
        self.code = code


STATES = {0: "pending", 16: "running", 32: "shutting-down", 48: "terminated",
          64: "stopping", 80: "stopped"}


class InstancesTestDriver(unittest.TestCase):

    def import_image(self, c):
        cp = c.cli(0, "admin", "--help")
        if "image import" not in cp.stdout + cp.stderr:
            self.skipTest("mallee admin has no `image import` yet")
        # The test driver never reads the kernel: any bytes will do.
        kernel = os.path.join(c.root, "vmlinuz")
        with open(kernel, "wb") as f:
            f.write(os.urandom(4096))
        cp = c.cli(0, "admin", "image", "import", "--name", "fake",
                   "--kernel", kernel, "--cmdline", "console=ttyS0",
                   check=True, timeout=60)
        m = re.search(r"\bami-[0-9a-f]{8,17}\b", cp.stdout)
        if not m:
            raise HarnessError(f"image import printed {cp.stdout!r}")
        return m.group(0)

    def test_admission_and_lifecycle(self):
        with Cluster(1, topology="flat", peer_args=PEER_ARGS) as c:
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
