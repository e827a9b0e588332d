"""VM-tier helpers: a simulated host for real guests, and the tiny image.

    from vmhost import VmHost, tiny_image

    img = tiny_image()                 # scripts/build-test-image, cached
    with VmHost("smoke") as h:         # network namespace + private libvirt
        h.serve_metadata({"latest/meta-data/instance-id": "i-0123"})
        uri = h.uri                    # qemu:///system?socket=...

A VmHost is a network namespace (named after the test's pid) holding bridge
mbr0 at 10.77.0.1/24, which also carries 169.254.169.254/32; busybox udhcpd
hands out 10.77.0.10-50 on it with 10.77.0.1 as the router. Its libvirt
daemons (scripts/libvirt start DIR) run inside the namespace, so guests'
taps land on that bridge and their traffic never leaves it. serve_metadata()
answers HTTP on 169.254.169.254:80 inside the namespace from a directory.

MALLEE_KVM (default "off" here) is passed to scripts/libvirt: with "off" the
daemon offers QEMU TCG only, as on CI machines without /dev/kvm, and a
machine whose /dev/kvm exists but cannot run guests is no trap.

VmHost(tag, netns=NAME, lan=False) is the libvirt half alone, for a host
whose network namespace someone else made (tests/vm/cloud.py: the cluster
harness's flat topology): the namespace is used as it is and left for its
owner to delete, and with lan=False there is no mbr0, DHCP or metadata
address (a mallee peer brings its own).

Everything is undone by close() (also on SIGTERM and at exit); namespaces
and directories of a test that was SIGKILLed are swept by the next VmHost.
Every wait is bounded.
"""

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from harness import _pid_alive, bounded_wait  # noqa: E402

SOURCE_DIR = os.environ.get("MALLEE_SOURCE_DIR") or os.path.normpath(
    os.path.join(HERE, "..", ".."))
SCRIPTS = os.path.join(SOURCE_DIR, "scripts")
IMAGE_DIR = os.environ.get("MALLEE_IMAGE_DIR") or os.path.join(
    SOURCE_DIR, "build", "test-image", "tiny")
KVM = os.environ.get("MALLEE_KVM", "off")

NS_PREFIX = "mvm-"
DIR_PREFIX = "mallee-vm-"
BRIDGE = "mbr0"
NET = "10.77.0"
METADATA_ADDR = "169.254.169.254"

_live = []


class VmHostError(AssertionError):
    pass


def run(cmd, timeout=60, check=True, **kw):
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, timeout=timeout, **kw)
    if check and cp.returncode != 0:
        raise VmHostError(f"{' '.join(cmd)} failed ({cp.returncode}): "
                          f"{cp.stderr.strip()}")
    return cp


def tiny_image(out=IMAGE_DIR):
    """Builds (or finds up to date) the tiny image; returns (dir, manifest
    text, seconds taken)."""
    t = time.monotonic()
    run([os.path.join(SCRIPTS, "build-test-image"), out], timeout=300)
    took = time.monotonic() - t
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = f.read()
    return out, manifest, took


def sweep_stale():
    """Removes what SIGKILLed earlier runs left: their owner pid is dead."""
    cp = run(["ip", "netns", "list"], check=False)
    for line in cp.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(NS_PREFIX + r"(\d+)-\w+", name)
        if m and not _pid_alive(int(m.group(1))):
            run(["ip", "netns", "delete", name], check=False)
    tmp = tempfile.gettempdir()
    for entry in os.listdir(tmp):
        m = re.fullmatch(DIR_PREFIX + r"(\d+)-\w+", entry)
        if m and not _pid_alive(int(m.group(1))):
            d = os.path.join(tmp, entry)
            run([os.path.join(SCRIPTS, "libvirt"), "stop",
                 os.path.join(d, "libvirt")], check=False, timeout=120)
            shutil.rmtree(d, ignore_errors=True)


