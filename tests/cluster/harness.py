"""Cluster-tier harness: N real `mallee peer` processes on one machine.

    from harness import Cluster

    with Cluster(3) as c:                  # loopback: 127.A.B.10, .11, .12
        st = c.status(1)                   # `mallee status --json`, parsed
        c.cli(0, "admin", "record", "put", "k", "i", "body")
        c.kill9(2); c.restart(2)

    with Cluster(3, topology="flat") as c: # one network namespace per host
        ...

Peer 0 is made with `mallee init`; the others join with the token from
`mallee token` on peer 0 (`--join TOKEN`).  Each peer runs in its own process
group and logs (stdout and stderr) to its own file, appended across restarts;
when the `with` block ends by an exception every log is printed to stderr.

Topologies:
  loopback  peer i listens on BASE.(10+i):7700, API on BASE.(10+i):8773, where
            BASE is a /24 of 127.0.0.0/8 chosen from the test's pid so that
            parallel runs never want the same port (pass
            loopback_base="127.0.0" for 127.0.0.(10+i) exactly).
  flat      a hub network namespace holding bridge br0; host i is a network
            namespace with eth0 (a veth to br0) at 10.77.0.(10+i)/24; peers
            run under `ip netns exec`.  Names carry the test's pid, so parallel
            runs do not clash.  Other topologies can be built with Netns.
  two_clusters  TESTING.md's "two clusters": a hub namespace with bridges
            "bra" (cluster A, 10.1.0.0/24), "brb" (cluster B, 10.2.0.0/24)
            and "pub" (public, 198.18.0.0/24).  layout= names each peer's
            place: "A-front"/"B-front" (eth0 on its cluster's bridge at
            NET.(10+i), eth1 on pub at 198.18.0.(10+i); runs --gateway,
            listens and advertises on the public address) or "A"/"B" (a
            private host: eth0 only, at NET.(10+i), and one /32 route per
            front-end of its own cluster: its public address via its
            private one).  Default layout: A-front, B-front, A-front, A, A,
            B, B (the first n of it).  Front-ends drop whatever the kernel
            would forward between eth0 and eth1 (table inet mcisolate), so
            the clusters never reach each other underneath the overlay.
            Zones default to us-east-1a (A) and us-east-1b (B).  Peer 0 must
            be a front-end; it makes the cloud; other front-ends join it,
            private hosts join their own cluster's front-ends (a token made
            with `mallee token --addr`).  add_outside() adds a namespace on
            pub only (198.18.0.(200+k)), not a peer.

Methods (peers are named by index):
  status(i) / try_status(i)     `mallee status --json`, parsed
  wait_ready(i)                 until it answers status as itself (its pid)
  wait_members(i, n) / wait_converged(n) / wait_member_state(i, id, state)
  members(i), peer_id(i)
  cli(i, COMMAND, *args)        `mallee COMMAND --data-dir D args` in i's
                                namespace -> CompletedProcess (bytes stdout
                                when input= is bytes)
  run(*args, peer=i)            any mallee command
  start(i, extra=...) / stop(i, sig) / kill9(i) / restart(i) /
  pause(i) / resume(i)          stop and kill9 return the exit code
  add_peer() -> i               one more slot (and namespace); then start(i)
  log(i), dump_logs()
  add_outside() -> ns           two_clusters: a bare namespace on "pub"
  link(i, up) / netem(i, "loss 5%")   faults, namespace topologies; without
                                sch_netem in the kernel "loss N%" is done
                                with nftables on the hub's bridge
  init(i), make_token(i), admin (the key init printed), cloud_id, token

A peer is started with --data-dir, --listen, --api-listen, --name pN (names=
to change), --zone (zones=), --join TOKEN (peers that were not init'ed) and
peer_args.  Logs and CLI calls are checked for sanitizer reports; on a clean
exit any report fails the test.

Everything the harness makes is undone by Cluster.close(): it is called by
__exit__, by atexit, and by a SIGTERM/SIGHUP handler; peers started from the
main thread also get PR_SET_PDEATHSIG so they die with a SIGKILLed test, and
namespaces or temp dirs left by a test that was SIGKILLed are swept when the
next Cluster starts (their owner pid is in the name).

Every wait is bounded in time and in number of tries.

MALLEE_BIN names the binary (ctest sets it); the default is ../../build/mallee
relative to this file.
"""

import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MALLEE_BIN = os.environ.get("MALLEE_BIN") or os.path.normpath(
    os.path.join(HERE, "..", "..", "build", "mallee"))

