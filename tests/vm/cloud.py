"""VM-tier harness: a cloud of N simulated hosts running real guests.

    from cloud import Cloud, main

    with Cloud(3, capacity_vcpu=1) as cl:      # hosts 0..2, edge on host 0
        ami = cl.import_image(host=0)          # the tiny image
        r = cl.ec2("run-instances", "--image-id", ami, "--count", "3", ...)
        ids = [i["InstanceId"] for i in r["Instances"]]
        cl.wait_state(ids, "running", 180)
        text = cl.console(ids[0])
        h = cl.host_of(ids[0])                 # index of the host running it

A host is the cluster harness's "flat" host (tests/cluster/harness.py: a
network namespace with eth0 at 10.77.0.(10+i)/24 on one LAN bridge in a hub
namespace of its own) plus private libvirt daemons inside that namespace
and a mount namespace of their own (tests/vm/vmhost.py, lan=False).  Each
host runs `mallee peer` in its network namespace with its own data dir,
--virt-uri pointing at its private libvirtd, --virt-type qemu (TCG), its
instance bridge (--bridge, default mbr0: one per namespace, so the same name
everywhere) and optionally --capacity-vcpu / --capacity-memory-mib / --zone.
The peer makes its own bridge, DHCP and metadata service (169.254.169.254)
in there.  Host 0 is made with `mallee init` and serves the EC2 API
(--edge --api-tls off) on 10.77.0.10:8773; the others join with a token.

The aws cli (Debian's v2, /usr/bin/aws, or MALLEE_AWS_CLI) runs inside host
0's namespace (`ip netns exec`), with the admin key `mallee init` printed,
the cloud's region and no config files; ec2() returns its parsed JSON and
raises AwsError (with the code) when the service said no.

Helpers: wait_state(ids, state, timeout), describe(ids), console(id),
host_of(id) (the host whose libvirtd runs a domain named after the id),
record(id) / record_host(id) (the instance record's "host" field, mapped to
a host index by peer id), free_vcpu(i) (from `mallee status --json`),
qemu_pid(id), kill9(i) / restart(i), dump() (peer logs, consoles, libvirtd
and QEMU logs), virsh(i, ...).

The peer flags are taken from `mallee peer --help`: a flag the binary does
not have yet makes Cloud raise MissingPiece (tests report it as such).

Everything started is stopped by close() (the `with` block, atexit,
SIGTERM/SIGHUP): peers first, then libvirt (destroying the guests), then
the namespaces and directories.  Every wait is bounded.
"""

import atexit
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))

import harness  # noqa: E402
from cloudtools import (AwsCli, AwsError, import_image,  # noqa: E402,F401
                        instance_record)
from harness import Cluster, HarnessError, bounded_wait  # noqa: E402
import vmhost  # noqa: E402
from vmhost import VmHost, tiny_image  # noqa: E402

API_PORT = harness.API_PORT
INSTANCE_BRIDGE = "mbr0"
CALL_TIMEOUT = 90


class MissingPiece(HarnessError):
    """The mallee binary lacks something the test needs (not landed yet)."""


def log(*a):
    print("cloud:", *a, file=sys.stderr, flush=True)


def peer_flags(binary):
    """The long flags `mallee peer --help` lists."""
    cp = subprocess.run([binary, "peer", "--help"], capture_output=True,
                        text=True, timeout=30)
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", cp.stdout + cp.stderr))


def admin_commands(binary):
    cp = subprocess.run([binary, "admin", "--help"], capture_output=True,
                        text=True, timeout=30)
    return cp.stdout + cp.stderr


_live = []


def _close_all():
    for c in list(_live):
        try:
            c.close()
        except Exception as e:  # noqa: BLE001 - cleanup goes on
            log(f"cleanup: {e}")


def _on_signal(signum, frame):
    _close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


