"""Clients tier: what every test_*.py here shares.

A live cloud (`EdgeCloud`): 3 real peers on loopback, peers 0 and 1 with
`--edge`, zones us-east-1a/b/c, and two accounts: A (the admin key `mallee
init` printed) and B (`mallee admin account create`).

Adapters, one per real EC2 client, with one call shape:

    client.call("DescribeSecurityGroups", {"GroupIds": [gid]})  -> dict
    client.call("GetCallerIdentity", service="sts")
    client.pages("DescribeSecurityGroups", {...}, page_size=5)  -> [dict]

Parameters and results are the clients' own (boto3's = the JS SDK's member
names); a blob parameter is given as Python bytes.  An error the service
returned raises ApiError with the code as the client surfaced it (aws cli:
its exit status and "An error occurred (CODE)" line; boto3: ClientError's
response['Error']['Code']; JS SDK v3: err.name and err.Code); anything else
(a client that could not parse a response, a crash) raises ClientFailure,
which no test expects.

    AwsCli(cloud, account, edge)     the Debian aws cli (v2), a process per call
    Boto3(cloud, account, edge)      botocore in this process (Debian's
                                     python3-boto3: run under /usr/bin/python3)
    JsSdk(cloud, account, edge)      @aws-sdk/client-ec2 v3 in one node process
                                     (jsclient.mjs) per test process

Every client runs with AWS_EC2_METADATA_DISABLED=true, region us-east-1,
explicit keys, the edge as endpoint, no retries, and no config files.

`main()` starts the cloud, runs the unittest cases of the calling module
against it, prints the edges' logs when something failed, and stops every
process it started.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
import traceback
import unittest
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))

from harness import Cluster, HarnessError, bounded_wait  # noqa: E402

REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
DEFAULT_VPC_CIDR = "172.31.0.0/16"   # `mallee init`'s default --cidr
AWS_BIN = os.environ.get("MALLEE_AWS_CLI", "/usr/bin/aws")
NODE_BIN = shutil.which("node") or "/usr/bin/node"
# Seconds a write may take to reach the other edge: records spread by
# piggybacked dissemination (well under a second) and, for any that missed
# it, by push-pull anti-entropy every 30 s (NET_PUSHPULL_MS).
GOSSIP_WAIT = 40.0
SLOW_GOSSIP = 5.0      # waits longer than this are reported on stderr
CALL_TIMEOUT = 60.0    # one client call

# What RegisterImage is given: an image by manifest location, the EC2 form
# that needs no snapshot.  Image content comes with the instances issue.
IMAGE_PARAMS = {
    "Architecture": "x86_64",
    "RootDeviceName": "/dev/sda1",
    "VirtualizationType": "hvm",
}


class ApiError(Exception):
    """An error the service returned, as a client surfaced it."""

    def __init__(self, code, message, status=None, client=None, detail=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status      # HTTP status where the client tells it
        self.client = client
        self.detail = detail or {}


class ClientFailure(AssertionError):
    """A client failed for a reason other than a service error."""


class Account:
    def __init__(self, name, account_id, key_id, secret):
        self.name = name
        self.id = account_id
        self.key_id = key_id
        self.secret = secret

    def __repr__(self):
        return f"<account {self.name} {self.id} {self.key_id}>"


def parse_key_output(text):
    """(account id, key id, secret) from `mallee init` / `account create`."""
    acct = re.search(r"^\s*account\s+(\d{12})\s*$", text, re.M)
    kid = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", text)
    sec = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", text)
    if not (acct and kid and sec):
        raise HarnessError(f"no account and key in: {text!r}")
    return acct.group(1), kid.group(1), sec.group(1)


# --------------------------------------------------------------------------
# SigV4 by hand (stdlib only): for readiness waits and raw checks


def sigv4_request(endpoint, account, params, method="POST", service="ec2",
                  region=REGION, timeout=10):
    """Sends one SigV4-signed EC2 Query request; returns (status, body)."""
    u = urllib.parse.urlsplit(endpoint)
    host = u.netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    body = urllib.parse.urlencode(sorted(params.items()),
                                  quote_via=urllib.parse.quote)
    query = ""
    if method == "GET":
        query, body = body, ""
    headers = {"host": host, "x-amz-date": amz_date}
    if method == "POST":
        headers["content-type"] = \
            "application/x-www-form-urlencoded; charset=utf-8"
    signed = ";".join(sorted(headers))
    canon = "\n".join([
        method, "/", query,
        "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
        signed, hashlib.sha256(body.encode()).hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + account.secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={account.key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={sig}")
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, "/" + ("?" + query if query else ""),
                     body=body.encode() if body else None, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


# --------------------------------------------------------------------------
# the cloud


class EdgeCloud:
    """3 peers, edges 0 and 1, accounts A and B.  A context manager."""

    def __init__(self, n=3, edges=(0, 1)):
        self.c = Cluster(n, peer_args={i: ["--edge"] for i in edges},
                         zones=list(ZONES[:n]) + [None] * max(0, n - 3))
        self.edges = list(edges)
        self.A = None
        self.B = None

    def __enter__(self):
        self.c.__enter__()
        try:
            ad = self.c.admin
            self.A = Account("A", ad["account"], ad["AWS_ACCESS_KEY_ID"],
                             ad["AWS_SECRET_ACCESS_KEY"])
            self.B = self.create_account("clients-b")
            self.c.wait_converged(timeout=30)
            for acct in (self.A, self.B):
                for e in self.edges:
                    self.wait_key_works(acct, e)
        except BaseException:
            self.c.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        stop_js_runner()
        return self.c.__exit__(*exc)

    def endpoint(self, edge):
        return "http://" + self.c.peers[edge].api_listen

    def create_account(self, name):
        cp = self.c.cli(0, "admin", "account", "create", name, check=True)
        return Account(name, *parse_key_output(cp.stdout))

    def create_key(self, account):
        """A second access key for account (`mallee admin key create`)."""
        cp = self.c.cli(0, "admin", "key", "create", "--account", account.id,
                        check=True)
        kid = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", cp.stdout)
        sec = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", cp.stdout)
        if not (kid and sec):
            raise HarnessError(f"key create printed {cp.stdout!r}")
        return Account(account.name, account.id, kid.group(1), sec.group(1))

    def revoke_key(self, key_id):
        self.c.cli(0, "admin", "key", "revoke", key_id, check=True)

    def wait_key_works(self, account, edge, timeout=GOSSIP_WAIT):
        """Until a signed call with account's key succeeds on edge (a new
        key reaches the other edges by gossip)."""
        ep = self.endpoint(edge)

        def ok():
            try:
                st, body = sigv4_request(ep, account,
                                         {"Action": "DescribeRegions",
                                          "Version": "2016-11-15"})
            except OSError:
                return None
            return (st, body) if st == 200 else None
        return bounded_wait(ok, timeout,
                            f"{account} to work on edge {edge}",
                            interval=0.1)

    def dump_logs(self):
        self.c.dump_logs()


CLOUD = None   # the running EdgeCloud while main() runs


# --------------------------------------------------------------------------
# waiting for gossip


def eventually(fn, timeout=GOSSIP_WAIT, interval=0.2, what="condition"):
    """Calls fn() until it returns without raising AssertionError or
    ApiError; returns its result.  Bounded in time and tries."""
    start = time.monotonic()
    deadline = start + timeout
    tries = max(1, int(timeout / interval) * 2)
    last = None
    for n in range(tries):
        try:
            value = fn()
            took = time.monotonic() - start
            if n and took > SLOW_GOSSIP:
                print(f"clients: slow: {what} took {took:.1f}s "
                      f"({n + 1} tries)", file=sys.stderr, flush=True)
            return value
        except (AssertionError, ApiError) as e:
            if isinstance(e, ClientFailure):
                raise
            last = e
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"after {timeout:.0f}s, {what}: {last}") from last


_seq = [0]
_seq_lock = threading.Lock()


def unique(prefix):
    """A name no other test (or run) uses."""
    with _seq_lock:
        _seq[0] += 1
        n = _seq[0]
    return f"{prefix}-{os.getpid()}-{n}-{os.urandom(2).hex()}"


def kebab(op):
    """DescribeKeyPairs -> describe-key-pairs (the aws cli's names)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", op).lower()


def plain(value):
    """JSON-able copy: dates as ISO strings, bytes as text."""
    def default(o):
        if isinstance(o, (datetime.datetime, datetime.date)):
            return o.isoformat()
        if isinstance(o, (bytes, bytearray)):
            return bytes(o).decode(errors="replace")
        return str(o)
    return json.loads(json.dumps(value, default=default))


def client_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_")}
    env.update({
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_PAGER": "",
    })
    return env


# --------------------------------------------------------------------------
# adapters


class Client:
    name = "?"
    counts_pages = True     # pages() returns the real pages

    def __init__(self, cloud, account, edge):
        self.cloud = cloud
        self.account = account
        self.edge = edge
        self.endpoint = cloud.endpoint(edge)

    def __repr__(self):
        return f"<{self.name} {self.account.name}@edge{self.edge}>"

    def call(self, op, params=None, service="ec2"):
        raise NotImplementedError

    def pages(self, op, params, page_size):
        raise NotImplementedError

    def check_error_surface(self, err, op):
        """Asserts the client surfaced err the way its users see it."""

    def edge_note(self):
        """Says so when the edge this client talks to has died."""
        p = self.cloud.c.peers[self.edge]
        if p.running:
            return ""
        return (f" [edge {self.edge} is not running: exit codes "
                f"{p.exits}; see its log]")


class AwsCli(Client):
    """The aws command line: `aws ec2 OP --cli-input-json PARAMS`."""
    name = "aws"
    counts_pages = False    # the cli follows NextToken itself

    _version = None

    @classmethod
    def version(cls):
        if cls._version is None:
            cp = subprocess.run([AWS_BIN, "--version"], capture_output=True,
                                text=True, timeout=CALL_TIMEOUT,
                                env=client_env())
            m = re.search(r"aws-cli/(\d+)\.", cp.stdout + cp.stderr)
            cls._version = int(m.group(1)) if m else 0
        return cls._version

    def env(self):
        env = client_env()
        env["AWS_ACCESS_KEY_ID"] = self.account.key_id
        env["AWS_SECRET_ACCESS_KEY"] = self.account.secret
        return env

    def run(self, *args, check=False):
        """Runs `aws ARGS --endpoint-url EDGE --region ...`; returns the
        CompletedProcess."""
        cmd = [AWS_BIN] + [str(a) for a in args] + [
            "--endpoint-url", self.endpoint, "--region", REGION]
        if "--output" not in args:
            cmd += ["--output", "json"]
        cp = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=CALL_TIMEOUT, env=self.env(),
                            stdin=subprocess.DEVNULL)
        if check and cp.returncode != 0:
            raise ClientFailure(f"{' '.join(cmd)} exited {cp.returncode}: "
                                f"{cp.stderr.strip()}")
        return cp

    def _blobs(self, params):
        # v2 reads blobs in --cli-input-json as base64; v1 as raw text.
        out = {}
        for k, v in params.items():
            if isinstance(v, (bytes, bytearray)):
                v = (base64.b64encode(v).decode() if self.version() >= 2
                     else bytes(v).decode())
            out[k] = v
        return out

    def _call(self, op, params, service, extra=()):
        args = [service, kebab(op)]
        if params:
            args += ["--cli-input-json", json.dumps(self._blobs(params))]
        cp = self.run(*args, *extra)
        if cp.returncode == 0:
            return json.loads(cp.stdout) if cp.stdout.strip() else {}
        m = re.search(r"An error occurred \(([^)]+)\) when calling the "
                      r"(\w+) operation(?: \(reached max retries: \d+\))?: "
                      r"(.*)", cp.stderr)
        if m:
            raise ApiError(m.group(1), m.group(3).strip(), client=self,
                           detail={"rc": cp.returncode,
                                   "stderr": cp.stderr, "op": m.group(2)})
        raise ClientFailure(f"aws {service} {kebab(op)} "
                            f"{json.dumps(plain(params))} exited "
                            f"{cp.returncode}: {cp.stderr.strip()[-2000:]}"
                            + self.edge_note())

    def call(self, op, params=None, service="ec2"):
        return self._call(op, params or {}, service)

    def pages(self, op, params, page_size):
        return [self._call(op, params, "ec2",
                           extra=("--page-size", str(page_size)))]

    def check_error_surface(self, err, op):
        d = err.detail
        assert d.get("rc") == 254, \
            f"aws exit status {d.get('rc')} (want 254): {d.get('stderr')}"
        assert f"An error occurred ({err.code}) when calling the {op} " \
            "operation" in d.get("stderr", ""), d.get("stderr")


