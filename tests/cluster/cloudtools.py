"""What tests of the cloud's instances and EC2 API share, on top of the
cluster harness (harness.Cluster):

  * msgpack, the subset records and the control socket use (python3-msgpack
    is not installed by scripts/setup): mp_pack(v), mp_unpack(b, i) ->
    (value, next index), unpack(b) -> value;
  * instance records as a peer holds them: STATES (code -> name),
    instance_records(c, i), instance_record(c, i, rid),
    put_instance_record(c, rec), vcpu_free(c, i);
  * images: import_image(c, i, ARGS) -> ami id, import_fake_image(c) for
    libvirt's test driver (which never reads the files), wait_image_known;
  * the aws cli run inside a peer's namespace: AwsCli(ns, endpoint, key,
    secret, region).ec2(ARGS) -> parsed JSON, AwsError when the service
    said no; edge_cli(c, i) for a Cluster's edge;
  * one boto3 call in a peer's namespace: boto3_call(c, op, **args).

The cluster tier has this folder on PYTHONPATH; the vm and clients tiers put
it there (tests/vm/cloud.py, tests/clients/fixture.py).
"""

import json
import os
import re
import struct
import subprocess
import sys

from harness import HarnessError, bounded_wait

AWS_BIN = os.environ.get("MALLEE_AWS_CLI", "/usr/bin/aws")
REGION = "us-east-1"
STATES = {0: "pending", 16: "running", 32: "shutting-down", 48: "terminated",
          64: "stopping", 80: "stopped"}

# --------------------------------------------------------------------------
# msgpack


def mp_pack(v):
    """v (None, bool, int, str, bytes, list, dict) as msgpack."""
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        if len(v) < 256:
            return b"\xc4" + bytes([len(v)]) + bytes(v)
        return b"\xc5" + struct.pack(">H", len(v)) + bytes(v)
    if isinstance(v, (list, tuple)):
        head = (bytes([0x90 | len(v)]) if len(v) < 16
                else b"\xdc" + struct.pack(">H", len(v)))
        return head + b"".join(mp_pack(x) for x in v)
    if isinstance(v, dict):
        head = (bytes([0x80 | len(v)]) if len(v) < 16
                else b"\xde" + struct.pack(">H", len(v)))
        return head + b"".join(mp_pack(k) + mp_pack(x)
                               for k, x in v.items())
    raise TypeError(type(v))


_FIXED = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b",
          0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
_SIZED = {0xD9: (">B", "s"), 0xDA: (">H", "s"), 0xDB: (">I", "s"),
          0xC4: (">B", "b"), 0xC5: (">H", "b"), 0xC6: (">I", "b"),
          0xDC: (">H", "a"), 0xDD: (">I", "a"),
          0xDE: (">H", "m"), 0xDF: (">I", "m")}
_SIMPLE = {0xC0: None, 0xC2: False, 0xC3: True}


