"""A peer that dies and comes back re-adopts the guests it runs.

Two hosts; host 0 (the edge) hosts no instances (--virt-uri none), so the instance runs on host
1.  Host 1's peer is SIGKILLed while the guest runs: the guest (its QEMU)
goes on, DescribeInstances still shows it running; the peer is started
again and re-adopts the domain: the same QEMU process (pid) and libvirt
domain id, one domain for the instance, no second boot on its console.
Stop, start and terminate then work through the restarted peer.
"""

import os
import time
import unittest

from cloud import Cloud, smallest_type, main, log

RUN_TIMEOUT = 180


def qemus_naming(instance_id):
    """Pids of QEMU processes whose command line names the instance."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b"/usr/bin/qemu-system") and \
                instance_id.encode() in cmd:
            found.append(int(name))
    return found


class ReadoptTest(unittest.TestCase):

    def test_kill9_restart_readopts(self):
        with Cloud(2, virt=[False, True], capacity_vcpu=2) as cl:
            ami = cl.import_image(host=0)
            cl.wait_image_visible(ami)
            itype, _, _ = smallest_type(cl)
            r = cl.ec2("run-instances", "--image-id", ami, "--instance-type",
                       itype, "--count", "1")
            iid = r["Instances"][0]["InstanceId"]
            cl.wait_state([iid], "running", RUN_TIMEOUT)
            self.assertEqual(cl.host_of(iid), 1)
            cl.wait_console(iid, f"instance-id: {iid}", 120)

            dom = cl.domain_name(1, iid)
            pid = cl.qemu_pid(1, iid)
            domid = cl.virsh(1, "domid", dom).stdout.strip()
            self.assertIsNotNone(pid, "no QEMU pid for the domain")
            self.assertEqual(qemus_naming(iid), [pid])
            boots = cl.console(iid).count(f"instance-id: {iid}")
            log(f"{iid}: domain {dom} id {domid} qemu {pid}, boots {boots}")

            cl.kill9(1)
            time.sleep(1)
            self.assertTrue(os.path.exists(f"/proc/{pid}"),
                            "the guest died with its peer")
            self.assertEqual(
                cl.describe([iid])[iid]["State"]["Name"], "running",
                "the edge lost the instance while its host's peer was down")

            cl.restart(1)
            # Give the peer time to re-adopt (and to do anything wrong,
            # such as starting the domain a second time).
            cl.wait(lambda: cl.free_vcpu(1) == 1, 30,
                    "host 1 to count the re-adopted instance's vCPU")
            time.sleep(5)
            self.assertEqual(cl.qemu_pid(1, iid), pid, "QEMU changed")
            self.assertEqual(qemus_naming(iid), [pid],
                             "more than one QEMU for the instance")
            self.assertEqual(cl.virsh(1, "domid", dom).stdout.strip(), domid)
            self.assertEqual([d for d in cl.domains(1) if iid in d], [dom])
            self.assertEqual(cl.host_of(iid), 1)
            self.assertEqual(
                cl.describe([iid])[iid]["State"]["Name"], "running")
            self.assertEqual(cl.record_host(iid), 1)
            self.assertEqual(cl.console(iid).count(f"instance-id: {iid}"),
                             boots, "the guest booted again")

            # The restarted peer still drives it.
            cl.ec2("stop-instances", "--instance-ids", iid)
            cl.wait_state([iid], "stopped", 120)
            self.assertFalse(os.path.exists(f"/proc/{pid}") and
                             pid in qemus_naming(iid), "QEMU outlived stop")
            cl.ec2("start-instances", "--instance-ids", iid)
            cl.wait_state([iid], "running", RUN_TIMEOUT)
            cl.wait_console(iid, f"instance-id: {iid}", 120, count=boots + 1)
            cl.ec2("terminate-instances", "--instance-ids", iid)
            cl.wait_state([iid], "terminated", 120)
            self.assertEqual(qemus_naming(iid), [])
            self.assertIsNone(cl.host_of(iid))
            cl.wait(lambda: cl.free_vcpu(1) == 2, 30, "host 1's vCPUs back")


if __name__ == "__main__":
    main()