atexit.register(_close_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


class Cloud:
    """N hosts; see the module's docstring.

    n               hosts
    zones           list of zone names per host (None: the peer's default)
    capacity_vcpu   int for every host, or a list per host (None: measured)
    capacity_memory_mib  likewise
    peer_args       extra flags: {index: [..]}
    edge            index of the host serving the API (made with init)
    virt            False (or a list per host): the peer hosts no instances
                    (--virt-uri none)
    """

    def __init__(self, n=3, *, zones=None, capacity_vcpu=None,
                 capacity_memory_mib=None, peer_args=None, edge=0,
                 ready_timeout=60.0, require_virt=True, virt=True):
        if edge != 0:
            raise ValueError("the edge is host 0 (the one made with init)")
        self.n = n
        self.zones = zones
        self.capacity_vcpu = capacity_vcpu
        self.capacity_memory_mib = capacity_memory_mib
        self.extra_args = peer_args or {}
        self.ready_timeout = ready_timeout
        self.require_virt = require_virt
        self.virt = virt
        self.c = None
        self.hosts = []          # VmHost per index
        self.region = None
        self.account = None
        self.key_id = None
        self.secret = None
        self.cli = None          # AwsCli against the edge, once it is up
        self.ids = []            # peer id per index
        self.closed = False
        self.t0 = time.monotonic()
        self.bin = harness.MALLEE_BIN

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self):
        _live.append(self)
        try:
            self.setup()
        except BaseException:
            self.dump()
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None:
                self.dump()
            elif self.c is not None:
                self.c.check_no_sanitizer_reports()
        finally:
            self.close()
        return False

    def _arg(self, value, i):
        if isinstance(value, (list, tuple)):
            return value[i] if i < len(value) else None
        return value

    def peer_args_for(self, i, flags):
        need = ["--virt-uri", "--virt-type", "--bridge"]
        if self.capacity_vcpu is not None:
            need.append("--capacity-vcpu")
        if self.capacity_memory_mib is not None:
            need.append("--capacity-memory-mib")
        missing = [f for f in need if f not in flags]
        if missing and not self.require_virt:
            # The harness's own check: peers without instances.
            args = ["--log-level", "debug"]
            if i == 0:
                args += ["--edge", "--api-tls", "off"]
            return args + list(self.extra_args.get(i, []))
        if missing:
            raise MissingPiece(f"{self.bin} peer has no {' '.join(missing)}"
                               " (the instance pieces have not landed)")
        uri = self.hosts[i].uri if self._arg(self.virt, i) else "none"
        args = ["--virt-uri", uri, "--virt-type", "qemu",
                "--bridge", INSTANCE_BRIDGE, "--log-level", "debug"]
        v = self._arg(self.capacity_vcpu, i)
        if v is not None:
            args += ["--capacity-vcpu", str(v)]
        v = self._arg(self.capacity_memory_mib, i)
        if v is not None:
            args += ["--capacity-memory-mib", str(v)]
        if i == 0:
            args += ["--edge", "--api-tls", "off"]
        return args + list(self.extra_args.get(i, []))

    def setup(self):
        if not os.access(self.bin, os.X_OK):
            raise HarnessError(f"no mallee binary at {self.bin}")
        flags = peer_flags(self.bin)
        self.c = Cluster(self.n, topology="flat", start=False,
                         zones=self.zones, ready_timeout=self.ready_timeout,
                         check_sanitizers=True)
        self.c.__enter__()
        # mkdtemp makes it 0700; QEMU runs as libvirt-qemu and opens the
        # instances' files under the data dirs in it.
        os.chmod(self.c.root, 0o755)
        # Private libvirt daemons in every host's namespace, at once (a
        # cold one takes ~5 s of CPU, a warm capability cache ~0.5 s).
        self.hosts = [VmHost(f"{self.c.tag}h{i}", netns=p.ns, lan=False)
                      for i, p in enumerate(self.c.peers)]
        errors = []

        def up(h):
            try:
                h.setup()
            except BaseException as e:  # noqa: BLE001
                errors.append(f"{h.ns}: {e}")
        ts = [threading.Thread(target=up, args=(h,)) for h in self.hosts]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=180)
        if errors or any(t.is_alive() for t in ts):
            raise HarnessError("libvirt did not start: " + "; ".join(errors))
        log(f"libvirt up on {self.n} hosts in "
            f"{time.monotonic() - self.t0:.1f}s")
        self.c.peer_args = {i: self.peer_args_for(i, flags)
                            for i in range(self.n)}
        self.c.start_all()
        self.c.wait_converged(timeout=60)
        st = self.c.status(0)
        self.region = st["self"]["region"]
        self.ids = [self.c.peer_id(i) for i in range(self.n)]
        ad = self.c.admin
        self.key_id = ad["AWS_ACCESS_KEY_ID"]
        self.secret = ad["AWS_SECRET_ACCESS_KEY"]
        self.account = ad.get("account")
        self.cli = AwsCli(self.c.peers[0].ns, self.endpoint, self.key_id,
                          self.secret, self.region, timeout=CALL_TIMEOUT)
        # The edge answers a signed call through the real client.
        bounded_wait(lambda: self._try_regions(), 60,
                     "the edge to answer describe-regions", interval=0.5)
        # Hosts admit instances once their address slice is confirmed.
        for i in range(self.n):
            args = self.c.peer_args.get(i, [])
            k = args.index("--virt-uri") if "--virt-uri" in args else -1
            if k >= 0 and args[k + 1] == "none":
                continue
            bounded_wait(lambda i=i: self._hostnet_ready(i), 60,
                         f"host {i}'s network to be ready", interval=0.3)
        log(f"cloud up in {time.monotonic() - self.t0:.1f}s: region "
            f"{self.region}, edge {self.endpoint}, hosts "
            + ", ".join(f"{i}={pid}" for i, pid in enumerate(self.ids)))

    def _hostnet_ready(self, i):
        st = self.c.try_status(i)
        return bool(st and st["self"].get("hostnet", {}).get("ready"))

    def _try_regions(self):
        try:
            r = self.ec2("describe-regions")
        except (AwsError, AssertionError):
            return None
        return r if r.get("Regions") else None

    def close(self):
        if self.closed:
            return
        self.closed = True
        # Peers first (none may start a domain again), then libvirt
        # (destroys the guests), then namespaces and directories.
        if self.c is not None:
            for p in self.c.peers:
                if p.running:
                    try:
                        self.c.kill9(p.index)
                    except Exception as e:  # noqa: BLE001
                        log(f"kill peer {p.index}: {e}")
        for h in self.hosts:
            try:
                h.close()
            except Exception as e:  # noqa: BLE001
                log(f"close {h.ns}: {e}")
        if self.c is not None:
            self.c.close()
        if self in _live:
            _live.remove(self)

    # -- mallee --------------------------------------------------------------

    @property
    def endpoint(self):
        return "http://" + self.c.peers[0].api_listen

    def mallee(self, i, command, *args, timeout=60, check=True):
        """`mallee COMMAND --data-dir D ARGS` in host i's namespace."""
        return self.c.cli(i, command, *args, timeout=timeout, check=check)

    def import_image(self, host=0, name="tiny", image_dir=None):
        """Imports the tiny image (kernel, ramdisk, raw disk) on host; returns
        its ami id."""
        if "image import" not in admin_commands(self.bin):
            raise MissingPiece("mallee admin has no `image import` yet")
        img = image_dir or tiny_image()[0]
        disk = os.path.join(img, "disk.raw")
        if not os.path.exists(disk):
            raise MissingPiece(f"the tiny image has no disk ({disk}): "
                               "scripts/build-test-image does not make it yet")
        return import_image(self.c, host, "--name", name,
                            "--kernel", os.path.join(img, "vmlinuz"),
                            "--ramdisk", os.path.join(img, "initrd.img"),
                            "--disk", disk, "--disk-format", "raw",
                            "--cmdline", "console=ttyS0", timeout=120)

    def wait_image_visible(self, ami, timeout=60):
        """Until the edge lists ami (it may have been imported elsewhere)."""
        def seen():
            r = self.ec2("describe-images", "--image-ids", ami, check=False)
            return r if r and r.get("Images") else None
        return bounded_wait(seen, timeout, f"{ami} on the edge", interval=1)

    def status(self, i):
        return self.c.status(i)

    def free_vcpu(self, i, seen_by=None):
        """Host i's free vCPUs: from its own status, or as peer seen_by's
        member list shows it."""
        if seen_by is None:
            return self.c.status(i)["self"]["capacity"]["vcpu"]["free"]
        for m in self.c.status(seen_by).get("members", []):
            if m.get("id") == self.ids[i]:
                cap = m.get("capacity") or {}
                v = cap.get("vcpu")
                return v.get("free") if isinstance(v, dict) else \
                    cap.get("vcpu_free")
        return None

    def kill9(self, i):
        return self.c.kill9(i)

    def restart(self, i):
        """Starts peer i again with its arguments (after kill9 or stop)."""
        return self.c.restart(i)

    def virsh(self, i, *args, timeout=30):
        return self.hosts[i].virsh(*args, timeout=timeout)

    # -- the aws cli ---------------------------------------------------------

    def aws(self, *args, timeout=CALL_TIMEOUT):
        """`aws --endpoint-url EDGE --region R ARGS` in host 0's namespace."""
        return self.cli.run(*args, timeout=timeout)

    def ec2(self, *args, check=True, timeout=CALL_TIMEOUT):
        """`aws ec2 ARGS` -> parsed JSON ({} when it printed nothing);
        AwsError for an error the service returned (or None when
        check=False)."""
        return self.cli.ec2(*args, check=check, timeout=timeout)

    def describe(self, ids=None):
        """{instance id: instance} from describe-instances."""
        args = ["describe-instances"]
        if ids:
            args += ["--instance-ids"] + list(ids)
        r = self.ec2(*args)
        out = {}
        for res in r.get("Reservations", []):
            for inst in res.get("Instances", []):
                out[inst["InstanceId"]] = inst
        return out

    def wait_state(self, ids, state, timeout, interval=1.0):
        """Until every id is in state (describe-instances on the edge);
        returns {id: instance}.  Fails early when one ends terminated
        while another state was wanted, with its state reason."""
        ids = list(ids)
        t = time.monotonic()
        last = {}

        def check():
            nonlocal last
            last = self.describe(ids)
            for i in ids:
                inst = last.get(i)
                if inst and state != "terminated" and \
                        inst["State"]["Name"] == "terminated":
                    raise AssertionError(
                        f"{i} terminated while waiting for {state}: "
                        f"{inst.get('StateReason')} "
                        f"{inst.get('StateTransitionReason')}")
            if all(last.get(i, {}).get("State", {}).get("Name") == state
                   for i in ids):
                return last
            return None
        try:
            r = bounded_wait(check, timeout, f"{ids} to be {state}",
                             interval=interval)
        except HarnessError:
            states = {i: (last.get(i, {}).get("State", {}).get("Name"),
                          last.get(i, {}).get("StateReason"))
                      for i in ids}
            raise AssertionError(f"after {timeout}s, {ids} not all {state}: "
                                 f"{states}") from None
        log(f"{len(ids)} {state} after {time.monotonic() - t:.1f}s")
        return r

    def wait(self, pred, timeout, what, interval=0.5):
        """bounded_wait that fails the test (AssertionError) on timeout."""
        try:
            return bounded_wait(pred, timeout, what, interval=interval)
        except HarnessError as e:
            raise AssertionError(str(e)) from None

    def console(self, instance_id):
        """The guest's console text (get-console-output; the cli decodes
        the base64)."""
        r = self.ec2("get-console-output", "--instance-id", instance_id)
        return r.get("Output") or ""

    def wait_console(self, instance_id, needle, timeout=120, count=1):
        """Until the console shows needle (count times); returns it."""
        def seen():
            text = self.console(instance_id)
            return text if text.count(needle) >= count else None
        try:
            return bounded_wait(seen, timeout,
                                f"{needle!r} on {instance_id}'s console",
                                interval=2)
        except HarnessError:
            raise AssertionError(
                f"after {timeout}s {instance_id}'s console lacks "
                f"{needle!r} x{count}; it shows:\n"
                + self.console(instance_id)[-3000:]) from None

    # -- where things run ----------------------------------------------------

    def domains(self, i):
        """Names of the domains host i's libvirtd has (all states)."""
        cp = self.virsh(i, "list", "--all", "--name")
        return [l.strip() for l in cp.stdout.splitlines() if l.strip()]

    def running_domains(self, i):
        cp = self.virsh(i, "list", "--state-running", "--name")
        return [l.strip() for l in cp.stdout.splitlines() if l.strip()]

    def domain_name(self, i, instance_id):
        for d in self.domains(i):
            if instance_id in d:
                return d
        return None

    def host_of(self, instance_id):
        """Index of the host whose libvirtd has a domain for the instance
        (None: none has); AssertionError when more than one has."""
        found = [i for i in range(self.n)
                 if self.domain_name(i, instance_id)]
        if len(found) > 1:
            raise AssertionError(f"{instance_id} is a domain on hosts "
                                 f"{found}")
        return found[0] if found else None

    def record(self, instance_id, host=0):
        """The instance record as host sees it (decoded msgpack), or None."""
        return instance_record(self.c, host,
                               f"{self.account}:{instance_id}")

    def record_host(self, instance_id, host=0):
        """Index of the host the instance record names (None if unknown)."""
        rec = self.record(instance_id, host)
        if not rec:
            return None
        hid = rec.get("host")
        return self.ids.index(hid) if hid in self.ids else None

    def qemu_pid(self, i, instance_id):
        """The QEMU pid of the instance's domain on host i (its libvirt pid
        file), or None."""
        name = self.domain_name(i, instance_id)
        if not name:
            return None
        path = os.path.join(self.hosts[i].libvirt_dir, "run", "qemu",
                            f"{name}.pid")
        try:
            with open(path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("qemu-system"):
                    return None
        except OSError:
            return None
        return pid

    def console_files(self, i):
        """Console log files under host i's data dir."""
        out = []
        for root, _, files in os.walk(self.c.peers[i].data_dir):
            for f in files:
                if "console" in f:
                    out.append(os.path.join(root, f))
        return sorted(out)

    # -- failures --------------------------------------------------------------

    def dump(self, file=None):
        file = file or sys.stderr
        try:
            if self.c is not None:
                self.c.dump_logs(file)
            for i, h in enumerate(self.hosts):
                if h.dir is None:
                    continue
                print(f"----- host {i} ({h.ns}) libvirt -----", file=file)
                h.dump(file)
                if self.c is not None:
                    for path in self.console_files(i):
                        try:
                            with open(path, errors="replace") as f:
                                text = f.read()
                        except OSError:
                            continue
                        print(f"----- host {i} console {path} (last 40 "
                              "lines)", file=file)
                        print("\n".join(text.splitlines()[-40:]), file=file)
        except Exception:  # noqa: BLE001 - a dump must not hide the error
            traceback.print_exc(file=file)
        file.flush()


def smallest_type(cloud):
    """The instance type with the least memory (then vCPUs) the edge
    offers: (name, vcpus, memory MiB)."""
    r = cloud.ec2("describe-instance-types")
    best = None
    for t in r.get("InstanceTypes", []):
        key = (t["MemoryInfo"]["SizeInMiB"], t["VCpuInfo"]["DefaultVCpus"])
        if best is None or key < best[0]:
            best = (key, t["InstanceType"])
    if best is None:
        raise AssertionError("describe-instance-types lists no types")
    return best[1], best[0][1], best[0][0]


def self_test():
    """`python3 cloud.py`: brings a 3-host cloud up (with whatever peer
    flags the binary has), asks the edge describe-regions through the aws
    cli, shows each host's libvirt and status, and tears it down."""
    with Cloud(3, require_virt=False) as cl:
        print(json.dumps(cl.ec2("describe-regions"), indent=1))
        for i in range(cl.n):
            st = cl.status(i)
            print(f"host {i}: {cl.hosts[i].uri} domains {cl.domains(i)} "
                  f"self {json.dumps(st['self'])}")
        print(json.dumps(cl.status(0).get("members"), indent=1)[:3000])
        ns = cl.c.peers[0].ns
        print(subprocess.run(["ip", "netns", "exec", ns, "ip", "-br", "addr"],
                             capture_output=True, text=True).stdout)
    print("self-test OK")


def main():
    """Runs the calling module's unittest cases; exit 0 when all passed,
    77 when every test was skipped (ctest SKIP_RETURN_CODE)."""
    module = sys.modules["__main__"]
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    loader = unittest.TestLoader()
    suite = (loader.loadTestsFromNames(names, module) if names
             else loader.loadTestsFromModule(module))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if result.wasSuccessful() and result.testsRun and \
            len(result.skipped) == result.testsRun:
        sys.exit(77)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    self_test()
