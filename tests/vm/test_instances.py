"""EC2 clients run real guests: the aws cli against a 3-host cloud.

Three simulated hosts (tests/vm/cloud.py), each offering one vCPU, so three
instances of the smallest type must land on three different hosts.  The
aws cli runs them with a shell-script user data; each reaches running,
its console shows its own id (read from the host's metadata service) and
its user data's output; the 4th is refused for lack of capacity; stop and
start keep the id and the root disk; reboot boots the same guest again;
terminate gives every host its vCPU back, shown by `mallee status` and by
three more instances running.
"""

import unittest

from cloud import Cloud, AwsError, smallest_type, main, log

USER_DATA = "#!/bin/sh\necho user-data-ran-$((6*7))\n"
RUN_TIMEOUT = 180
CONSOLE_TIMEOUT = 120


class InstancesTest(unittest.TestCase):

    def run_instances(self, cl, ami, itype, count):
        r = cl.ec2("run-instances", "--image-id", ami, "--instance-type",
                   itype, "--count", str(count), "--user-data", USER_DATA)
        ids = [i["InstanceId"] for i in r["Instances"]]
        self.assertEqual(len(ids), count, r)
        for i in r["Instances"]:
            self.assertRegex(i["InstanceId"], r"^i-[0-9a-f]{17}$")
            self.assertIn(i["State"]["Name"], ("pending", "running"))
            self.assertEqual(i["InstanceType"], itype)
            self.assertEqual(i["ImageId"], ami)
        self.assertEqual(len(set(ids)), count)
        return ids

    def test_run_console_stop_start_reboot_terminate(self):
        with Cloud(3, capacity_vcpu=1) as cl:
            ami = cl.import_image(host=0)
            cl.wait_image_visible(ami)
            itype, vcpus, mem = smallest_type(cl)
            log(f"smallest type {itype}: {vcpus} vCPU, {mem} MiB")
            self.assertEqual(vcpus, 1, "the test gives each host one vCPU")

            ids = self.run_instances(cl, ami, itype, 3)
            insts = cl.wait_state(ids, "running", RUN_TIMEOUT)

            # Spread: one vCPU per host, so one instance per host, and
            # each record names the host whose libvirt runs it.
            where = {i: cl.host_of(i) for i in ids}
            log(f"placement: {where}")
            self.assertNotIn(None, where.values(), where)
            self.assertEqual(sorted(where.values()), [0, 1, 2], where)
            for i in ids:
                self.assertEqual(cl.record_host(i), where[i],
                                 f"{i}'s record names another host")
                self.assertTrue(insts[i].get("PrivateIpAddress"),
                                f"{i} has no private address: {insts[i]}")

            # Each guest read its own id and user data from its host's
            # metadata service.
            for i in ids:
                text = cl.wait_console(i, f"instance-id: {i}",
                                       CONSOLE_TIMEOUT)
                text = cl.wait_console(i, "user-data-ran-42",
                                       CONSOLE_TIMEOUT)
                self.assertIn(insts[i]["PrivateIpAddress"], text,
                              "the guest's DHCP address is not the one "
                              "DescribeInstances shows")
                for other in ids:
                    if other != i:
                        self.assertNotIn(f"instance-id: {other}", text)

            # Full: every host's vCPU is held.
            for h in range(3):
                self.assertEqual(cl.free_vcpu(h), 0, f"host {h}")
            with self.assertRaises(AwsError) as ctx:
                cl.ec2("run-instances", "--image-id", ami, "--instance-type",
                       itype, "--count", "1")
            self.assertEqual(ctx.exception.code,
                             "InsufficientInstanceCapacity")

            # Stop and start: same id, same host (its disk), disk kept.
            a = ids[0]
            r = cl.ec2("stop-instances", "--instance-ids", a)
            self.assertEqual(r["StoppingInstances"][0]["InstanceId"], a)
            cl.wait_state([a], "stopped", 120)
            self.assertEqual([d for d in cl.running_domains(where[a])
                              if a in d], [], "a stopped guest runs")
            r = cl.ec2("start-instances", "--instance-ids", a)
            self.assertEqual(r["StartingInstances"][0]["InstanceId"], a)
            cl.wait_state([a], "running", RUN_TIMEOUT)
            self.assertEqual(cl.host_of(a), where[a])
            cl.wait_console(a, f"disk: kept {a}", CONSOLE_TIMEOUT)

            # Reboot: still running, the same guest boots a second time.
            b = ids[1]
            before = cl.console(b).count("instance-id: " + b)
            self.assertGreaterEqual(before, 1)
            cl.ec2("reboot-instances", "--instance-ids", b)
            cl.wait_console(b, f"instance-id: {b}", CONSOLE_TIMEOUT,
                            count=before + 1)
            self.assertEqual(
                cl.describe([b])[b]["State"]["Name"], "running")
            self.assertEqual(cl.host_of(b), where[b])

            # Terminate all: gone from libvirt, capacity back.
            r = cl.ec2("terminate-instances", "--instance-ids", *ids)
            self.assertEqual(
                sorted(x["InstanceId"] for x in r["TerminatingInstances"]),
                sorted(ids))
            cl.wait_state(ids, "terminated", 120)
            for i in ids:
                self.assertIsNone(cl.host_of(i), f"{i} is still a domain")
            for h in range(3):
                cl.wait(lambda h=h: cl.free_vcpu(h) == 1, 30,
                        f"host {h}'s vCPU back")
                # And every peer sees it (placement uses gossip's view).
                cl.wait(lambda h=h: cl.free_vcpu(h, seen_by=0) == 1, 30,
                        f"the edge to see host {h}'s vCPU free")
            more = self.run_instances(cl, ami, itype, 3)
            cl.wait_state(more, "running", RUN_TIMEOUT)
            self.assertEqual(sorted(cl.host_of(i) for i in more), [0, 1, 2])
            cl.ec2("terminate-instances", "--instance-ids", *more)
            cl.wait_state(more, "terminated", 120)


if __name__ == "__main__":
    main()
