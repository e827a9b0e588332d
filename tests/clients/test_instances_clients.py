"""Instances through the three real EC2 clients (the Debian aws cli v2,
Debian's boto3, the JS SDK v3 from tests/clients/node_modules) against a
cloud whose hosts run libvirt's test driver (`--virt-uri test:///default`:
admission and state changes are real, guests never boot, so instances stay
"pending" until stopped or terminated).

The cloud: 3 peers in network namespaces (the flat topology: each host's
bridge and metadata address live in its own namespace, not in this
machine's), peers 0 and 1 edges, every peer a host with room for 24 vCPU and
48 GiB, zones us-east-1a/b/c, accounts A and B, and one public image
imported with `mallee admin image import`.  The clients run in this
process's namespace and reach each edge through a small TCP relay that
forwards 127.0.0.1:PORT into the edge's namespace (NsRelay).

Each client, one after the other, does:
  * RunInstances (MinCount/MaxCount 2, KeyName, SecurityGroup, UserData,
    TagSpecification, ClientToken), the retry with the same token answering
    the same reservation, and IdempotentParameterMismatch for another
    request with it;
  * DescribeInstances through the other edge, with every parsed field
    checked against the type botocore's EC2 model gives it (dates parsed as
    dates, numbers as numbers, booleans as booleans; the aws cli prints
    JSON, where a date must be an ISO 8601 string) and the values against
    what was asked;
  * DescribeInstanceStatus (IncludeAllInstances, or not);
  * StopInstances / StartInstances / TerminateInstances and their
    (current, previous) state pairs, the instance_stopped and
    instance_terminated waiters;
  * GetConsoleOutput (empty on the test driver), Describe- and
    ModifyInstanceAttribute (instanceType only while stopped, userData);
  * CreateTags on an instance then a tag: filter (and DescribeTags,
    DeleteTags);
  * errors: InvalidInstanceID.NotFound, InvalidInstanceID.Malformed,
    IncorrectInstanceState, InsufficientInstanceCapacity when MinCount
    exceeds what the hosts can take (the admitted part is undone), another
    account's instance being NotFound;
  * paginators over DescribeInstances and DescribeInstanceStatus with
    MaxResults.

boto3 is Debian's, importable by /usr/bin/python3; under another python3
without it this file re-runs itself there.
"""

import os
import sys

try:
    import boto3  # noqa: F401
except ImportError:
    if sys.executable != "/usr/bin/python3" and \
            os.access("/usr/bin/python3", os.X_OK):
        os.execv("/usr/bin/python3",
                 ["/usr/bin/python3", os.path.abspath(__file__)]
                 + sys.argv[1:])
    raise

import base64
import ctypes
import datetime
import ipaddress
import json
import re
import select
import socket
import threading
import time
import unittest

import fixture
from contract import MISSING, CloudClients, tags_of
from fixture import (ApiError, AwsCli, Boto3, ClientFailure, EdgeCloud,
                     JsSdk, eventually, kebab, plain, unique)
from harness import Cluster, HarnessError, bounded_wait

CAP_VCPU = 24
CAP_MEM = 49152
ITYPE = "t2.micro"       # 1 vCPU, 1024 MiB
OTHER_TYPE = "t2.small"  # what ModifyInstanceAttribute changes it to
BIG_TYPE = "c5.4xlarge"  # 16 vCPU, 32768 MiB: one per host at most
PEER_ARGS = ["--api-tls", "off", "--virt-uri", "test:///default",
             "--capacity-vcpu", str(CAP_VCPU),
             "--capacity-memory-mib", str(CAP_MEM), "--bridge", "mlcli0"]
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32,
               "terminated": 48, "stopping": 64, "stopped": 80}
RELAY_IDLE = 300.0       # a relayed connection idle this long is closed
RELAY_LIFE = 3600.0      # no relay outlives this

# --------------------------------------------------------------------------
# reaching an edge inside its namespace


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


