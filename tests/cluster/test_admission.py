"""Two edges racing RunInstances for the last capacity never overbook.

Four peers in network namespaces (flat topology), every one a host on
libvirt's test driver (test:///default: domains "run" without QEMU) with
2 vCPU and 4096 MiB to give; peers 0 and 1 are also edges. boto3 clients,
one process per edge inside that edge's namespace, fire RunInstances
(t2.micro: 1 vCPU, 1 GiB) from many threads at the same instant:

  * first twice as many launches as the cloud has room for: exactly as
    many succeed as fit, the rest fail with InsufficientInstanceCapacity;
  * then, three times over, one instance is terminated and both edges
    race for the one free slot: exactly one launch wins.

After each round, no host holds more vCPU or memory (instances in a state
that holds capacity, from the hosts' own records) than it has, and every
admitted instance has a record on the host that admitted it.
"""

import json
import os
import subprocess
import sys
import time
import unittest

from cloudtools import (boto3_call, client_env, import_fake_image,
                        instance_records, wait_image_known)
from harness import Cluster, HarnessError, bounded_wait

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "..", "clients")
PYTHON = "/usr/bin/python3"  # Debian's python3-boto3
VCPU, MEM = 2, 4096
ITYPE_VCPU, ITYPE_MEM = 1, 1024  # t2.micro
HOSTS = 4
EDGES = (0, 1)
PEER_ARGS = ["--api-tls", "off", "--virt-uri", "test:///default",
             "--capacity-vcpu", str(VCPU), "--capacity-memory-mib", str(MEM),
             "--bridge", "mladm0"]
HOLDS = {0, 16, 32, 64}  # pending, running, shutting-down, stopping

# Runs inside an edge's namespace: `threads` RunInstances at time `at`.
WORKER = r"""
import json, sys, threading, time
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
a = json.loads(sys.argv[1])
cfg = Config(retries={"total_max_attempts": 1}, connect_timeout=10,
             read_timeout=120, max_pool_connections=64)
ec2 = boto3.session.Session(aws_access_key_id=a["key"],
                            aws_secret_access_key=a["secret"],
                            region_name="us-east-1").client(
    "ec2", endpoint_url=a["endpoint"], config=cfg)
out = [None] * a["threads"]
def one(i):
    while time.time() < a["at"]:
        time.sleep(0.001)
    try:
        r = ec2.run_instances(ImageId=a["ami"], InstanceType="t2.micro",
                              MinCount=1, MaxCount=1)
        out[i] = {"ok": True, "id": r["Instances"][0]["InstanceId"]}
    except ClientError as e:
        out[i] = {"ok": False, "code": e.response["Error"]["Code"],
                  "message": e.response["Error"].get("Message", "")}
    except Exception as e:
        out[i] = {"ok": False, "code": "client", "message": repr(e)}
ts = [threading.Thread(target=one, args=(i,)) for i in range(a["threads"])]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(out))
"""


class AdmissionTest(unittest.TestCase):

    def check_no_overbooking(self, c, ids, admitted):
        """Each host's own records: what holds capacity fits, and every
        admitted id is there."""
        mine = {}
        for i in range(HOSTS):
            recs = instance_records(c, i)
            own = {k: r for k, r in recs.items() if r.get("host") == ids[i]}
            mine.update(own)
            held = [r for r in own.values() if r.get("state") in HOLDS]
            vcpu = sum(r.get("vcpu", 0) for r in held)
            mem = sum(r.get("mem_mib", 0) for r in held)
            self.assertLessEqual(vcpu, VCPU, f"p{i} overbooked: {held}")
            self.assertLessEqual(mem, MEM, f"p{i} overbooked: {held}")
        for iid in admitted:
            self.assertIn(iid, mine, f"{iid} was admitted but no host has "
                          "its record")
        return mine

    def race(self, c, ami, per_edge, delay=1.0):
        """Both edges fire per_edge launches at the same instant; returns
        every result."""
        at = time.time() + delay + 1.0
        procs = []
        for e in EDGES:
            p = c.peers[e]
            args = json.dumps({
                "endpoint": f"http://{p.api_listen}",
                "key": c.admin["AWS_ACCESS_KEY_ID"],
                "secret": c.admin["AWS_SECRET_ACCESS_KEY"],
                "ami": ami, "threads": per_edge, "at": at})
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", p.ns, PYTHON, "-c", WORKER, args],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=client_env()))
        results = []
        for p in procs:
            out, err = p.communicate(timeout=240)
            if p.returncode != 0:
                raise HarnessError(f"boto3 worker failed: {err}")
            results += json.loads(out)
        return results

    def wait_freed(self, c, ids, iid):
        """Until iid's host has it terminated and both edges see the
        vCPU it gave back."""
        def host_of():
            for i in range(HOSTS):
                r = instance_records(c, i).get(iid)
                if r and r.get("host") == ids[i] and r.get("state") == 48:
                    return (i,)
            return None
        h, = bounded_wait(host_of, 30, f"{iid} terminated on its host",
                          interval=0.2, max_tries=200)
        for e in EDGES:
            bounded_wait(lambda e=e: c.members(e)[ids[h]]["capacity"]
                         ["vcpu"]["free"] >= ITYPE_VCPU, 30,
                         f"edge p{e} to see p{h}'s free vCPU",
                         interval=0.2, max_tries=200)

    def test_two_edges_never_overbook(self):
        args = {i: PEER_ARGS + (["--edge"] if i in EDGES else [])
                for i in range(HOSTS)}
        with Cluster(HOSTS, topology="flat", peer_args=args) as c:
            c.wait_converged(timeout=30)
            for i in range(HOSTS):
                bounded_wait(lambda i=i: "test:///default" in c.log(i), 20,
                             f"p{i}'s hypervisor connection")
            ids = [c.peer_id(i) for i in range(HOSTS)]
            ami = import_fake_image(c)
            # Every edge must know the image before the race.
            wait_image_known(c, ami, EDGES)
            room = HOSTS * min(VCPU // ITYPE_VCPU, MEM // ITYPE_MEM)

            # More launches than room, from both edges at once.
            results = self.race(c, ami, room)
            won = [r["id"] for r in results if r["ok"]]
            lost = [r for r in results if not r["ok"]]
            print(f"broad race: {len(won)} admitted, {len(lost)} refused "
                  f"({room} fit)", file=sys.stderr)
            self.assertLessEqual(len(won), room)
            self.assertEqual(len(won), room, f"refusals: {lost[:3]}")
            for r in lost:
                self.assertEqual(r["code"], "InsufficientInstanceCapacity",
                                 r)
            bounded_wait(lambda: len(self.check_no_overbooking(
                c, ids, won)) >= room, 30, "every host's records")
            alive = list(won)

            # The last slot, three times: both edges race for it.
            for round_ in range(3):
                victim = alive.pop(round_ % len(alive))
                boto3_call(c, "terminate_instances", python=PYTHON,
                           InstanceIds=[victim])
                self.wait_freed(c, ids, victim)
                results = self.race(c, ami, 2)
                won2 = [r["id"] for r in results if r["ok"]]
                print(f"last-slot race {round_}: {len(won2)} admitted",
                      file=sys.stderr)
                self.assertEqual(len(won2), 1, results)
                alive += won2
                self.check_no_overbooking(c, ids, alive)


if __name__ == "__main__":
    unittest.main(verbosity=2)