GOSSIP_PORT = 7700
API_PORT = 8773
FLAT_NET = "10.77.0"

# The "two_clusters" topology.
TWO_CLUSTER_NETS = {"A": "10.1.0", "B": "10.2.0"}
TWO_CLUSTER_BRIDGES = {"A": "bra", "B": "brb"}
TWO_CLUSTER_ZONES = {"A": "us-east-1a", "B": "us-east-1b"}
PUBLIC_NET = "198.18.0"
PUBLIC_BRIDGE = "pub"
TWO_CLUSTER_LAYOUT = ("A-front", "B-front", "A-front", "A", "A", "B", "B")
# Front-ends forward nothing between their private and public links: the
# overlay relays in user space, elastic IPs go public <-> TUN.
ISOLATE_RULES = """table inet mcisolate {
 chain isolate {
  type filter hook forward priority 0; policy accept;
  iifname "eth0" oifname "eth1" drop
  iifname "eth1" oifname "eth0" drop
 }
}
"""

# What an AddressSanitizer/UBSan/LeakSanitizer report looks like in a log.
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer", "ThreadSanitizer")

TMP_PREFIX = "mallee-cluster-"
NS_PREFIX = "mc"  # namespaces are mc<pid>x<seq>h (hub) and mc<pid>x<seq>n<i>

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


class HarnessError(AssertionError):
    """A cluster could not be brought to the state a test asked for."""


# --------------------------------------------------------------------------
# small utilities


def bounded_wait(pred, timeout, what, interval=0.05, max_tries=None):
    """Calls pred() until it returns something truthy, and returns that.

    Bounded both by time and by the number of tries; raises HarnessError
    naming `what` when neither allows another try."""
    if max_tries is None:
        max_tries = max(1, int(timeout / interval) + 1) * 4
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(max_tries):
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise HarnessError(f"timed out after {timeout:.1f}s waiting for {what}"
                       f" (last: {last!r})")


def sanitizer_report(text):
    """The first line of a sanitizer report in text, or None."""
    for line in (text or "").splitlines():
        for m in SANITIZER_MARKERS:
            if m in line:
                return line
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(cmd, timeout=30, check=True, **kw):
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, timeout=timeout, **kw)
    if check and cp.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} failed ({cp.returncode}): "
                           f"{cp.stderr.strip()}")
    return cp


def _pdeathsig():
    # Runs in the child between fork and exec.  The signal is sent when the
    # *thread* that forked exits, so only set it from the main thread.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def processes_mentioning(text):
    """Pids of live processes whose command line contains text."""
    found = []
    needle = text.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline and int(name) != os.getpid():
            found.append(int(name))
    return found


def netns_list():
    """Names from `ip netns list`."""
    cp = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]


def loopback_net(seq=0):
    """A /24 of 127.0.0.0/8 for this process ("127.A.B"), so that parallel
    test runs do not want the same addresses."""
    key = (os.getpid() * 8 + seq % 8) % (254 * 256)
    return f"127.{1 + key // 256}.{key % 256}"


def host_capacity(path):
    """What the peer should measure for a data dir at path:
    (vcpus, memory MiB, disk MiB)."""
    vcpus = os.sysconf("SC_NPROCESSORS_ONLN")
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    st = os.statvfs(path)
    return vcpus, mem_kib // 1024, st.f_blocks * st.f_frsize // (1024 * 1024)


# --------------------------------------------------------------------------
# network namespaces