class Boto3(Client):
    """botocore via boto3 (python3-boto3), in this process."""
    name = "boto3"

    def __init__(self, cloud, account, edge):
        super().__init__(cloud, account, edge)
        import boto3
        from botocore.config import Config
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        session = boto3.session.Session(
            aws_access_key_id=account.key_id,
            aws_secret_access_key=account.secret, region_name=REGION)
        # total_max_attempts 1: the first attempt and no retry (botocore's
        # "max_attempts" counts retries, so 1 would still retry once).
        cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                     connect_timeout=5, read_timeout=CALL_TIMEOUT)
        self.clients = {
            svc: session.client(svc, endpoint_url=self.endpoint, config=cfg)
            for svc in ("ec2", "sts")}

    def _invoke(self, fn):
        from botocore.exceptions import ClientError
        try:
            return fn()
        except ClientError as e:
            err = e.response.get("Error", {})
            raise ApiError(err.get("Code"), err.get("Message"),
                           status=e.response.get("ResponseMetadata", {})
                           .get("HTTPStatusCode"),
                           client=self,
                           detail={"response": e.response,
                                   "exception": e}) from None
        except Exception as e:  # noqa: BLE001 - anything else is a failure
            raise ClientFailure(f"boto3: {type(e).__name__}: {e}"
                                + self.edge_note()) from e

    def call(self, op, params=None, service="ec2"):
        from botocore import xform_name
        c = self.clients[service]
        r = self._invoke(lambda: getattr(c, xform_name(op))(**(params or {})))
        r = dict(r)
        r.pop("ResponseMetadata", None)
        return plain(r)

    def pages(self, op, params, page_size):
        from botocore import xform_name
        pag = self.clients["ec2"].get_paginator(xform_name(op))

        def run():
            out = []
            for page in pag.paginate(**params,
                                     PaginationConfig={"PageSize":
                                                       page_size}):
                page = dict(page)
                page.pop("ResponseMetadata", None)
                out.append(plain(page))
            return out
        return self._invoke(run)

    def check_error_surface(self, err, op):
        from botocore.exceptions import ClientError
        ex = err.detail.get("exception")
        assert isinstance(ex, ClientError), ex
        assert ex.response["Error"]["Code"] == err.code
        assert ex.operation_name == op, ex.operation_name
        meta = ex.response.get("ResponseMetadata", {})
        assert meta.get("RetryAttempts", 0) == 0, f"retried: {meta}"