class VmHost:
    def __init__(self, tag, netns=None, lan=True):
        self.tag = tag
        self.own_ns = netns is None
        self.ns = netns or f"{NS_PREFIX}{os.getpid()}-{tag}"
        self.lan = lan
        self.dir = None
        self.uri = None
        self.libvirt_dir = None
        self.libvirt_start_s = None
        self.procs = []
        self.closed = False

    def __enter__(self):
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.dump(sys.stderr)
        self.close()
        return False

    def ns_cmd(self, *args):
        return ["ip", "netns", "exec", self.ns] + list(args)

    def setup(self):
        sweep_stale()
        _live.append(self)
        self.dir = os.path.join(tempfile.gettempdir(),
                                f"{DIR_PREFIX}{os.getpid()}-{self.tag}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        # QEMU runs as libvirt-qemu and opens the guests' files in here.
        os.chmod(self.dir, 0o755)
        ip = lambda *a: run(self.ns_cmd("ip", *a))
        if self.own_ns:
            run(["ip", "netns", "add", self.ns])
            ip("link", "set", "lo", "up")
        if self.lan:
            ip("link", "add", BRIDGE, "type", "bridge")
            ip("addr", "add", f"{NET}.1/24", "dev", BRIDGE)
            ip("addr", "add", f"{METADATA_ADDR}/32", "dev", BRIDGE)
            ip("link", "set", BRIDGE, "up")
            self._start_dhcp()
        self.libvirt_dir = os.path.join(self.dir, "libvirt")
        t = time.monotonic()
        env = dict(os.environ, MALLEE_KVM=KVM)
        cp = run(self.ns_cmd(os.path.join(SCRIPTS, "libvirt"), "start",
                             self.libvirt_dir), timeout=120, env=env)
        self.libvirt_start_s = time.monotonic() - t
        self.uri = cp.stdout.strip().splitlines()[-1]
        if not self.uri.startswith("qemu:///"):
            raise VmHostError(f"scripts/libvirt printed {cp.stdout!r}")

    def _spawn(self, argv, log):
        f = open(os.path.join(self.dir, log), "ab")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL,
                             start_new_session=True)
        f.close()
        self.procs.append(p)
        return p

    def _start_dhcp(self):
        conf = os.path.join(self.dir, "udhcpd.conf")
        leases = os.path.join(self.dir, "udhcpd.leases")
        open(leases, "w").close()
        with open(conf, "w") as f:
            f.write(f"start {NET}.10\nend {NET}.50\ninterface {BRIDGE}\n"
                    f"lease_file {leases}\n"
                    f"pidfile {self.dir}/udhcpd.pid\n"
                    f"opt router {NET}.1\nopt subnet 255.255.255.0\n"
                    f"opt lease 3600\n")
        self._spawn(self.ns_cmd("busybox", "udhcpd", "-f", conf),
                    "udhcpd.log")

    def serve_metadata(self, files):
        """Serves files ({path: text}) on http://169.254.169.254/."""
        www = os.path.join(self.dir, "www")
        for path, text in files.items():
            full = os.path.join(www, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
        p = self._spawn(self.ns_cmd(sys.executable, "-m", "http.server",
                                    "--bind", METADATA_ADDR,
                                    "--directory", www, "80"),
                        "metadata.log")

        def listening():
            if p.poll() is not None:
                raise VmHostError("metadata server exited: " +
                                  self.read("metadata.log"))
            cp = run(self.ns_cmd("ss", "-Hltn", f"src {METADATA_ADDR}"),
                     check=False)
            return ":80" in cp.stdout
        bounded_wait(listening, 10, "the metadata server")

    def virsh(self, *args, timeout=30, check=False):
        """`virsh -q -c URI ARGS` -> CompletedProcess (text)."""
        return run(["virsh", "-q", "-c", self.uri] + [str(a) for a in args],
                   timeout=timeout, check=check)

    def read(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def dump(self, out):
        for name in ("udhcpd.log", "metadata.log",
                     "libvirt/log/libvirtd.log"):
            text = self.read(name)
            if text:
                out.write(f"--- {name} (last 40 lines)\n")
                out.write("\n".join(text.splitlines()[-40:]) + "\n")
        qlog = os.path.join(self.dir, "libvirt", "log", "qemu")
        if os.path.isdir(qlog):
            for name in sorted(os.listdir(qlog)):
                text = self.read(os.path.join("libvirt", "log", "qemu", name))
                out.write(f"--- qemu/{name} (last 20 lines)\n")
                out.write("\n".join(text.splitlines()[-20:]) + "\n")

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.libvirt_dir and os.path.isdir(self.libvirt_dir):
            # Destroys what guests are left, then stops the daemons.
            run([os.path.join(SCRIPTS, "libvirt"), "stop", self.libvirt_dir],
                check=False, timeout=120)
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        if self.own_ns:
            run(["ip", "netns", "delete", self.ns], check=False)
        if self.dir and not os.environ.get("MALLEE_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live:
            _live.remove(self)


def _cleanup_all():
    for h in list(_live):
        h.close()


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)
