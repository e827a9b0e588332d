"""A real Debian guest configures itself with cloud-init from mallee's
metadata service.

The Debian 12 image (scripts/build-test-image --debian, cached between
runs in MALLEE_DEBIAN_IMAGE_DIR, default build/test-image/debian) is
imported into a one-host cloud; the aws cli makes a key pair and runs an
instance with it and a #cloud-config user data.  cloud-init in the guest
reads both from 169.254.169.254: its console shows the "ci-info" table of
authorized keys with the key pair's SHA-256 fingerprint, and the output of
the user data's runcmd.

Skipped (exit 77, shown by ctest as skipped) only when the image cannot be
built on this machine: no Debian mirror in its apt sources, or the mirror
cannot be reached.  Any other failure to build it fails the test.
"""

import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import unittest

from cloud import Cloud, smallest_type, main, log
import vmhost

DEBIAN_DIR = os.environ.get("MALLEE_DEBIAN_IMAGE_DIR") or os.path.join(
    os.path.dirname(vmhost.IMAGE_DIR), "debian")
USER_DATA = "#cloud-config\nruncmd:\n - echo cloud-init-user-data-ran\n"
BOOT_TIMEOUT = 300
# What the build says when this machine cannot build the image at all.
CANNOT_BUILD = (
    "no Debian mirror in",
    "Failed getting release file",
    "Couldn't download",
    "Temporary failure resolving",
    "Could not resolve",
)


def build_debian():
    """(image dir, None) or (None, reason to skip)."""
    cp = subprocess.run([os.path.join(vmhost.SCRIPTS, "build-test-image"),
                         "--debian", DEBIAN_DIR], capture_output=True,
                        text=True, timeout=900)
    sys.stderr.write(cp.stderr[-3000:])
    if cp.returncode == 0:
        return DEBIAN_DIR, None
    for marker in CANNOT_BUILD:
        if marker in cp.stderr:
            return None, (f"the Debian image cannot be built here: "
                          f"{marker!r} in build-test-image --debian's output")
    raise AssertionError(f"build-test-image --debian failed "
                         f"({cp.returncode}):\n{cp.stderr[-3000:]}")


def openssl(*args, input=None):
    cp = subprocess.run(["openssl"] + list(args), input=input,
                        capture_output=True, timeout=60)
    if cp.returncode != 0:
        raise AssertionError(f"openssl {args}: {cp.stderr.decode()}")
    return cp.stdout


def ssh_string(b):
    return len(b).to_bytes(4, "big") + b


def ssh_mpint(n):
    return ssh_string(n.to_bytes((n.bit_length() + 8) // 8, "big"))


def cloudinit_fingerprint(private_pem):
    """cloud-init's ci-info fingerprint of the key's public half: SHA-256
    of the OpenSSH public key blob, hex in colon-separated pairs."""
    pem = private_pem.encode()
    mod = openssl("rsa", "-noout", "-modulus", input=pem).decode()
    n = int(mod.strip().split("=", 1)[1], 16)
    text = openssl("rsa", "-noout", "-text", input=pem).decode()
    e = int(re.search(r"publicExponent: (\d+)", text).group(1))
    blob = ssh_string(b"ssh-rsa") + ssh_mpint(e) + ssh_mpint(n)
    h = hashlib.sha256(blob).hexdigest()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2)), \
        base64.b64encode(blob).decode()


class CloudInitTest(unittest.TestCase):

    def test_keypair_and_user_data(self):
        img, why = build_debian()
        if img is None:
            self.skipTest(why)
        with open(os.path.join(img, "cmdline")) as f:
            cmdline = f.read().strip()
        with Cloud(1) as cl:
            cp = cl.mallee(0, "admin", "image", "import", "--name", "debian",
                           "--kernel", os.path.join(img, "vmlinuz"),
                           "--ramdisk", os.path.join(img, "initrd.img"),
                           "--disk", os.path.join(img, "disk.qcow2"),
                           "--disk-format", "qcow2", "--cmdline", cmdline,
                           timeout=300)
            ami = re.search(r"\bami-[0-9a-f]{8,17}\b", cp.stdout).group(0)
            cl.wait_image_visible(ami)
            key = cl.ec2("create-key-pair", "--key-name", "ci-test")
            fp, _ = cloudinit_fingerprint(key["KeyMaterial"])
            log(f"key pair fingerprint for cloud-init: {fp}")
            itype, _, mem = smallest_type(cl)
            r = cl.ec2("run-instances", "--image-id", ami, "--instance-type",
                       itype, "--count", "1", "--key-name", "ci-test",
                       "--user-data", USER_DATA)
            iid = r["Instances"][0]["InstanceId"]
            cl.wait_state([iid], "running", BOOT_TIMEOUT)
            cl.wait_console(iid, "cloud-init-user-data-ran", BOOT_TIMEOUT)
            # The keys' table comes from another stage, whose lines may
            # reach the console after the user data's (seen in CI): wait
            # for the table's row with the key (its fingerprint) as well.
            text = cl.wait_console(iid, fp, 120)
            ci = [l for l in text.splitlines() if "ci-info:" in l]
            self.assertTrue(any("Authorized keys" in l for l in ci),
                            "no ci-info table of authorized keys:\n"
                            + "\n".join(ci))
            self.assertTrue(any(fp in l for l in ci),
                            f"the key pair's fingerprint {fp} is not in "
                            "cloud-init's table:\n" + "\n".join(ci))
            cl.ec2("terminate-instances", "--instance-ids", iid)
            cl.wait_state([iid], "terminated", 120)


if __name__ == "__main__":
    if sys.argv[1:] == ["--build-only"]:
        # ctest's fixture (tests/CMakeLists.txt): the image is built while
        # other tiers run, before this test takes the machine's CPU.
        _, why = build_debian()
        if why:
            print(why)
            sys.exit(77)
        sys.exit(0)
    main()