_js = {"proc": None, "seq": 0}


def stop_js_runner():
    p = _js["proc"]
    _js["proc"] = None
    if p is None:
        return
    try:
        p.stdin.close()
        p.wait(timeout=10)
    except Exception:  # noqa: BLE001
        p.kill()
        p.wait(timeout=10)


def js_runner():
    """The node process that runs JS SDK calls (jsclient.mjs)."""
    p = _js["proc"]
    if p is not None and p.poll() is None:
        return p
    if not os.path.isdir(os.path.join(HERE, "node_modules", "@aws-sdk",
                                      "client-ec2")):
        raise HarnessError("tests/clients/node_modules lacks the JS SDK: "
                           "run scripts/setup")
    env = client_env()
    # The pinned SDK supports this node; later releases will want node 22
    # and say so on every start.
    env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] = "true"
    p = subprocess.Popen([NODE_BIN, os.path.join(HERE, "jsclient.mjs")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=sys.stderr, env=env, cwd=HERE,
                         text=True, bufsize=1)
    _js["proc"] = p
    return p


def js_request(req, timeout=CALL_TIMEOUT):
    p = js_runner()
    _js["seq"] += 1
    req = dict(req, id=_js["seq"])
    p.stdin.write(json.dumps(req) + "\n")
    p.stdin.flush()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            stop_js_runner()
            raise ClientFailure(f"node gave no answer in {timeout}s to "
                                f"{req['op']}")
        ready, _, _ = select.select([p.stdout], [], [], left)
        if not ready:
            continue
        line = p.stdout.readline()
        if not line:
            rc = p.wait(timeout=10)
            _js["proc"] = None
            raise ClientFailure(f"node exited ({rc}) during {req['op']}")
        msg = json.loads(line)
        if msg.get("id") == req["id"]:
            return msg


class JsSdk(Client):
    """@aws-sdk/client-ec2 (and client-sts) v3 on node."""
    name = "js"

    def _req(self, op, params, service, page_size=None):
        def enc(v):
            if isinstance(v, (bytes, bytearray)):
                return {"$bytes": base64.b64encode(v).decode()}
            if isinstance(v, dict):
                return {k: enc(x) for k, x in v.items()}
            if isinstance(v, list):
                return [enc(x) for x in v]
            return v
        msg = js_request({
            "service": service, "op": op, "input": enc(params or {}),
            "endpoint": self.endpoint, "region": REGION,
            "accessKeyId": self.account.key_id,
            "secretAccessKey": self.account.secret,
            "pageSize": page_size})
        if "ok" in msg:
            return msg["ok"]
        e = msg.get("error", {})
        if e.get("fault") in ("client", "server") and e.get("name"):
            raise ApiError(e["name"], e.get("message"), status=e.get("status"),
                           client=self, detail=e)
        raise ClientFailure(f"JS SDK {op}: {json.dumps(e)[:2000]}"
                            + self.edge_note())

    def call(self, op, params=None, service="ec2"):
        return self._req(op, params, service)

    def pages(self, op, params, page_size):
        return self._req(op, params, "ec2", page_size=page_size)

    def check_error_surface(self, err, op):
        d = err.detail
        assert d.get("name") == err.code, d
        assert d.get("Code") == err.code, f"err.Code {d.get('Code')!r}: {d}"
        assert d.get("attempts") in (None, 1), f"retried: {d}"


# --------------------------------------------------------------------------
# key material (openssl and pure Python; no client library)


def _ssh_string(b):
    return len(b).to_bytes(4, "big") + b


def _ssh_mpint(n):
    b = n.to_bytes((n.bit_length() + 8) // 8, "big")  # leading 0 if top bit
    return _ssh_string(b)


def _openssl(*args, input=None):
    cp = subprocess.run(["openssl"] + list(args), input=input,
                        capture_output=True, timeout=60)
    if cp.returncode != 0:
        raise HarnessError(f"openssl {' '.join(args)}: "
                           f"{cp.stderr.decode(errors='replace')}")
    return cp.stdout


def colon_hex(digest):
    return ":".join(f"{b:02x}" for b in digest)


def new_rsa_public():
    """A fresh RSA-2048 key: (OpenSSH public key line as bytes, EC2's
    fingerprint of it when imported: MD5 of the DER public key)."""
    pem = _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                   "rsa_keygen_bits:2048")
    der = _openssl("pkey", "-pubout", "-outform", "DER", input=pem)
    mod = _openssl("rsa", "-noout", "-modulus", input=pem).decode()
    n = int(mod.strip().split("=", 1)[1], 16)
    text = _openssl("rsa", "-noout", "-text", input=pem).decode()
    e = int(re.search(r"publicExponent: (\d+)", text).group(1))
    blob = _ssh_string(b"ssh-rsa") + _ssh_mpint(e) + _ssh_mpint(n)
    line = b"ssh-rsa " + base64.b64encode(blob) + b" clients-tier"
    return line, colon_hex(hashlib.md5(der).digest())


def new_ed25519_public():
    """A fresh ED25519 key: (OpenSSH public line, EC2's fingerprint:
    base64 of SHA-256 of the key blob, with its padding)."""
    pem = _openssl("genpkey", "-algorithm", "ED25519")
    der = _openssl("pkey", "-pubout", "-outform", "DER", input=pem)
    raw = der[-32:]
    blob = _ssh_string(b"ssh-ed25519") + _ssh_string(raw)
    line = b"ssh-ed25519 " + base64.b64encode(blob) + b" clients-tier"
    return line, base64.b64encode(hashlib.sha256(blob).digest()).decode()


def rsa_private_facts(pem_text):
    """(bits, EC2's fingerprint of a created RSA key: SHA-1 of the DER
    PKCS#8 private key, colon hex)."""
    pem = pem_text.encode()
    text = _openssl("pkey", "-noout", "-text", input=pem).decode()
    bits = int(re.search(r"Private-Key: \((\d+) bit", text).group(1))
    der = _openssl("pkcs8", "-topk8", "-nocrypt", "-outform", "DER",
                   input=pem)
    return bits, colon_hex(hashlib.sha1(der).digest())


def openssh_private_public_blob(pem_text):
    """The public key blob stored in an unencrypted OpenSSH private key."""
    body = "".join(l for l in pem_text.strip().splitlines()
                   if not l.startswith("-----"))
    raw = base64.b64decode(body)
    magic = b"openssh-key-v1\0"
    assert raw.startswith(magic), "not an OpenSSH private key"
    pos = len(magic)

    def string():
        nonlocal pos
        n = int.from_bytes(raw[pos:pos + 4], "big")
        pos += 4
        s = raw[pos:pos + n]
        pos += n
        return s
    cipher, kdf, _ = string(), string(), string()
    assert cipher == b"none" and kdf == b"none", (cipher, kdf)
    nkeys = int.from_bytes(raw[pos:pos + 4], "big")
    pos += 4
    assert nkeys == 1, nkeys
    return string()


def ed25519_fingerprint(blob):
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


# --------------------------------------------------------------------------
# running a test file


def _tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _tests(t)
        else:
            yield t


def run_parallel(suite, workers):
    """Runs the tests of suite `workers` at a time (each test is
    independent: it names everything it makes with unique()); class
    fixtures run once, before and after.  Prints unittest's usual lines;
    returns whether every test passed."""
    tests = list(_tests(suite))
    t0 = time.monotonic()
    classes = []
    for t in tests:
        if type(t) not in classes:
            classes.append(type(t))
    broken = set_up_classes(classes)

    def one(test):
        if type(test) in broken:
            return test, "ERROR", broken[type(test)], 0.0
        r = unittest.TestResult()
        start = time.monotonic()
        test.run(r)
        dt = time.monotonic() - start
        if r.errors:
            return test, "ERROR", r.errors[0][1], dt
        if r.failures:
            return test, "FAIL", r.failures[0][1], dt
        if r.skipped:
            return test, "skipped", r.skipped[0][1], dt
        return test, "ok", "", dt

    bad = []
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for fut in as_completed([ex.submit(one, t) for t in tests]):
            test, status, text, dt = fut.result()
            print(f"{test} ... {status} ({dt:.1f}s)", file=sys.stderr,
                  flush=True)
            if status in ("FAIL", "ERROR"):
                bad.append((test, status, text))
    return finish_classes(classes, broken, bad, len(tests), t0)


def set_up_classes(classes):
    """Runs each class's setUpClass; {class: traceback} of those that
    failed (their tests are errors)."""
    broken = {}
    for cls in classes:
        try:
            cls.setUpClass()
        except Exception:  # noqa: BLE001
            broken[cls] = traceback.format_exc()
    return broken


def finish_classes(classes, broken, bad, ran, t0):
    """Tears down the classes that were set up, then prints every
    failure in bad ((test, status, text)) and unittest's summary of `ran`
    tests since t0; returns whether all passed."""
    for cls in classes:
        if cls not in broken:
            try:
                cls.tearDownClass()
            except Exception:  # noqa: BLE001
                bad.append((cls, "ERROR", traceback.format_exc()))
    for test, status, text in bad:
        print("=" * 70 + f"\n{status}: {test}\n" + "-" * 70 + f"\n{text}",
              file=sys.stderr)
    print("-" * 70 + f"\nRan {ran} tests in "
          f"{time.monotonic() - t0:.3f}s\n", file=sys.stderr)
    fails = sum(1 for b in bad if b[1] == "FAIL")
    errors = len(bad) - fails
    print("OK" if not bad else f"FAILED (failures={fails}, errors={errors})",
          file=sys.stderr, flush=True)
    return not bad


def main(parallel=1):
    """Starts the cloud, runs the calling module's tests against it
    (`parallel` at a time), stops everything; exits 0 when every test
    passed.  Test names on the command line select tests."""
    global CLOUD
    t0 = time.monotonic()
    ok = False
    with EdgeCloud() as cloud:
        CLOUD = cloud
        print(f"clients: cloud up in {time.monotonic() - t0:.1f}s; edges "
              f"{cloud.endpoint(0)} {cloud.endpoint(1)}; accounts "
              f"{cloud.A.id} {cloud.B.id}", file=sys.stderr, flush=True)
        module = sys.modules["__main__"]
        names = [a for a in sys.argv[1:] if not a.startswith("-")]
        loader = unittest.TestLoader()
        suite = (loader.loadTestsFromNames(names, module) if names
                 else loader.loadTestsFromModule(module))
        if parallel > 1:
            ok = run_parallel(suite, parallel)
        else:
            result = unittest.TextTestRunner(verbosity=2).run(suite)
            ok = result.wasSuccessful()
        if not ok:
            cloud.dump_logs()
        CLOUD = None
    print(f"clients: {time.monotonic() - t0:.1f}s in all", file=sys.stderr)
    sys.exit(0 if ok else 1)