class Netns:
    """Namespaces and links for one cluster: a hub namespace holding the
    bridges, and one namespace per host with a veth to each bridge it is on.
    Deleting the namespaces deletes every veth and bridge in them."""

    def __init__(self, tag):
        self.tag = tag
        self.hub = f"{NS_PREFIX}{tag}h"
        self.hosts = {}      # ns name -> [(bridge, ifname, cidr)]
        self.bridges = []
        self.made = []       # namespaces created, in order
        self.loss = {}       # hub port -> % dropped (netem without netem)

    def _ip(self, *args, ns=None, check=True):
        cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
        return _run(cmd, check=check)

    def _add_ns(self, name):
        self._ip("netns", "add", name)
        self.made.append(name)
        self._ip("link", "set", "lo", "up", ns=name)

    def add_bridge(self, name="br0"):
        if not self.made:
            self._add_ns(self.hub)
        self._ip("link", "add", name, "type", "bridge", ns=self.hub)
        self._ip("link", "set", name, "up", ns=self.hub)
        self.bridges.append(name)

    def host_ns(self, index):
        return f"{NS_PREFIX}{self.tag}n{index}"

    def add_host(self, index, links):
        """Makes host index's namespace; links is [(bridge, "A.B.C.D/LEN")],
        the first becoming eth0, the next eth1, ...  Returns its name."""
        ns = self.host_ns(index)
        self._add_ns(ns)
        self.hosts[ns] = []
        for k, (bridge, cidr) in enumerate(links):
            ifname = f"eth{k}"
            hub_end = f"h{index}e{k}"
            # Made inside the namespaces, so no name is ever used in the
            # root namespace and parallel runs cannot collide.
            self._ip("link", "add", ifname, "type", "veth", "peer", "name",
                     hub_end, "netns", self.hub, ns=ns)
            self._ip("link", "set", hub_end, "master", bridge, "up",
                     ns=self.hub)
            self._ip("addr", "add", cidr, "dev", ifname, ns=ns)
            self._ip("link", "set", ifname, "up", ns=ns)
            self.hosts[ns].append((bridge, ifname, cidr))
        return ns

    def link_set(self, index, up, k=0):
        """Takes host index's k-th link down or up (from the bridge side, so
        the host still sees its own address)."""
        self._ip("link", "set", f"h{index}e{k}", "up" if up else "down",
                 ns=self.hub)

    def netem(self, index, spec, k=0):
        """`tc qdisc replace ... netem SPEC` on what host index sends on its
        k-th link, or removes it when spec is None.

        Kernels without sch_netem (this machine's cannot load modules) get
        "loss N%" emulated by an nftables rule on the hub's bridge that drops
        a random N% of the frames the host sends; anything else then raises
        HarnessError."""
        dev = f"eth{k}"
        ns = self.host_ns(index)
        port = f"h{index}e{k}"
        if spec is None:
            _run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev,
                  "root"], check=False)
            if self.loss.pop(port, None) is not None:
                self._write_loss()
            return
        cp = _run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev",
                   dev, "root", "netem"] + spec.split(), check=False)
        if cp.returncode == 0:
            return
        m = re.fullmatch(r"loss (\d+(?:\.\d+)?)%", spec.strip())
        if "unknown" not in cp.stderr or not m:
            raise HarnessError(f"tc netem {spec}: {cp.stderr.strip()} (this "
                               "kernel lacks netem: only 'loss N%' can be "
                               "emulated)")
        self.loss[port] = float(m.group(1))
        self._write_loss()

    def _write_loss(self):
        """Rewrites the hub's bridge table of random drops from self.loss."""
        rules = ["add table bridge mcloss", "delete table bridge mcloss",
                 "table bridge mcloss {", " chain lossy {",
                 "  type filter hook forward priority 0; policy accept;"]
        for port, pct in sorted(self.loss.items()):
            # numgen gives 0..9999: 0.01% steps.
            n = int(round(pct * 100))
            if n >= 10000:
                rules.append(f'  iifname "{port}" drop')
            elif n > 0:
                rules.append(f'  iifname "{port}" numgen random mod 10000 '
                             f"< {n} drop")
        rules += [" }", "}"]
        _run(["ip", "netns", "exec", self.hub, "nft", "-f", "-"],
             input="\n".join(rules) + "\n")

    def delete(self):
        errors = []
        for name in reversed(self.made):
            cp = self._ip("netns", "del", name, check=False)
            if cp.returncode != 0 and name in netns_list():
                errors.append(f"{name}: {cp.stderr.strip()}")
        self.made = []
        return errors


def sweep_stale():
    """Removes namespaces and temp dirs left by harness runs whose process is
    gone (a test that was SIGKILLed cannot clean up after itself)."""
    pat = re.compile(rf"^{NS_PREFIX}(\d+)x\d+[hn]")
    for name in netns_list():
        m = pat.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _run(["ip", "netns", "del", name], check=False)
    tmp = tempfile.gettempdir()
    pat = re.compile(rf"^{TMP_PREFIX}(\d+)-")
    for name in os.listdir(tmp):
        m = pat.match(name)
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


# --------------------------------------------------------------------------
# peers and the cluster


