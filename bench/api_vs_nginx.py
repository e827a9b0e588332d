#!/usr/bin/env python3
"""API edge rate: mallee's EC2 edge against nginx serving the same bytes.

One `mallee peer --edge` (started through tests/cluster/harness.py, on
127.0.0.0/8 only) and one nginx (Debian nginx-light, its own prefix and
config in a temp dir, one worker: the edge runs one libuv loop) serving a
static XML body of exactly the size of the edge's answer.  `wrk` replays
SigV4 header-signed GET requests (a signature stays valid for 15 minutes)
with keep-alive at a fixed concurrency against each, one after the other:

  DescribeRegions                          goal: >= 0.5x nginx's rate
  DescribeSecurityGroups, filter           goal: p99 < 20 ms
    group-name=<one of 10,000 groups>

The edge throttles each access key (a token bucket, 200/s with a burst of
400), so the load is spread over many keys of one account, as many clients
would be; each request of the rotation is signed by the next key.  Any
non-2xx answer (RequestLimitExceeded included) is counted and reported, and
a run with any is marked invalid.

Prints a table and one JSON line.  Every process it starts is stopped at
the end; waits and loops are bounded.

    cmake -B build -S . -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build
    python3 bench/api_vs_nginx.py [--mallee build/mallee] [--duration 10]
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VERSION = "2016-11-15"
REGION = "us-east-1"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mallee", default=os.path.join(ROOT, "build",
                                                     "mallee"))
    ap.add_argument("--duration", type=int, default=5,
                    help="seconds of each wrk run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per side, alternating mallee and nginx; "
                         "the median run (by req/s) is reported")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1,
                    help="wrk threads (the machine has 2 cores: one for "
                         "the server, one for wrk)")
    ap.add_argument("--groups", type=int, default=10000)
    ap.add_argument("--keys", type=int, default=256,
                    help="access keys the requests rotate over")
    ap.add_argument("--json-only", action="store_true")
    a = ap.parse_args()
    a.duration = max(1, min(a.duration, 120))
    a.rounds = max(1, min(a.rounds, 9))
    a.connections = max(1, min(a.connections, 1000))
    a.groups = max(1, min(a.groups, 100000))
    a.keys = max(1, min(a.keys, 2000))
    return a


ARGS = parse_args()
os.environ["MALLEE_BIN"] = os.path.abspath(ARGS.mallee)
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from harness import Cluster, bounded_wait  # noqa: E402


def log(msg):
    if not ARGS.json_only:
        print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# SigV4


def sign(host, key_id, secret, params, method="GET", body=""):
    """(path with query, headers) of a SigV4 header-signed request."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    query = urllib.parse.urlencode(sorted(params.items()),
                                   quote_via=urllib.parse.quote) \
        if method == "GET" else ""
    headers = {"host": host, "x-amz-date": amz_date}
    if method == "POST":
        headers["content-type"] = "application/x-www-form-urlencoded"
    signed = ";".join(sorted(headers))
    canon = "\n".join([method, "/", query,
                       "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                       signed, hashlib.sha256(body.encode()).hexdigest()])
    scope = f"{day}/{REGION}/ec2/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, REGION, "ec2", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={sig}")
    return "/" + ("?" + query if query else ""), headers


def raw_get(host, key, params):
    """A whole HTTP/1.1 GET request, ready to replay."""
    path, headers = sign(host, key[0], key[1], params)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}",
             f"X-Amz-Date: {headers['x-amz-date']}",
             f"Authorization: {headers['authorization']}",
             "User-Agent: mallee-bench", "Connection: keep-alive"]
    return "\r\n".join(lines) + "\r\n\r\n"