class NsRelay:
    """Listens on 127.0.0.1:PORT here and forwards each connection to
    target (host, port) inside network namespace ns.

    One thread accepts: it moves itself into ns (setns works per thread),
    so the sockets it makes connect from there; the listening socket was
    made before, here.  A thread per connection copies bytes both ways."""

    def __init__(self, ns, target):
        self.ns = ns
        self.target = target
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.stopping = threading.Event()
        self.entered = threading.Event()
        self.error = None
        self.socks = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True,
                                       name=f"relay-{ns}")
        self.thread.start()
        if not self.entered.wait(10) or self.error:
            self.close()
            raise HarnessError(f"relay into {ns}: {self.error}")

    def _serve(self):
        try:
            fd = os.open(f"/var/run/netns/{self.ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
        except OSError as e:
            self.error = str(e)
            self.entered.set()
            return
        self.entered.set()
        deadline = time.monotonic() + RELAY_LIFE
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                down, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                up = socket.create_connection(self.target, timeout=10)
            except OSError:
                down.close()
                continue
            with self.lock:
                self.socks.update((down, up))
            threading.Thread(target=self._pump, args=(down, up),
                             daemon=True).start()

    def _pump(self, a, b):
        other = {a: b, b: a}
        idle_until = time.monotonic() + RELAY_IDLE
        try:
            while (not self.stopping.is_set()
                   and time.monotonic() < idle_until):
                ready, _, _ = select.select([a, b], [], [], 0.5)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    other[s].sendall(data)
                    idle_until = time.monotonic() + RELAY_IDLE
        except OSError:
            return
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
            with self.lock:
                self.socks.discard(a)
                self.socks.discard(b)

    def close(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        self.thread.join(5)
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# the cloud


class InstanceCloud(EdgeCloud):
    """EdgeCloud's 3 peers, 2 edges and 2 accounts, each peer a test-driver
    host in its own namespace, plus an image (self.ami)."""

    def __init__(self, n=3, edges=(0, 1)):
        self.c = Cluster(
            n, topology="flat",
            peer_args={i: PEER_ARGS + (["--edge"] if i in edges else [])
                       for i in range(n)},
            zones=list(fixture.ZONES[:n]))
        self.edges = list(edges)
        self.relays = {}
        self.A = None
        self.B = None
        self.ami = None
        self.host_ids = []

    def __enter__(self):
        self.c.__enter__()
        try:
            for e in self.edges:
                p = self.c.peers[e]
                self.relays[e] = NsRelay(p.ns, (p.ip, fixture_api_port(p)))
            ad = self.c.admin
            self.A = fixture.Account("A", ad["account"],
                                     ad["AWS_ACCESS_KEY_ID"],
                                     ad["AWS_SECRET_ACCESS_KEY"])
            self.B = self.create_account("clients-b")
            self.c.wait_converged(timeout=30)
            for i in range(len(self.c.peers)):
                bounded_wait(lambda i=i: "hypervisor ready at test:///"
                             in self.c.log(i), 30,
                             f"p{i}'s hypervisor connection", interval=0.2)
            self.host_ids = [self.c.peer_id(i)
                             for i in range(len(self.c.peers))]
            self.ami = self.import_image()
            for acct in (self.A, self.B):
                for e in self.edges:
                    self.wait_key_works(acct, e)
        except BaseException:
            self.close_relays()
            self.c.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        fixture.stop_js_runner()
        self.close_relays()
        return self.c.__exit__(*exc)

    def close_relays(self):
        for r in self.relays.values():
            r.close()
        self.relays = {}

    def endpoint(self, edge):
        return "http://" + self.relays[edge].addr

    def import_image(self):
        # The test driver never reads them: small files do.
        kernel = os.path.join(self.c.root, "vmlinuz")
        disk = os.path.join(self.c.root, "disk.raw")
        with open(kernel, "wb") as f:
            f.write(os.urandom(8192))
        with open(disk, "wb") as f:
            f.write(b"\0" * (1 << 20))
        cp = self.c.cli(0, "admin", "image", "import", "--name", "tiny",
                        "--kernel", kernel, "--disk", disk,
                        "--disk-format", "raw", "--cmdline",
                        "console=ttyS0", check=True, timeout=60)
        m = re.search(r"\bami-[0-9a-f]{8,17}\b", cp.stdout)
        if not m:
            raise HarnessError(f"image import printed {cp.stdout!r}")
        ami = m.group(0)
        for i in range(len(self.c.peers)):
            bounded_wait(lambda i=i: ami in self.c.cli(
                i, "admin", "record", "list", "image").stdout, 40,
                f"p{i} to learn {ami}", interval=0.2)
        return ami

    def vcpu_free(self, i):
        return self.c.status(i)["self"]["capacity"]["vcpu"]["free"]


def fixture_api_port(peer):
    return int(peer.api_listen.rsplit(":", 1)[1])


# --------------------------------------------------------------------------
# what the clients parsed, against the model


TYPE_OF = {"string": "string", "integer": "number", "long": "number",
           "double": "number", "float": "number", "boolean": "boolean",
           "timestamp": "date", "blob": "blob"}

_model = {}


def output_shape(op):
    if "ec2" not in _model:
        import botocore.session
        _model["ec2"] = botocore.session.get_session() \
            .get_service_model("ec2")
    return _model["ec2"].operation_model(op).output_shape


def tree_of_python(v):
    """boto3's parsed objects -> a tree with leaves naming their type."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, datetime.datetime):
        return "date"
    if isinstance(v, (bytes, bytearray)):
        return "blob"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return {k: tree_of_python(x) for k, x in v.items()}
    if isinstance(v, list):
        return [tree_of_python(x) for x in v]
    return type(v).__name__


def tree_of_json(v):
    """The aws cli's JSON -> the same tree; strings keep their text (a date
    is a string there, and must parse)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return ("string", v)
    if isinstance(v, dict):
        return {k: tree_of_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [tree_of_json(x) for x in v]
    return type(v).__name__


def parse_time(text):
    """An ISO 8601 time as EC2 clients print it -> aware datetime."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    d = datetime.datetime.fromisoformat(t)
    if d.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return d


def check_tree(shape, tree, path, problems, seen):
    """Every leaf of tree has the type the model gives its member; records
    the paths seen (lists as [])."""
    t = shape.type_name
    if t == "structure":
        if not isinstance(tree, dict):
            problems.append(f"{path}: {tree!r}, not a structure")
            return
        for k, sub in tree.items():
            if k not in shape.members:
                problems.append(f"{path}.{k}: not in the model")
                continue
            check_tree(shape.members[k], sub, f"{path}.{k}".lstrip("."),
                       problems, seen)
        return
    if t == "list":
        if not isinstance(tree, list):
            problems.append(f"{path}: {tree!r}, not a list")
            return
        for x in tree:
            check_tree(shape.member, x, path + "[]", problems, seen)
        seen.add(path)
        return
    if t == "map":
        if not isinstance(tree, dict):
            problems.append(f"{path}: {tree!r}, not a map")
            return
        for x in tree.values():
            check_tree(shape.value, x, path + "{}", problems, seen)
        return
    want = TYPE_OF.get(t, t)
    got = tree
    if isinstance(tree, tuple):      # the aws cli's JSON
        got, text = tree
        if want == "date" and got == "string":
            try:
                parse_time(text)
                got = "date"
            except ValueError:
                got = f"unparseable date {text!r}"
        elif want == "blob" and got == "string":
            got = "blob"
    if got == "null":
        problems.append(f"{path}: null")
    elif got != want:
        problems.append(f"{path}: parsed as {got}, the model says {want}")
    seen.add(path)


# Paths every instance of ours must come back with (the fields mallee
# fills), relative to one instance; the ones present are type-checked
# with all the others.
INSTANCE_FIELDS = [
    "InstanceId", "ImageId", "State.Code", "State.Name", "PrivateDnsName",
    "StateTransitionReason", "KeyName", "AmiLaunchIndex", "ProductCodes",
    "InstanceType", "LaunchTime", "Placement.AvailabilityZone",
    "Placement.Tenancy", "Monitoring.State", "SubnetId", "VpcId",
    "PrivateIpAddress", "SourceDestCheck", "SecurityGroups",
    "SecurityGroups[].GroupId", "SecurityGroups[].GroupName",
    "Architecture", "RootDeviceType", "RootDeviceName",
    "BlockDeviceMappings", "VirtualizationType", "ClientToken", "Tags",
    "Tags[].Key", "Tags[].Value", "Hypervisor", "NetworkInterfaces",
    "NetworkInterfaces[].NetworkInterfaceId",
    "NetworkInterfaces[].MacAddress",
    "NetworkInterfaces[].PrivateIpAddress",
    "NetworkInterfaces[].SourceDestCheck",
    "NetworkInterfaces[].Attachment.AttachTime",
    "NetworkInterfaces[].Attachment.DeviceIndex",
    "NetworkInterfaces[].Attachment.DeleteOnTermination",
    "NetworkInterfaces[].PrivateIpAddresses[].Primary",
    "EbsOptimized", "EnaSupport", "CpuOptions.CoreCount",
    "CpuOptions.ThreadsPerCore",
    "CapacityReservationSpecification.CapacityReservationPreference",
    "HibernationOptions.Configured", "MetadataOptions.State",
    "MetadataOptions.HttpTokens", "MetadataOptions.HttpPutResponseHopLimit",
    "MetadataOptions.HttpEndpoint", "EnclaveOptions.Enabled",
    "PlatformDetails", "UsageOperation", "UsageOperationUpdateTime",
]


# --------------------------------------------------------------------------
# the adapters, with typed calls and waiters


class TypedAws(AwsCli):
    dates_are_text = True

    def _blobs(self, params):
        # Blobs anywhere in the input (UserData.Value): v2 reads them as
        # base64 text in --cli-input-json.
        def enc(v):
            if isinstance(v, (bytes, bytearray)):
                return base64.b64encode(v).decode()
            if isinstance(v, dict):
                return {k: enc(x) for k, x in v.items()}
            if isinstance(v, list):
                return [enc(x) for x in v]
            return v
        return enc(params)

    def typed(self, op, params):
        out = self.call(op, params)
        return out, tree_of_json(out)

    def wait(self, waiter, ids, state):
        # The cli's waiters poll every 15 s and cannot be told otherwise:
        # wait for the state first, so that the waiter's first look (the
        # acceptors applied to our answer) decides.
        eventually(lambda: self._states_are(ids, state), timeout=60,
                   what=f"{ids} {state}")
        cp = self.run("ec2", "wait", kebab(waiter), "--instance-ids", *ids)
        if cp.returncode != 0:
            raise AssertionError(f"aws ec2 wait {kebab(waiter)}: "
                                 f"{cp.returncode} {cp.stderr}")

    def _states_are(self, ids, state):
        r = self.call("DescribeInstances", {"InstanceIds": ids})
        got = {i["InstanceId"]: i["State"]["Name"]
               for res in r["Reservations"] for i in res["Instances"]}
        assert got == {i: state for i in ids}, got


class TypedBoto3(Boto3):
    dates_are_text = False

    def typed(self, op, params):
        from botocore import xform_name
        c = self.clients["ec2"]
        raw = self._invoke(lambda: getattr(c, xform_name(op))(**params))
        raw = dict(raw)
        raw.pop("ResponseMetadata", None)
        return plain(raw), tree_of_python(raw)

    def wait(self, waiter, ids, state):
        from botocore import xform_name
        from botocore.exceptions import WaiterError
        w = self.clients["ec2"].get_waiter(xform_name(waiter))
        try:
            w.wait(InstanceIds=ids,
                   WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        except WaiterError as e:
            raise AssertionError(f"boto3 waiter {waiter}: {e} "
                                 f"{plain(e.last_response)}") from None


class TypedJs(JsSdk):
    dates_are_text = False

    def _js(self, op, params, timeout=fixture.CALL_TIMEOUT, **extra):
        msg = fixture.js_request(dict({
            "service": "ec2", "op": op, "input": params or {},
            "endpoint": self.endpoint, "region": fixture.REGION,
            "accessKeyId": self.account.key_id,
            "secretAccessKey": self.account.secret}, **extra),
            timeout=timeout)
        if "ok" in msg:
            return msg
        e = msg.get("error", {})
        if e.get("fault") in ("client", "server") and e.get("name"):
            raise ApiError(e["name"], e.get("message"),
                           status=e.get("status"), client=self, detail=e)
        raise ClientFailure(f"JS SDK {op} {extra}: {json.dumps(e)[:2000]}"
                            + self.edge_note())

    def typed(self, op, params):
        msg = self._js(op, params, shapes=True)
        return msg["ok"], msg["shape"]

    def wait(self, waiter, ids, state):
        msg = self._js("DescribeInstances", {"InstanceIds": ids},
                       timeout=90, waiter=waiter, maxWait=60)
        if msg["ok"].get("state") != "SUCCESS":
            raise AssertionError(f"JS waitUntil{waiter}: {msg['ok']}")


# --------------------------------------------------------------------------
# the tests, once per client


def user_data_param(client, text):
    """RunInstances' UserData as each client wants it: boto3 and the aws
    cli base64-encode it themselves, the JS SDK v3 sends what it is given
    (the caller encodes)."""
    if isinstance(client, JsSdk):
        return base64.b64encode(text.encode()).decode()
    return text


class InstanceContract(CloudClients):
    # Every error case, or (for a client that takes a second a call) one
    # of each kind.
    all_cases = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Instances a test needs but does not test the launch of are made
        # (and cleaned up) with boto3 in this process: quick.
        cls.helper = TypedBoto3(cls.cloud, cls.cloud.A, 0)

    # -- helpers -----------------------------------------------------------

    def err(self, client, code, op, params=None):
        with self.assertRaises(ApiError,
                               msg=f"{client} {op} {params} should fail "
                                   f"with {code}") as cm:
            client.call(op, params)
        e = cm.exception
        self.assertEqual(e.code, code, f"{client} {op} {params}: {e}")
        client.check_error_surface(e, op)
        if e.status is not None:
            self.assertGreaterEqual(e.status, 400, e.status)
            self.assertLess(e.status, 600, e.status)
        return e

    def check_types(self, op, tree, required=(), prefix=""):
        """tree (a client's parse of op's answer) against the model; every
        path in required (under prefix) present."""
        problems, seen = [], set()
        check_tree(output_shape(op), tree, "", problems, seen)
        self.assertEqual(problems, [], f"{self.a0.name} {op}")
        missing = [p for p in required if prefix + p not in seen]
        self.assertEqual(missing, [], f"{self.a0.name} {op}: fields "
                         f"missing (seen: {sorted(seen)})")

    def launch(self, client=None, count=1, **extra):
        params = {"ImageId": self.cloud.ami, "InstanceType": ITYPE,
                  "MinCount": count, "MaxCount": count}
        params.update(extra)
        r = (client or self.helper).call("RunInstances", params)
        ids = [i["InstanceId"] for i in r["Instances"]]
        self.addCleanup(self.terminate_quietly, ids)
        return r, ids

    def terminate_quietly(self, ids):
        # Through the edge that launched them, which may not hold the
        # hosts' records yet (see test_insufficient_capacity).
        try:
            eventually(lambda: self.helper.call("TerminateInstances",
                                                {"InstanceIds": ids}),
                       timeout=20, what=f"cleanup: terminate {ids}")
        except (AssertionError, ClientFailure) as e:
            print(f"cleanup: {e}", file=sys.stderr)

    def instances(self, client, ids):
        r = client.call("DescribeInstances", {"InstanceIds": ids})
        got = {i["InstanceId"]: i for res in r["Reservations"]
               for i in res["Instances"]}
        self.assertEqual(sorted(got), sorted(ids), r)
        return got

    def states(self, client, ids):
        return {k: v["State"]["Name"]
                for k, v in self.instances(client, ids).items()}

    def wait_states(self, client, ids, state, timeout=30):
        eventually(lambda: self.assertEqual(
            self.states(client, ids), {i: state for i in ids}),
            timeout=timeout, what=f"{ids} {state} through {client}")

    def check_pair(self, item, current, previous):
        self.assertEqual(item["CurrentState"]["Name"], current, item)
        self.assertEqual(item["CurrentState"]["Code"], STATE_CODES[current])
        self.assertEqual(item["PreviousState"]["Name"], previous, item)
        self.assertEqual(item["PreviousState"]["Code"],
                         STATE_CODES[previous])

    def default_subnets(self, client):
        r = client.call("DescribeSubnets", {"Filters": [
            {"Name": "default-for-az", "Values": ["true"]}]})
        return {s["AvailabilityZone"]: s for s in r["Subnets"]}

    # -- RunInstances to TerminateInstances --------------------------------

    def test_lifecycle(self):
        c0, c1 = self.a0, self.a1
        key = unique("ikey")
        c0.call("CreateKeyPair", {"KeyName": key})
        self.addCleanup(lambda: c0.call("DeleteKeyPair", {"KeyName": key}))
        gname = unique("igrp")
        gid = c0.call("CreateSecurityGroup", {
            "GroupName": gname, "Description": "instances"})["GroupId"]
        suite = unique("life")
        token = unique("tok")
        text = "#!/bin/sh\necho hello from " + suite + "\n"
        params = {
            "ImageId": self.cloud.ami, "InstanceType": ITYPE,
            "MinCount": 2, "MaxCount": 2, "KeyName": key,
            "SecurityGroups": ["default", gname],
            "UserData": user_data_param(c0, text),
            "ClientToken": token,
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [
                {"Key": "Name", "Value": suite},
                {"Key": "suite", "Value": suite}]}],
        }
        before = datetime.datetime.now(datetime.timezone.utc)
        r, tree = c0.typed("RunInstances", params)
        ids = [i["InstanceId"] for i in r["Instances"]]
        self.addCleanup(self.terminate_quietly, ids)
        self.check_types("RunInstances", tree, [
            "ReservationId", "OwnerId", "Instances[].InstanceId",
            "Instances[].State.Code", "Instances[].LaunchTime",
            "Instances[].AmiLaunchIndex"])
        self.assertRegex(r["ReservationId"], r"^r-[0-9a-f]{8,17}$")
        self.assertEqual(r["OwnerId"], self.cloud.A.id)
        self.assertEqual(len(ids), 2, r)
        self.assertEqual(len(set(ids)), 2, ids)
        for k, inst in enumerate(sorted(r["Instances"],
                                        key=lambda i: i["AmiLaunchIndex"])):
            self.assertRegex(inst["InstanceId"], r"^i-[0-9a-f]{8,17}$")
            self.assertEqual(inst["AmiLaunchIndex"], k)
            self.assertEqual(inst["State"], {"Code": 0, "Name": "pending"})
            self.assertEqual(inst["ImageId"], self.cloud.ami)
            self.assertEqual(inst["InstanceType"], ITYPE)
            self.assertEqual(inst.get("KeyName"), key)
            self.assertEqual(inst.get("ClientToken"), token)

        # The same request with the same token: the same reservation.  (At
        # once, an edge lists what of it has reached its records: the
        # instances other hosts admitted come by gossip.)
        again = c0.call("RunInstances", params)
        self.assertEqual(again["ReservationId"], r["ReservationId"])
        self.assertLessEqual({i["InstanceId"] for i in again["Instances"]},
                             set(ids))

        def same():
            again = c0.call("RunInstances", params)
            self.assertEqual(again["ReservationId"], r["ReservationId"])
            self.assertEqual(sorted(i["InstanceId"]
                                    for i in again["Instances"]),
                             sorted(ids))
        eventually(same, what="the retry answering the whole reservation")
        self.err(c0, "IdempotentParameterMismatch", "RunInstances",
                 dict(params, InstanceType=OTHER_TYPE))

        # DescribeInstances through the other edge: every field typed.
        def described():
            d, tree = c1.typed("DescribeInstances", {"InstanceIds": ids})
            res = d["Reservations"]
            self.assertEqual(len(res), 1, d)
            self.assertEqual(sorted(i["InstanceId"]
                                    for i in res[0]["Instances"]),
                             sorted(ids))
            # Tags are records of their own: they may come later.
            for inst in res[0]["Instances"]:
                self.assertEqual(tags_of(inst),
                                 {"Name": suite, "suite": suite})
            return d, tree
        d, tree = eventually(described, what="instances on edge 1")
        self.check_types("DescribeInstances", tree,
                         ["Reservations[].ReservationId",
                          "Reservations[].OwnerId"] +
                         ["Reservations[].Instances[]." + p
                          for p in INSTANCE_FIELDS])
        res = d["Reservations"][0]
        self.assertEqual(res["ReservationId"], r["ReservationId"])
        self.assertEqual(res["OwnerId"], self.cloud.A.id)
        subnets = self.default_subnets(c1)
        vpc = c1.call("DescribeVpcs", {"Filters": [
            {"Name": "isDefault", "Values": ["true"]}]})["Vpcs"][0]["VpcId"]
        ips = set()
        hosts_zone = set(fixture.ZONES)
        for inst in res["Instances"]:
            what = inst["InstanceId"]
            self.assertEqual(inst["State"], {"Code": 0, "Name": "pending"})
            self.assertEqual(inst["ImageId"], self.cloud.ami)
            self.assertEqual(inst["InstanceType"], ITYPE)
            self.assertEqual(inst["KeyName"], key)
            self.assertEqual(inst["ClientToken"], token)
            self.assertEqual(inst["Architecture"], "x86_64")
            self.assertIs(inst["SourceDestCheck"], True)
            self.assertIs(inst["EbsOptimized"], False)
            self.assertIs(inst["EnaSupport"], True)
            self.assertIs(inst["HibernationOptions"]["Configured"], False)
            self.assertIs(inst["EnclaveOptions"]["Enabled"], False)
            self.assertEqual(inst["CpuOptions"]["CoreCount"] *
                             inst["CpuOptions"]["ThreadsPerCore"], 1)
            self.assertEqual(
                inst["MetadataOptions"]["HttpPutResponseHopLimit"], 1)
            self.assertEqual(inst["MetadataOptions"]["HttpTokens"],
                             "optional")
            self.assertEqual(tags_of(inst), {"Name": suite, "suite": suite})
            self.assertEqual({g["GroupName"]: g["GroupId"]
                              for g in inst["SecurityGroups"]}.get(gname),
                             gid)
            self.assertIn("default", [g["GroupName"]
                                      for g in inst["SecurityGroups"]])
            zone = inst["Placement"]["AvailabilityZone"]
            self.assertIn(zone, hosts_zone, what)
            self.assertEqual(inst["SubnetId"], subnets[zone]["SubnetId"])
            self.assertEqual(inst["VpcId"], vpc)
            ip = ipaddress.ip_address(inst["PrivateIpAddress"])
            ips.add(ip)
            self.assertEqual(inst["PrivateDnsName"],
                             "ip-%s.%s.compute.internal" % (
                                 str(ip).replace(".", "-"), fixture.REGION))
            eni = self.only(inst["NetworkInterfaces"], "interfaces")
            self.assertEqual(eni["PrivateIpAddress"], str(ip))
            self.assertEqual(eni["Attachment"]["DeviceIndex"], 0)
            self.assertIs(eni["Attachment"]["DeleteOnTermination"], True)
            self.assertRegex(eni["MacAddress"],
                             r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
            launched = parse_time(inst["LaunchTime"])
            self.assertLess(abs((launched - before).total_seconds()), 120,
                            inst["LaunchTime"])
        self.assertEqual(len(ips), 2, "two instances, one address")

        # Filters on the instance fields clients use.
        for flt in ({"Name": "tag:Name", "Values": [suite]},
                    {"Name": "instance-state-name", "Values": ["pending"]},
                    {"Name": "image-id", "Values": [self.cloud.ami]},
                    {"Name": "key-name", "Values": [key]}):
            got = c0.call("DescribeInstances", {"Filters": [
                flt, {"Name": "tag:suite", "Values": [suite]}]})
            self.assertEqual(sorted(i["InstanceId"]
                                    for res in got["Reservations"]
                                    for i in res["Instances"]),
                             sorted(ids), flt)
        got = c0.call("DescribeInstances", {"Filters": [
            {"Name": "instance-state-name", "Values": ["running"]},
            {"Name": "tag:suite", "Values": [suite]}]})
        self.assertEqual(got["Reservations"], [])
        # Another account sees none of it.
        self.err(self.b1, "InvalidInstanceID.NotFound", "DescribeInstances",
                 {"InstanceIds": [ids[0]]})
        seen_b = self.b1.call("DescribeInstances")
        self.assertFalse({i["InstanceId"] for res in seen_b["Reservations"]
                          for i in res["Instances"]} & set(ids))

        # DescribeInstanceStatus: pending ones only with
        # IncludeAllInstances.
        st, tree = c1.typed("DescribeInstanceStatus",
                            {"InstanceIds": ids,
                             "IncludeAllInstances": True})
        self.check_types("DescribeInstanceStatus", tree, [
            "InstanceStatuses[].InstanceId",
            "InstanceStatuses[].AvailabilityZone",
            "InstanceStatuses[].InstanceState.Code",
            "InstanceStatuses[].SystemStatus.Status",
            "InstanceStatuses[].InstanceStatus.Status"])
        self.assertEqual(sorted(s["InstanceId"]
                                for s in st["InstanceStatuses"]),
                         sorted(ids))
        for s in st["InstanceStatuses"]:
            self.assertEqual(s["InstanceState"],
                             {"Code": 0, "Name": "pending"})
            self.assertIn(s["AvailabilityZone"], fixture.ZONES)
            for part in ("SystemStatus", "InstanceStatus"):
                self.assertIn(s[part]["Status"],
                              ("initializing", "not-applicable"), s)
        st = c1.call("DescribeInstanceStatus", {"InstanceIds": ids})
        self.assertEqual(st["InstanceStatuses"], [])

        # Attributes.
        a = ids[0]
        r = c0.call("DescribeInstanceAttribute",
                    {"InstanceId": a, "Attribute": "userData"})
        self.assertEqual(r["InstanceId"], a)
        self.assertEqual(base64.b64decode(r["UserData"]["Value"]).decode(),
                         text)
        r = c1.call("DescribeInstanceAttribute",
                    {"InstanceId": a, "Attribute": "instanceType"})
        self.assertEqual(r["InstanceType"]["Value"], ITYPE)
        r = c0.call("DescribeInstanceAttribute",
                    {"InstanceId": a, "Attribute": "groupSet"})
        self.assertIn(gid, [g["GroupId"] for g in r["Groups"]])
        e = self.err(c0, "IncorrectInstanceState", "ModifyInstanceAttribute",
                     {"InstanceId": a,
                      "InstanceType": {"Value": OTHER_TYPE}})
        self.assertIn(a, e.message)

        # GetConsoleOutput: the test driver has no console; empty is fine.
        out, tree = c0.typed("GetConsoleOutput", {"InstanceId": a})
        self.check_types("GetConsoleOutput", tree,
                         ["InstanceId", "Timestamp"])
        self.assertEqual(out["InstanceId"], a)
        parse_time(out["Timestamp"])
        self.assertIsInstance(out.get("Output", ""), str)

        # Stop: (stopping, pending), then the waiter through the same edge
        # (what users write: stop, then wait; the waiter gives up at once
        # if it sees "pending").
        r = c0.call("StopInstances", {"InstanceIds": ids})
        items = {i["InstanceId"]: i for i in r["StoppingInstances"]}
        self.assertEqual(sorted(items), sorted(ids))
        for i in items.values():
            self.check_pair(i, "stopping", "pending")
        c0.wait("InstanceStopped", ids, "stopped")
        self.wait_states(c1, ids, "stopped")
        # Stopping what is stopped (through the edge that saw it stopped).
        r = c1.call("StopInstances", {"InstanceIds": [a]})
        self.check_pair(r["StoppingInstances"][0], "stopped", "stopped")

        # Stopped: the type and the user data can change.
        r = c0.call("ModifyInstanceAttribute", {
            "InstanceId": a, "InstanceType": {"Value": OTHER_TYPE}})
        new_text = "#cloud-config\n# changed " + suite + "\n"
        c1.call("ModifyInstanceAttribute", {
            "InstanceId": a, "UserData": {"Value": new_text.encode()}})

        def modified():
            r = c1.call("DescribeInstanceAttribute",
                        {"InstanceId": a, "Attribute": "instanceType"})
            self.assertEqual(r["InstanceType"]["Value"], OTHER_TYPE)
            r = c0.call("DescribeInstanceAttribute",
                        {"InstanceId": a, "Attribute": "userData"})
            self.assertEqual(
                base64.b64decode(r["UserData"]["Value"]).decode(), new_text)
            self.assertEqual(self.instances(c1, [a])[a]["InstanceType"],
                             OTHER_TYPE)
        eventually(modified, what="modified attributes on both edges")
        self.err(c0, "InvalidParameterValue", "ModifyInstanceAttribute",
                 {"InstanceId": a, "InstanceType": {"Value": "zz9.plural"}})

        # Start: (pending, stopped); a started one cannot change type.
        r = c1.call("StartInstances", {"InstanceIds": ids})
        items = {i["InstanceId"]: i for i in r["StartingInstances"]}
        self.assertEqual(sorted(items), sorted(ids))
        for i in items.values():
            self.check_pair(i, "pending", "stopped")
        self.wait_states(c0, ids, "pending")
        self.assertEqual(self.instances(c0, [a])[a]["InstanceType"],
                         OTHER_TYPE)
        self.err(c1, "IncorrectInstanceState", "ModifyInstanceAttribute",
                 {"InstanceId": a, "InstanceType": {"Value": ITYPE}})

        # Terminate: (shutting-down or terminated, pending), the waiter,
        # and nothing can start it again.
        r = c0.call("TerminateInstances", {"InstanceIds": ids})
        items = {i["InstanceId"]: i for i in r["TerminatingInstances"]}
        self.assertEqual(sorted(items), sorted(ids))
        for i in items.values():
            self.assertIn(i["CurrentState"]["Name"],
                          ("shutting-down", "terminated"), i)
            self.assertEqual(i["PreviousState"]["Name"], "pending", i)
        c0.wait("InstanceTerminated", ids, "terminated")
        self.wait_states(c1, ids, "terminated")
        eventually(lambda: self.assertEqual(
            [i["State"] for i in self.instances(c0, ids).values()],
            [{"Code": 48, "Name": "terminated"}] * 2),
            what="terminated on edge 0")
        r = c1.call("TerminateInstances", {"InstanceIds": [a]})
        self.check_pair(r["TerminatingInstances"][0], "terminated",
                        "terminated")
        self.err(c0, "IncorrectInstanceState", "StartInstances",
                 {"InstanceIds": [a]})
        self.err(c1, "IncorrectInstanceState", "StopInstances",
                 {"InstanceIds": [ids[1]]})

    def only(self, items, what):
        self.assertEqual(len(items), 1, f"{what}: {items}")
        return items[0]

    # -- tags ----------------------------------------------------------------

    def test_instance_tags(self):
        c0, c1 = self.a0, self.a1
        _, ids = self.launch(None, 2)
        a, b = ids
        val = unique("web")
        # Edge 1 learns of them by gossip (EC2 too answers NotFound for a
        # while after RunInstances).
        r = eventually(lambda: c1.call("CreateTags", {
            "Resources": [a], "Tags": [{"Key": "role", "Value": val},
                                       {"Key": "empty", "Value": ""}]}),
            what="CreateTags on edge 1")
        if "Return" in r:
            self.assertIs(r["Return"], True, r)

        def tagged():
            got = c0.call("DescribeInstances", {"Filters": [
                {"Name": "tag:role", "Values": [val]}]})
            self.assertEqual([i["InstanceId"] for res in got["Reservations"]
                              for i in res["Instances"]], [a])
            inst = self.instances(c0, [a])[a]
            self.assertEqual(tags_of(inst), {"role": val, "empty": ""})
            self.assertEqual(tags_of(self.instances(c0, [b])[b]), {})
        eventually(tagged, what="instance tag on edge 0")
        got = c0.call("DescribeInstances", {"Filters": [
            {"Name": "tag-key", "Values": ["role"]},
            {"Name": "instance-id", "Values": ids}]})
        self.assertEqual([i["InstanceId"] for res in got["Reservations"]
                          for i in res["Instances"]], [a])
        r = c0.call("DescribeTags", {"Filters": [
            {"Name": "resource-id", "Values": [a]}]})
        self.assertEqual({t["Key"]: t["Value"] for t in r["Tags"]},
                         {"role": val, "empty": ""})
        for t in r["Tags"]:
            self.assertEqual(t["ResourceType"], "instance", t)
            self.assertEqual(t["ResourceId"], a, t)
        st = c0.call("DescribeInstanceStatus", {
            "IncludeAllInstances": True,
            "Filters": [{"Name": "tag:role", "Values": [val]}]})
        self.assertEqual([s["InstanceId"] for s in st["InstanceStatuses"]],
                         [a])
        c1.call("DeleteTags", {"Resources": [a], "Tags": [{"Key": "role"}]})
        eventually(lambda: self.assertEqual(c0.call(
            "DescribeInstances", {"Filters": [
                {"Name": "tag:role", "Values": [val]}]})["Reservations"],
            []), what="deleted tag gone on edge 0")
        self.err(c0, "InvalidInstanceID.NotFound", "CreateTags",
                 {"Resources": [MISSING["i"]],
                  "Tags": [{"Key": "a", "Value": "b"}]})

    # -- errors --------------------------------------------------------------

    def test_errors(self):
        c0, c1 = self.a0, self.a1
        gone = MISSING["i"]
        some = (lambda cases: cases if self.all_cases else cases[:1])
        for op, params in some((
                ("TerminateInstances", {"InstanceIds": [gone]}),
                ("DescribeInstances", {"InstanceIds": [gone]}),
                ("DescribeInstanceStatus", {"InstanceIds": [gone]}),
                ("StopInstances", {"InstanceIds": [gone]}),
                ("StartInstances", {"InstanceIds": [gone]}),
                ("GetConsoleOutput", {"InstanceId": gone}),
                ("DescribeInstanceAttribute",
                 {"InstanceId": gone, "Attribute": "instanceType"}))):
            self.err(c0, "InvalidInstanceID.NotFound", op, params)
        for op, params in some((
                ("StopInstances", {"InstanceIds": ["instance-1"]}),
                ("DescribeInstances", {"InstanceIds": ["i-xyz"]}),
                ("TerminateInstances", {"InstanceIds": ["i-xyz"]}),
                ("GetConsoleOutput", {"InstanceId": "i-12"}))):
            self.err(c1, "InvalidInstanceID.Malformed", op, params)
        for client, code, extra in some((
                (c0, "InvalidKeyPair.NotFound", {"KeyName": unique("nokey")}),
                (c0, "InvalidAMIID.NotFound", {"ImageId": MISSING["ami"]}),
                (c1, "InvalidGroup.NotFound",
                 {"SecurityGroups": [unique("nogroup")]}))):
            self.err(client, code, "RunInstances", dict({
                "ImageId": self.cloud.ami, "InstanceType": ITYPE,
                "MinCount": 1, "MaxCount": 1}, **extra))
        # A live instance of ours is one another account cannot touch.
        _, ids = self.launch(None, 1)
        eventually(lambda: self.instances(self.a1, ids),
                   what="the instance on edge 1")
        for op, params in some((
                ("StopInstances", {"InstanceIds": ids}),
                ("TerminateInstances", {"InstanceIds": ids}),
                ("GetConsoleOutput", {"InstanceId": ids[0]}))):
            eventually(lambda op=op, params=params: self.err(
                self.b1, "InvalidInstanceID.NotFound", op, params),
                what=f"account B's {op}")
        self.assertEqual(self.states(c1, ids), {ids[0]: "pending"})

    def test_insufficient_capacity(self):
        """MinCount more than the hosts can take (each has room for one
        BIG_TYPE): the error, with nothing of the request left holding
        capacity: the admitted part is terminated again."""
        c0 = self.a0
        token = unique("big")
        self.addCleanup(self.terminate_token, token)
        n = len(self.cloud.c.peers) + 1
        e = self.err(c0, "InsufficientInstanceCapacity", "RunInstances", {
            "ImageId": self.cloud.ami, "InstanceType": BIG_TYPE,
            "MinCount": n, "MaxCount": n, "ClientToken": token})
        self.assertIn("capacity", e.message, e)
        # Whatever was admitted is terminated (or never listed).  The
        # records of instances other hosts admitted reach this edge by
        # gossip, well within the wait.
        eventually(lambda: self.assertEqual(
            self.live_with_token(c0, token), []), timeout=10,
            what="the partial launch undone")

    def live_with_token(self, client, token):
        got = client.call("DescribeInstances", {"Filters": [
            {"Name": "instance-type", "Values": [BIG_TYPE]}]})
        return [(i["InstanceId"], i["State"]["Name"])
                for res in got["Reservations"] for i in res["Instances"]
                if i.get("ClientToken") == token and
                i["State"]["Name"] not in ("terminated", "shutting-down")]

    def terminate_token(self, token):
        """Terminates what a failed undo left (so that the next tests have
        their room)."""
        left = [i for i, _ in self.live_with_token(self.helper, token)]
        if left:
            self.terminate_quietly(left)

    # -- paging --------------------------------------------------------------

    def test_paging(self):
        c0, c1 = self.a0, self.a1
        suite = unique("page")
        made = []
        for _ in range(6):
            _, ids = self.launch(None, 1, TagSpecifications=[{
                "ResourceType": "instance",
                "Tags": [{"Key": "suite", "Value": suite}]}])
            made += ids
        flt = {"Filters": [{"Name": "tag:suite", "Values": [suite]}]}
        eventually(lambda: self.assertEqual(sorted(
            i["InstanceId"] for res in c1.call("DescribeInstances", flt)
            ["Reservations"] for i in res["Instances"]), sorted(made)),
            what="6 instances on edge 1")
        pages = c1.pages("DescribeInstances", flt, page_size=5)
        got = [i["InstanceId"] for p in pages for res in p["Reservations"]
               for i in res["Instances"]]
        self.assertEqual(sorted(got), sorted(made), "each instance once")
        if c1.counts_pages:
            self.assertGreaterEqual(len(pages), 2, pages)
            self.assertLessEqual(len(pages[0]["Reservations"]), 5)
            self.assertTrue(pages[0].get("NextToken"), pages[0])
        pages = c0.pages("DescribeInstanceStatus",
                         dict(flt, IncludeAllInstances=True), page_size=5)
        got = [s["InstanceId"] for p in pages
               for s in p["InstanceStatuses"]]
        self.assertEqual(sorted(got), sorted(made), "each status once")
        if c0.counts_pages:
            self.assertGreaterEqual(len(pages), 2, pages)
        self.err(c0, "InvalidParameterValue", "DescribeInstances",
                 dict(flt, MaxResults=1001))


class AwsCliInstances(InstanceContract, unittest.TestCase):
    client_class = TypedAws
    all_cases = False


class Boto3Instances(InstanceContract, unittest.TestCase):
    client_class = TypedBoto3

    def test_resource_layer(self):
        """boto3's Instance objects: attributes typed, waiters on them,
        actions."""
        from botocore.config import Config
        session = boto3.session.Session(
            aws_access_key_id=self.cloud.A.key_id,
            aws_secret_access_key=self.cloud.A.secret,
            region_name=fixture.REGION)
        ec2 = session.resource(
            "ec2", endpoint_url=self.cloud.endpoint(1),
            config=Config(retries={"total_max_attempts": 1,
                                   "mode": "standard"}))
        made = ec2.create_instances(ImageId=self.cloud.ami,
                                    InstanceType=ITYPE, MinCount=1,
                                    MaxCount=1)
        inst = made[0]
        self.addCleanup(self.terminate_quietly, [inst.id])
        from botocore.exceptions import ClientError

        def reload():
            try:
                inst.reload()
            except ClientError as e:
                raise AssertionError(str(e)) from None
        eventually(reload, what="the instance via edge 1's resource")
        self.assertIsInstance(inst.launch_time, datetime.datetime)
        self.assertIsNotNone(inst.launch_time.tzinfo)
        self.assertEqual(inst.state, {"Code": 0, "Name": "pending"})
        self.assertIsInstance(inst.ami_launch_index, int)
        self.assertIs(inst.source_dest_check, True)
        self.assertEqual(inst.image.id, self.cloud.ami)
        self.assertEqual(inst.subnet.id, inst.subnet_id)
        inst.create_tags(Tags=[{"Key": "via", "Value": "resource"}])
        eventually(lambda: (reload(), self.assertEqual(
            inst.tags, [{"Key": "via", "Value": "resource"}])),
            what="tag via the resource")
        inst.stop()
        inst.wait_until_stopped(WaiterConfig={"Delay": 1,
                                              "MaxAttempts": 60})
        self.assertEqual(inst.state["Name"], "stopped")
        inst.terminate()
        inst.wait_until_terminated(WaiterConfig={"Delay": 1,
                                                 "MaxAttempts": 60})
        self.assertEqual(inst.state["Name"], "terminated")


class JsSdkInstances(InstanceContract, unittest.TestCase):
    client_class = TypedJs


def run_by_class(suite):
    """Runs each test class's tests one after the other, the classes side
    by side (each client in its own thread: the JS runner takes one call
    at a time, and a class's tests share its clients).  Prints unittest's
    usual lines; returns whether every test passed."""
    t0 = time.monotonic()
    by_class = {}
    for t in fixture._tests(suite):
        by_class.setdefault(type(t), []).append(t)
    broken = fixture.set_up_classes(by_class)
    bad, lock = [], threading.Lock()
    count = [0]

    def run_class(cls, tests):
        for test in tests:
            start = time.monotonic()
            if cls in broken:
                status, texts = "ERROR", [broken[cls]]
            else:
                r = unittest.TestResult()
                test.run(r)
                texts = [x[1] for x in r.errors + r.failures]
                status = ("ERROR" if r.errors else "FAIL" if r.failures
                          else "skipped" if r.skipped else "ok")
            with lock:
                count[0] += 1
                print(f"{test} ... {status} ({time.monotonic() - start:.1f}"
                      "s)", file=sys.stderr, flush=True)
                for text in texts:
                    bad.append((test, status, text))

    threads = [threading.Thread(target=run_class, args=(cls, tests),
                                name=cls.__name__, daemon=True)
               for cls, tests in by_class.items()]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 900
    for th in threads:
        th.join(max(1.0, deadline - time.monotonic()))
        if th.is_alive():
            bad.append((th.name, "ERROR", "still running after 900 s"))
    return fixture.finish_classes(by_class, broken, bad, count[0], t0)


def main():
    t0 = time.monotonic()
    ok = False
    with InstanceCloud() as cloud:
        fixture.CLOUD = cloud
        print(f"clients: cloud up in {time.monotonic() - t0:.1f}s; edges "
              f"{cloud.endpoint(0)} {cloud.endpoint(1)} (relayed); "
              f"image {cloud.ami}", file=sys.stderr, flush=True)
        module = sys.modules["__main__"]
        names = [a for a in sys.argv[1:] if not a.startswith("-")]
        loader = unittest.TestLoader()
        suite = (loader.loadTestsFromNames(names, module) if names
                 else loader.loadTestsFromModule(module))
        ok = run_by_class(suite)
        if not ok:
            cloud.dump_logs()
        fixture.CLOUD = None
    print(f"clients: {time.monotonic() - t0:.1f}s in all", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