def mp_unpack(b, i=0):
    """(value, index after it) for the msgpack value at b[i]."""
    t = b[i]
    i += 1
    if t <= 0x7F:
        return t, i
    if t >= 0xE0:
        return t - 0x100, i
    if 0x80 <= t <= 0x8F:
        return _map(b, i, t & 0x0F)
    if 0x90 <= t <= 0x9F:
        return _array(b, i, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return b[i:i + n].decode(errors="replace"), i + n
    if t in _SIMPLE:
        return _SIMPLE[t], i
    if t in _FIXED:
        f = _FIXED[t]
        n = struct.calcsize(f)
        return struct.unpack(f, b[i:i + n])[0], i + n
    if t not in _SIZED:
        raise ValueError(f"msgpack type 0x{t:02x} not handled")
    f, kind = _SIZED[t]
    k = struct.calcsize(f)
    n = struct.unpack(f, b[i:i + k])[0]
    i += k
    if kind == "s":
        return b[i:i + n].decode(errors="replace"), i + n
    if kind == "b":
        return bytes(b[i:i + n]), i + n
    return _array(b, i, n) if kind == "a" else _map(b, i, n)


def _map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = mp_unpack(b, i)
        v, i = mp_unpack(b, i)
        out[k.decode() if isinstance(k, bytes) else k] = v
    return out, i


def _array(b, i, n):
    out = []
    for _ in range(n):
        v, i = mp_unpack(b, i)
        out.append(v)
    return out, i


def unpack(b):
    """The first msgpack value in b."""
    return mp_unpack(b, 0)[0]


# --------------------------------------------------------------------------
# records and capacity, from a peer's own CLI


def instance_records(c, i):
    """{instance id: record} of the (not deleted) instance records peer i
    holds."""
    cp = c.cli(i, "admin", "record", "list", "instance", "--json",
               check=True)
    out = {}
    for r in json.loads(cp.stdout or "[]"):
        if not r.get("deleted"):
            rec = unpack(bytes.fromhex(r["body"]))
            out[rec["id"]] = rec
    return out


def instance_record(c, i, rid, timeout=30):
    """Peer i's own copy of the instance record rid ("account:id"),
    decoded; None when it has none."""
    cp = c.cli(i, "admin", "record", "get", "instance", rid, input=b"",
               timeout=timeout)
    if cp.returncode != 0 or not cp.stdout:
        return None
    return unpack(cp.stdout)


def put_instance_record(c, rec, i=0):
    """Writes rec (a dict with "account" and "id") as an instance record
    through peer i, as a host would."""
    c.cli(i, "admin", "record", "put", "instance",
          f"{rec['account']}:{rec['id']}", "-", input=mp_pack(rec),
          check=True)


def vcpu_free(c, i):
    """Peer i's free vCPUs, from its own `mallee status --json`."""
    return c.status(i)["self"]["capacity"]["vcpu"]["free"]


# --------------------------------------------------------------------------
# images


def import_image(c, i, *args, timeout=60):
    """`mallee admin image import ARGS` on peer i; the new image's ami id."""
    cp = c.cli(i, "admin", "image", "import", *args, check=True,
               timeout=timeout)
    m = re.search(r"\bami-[0-9a-f]{8,17}\b", cp.stdout)
    if not m:
        raise HarnessError(f"image import printed {cp.stdout!r}")
    return m.group(0)


def import_fake_image(c, i=0, name="fake", kernel_bytes=4096,
                      disk_bytes=0):
    """An image of random bytes (and a zeroed raw disk when disk_bytes),
    for libvirt's test driver, which never reads them; its ami id."""
    kernel = os.path.join(c.root, "vmlinuz")
    with open(kernel, "wb") as f:
        f.write(os.urandom(kernel_bytes))
    args = ["--name", name, "--kernel", kernel]
    if disk_bytes:
        disk = os.path.join(c.root, "disk.raw")
        with open(disk, "wb") as f:
            f.write(b"\0" * disk_bytes)
        args += ["--disk", disk, "--disk-format", "raw"]
    return import_image(c, i, *args, "--cmdline", "console=ttyS0")


def wait_image_known(c, ami, peers, timeout=30):
    """Until every peer in peers lists ami among its image records."""
    for i in peers:
        bounded_wait(lambda i=i: ami in c.cli(
            i, "admin", "record", "list", "image").stdout, timeout,
            f"p{i} to learn {ami}", interval=0.2)


# --------------------------------------------------------------------------
# EC2 clients inside a peer's namespace


def client_env(key_id=None, secret=None, region=None):
    """The environment for an AWS client that must see no config files,
    instance metadata or credentials but the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_PAGER": "",
    })
    if region:
        env.update({"AWS_DEFAULT_REGION": region, "AWS_REGION": region})
    if key_id:
        env.update({"AWS_ACCESS_KEY_ID": key_id,
                    "AWS_SECRET_ACCESS_KEY": secret})
    return env


class AwsError(AssertionError):
    """The service refused a call: its error code and message, and the aws
    cli's exit status."""

    def __init__(self, code, message, stderr="", rc=None):
        super().__init__(f"{code} (exit {rc}): {message}")
        self.code = code
        self.message = self.text = message
        self.stderr = stderr
        self.rc = rc


_AWS_ERROR = re.compile(r"An error occurred \(([^)]+)\) when calling the "
                        r"\w+ operation[^:]*: (.*)")


class AwsCli:
    """The aws cli (Debian's v2, or MALLEE_AWS_CLI) against endpoint, run
    inside network namespace ns with the given key and nothing else."""

    def __init__(self, ns, endpoint, key_id, secret, region=REGION,
                 timeout=60):
        self.ns = ns
        self.endpoint = endpoint
        self.region = region
        self.timeout = timeout
        self.env = client_env(key_id, secret, region)

    def run(self, *args, timeout=None):
        """`aws --endpoint-url E --region R --output json ARGS`; the
        CompletedProcess."""
        cmd = ["ip", "netns", "exec", self.ns, AWS_BIN, "--endpoint-url",
               self.endpoint, "--region", self.region,
               "--output", "json"] + [str(a) for a in args]
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout or self.timeout,
                              stdin=subprocess.DEVNULL, env=self.env)

    def ec2(self, *args, check=True, timeout=None):
        """`aws ec2 ARGS` -> parsed JSON ({} when it printed nothing);
        AwsError for an error the service returned (None instead when
        check=False), AssertionError when the cli failed otherwise."""
        cp = self.run("ec2", *args, timeout=timeout)
        if cp.returncode == 0:
            return json.loads(cp.stdout) if cp.stdout.strip() else {}
        if not check:
            return None
        m = _AWS_ERROR.search(cp.stderr)
        if m:
            raise AwsError(m.group(1), m.group(2).strip(), cp.stderr,
                           cp.returncode)
        raise AssertionError(f"aws ec2 {' '.join(map(str, args))} exited "
                             f"{cp.returncode}: {cp.stderr.strip()[-2000:]}")