class Peer:
    """One peer: its data dir, addresses, arguments and current process."""

    def __init__(self, index, data_dir, log_path, ip, ns=None):
        self.index = index
        self.data_dir = data_dir
        self.log_path = log_path
        self.ip = ip
        self.ns = ns
        self.listen = f"{ip}:{GOSSIP_PORT}"
        self.api_listen = f"{ip}:{API_PORT}"
        self.args = []          # the full `mallee peer ...` arguments
        self.proc = None
        self.exits = []         # return codes of every run that ended
        self.pids = []          # every pid it ever had
        self.initialised = False  # ran `mallee init` (so never --join)
        self._noted = True
        # two_clusters: "A" or "B", whether a front-end, its addresses
        self.cluster = None
        self.front = False
        self.private_ip = ip
        self.public_ip = None

    @property
    def running(self):
        if self.proc is None:
            return False
        rc = self.proc.poll()
        if rc is None:
            return True
        self.note_exit(rc)
        return False

    def note_exit(self, rc):
        if not self._noted:
            self._noted = True
            self.exits.append(rc)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def __repr__(self):
        return f"<peer {self.index} {self.listen} pid {self.pid}>"


_live = []
_live_lock = threading.Lock()
_seq = [0]
_handlers_installed = [False]


def _cleanup_all():
    with _live_lock:
        clusters = list(_live)
    for c in clusters:
        try:
            c.close()
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            print(f"harness: cleanup of {c.root}: {e}", file=sys.stderr)