class Conn:
    """A keep-alive connection that sends signed EC2 Query calls."""

    def __init__(self, addr):
        self.host = addr
        h, p = addr.rsplit(":", 1)
        self.c = http.client.HTTPConnection(h, int(p), timeout=30)

    def call(self, key, params, method="POST"):
        params = dict(params, Version=VERSION)
        if method == "POST":
            body = urllib.parse.urlencode(sorted(params.items()),
                                          quote_via=urllib.parse.quote)
            path, headers = sign(self.host, key[0], key[1], params, "POST",
                                 body)
            self.c.request("POST", path, body=body, headers=headers)
        else:
            path, headers = sign(self.host, key[0], key[1], params)
            self.c.request("GET", path, headers=headers)
        r = self.c.getresponse()
        return r.status, r.read()

    def close(self):
        self.c.close()


# --------------------------------------------------------------------------
# processes


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    """nginx with its own prefix and config, serving one file for any
    path, one worker, no access log."""

    def __init__(self, root, body):
        self.prefix = os.path.join(root, "nginx")
        os.makedirs(os.path.join(self.prefix, "html"))
        os.makedirs(os.path.join(self.prefix, "tmp"))
        for d in (root, self.prefix, os.path.join(self.prefix, "html")):
            os.chmod(d, 0o755)     # workers run as nobody
        with open(os.path.join(self.prefix, "html", "body.xml"), "wb") as f:
            f.write(body)
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        conf = f"""
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_temp_path {self.prefix}/tmp/body;
    proxy_temp_path {self.prefix}/tmp/proxy;
    fastcgi_temp_path {self.prefix}/tmp/fastcgi;
    uwsgi_temp_path {self.prefix}/tmp/uwsgi;
    scgi_temp_path {self.prefix}/tmp/scgi;
    server {{
        listen {self.addr};
        location / {{
            root {self.prefix}/html;
            default_type text/xml;
            rewrite ^ /body.xml break;
        }}
    }}
}}
"""
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["nginx", "-p", self.prefix, "-c", self.conf, "-g",
             "daemon off;"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: "
                                   + self.proc.stderr.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5) \
                    .close()
                return True
            except OSError:
                return False
        bounded_wait(up, 10, "nginx to listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


WRK_LUA = r"""
-- Generated by bench/api_vs_nginx.py: replays pre-signed requests,
-- rotating over them (each signed by a different access key).
local reqs = dofile(os.getenv("BENCH_REQS"))
local n = #reqs
local i = 0
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end
function init(args)
  i = (offset or 0) % n
end
function request()
  i = i % n + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "non2xx": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, e.status))
end
"""


def lua_long_string(s):
    eq = "="
    while f"]{eq}]" in s:
        eq += "="
    return f"[{eq}[\n{s}]{eq}]"


def write_requests(workdir, name, requests):
    path = os.path.join(workdir, f"{name}.reqs.lua")
    with open(path, "w") as f:
        f.write("return {\n")
        for r in requests:
            f.write(lua_long_string(r) + ",\n")
        f.write("}\n")
    return path


def wrk(workdir, reqs, addr, duration, warmup=0):
    """Runs wrk against addr replaying the requests in the file reqs;
    returns the figures of the measured run (after an optional warm-up
    run)."""
    script = os.path.join(workdir, "replay.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA)
    env = dict(os.environ, BENCH_REQS=reqs)
    out = None
    for secs in ((warmup,) if warmup else ()) + (duration,):
        cmd = ["wrk", "-t", str(ARGS.threads), "-c", str(ARGS.connections),
               "-d", f"{secs}s", "--timeout", "5s", "-s", script,
               f"http://{addr}/"]
        cp = subprocess.run(cmd, capture_output=True, text=True, env=env,
                            timeout=secs + 60)
        if cp.returncode != 0:
            raise RuntimeError(f"wrk failed: {cp.stderr}")
        m = re.search(r"^WRKJSON (.*)$", cp.stdout, re.M)
        if not m:
            raise RuntimeError(f"wrk printed no figures: {cp.stdout}")
        out = json.loads(m.group(1))
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    return out


def median_run(runs):
    """The run with the median rate; errors summed over all runs."""
    ranked = sorted(runs, key=lambda r: r["rps"])
    out = dict(ranked[len(ranked) // 2])
    for k in ("non2xx", "read_errors", "write_errors", "connect_errors",
              "timeouts"):
        out[k] = sum(r[k] for r in runs)
    return out


# --------------------------------------------------------------------------
# the edge's data


def make_keys(c, account, n):
    keys = []
    for i in range(n):
        cp = c.cli(0, "admin", "key", "create", "--account", account,
                   check=True)
        kid = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", cp.stdout).group(1)
        sec = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", cp.stdout).group(1)
        keys.append((kid, sec))
    return keys


def make_groups(addr, keys, n, prefix, threads=8):
    """Creates n security groups through the API, `threads` keep-alive
    connections at once; returns (seconds, groups per second)."""
    t0 = time.monotonic()
    errors = []
    nxt = [0]
    lock = threading.Lock()

    def worker(w):
        conn = Conn(addr)
        k = w
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= n or errors:
                    return
                k = (k + threads) % len(keys)
                for attempt in range(20):
                    st, body = conn.call(keys[k], {
                        "Action": "CreateSecurityGroup",
                        "GroupName": f"{prefix}{i:05d}",
                        "GroupDescription": f"bench group {i}"})
                    if st == 503 and b"RequestLimitExceeded" in body:
                        time.sleep(0.05 * (attempt + 1))
                        continue
                    break
                if st != 200:
                    errors.append(f"group {i}: {st} {body[:300]!r}")
                    return
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        finally:
            conn.close()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=900)
    if errors:
        raise RuntimeError("creating groups: " + errors[0])
    dt = time.monotonic() - t0
    return dt, n / dt


def body_of(addr, key, params):
    conn = Conn(addr)
    try:
        st, body = conn.call(key, params, method="GET")
    finally:
        conn.close()
    if st != 200:
        raise RuntimeError(f"{params['Action']}: {st} {body[:500]!r}")
    return body


# --------------------------------------------------------------------------


def main():
    if not shutil.which("wrk") or not shutil.which("nginx"):
        sys.exit("needs wrk and nginx (scripts/setup installs them)")
    work = tempfile.mkdtemp(prefix="mallee-bench-api-")
    nginx = None
    results = {}
    try:
        with Cluster(1, peer_args=["--edge"], ready_timeout=30) as c:
            addr = c.peers[0].api_listen
            account = c.admin["account"]
            t0 = time.monotonic()
            keys = make_keys(c, account, ARGS.keys)
            log(f"{len(keys)} access keys in {time.monotonic() - t0:.1f}s")
            for k in (keys[0], keys[-1]):
                bounded_wait(lambda: body_of(addr, k, {
                    "Action": "DescribeRegions", "Version": VERSION}),
                    10, "a new key to work")
            prefix = "bench-grp-"
            dt, rate = make_groups(addr, keys, ARGS.groups, prefix)
            log(f"{ARGS.groups} security groups in {dt:.1f}s "
                f"({rate:.0f}/s through the API)")
            results["groups_created_per_s"] = round(rate)

            target = f"{prefix}{ARGS.groups // 2:05d}"
            calls = {
                "DescribeRegions": {"Action": "DescribeRegions",
                                    "Version": VERSION},
                "DescribeSecurityGroups(filter)": {
                    "Action": "DescribeSecurityGroups",
                    "Version": VERSION,
                    "Filter.1.Name": "group-name",
                    "Filter.1.Value.1": target},
            }
            bodies = {}
            for name, params in calls.items():
                bodies[name] = body_of(addr, keys[0], params)
            sg = bodies["DescribeSecurityGroups(filter)"].decode()
            if sg.count("<groupName>") != 1 or target not in sg:
                raise RuntimeError(f"filter did not find one group: {sg}")

            nginx = Nginx(work, b"")
            nginx.start()
            for name, params in calls.items():
                host_m = addr
                reqs_m = [raw_get(host_m, k, params) for k in keys]
                # nginx gets the same requests, addressed to it.
                reqs_n = [raw_get(nginx.addr, k, params) for k in keys]
                with open(os.path.join(nginx.prefix, "html", "body.xml"),
                          "wb") as f:
                    f.write(bodies[name])
                fm = write_requests(work, "mallee", reqs_m)
                fn = write_requests(work, "nginx", reqs_n)
                runs = {"mallee": [], "nginx": []}
                for r in range(ARGS.rounds):
                    log(f"{name}: round {r + 1}/{ARGS.rounds} ...")
                    runs["mallee"].append(wrk(work, fm, addr, ARGS.duration,
                                              warmup=2 if r == 0 else 0))
                    runs["nginx"].append(wrk(work, fn, nginx.addr,
                                             ARGS.duration,
                                             warmup=2 if r == 0 else 0))
                results[name] = {side: median_run(v)
                                 for side, v in runs.items()}
                results[name]["rounds"] = {
                    side: [round(x["rps"]) for x in v]
                    for side, v in runs.items()}
                results[name]["body_bytes"] = len(bodies[name])
            nginx.stop()
            nginx = None
            if not c.peers[0].running:
                raise RuntimeError("the edge died during the run")
    finally:
        if nginx:
            nginx.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results)


def report(results):
    rows = []
    summary = {"bench": "api_vs_nginx", "connections": ARGS.connections,
               "wrk_threads": ARGS.threads, "duration_s": ARGS.duration,
               "rounds": ARGS.rounds,
               "groups": ARGS.groups, "keys": ARGS.keys,
               "groups_created_per_s": results["groups_created_per_s"]}
    valid = True
    for name in ("DescribeRegions", "DescribeSecurityGroups(filter)"):
        r = results[name]
        m, n = r["mallee"], r["nginx"]
        bad = (m["non2xx"] + m["read_errors"] + m["write_errors"]
               + m["connect_errors"] + m["timeouts"])
        valid &= bad == 0
        ratio = m["rps"] / n["rps"] if n["rps"] else 0
        rows.append((name, r["body_bytes"], m, n, ratio, bad))
        key = "regions" if name == "DescribeRegions" else "groups_filter"
        summary[key] = {
            "body_bytes": r["body_bytes"],
            "mallee_rps": round(m["rps"]), "nginx_rps": round(n["rps"]),
            "ratio": round(ratio, 3),
            "mallee_p50_ms": round(m["p50_us"] / 1000, 3),
            "mallee_p99_ms": round(m["p99_us"] / 1000, 3),
            "nginx_p50_ms": round(n["p50_us"] / 1000, 3),
            "nginx_p99_ms": round(n["p99_us"] / 1000, 3),
            "mallee_errors": bad,
            "rounds_rps": r["rounds"]}
    reg, grp = summary["regions"], summary["groups_filter"]
    summary["goal_regions_half_nginx"] = reg["ratio"] >= 0.5
    summary["goal_filter_p99_under_20ms"] = grp["mallee_p99_ms"] < 20
    summary["valid"] = valid
    if not ARGS.json_only:
        print(f"{'call':32} {'bytes':>6} {'side':>7} {'req/s':>9} "
              f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        for name, size, m, n, ratio, bad in rows:
            print(f"{name:32} {size:6d} {'mallee':>7} {m['rps']:9.0f} "
                  f"{m['p50_us'] / 1000:8.2f} {m['p99_us'] / 1000:8.2f} "
                  f"{bad:6d}")
            print(f"{'':32} {'':6} {'nginx':>7} {n['rps']:9.0f} "
                  f"{n['p50_us'] / 1000:8.2f} {n['p99_us'] / 1000:8.2f} "
                  f"{n['non2xx']:6d}")
            print(f"{'':32} {'':6} {'ratio':>7} {ratio:9.2f}")
        print(f"goals: DescribeRegions >= 0.5x nginx: "
              f"{'met' if summary['goal_regions_half_nginx'] else 'MISSED'}"
              f" ({reg['ratio']:.2f}x); filtered DescribeSecurityGroups "
              f"p99 < 20 ms over {ARGS.groups} groups: "
              f"{'met' if summary['goal_filter_p99_under_20ms'] else 'MISSED'}"
              f" ({grp['mallee_p99_ms']:.2f} ms)"
              + ("" if valid else "; INVALID: the edge answered errors"))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