def edge_cli(c, i=0, region=REGION):
    """AwsCli for Cluster c's edge peer i, with the admin key."""
    p = c.peers[i]
    return AwsCli(p.ns, f"http://{p.api_listen}",
                  c.admin["AWS_ACCESS_KEY_ID"],
                  c.admin["AWS_SECRET_ACCESS_KEY"], region)


# One boto3 call: argv[1] is {"endpoint", "key", "secret", "op", "args"};
# prints the response as JSON (datetimes as text).
BOTO3_CALL = r"""
import json, sys
import boto3
from botocore.config import Config
a = json.loads(sys.argv[1])
ec2 = boto3.session.Session(aws_access_key_id=a["key"],
                            aws_secret_access_key=a["secret"],
                            region_name="us-east-1").client(
    "ec2", endpoint_url=a["endpoint"],
    config=Config(retries={"total_max_attempts": 1}, connect_timeout=5,
                  read_timeout=20))
r = getattr(ec2, a["op"])(**a["args"])
r.pop("ResponseMetadata", None)
print(json.dumps(r, default=str))
"""


def boto3_call(c, op, i=0, python=None, **args):
    """EC2 op(**args) with boto3 against Cluster c's edge peer i, from
    inside its namespace, with the admin key; the response. AssertionError
    (with the client's stderr) when it fails."""
    p = c.peers[i]
    a = json.dumps({"endpoint": f"http://{p.api_listen}",
                    "key": c.admin["AWS_ACCESS_KEY_ID"],
                    "secret": c.admin["AWS_SECRET_ACCESS_KEY"],
                    "op": op, "args": args})
    cp = subprocess.run(["ip", "netns", "exec", p.ns,
                         python or sys.executable or "python3", "-c",
                         BOTO3_CALL, a], capture_output=True, text=True,
                        timeout=60, env=client_env())
    if cp.returncode != 0:
        raise AssertionError(f"{op}: {cp.stderr[-600:]}")
    return json.loads(cp.stdout)


# ---- scripts run inside test namespaces (python3 -c SCRIPT ARGS...) -----

# Captures the first 5 tunnel packets (UDP to port 7701) on IFACE whose
# IPv4 source ("src") or destination ("dst") is ADDR, of KIND "transport"
# (a type-4 packet) or "relay" (a relay header carrying one); prints their
# payloads as hex. Args: IFACE src|dst ADDR KIND.
TUNNEL_SNIFF = r"""
import socket, struct, sys
iface, side, addr, kind = sys.argv[1:5]
want = socket.inet_aton(addr)
at = 26 if side == "src" else 30
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
s.settimeout(10)
out = []
while len(out) < 5:
    f = s.recv(65536)
    if len(f) < 14 + 20 + 8 or f[12:14] != b"\x08\x00" or f[23] != 17:
        continue
    if f[at:at + 4] != want:
        continue
    ihl = (f[14] & 15) * 4
    udp = f[14 + ihl:]
    payload = udp[8:]
    if struct.unpack("!H", udp[2:4])[0] != 7701:
        continue
    if kind == "relay":
        ok = (payload[:1] == b"\x05" and payload[20:21] == b"\x04"
              and len(payload) > 84)
    else:
        ok = payload[:1] == b"\x04" and len(payload) > 64
    if ok:
        out.append(payload.hex())
print(" ".join(out))
"""

# Sends each HEX payload as one UDP datagram to ADDR:7701. Args: ADDR HEX...
TUNNEL_SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for h in sys.argv[2:]:
    s.sendto(bytes.fromhex(h), (sys.argv[1], 7701))
"""

# A TCP echo server on port 7777: answers "echo:" + each line, one per
# connection; prints "ready" once listening. Args: [IDLE_S] (exit after that
# long without a connection; none: until killed).
TCP_ECHO_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777))
s.listen(4)
if len(sys.argv) > 1:
    s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(20)
    data = b""
    while not data.endswith(b"\n"):
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.sendall(b"echo:" + data)
    c.close()
"""

# Sends SIZE bytes and a newline to ADDR:7777 and checks the echo; prints
# "ok LEN". Args: ADDR SIZE CONNECT_TIMEOUT_S IO_TIMEOUT_S.
TCP_ECHO_CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], 7777),
                             timeout=float(sys.argv[3]))
c.settimeout(float(sys.argv[4]))
payload = b"x" * int(sys.argv[2]) + b"\n"
c.sendall(payload)
got = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    got += chunk
assert got == b"echo:" + payload, len(got)
print("ok", len(got))
"""