def _on_signal(signum, frame):
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers():
    if _handlers_installed[0]:
        return
    _handlers_installed[0] = True
    atexit.register(_cleanup_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


class Cluster:
    """N real peers.  See the module's docstring.

    n              number of peers started on entry
    topology       "loopback" or "flat"
    peer_args      extra `mallee peer` flags: a list for every peer, or a
                   dict {index: list}
    init_args      extra `mallee init` flags for peer 0
    names          peer names (default p0, p1, ...); zones likewise (default:
                   the peer's own default)
    join           whether peers 1.. join peer 0's cloud with its token
                   (else every peer gets its own `mallee init`: N clouds)
    start          start the peers on entry (else call start_all() or
                   start(i) yourself)
    check_sanitizers  on a clean exit, fail if any peer log or CLI call
                   showed a sanitizer report
    """

    def __init__(self, n=1, topology="loopback", *, peer_args=None,
                 init_args=(), names=None, zones=None, join=True, start=True,
                 ready_timeout=20.0, loopback_base=None,
                 check_sanitizers=True, env=None, layout=None):
        if topology not in ("loopback", "flat", "two_clusters"):
            raise ValueError(f"unknown topology {topology!r}")
        if n < 1 or n > 200:
            raise ValueError("n must be 1..200")
        self.n = n
        self.topology = topology
        if topology == "two_clusters":
            layout = list(layout or TWO_CLUSTER_LAYOUT[:n])
            if len(layout) < n or any(
                    x not in ("A", "B", "A-front", "B-front")
                    for x in layout):
                raise ValueError(f"bad two_clusters layout {layout!r}")
            if not layout[0].endswith("-front"):
                raise ValueError("peer 0 of two_clusters is a front-end")
        elif layout is not None:
            raise ValueError("layout= is for the two_clusters topology")
        self.layout = layout
        self.cluster_tokens = {}  # two_clusters: cluster -> join token
        self._outside = 0
        self.peer_args = peer_args or []
        self.init_args = list(init_args)
        self.names = names
        self.zones = zones
        self.join = join
        self.autostart = start
        self.ready_timeout = ready_timeout
        self.check_sanitizers = check_sanitizers
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.bin = MALLEE_BIN

        with _live_lock:
            _seq[0] += 1
            seq = _seq[0]
        self.tag = f"{os.getpid()}x{seq}"
        self.loopback_base = loopback_base or loopback_net(seq)

        self.root = None
        self.net = None
        self.peers = []
        self.cloud_id = None
        self.admin = {}          # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
                                 # account from `mallee init`
        self.token = None
        self.sanitizer_hits = []  # (where, line)
        self.closed = False
        self._pids = []

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        try:
            self.setup()
            if self.autostart:
                self.start_all()
        except BaseException:
            self.dump_logs()
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None:
                self.dump_logs()
            elif self.check_sanitizers:
                self.check_no_sanitizer_reports()
        finally:
            self.close()
        return False

    def setup(self):
        """Makes the temp root, the network and the peers' slots (no
        processes)."""
        if not os.access(self.bin, os.X_OK):
            raise HarnessError(f"no mallee binary at {self.bin} "
                               "(set MALLEE_BIN)")
        _install_handlers()
        sweep_stale()
        with _live_lock:
            _live.append(self)
        self.root = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-")
        if self.topology == "flat":
            if os.geteuid() != 0:
                raise HarnessError("the flat topology needs root")
            self.net = Netns(self.tag)
            self.net.add_bridge("br0")
        elif self.topology == "two_clusters":
            if os.geteuid() != 0:
                raise HarnessError("the two_clusters topology needs root")
            self.net = Netns(self.tag)
            for br in ("bra", "brb", PUBLIC_BRIDGE):
                self.net.add_bridge(br)
        for _ in range(self.n):
            self.add_peer()

    def add_peer(self, role=None):
        """Adds a slot for one more peer (and its host namespace); returns
        its index.  Start it with start(i).  two_clusters: role is its
        place ("A", "B", "A-front", "B-front"; default: from layout)."""
        i = len(self.peers)
        if i >= 240 or (self.topology == "two_clusters" and i >= 90):
            raise HarnessError("too many peers")
        data_dir = os.path.join(self.root, f"p{i}")
        log_path = os.path.join(self.root, f"p{i}.log")
        if self.topology == "two_clusters":
            if role is None:
                if i >= len(self.layout):
                    raise HarnessError(f"no role for peer {i}: pass role=")
                role = self.layout[i]
            elif i < len(self.layout):
                self.layout[i] = role
            else:
                self.layout.append(role)
            return self._add_two_cluster_peer(i, role, data_dir, log_path)
        if self.topology == "flat":
            ip = f"{FLAT_NET}.{10 + i}"
            ns = self.net.add_host(i, [("br0", f"{ip}/24")])
        else:
            ip = f"{self.loopback_base}.{10 + i}"
            ns = None
        p = Peer(i, data_dir, log_path, ip, ns)
        self.peers.append(p)
        return i

    def _add_two_cluster_peer(self, i, role, data_dir, log_path):
        cluster, front = role[0], role.endswith("-front")
        net, bridge = TWO_CLUSTER_NETS[cluster], TWO_CLUSTER_BRIDGES[cluster]
        private = f"{net}.{10 + i}"
        links = [(bridge, f"{private}/24")]
        public = f"{PUBLIC_NET}.{10 + i}" if front else None
        if front:
            links.append((PUBLIC_BRIDGE, f"{public}/24"))
        ns = self.net.add_host(i, links)
        p = Peer(i, data_dir, log_path, public or private, ns)
        p.cluster, p.front = cluster, front
        p.private_ip, p.public_ip = private, public
        self.peers.append(p)
        if front:
            _run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                 input=ISOLATE_RULES)
            for q in self.peers[:-1]:
                if q.cluster == cluster and not q.front:
                    self._front_route(q, p)
        else:
            for q in self.peers[:-1]:
                if q.cluster == cluster and q.front:
                    self._front_route(p, q)
        return i

    def _front_route(self, host, front):
        """host reaches front's public address through its private one."""
        _run(["ip", "-n", host.ns, "route", "replace",
              f"{front.public_ip}/32", "via", front.private_ip])

    def add_outside(self):
        """two_clusters: a namespace on the public bridge only (not a
        peer), at 198.18.0.(200+k); returns its name."""
        if self.topology != "two_clusters":
            raise HarnessError("add_outside is for two_clusters")
        k = self._outside
        if k >= 50:
            raise HarnessError("too many outside namespaces")
        self._outside += 1
        return self.net.add_host(200 + k,
                                 [(PUBLIC_BRIDGE, f"{PUBLIC_NET}.{200 + k}/24")])

    def fronts(self, cluster=None):
        """two_clusters: indexes of the front-ends (of cluster)."""
        return [p.index for p in self.peers if p.front and
                (cluster is None or p.cluster == cluster)]

    def private_hosts(self, cluster=None):
        """two_clusters: indexes of the private hosts (of cluster)."""
        return [p.index for p in self.peers
                if p.cluster and not p.front and
                (cluster is None or p.cluster == cluster)]

    def _start_two_clusters(self):
        """Peer 0 makes the cloud; the other front-ends join it; each
        private host joins its own cluster's front-ends."""
        self.init(0)
        self.start(0)
        self.token = self.make_token(0)
        for cl in TWO_CLUSTER_NETS:
            addrs = [f"{self.peers[k].public_ip}:{GOSSIP_PORT}"
                     for k in self.fronts(cl)]
            if addrs:
                args = []
                for a in addrs:
                    args += ["--addr", a]
                cp = self.cli(0, "token", *args, check=True)
                self.cluster_tokens[cl] = cp.stdout.strip()
        for group in (self.fronts(), self.private_hosts()):
            group = [k for k in group if k != 0]
            for k in group:
                self.start(k, wait=False)
            for k in group:
                self.wait_ready(k)

    def start_all(self):
        """Inits peer 0, starts it, then starts every other peer joining it,
        and waits until each answers status."""
        if self.topology == "two_clusters":
            return self._start_two_clusters()
        self.init(0)
        if not self.join:
            for p in self.peers[1:]:
                self.init(p.index)
        self.start(0)
        if self.join and len(self.peers) > 1:
            self.token = self.make_token(0)
        for p in self.peers[1:]:
            self.start(p.index, wait=False)
        for p in self.peers[1:]:
            self.wait_ready(p.index)

    def close(self):
        """Kills every process, deletes namespaces and the temp root.
        Safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        errors = []
        for p in self.peers:
            if p.running:
                try:
                    self._signal_group(p, signal.SIGKILL)
                    self._reap(p, 10.0)
                except Exception as e:  # noqa: BLE001
                    errors.append(f"peer {p.index}: {e}")
        if self.net is not None:
            errors += self.net.delete()
        if self.root and os.path.isdir(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        with _live_lock:
            if self in _live:
                _live.remove(self)
        if errors:
            print("harness: cleanup problems: " + "; ".join(errors),
                  file=sys.stderr)

    # -- running mallee ----------------------------------------------------

    def _wrap(self, p, argv):
        if p is not None and p.ns:
            return ["ip", "netns", "exec", p.ns] + argv
        return argv

    def run(self, *args, peer=None, input=None, timeout=30, check=False):
        """Runs `mallee ARGS` (in peer's namespace when given) and returns the
        CompletedProcess: text, or stdout as bytes when input is bytes.  Sanitizer reports in its stderr are
        recorded and fail the cluster on exit."""
        p = self.peers[peer] if isinstance(peer, int) else peer
        cmd = self._wrap(p, [self.bin] + [str(a) for a in args])
        binary = isinstance(input, (bytes, bytearray))
        cp = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=not binary,
                            timeout=timeout, env=self.env)
        if binary:
            cp.stderr = cp.stderr.decode(errors="replace")
        hit = sanitizer_report(cp.stderr)
        if hit or cp.returncode < 0:
            self.sanitizer_hits.append(
                (" ".join(cmd), hit or f"killed by signal {-cp.returncode}"))
        if check and cp.returncode != 0:
            raise HarnessError(f"mallee {' '.join(map(str, args))} exited "
                               f"{cp.returncode}: {cp.stderr.strip()}")
        return cp

    def cli(self, peer, command, *args, input=None, timeout=30, check=False):
        """`mallee COMMAND --data-dir D ARGS` for peer, in its namespace."""
        p = self.peers[peer]
        return self.run(command, "--data-dir", p.data_dir, *args, peer=p,
                        input=input, timeout=timeout, check=check)

    def init(self, peer=0, *extra):
        """`mallee init` in peer's data dir; remembers the cloud id and the
        admin key it prints."""
        p = self.peers[peer]
        cp = self.cli(peer, "init", *(self.init_args + list(extra)),
                      check=True)
        m = re.search(r"created cloud ([0-9a-f]+)", cp.stdout)
        if not m:
            raise HarnessError(f"mallee init printed no cloud id: {cp.stdout}")
        if peer == 0:
            self.cloud_id = m.group(1)
        for line in cp.stdout.splitlines() if peer == 0 else []:
            line = line.strip()
            if "=" in line:
                k, v = line.split("=", 1)
                self.admin[k] = v
            elif line.startswith("account"):
                self.admin["account"] = line.split()[-1]
        p.initialised = True
        return cp

    def make_token(self, peer=0):
        cp = self.cli(peer, "token", check=True)
        token = cp.stdout.strip()
        if not token.startswith("mallee1-"):
            raise HarnessError(f"mallee token printed {token!r}")
        return token

    def peer_argv(self, i, extra=()):
        """The `mallee peer` arguments peer i is started with."""
        p = self.peers[i]
        argv = [self.bin, "peer", "--data-dir", p.data_dir,
                "--listen", p.listen, "--api-listen", p.api_listen]
        name = (self.names[i] if self.names and i < len(self.names)
                else f"p{i}")
        if name:
            argv += ["--name", name]
        if self.zones and i < len(self.zones) and self.zones[i]:
            argv += ["--zone", self.zones[i]]
        elif p.cluster:
            argv += ["--zone", TWO_CLUSTER_ZONES[p.cluster]]
        token = self.token
        if p.cluster and not p.front:
            token = self.cluster_tokens.get(p.cluster) or token
        if self.join and token and not p.initialised:
            argv += ["--join", token]
        if p.front:
            given = (list(self.peer_args.get(i, [])) if isinstance(
                self.peer_args, dict) else list(self.peer_args)) + list(extra)
            if "--gateway" not in given:
                argv.append("--gateway")
            if "--advertise" not in given:
                argv += ["--advertise", p.listen]
        if isinstance(self.peer_args, dict):
            argv += list(self.peer_args.get(i, []))
        else:
            argv += list(self.peer_args)
        # Peers host no instances unless a test asks: the default
        # (qemu:///system) would reach whatever libvirtd this machine runs
        # and put a bridge in the namespace the peer runs in.
        if "--virt-uri" not in argv and "--virt-uri" not in extra:
            argv += ["--virt-uri", "none"]
        return argv + list(extra)

    def start(self, i, extra=(), wait=True, argv=None):
        """Starts peer i (its arguments are kept for restart()); with wait,
        returns its status once it answers."""
        p = self.peers[i]
        if p.running:
            raise HarnessError(f"peer {i} is already running")
        if argv is None:
            argv = self.peer_argv(i, extra)
        p.args = list(argv)
        self._spawn(p)
        if wait:
            return self.wait_ready(i)
        return None

    def _spawn(self, p):
        cmd = self._wrap(p, p.args)
        with open(p.log_path, "ab") as log:
            log.write(f"=== harness: start {len(p.pids) + 1}: "
                      f"{' '.join(cmd)}\n".encode())
            log.flush()
            main = threading.current_thread() is threading.main_thread()
            p.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, env=self.env,
                preexec_fn=_pdeathsig if main else None)
        p._noted = False
        p.pids.append(p.proc.pid)
        self._pids.append(p.proc.pid)

    def _signal_group(self, p, sig):
        try:
            os.killpg(p.proc.pid, sig)
        except ProcessLookupError:
            pass

    def _exited(self, p):
        """True once p's process has exited (without reaping it, so its pid
        still names its group)."""
        try:
            r = os.waitid(os.P_PID, p.proc.pid,
                          os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return r is not None

    def _reap(self, p, timeout):
        """Waits for p's process to exit, kills what is left of its group,
        reaps it, records and returns its exit code."""
        bounded_wait(lambda: self._exited(p), timeout,
                     f"peer {p.index} (pid {p.proc.pid}) to exit",
                     interval=0.02)
        self._signal_group(p, signal.SIGKILL)  # leftovers; leader is a zombie
        rc = p.proc.wait(timeout=5)
        p.note_exit(rc)
        hit = sanitizer_report(self.log(p.index))
        if hit and ("log " + str(p.index), hit) not in self.sanitizer_hits:
            self.sanitizer_hits.append(("log " + str(p.index), hit))
        return rc

    def stop(self, i, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig to peer i and waits for it to exit; returns the exit
        code (negative: killed by a signal).  If it outlives timeout it is
        SIGKILLed and HarnessError is raised."""
        p = self.peers[i]
        if not p.running:
            raise HarnessError(f"peer {i} is not running")
        os.kill(p.proc.pid, sig)
        try:
            return self._reap(p, timeout)
        except HarnessError:
            self._signal_group(p, signal.SIGKILL)
            self._reap(p, 10.0)
            raise

    def kill9(self, i):
        """SIGKILLs peer i's whole process group; returns the exit code."""
        p = self.peers[i]
        if not p.running:
            raise HarnessError(f"peer {i} is not running")
        self._signal_group(p, signal.SIGKILL)
        return self._reap(p, 10.0)

    def pause(self, i):
        os.killpg(self.peers[i].proc.pid, signal.SIGSTOP)

    def resume(self, i):
        os.killpg(self.peers[i].proc.pid, signal.SIGCONT)

    def restart(self, i, sig=signal.SIGTERM, wait=True):
        """Stops peer i with sig (if it runs) and starts it again with the
        same arguments."""
        if self.peers[i].running:
            self.stop(i, sig)
        p = self.peers[i]
        self._spawn(p)
        return self.wait_ready(i) if wait else None

    # -- observing ---------------------------------------------------------

    def status(self, i, timeout=10):
        """`mallee status --json` of peer i, parsed; raises if it fails."""
        cp = self.cli(i, "status", "--json", timeout=timeout)
        if cp.returncode != 0:
            raise HarnessError(f"status of peer {i} failed "
                               f"({cp.returncode}): {cp.stderr.strip()}")
        return json.loads(cp.stdout)

    def try_status(self, i):
        cp = self.cli(i, "status", "--json", timeout=10)
        if cp.returncode != 0:
            return None
        try:
            return json.loads(cp.stdout)
        except ValueError:
            return None

    def wait_ready(self, i, timeout=None):
        """Polls status until peer i answers (as itself: the pid matches);
        fails early, with its log, if it exits."""
        p = self.peers[i]
        timeout = self.ready_timeout if timeout is None else timeout

        def ready():
            if not p.running:
                rc = p.proc.poll() if p.proc else None
                raise HarnessError(
                    f"peer {i} exited ({rc}) before it was ready; log:\n"
                    + self.log(i)[-4000:])
            st = self.try_status(i)
            if not st or st.get("self", {}).get("pid") != p.proc.pid:
                return None
            # A peer that hosts instances admits them once its address
            # slice is confirmed (a few seconds after start).
            if hosts and not st["self"].get("hostnet", {}).get("ready"):
                return None
            return st

        args = p.args or []
        k = args.index("--virt-uri") if "--virt-uri" in args else -1
        hosts = k >= 0 and k + 1 < len(args) and args[k + 1] != "none"
        if hosts:
            timeout = max(timeout, 40)
        return bounded_wait(ready, timeout, f"peer {i} to answer status"
                            + (" with its host network ready" if hosts
                               else ""), interval=0.05)

    def wait_members(self, i, count, state="alive", timeout=30):
        """Waits until peer i's status lists at least count members in
        state; returns the status."""
        def enough():
            st = self.try_status(i)
            if not st:
                return None
            n = sum(1 for m in st.get("members", [])
                    if state is None or m.get("state") == state)
            return st if n >= count else None
        return bounded_wait(enough, timeout,
                            f"peer {i} to see {count} {state} members",
                            interval=0.1)

    def members(self, i):
        """{member id: member dict} from peer i's status."""
        return {m["id"]: m for m in self.status(i).get("members", [])}

    def peer_id(self, i):
        return self.status(i)["self"]["id"]

    def wait_member_state(self, i, member_id, states, timeout=30):
        """Waits until peer i lists member_id in one of states (a string or
        a tuple; None means "not listed at all"); returns the member (or
        True for None)."""
        states = (states,) if isinstance(states, str) or states is None \
            else tuple(states)

        def seen():
            st = self.try_status(i)
            if not st:
                return None
            m = next((m for m in st.get("members", [])
                      if m.get("id") == member_id), None)
            if m is None:
                return True if None in states else None
            return m if m.get("state") in states else None
        return bounded_wait(seen, timeout,
                            f"peer {i} to see {member_id} {states}",
                            interval=0.1)

    def wait_converged(self, count=None, timeout=60):
        """Waits until every running peer sees count (default: all) alive
        members."""
        count = len(self.peers) if count is None else count
        deadline = time.monotonic() + timeout
        for p in self.peers:
            if p.running:
                left = max(0.1, deadline - time.monotonic())
                self.wait_members(p.index, count, timeout=left)

    def log(self, i):
        try:
            with open(self.peers[i].log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def dump_logs(self, file=None):
        file = file or sys.stderr
        for p in self.peers:
            text = self.log(p.index)
            print(f"----- peer {p.index} ({p.listen}"
                  f"{', ns ' + p.ns if p.ns else ''}) log -----", file=file)
            for line in text.splitlines()[-200:]:
                print(f"[p{p.index}] {line}", file=file)
        for where, line in self.sanitizer_hits:
            print(f"----- sanitizer: {where}: {line}", file=file)
        file.flush()

    def check_no_sanitizer_reports(self):
        for p in self.peers:
            hit = sanitizer_report(self.log(p.index))
            if hit and ("log " + str(p.index), hit) not in self.sanitizer_hits:
                self.sanitizer_hits.append(("log " + str(p.index), hit))
        if self.sanitizer_hits:
            self.dump_logs()
            raise AssertionError("sanitizer reports: " + "; ".join(
                f"{w}: {l}" for w, l in self.sanitizer_hits))

    def pids(self):
        """Every pid this cluster's peers ever had."""
        return list(self._pids)

    def namespaces(self):
        return list(self.net.made) if self.net else []

    # -- faults (flat topology) --------------------------------------------

    def link(self, i, up, k=0):
        self._need_net().link_set(i, up, k)

    def netem(self, i, spec, k=0):
        self._need_net().netem(i, spec, k)

    def _need_net(self):
        if self.net is None:
            raise HarnessError("network faults need the flat or "
                               "two_clusters topology")
        return self.net


def leftovers(root, namespaces):
    """What a closed cluster left behind: (pids of processes mentioning
    root, namespaces still present, whether root still exists)."""
    present = set(netns_list())
    return (processes_mentioning(root),
            [n for n in namespaces if n in present],
            os.path.exists(root))
