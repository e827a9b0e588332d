"""The libvirt driver (peer/virt.c) boots the tiny image for real.

Private libvirt daemons in a network namespace of the test's own (vmhost.py),
the tiny image from scripts/build-test-image (cached between runs), and
tests/vm/virt_smoke.c driving the driver through the libuv loop: the guest
gets a DHCP address on the test's bridge, reads its instance id and user
data from a stand-in metadata server there, and is reset, shut down (ACPI),
started again as a persistent domain, destroyed and undefined, each change
seen through libvirt's events.

Fails, never skips, when libvirt cannot start: the vm tier is part of
`make test` and QEMU TCG needs no /dev/kvm.
"""

import os
import re
import subprocess
import sys
import time
import unittest

from vmhost import VmHost, tiny_image, KVM

SMOKE = os.environ.get("MALLEE_VIRT_SMOKE") or os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tests",
    "virt_smoke"))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: ThreadSanitizer")

INSTANCE_ID = "i-0123456789abcdef0"
USER_DATA = "#!/bin/sh\necho \"user-data says $((6 * 7))\"\n"


class VirtSmokeTest(unittest.TestCase):

    def test_boot_events_console(self):
        self.assertEqual(os.geteuid(), 0, "the vm tier runs as root")
        img, manifest, image_s = tiny_image()
        cmdline = re.search(r'"cmdline": "([^"]*)"', manifest).group(1)
        with VmHost("smoke") as h:
            h.serve_metadata({
                "latest/meta-data/instance-id": INSTANCE_ID,
                "latest/user-data": USER_DATA,
            })
            guest = os.path.join(h.dir, "guest")
            os.makedirs(guest)
            os.chmod(guest, 0o755)
            argv = [SMOKE, "--uri", h.uri,
                    "--kernel", os.path.join(img, "vmlinuz"),
                    "--initrd", os.path.join(img, "initrd.img"),
                    "--cmdline", cmdline, "--bridge", "mbr0",
                    "--dir", guest, "--type", "auto", "--timeout", "90",
                    "--expect", "ip=10.77.0.",
                    "--expect", "disks=vda",
                    "--expect", f"instance-id: {INSTANCE_ID}",
                    "--expect", "user-data says 42"]
            t = time.monotonic()
            cp = subprocess.run(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                timeout=400)
            smoke_s = time.monotonic() - t
            sys.stdout.write(cp.stdout)
            print(f"times: libvirtd start {h.libvirt_start_s:.2f} s, "
                  f"build-test-image {image_s:.2f} s, "
                  f"virt_smoke {smoke_s:.2f} s")
            if cp.returncode != 0:
                console = os.path.join(guest, "console.log")
                if os.path.exists(console):
                    with open(console, errors="replace") as f:
                        sys.stdout.write("--- console.log\n" + f.read())
                h.dump(sys.stdout)
            for line in cp.stdout.splitlines():
                for m in SANITIZER_MARKERS:
                    self.assertNotIn(m, line, "sanitizer report")
            self.assertEqual(cp.returncode, 0, "virt_smoke failed")
            self.assertIn("virt_smoke: OK", cp.stdout)
            if KVM == "off":
                self.assertIn("domain type qemu", cp.stdout)
            # Each state change came as an event through the loop.
            for ev in ("event started", "event rebooted",
                       "event stopped (shutdown", "event defined",
                       "event stopped (destroyed", "event undefined"):
                self.assertIn(ev, cp.stdout)
            self.assertIn("listed as persistent, shutoff", cp.stdout)
            # Nothing of the guest is left in the daemon.
            left = subprocess.run(
                ["virsh", "-q", "-c", h.uri, "list", "--all", "--name"],
                stdout=subprocess.PIPE, text=True, timeout=30)
            self.assertEqual(left.stdout.strip(), "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
