"""Crash safety: `kill -9` a peer in the middle of a stream of record writes
and restart it: the database passes `PRAGMA integrity_check` and every write
the peer acknowledged (the CLI exited 0) is there, with its body; nothing
half-written shows up."""

import json
import os
import random
import subprocess
import sys
import threading
import time
import unittest

from harness import Cluster, bounded_wait

ROUNDS = 5
MIN_ACKS = 40          # acknowledged writes before the kill, per round
UNIQUE_WRITERS = 3
KIND = "crash"
OVERWRITE_KEYS = 3


class Call:
    __slots__ = ("op", "id", "body", "start", "end", "rc")

    def __init__(self, op, id_, body):
        self.op, self.id, self.body = op, id_, body
        self.start = self.end = self.rc = None


class Writers:
    """Threads that write records through the CLI until told to stop,
    remembering every call: what, when, and whether it was acknowledged."""

    def __init__(self, c, rnd, round_no):
        self.c = c
        self.round = round_no
        self.stop = threading.Event()
        self.calls = []
        self.lock = threading.Lock()
        self.seeds = [rnd.randrange(1 << 30) for _ in range(UNIQUE_WRITERS + 2)]
        self.threads = []

    def acked(self):
        with self.lock:
            return sum(1 for k in self.calls if k.rc == 0)

    def _call(self, op, id_, body=None):
        k = Call(op, id_, body)
        args = ["admin", "record", op, KIND, id_]
        stdin = None
        if op == "put":
            if isinstance(body, bytes):
                stdin = body        # binary body through stdin
            else:
                args.append(body)
        k.start = time.monotonic()
        cp = self.c.cli(0, *args, input=stdin, timeout=30)
        k.end = time.monotonic()
        k.rc = cp.returncode
        with self.lock:
            self.calls.append(k)
        return k

    def _unique(self, t):
        rnd = random.Random(self.seeds[t])
        n = 0
        while not self.stop.is_set() and n < 5000:
            id_ = f"r{self.round}-u{t}-{n}"
            if rnd.random() < 0.3:
                body = rnd.randbytes(rnd.choice((0, 1, 100, 4096, 65536,
                                                 300000)))
            else:
                body = f"{id_} " + "x" * rnd.randrange(0, 2000)
            self._call("put", id_, body)
            n += 1

    def _overwrite(self):
        n = 0
        while not self.stop.is_set() and n < 5000:
            self._call("put", f"r{self.round}-ow{n % OVERWRITE_KEYS}",
                       f"version {n}")
            n += 1

    def _put_delete(self):
        n = 0
        while not self.stop.is_set() and n < 5000:
            id_ = f"r{self.round}-d{n}"
            if self._call("put", id_, f"doomed {n}").rc == 0:
                self._call("delete", id_)
            n += 1

    def start(self):
        targets = [(self._unique, (t,)) for t in range(UNIQUE_WRITERS)]
        targets += [(self._overwrite, ()), (self._put_delete, ())]
        for fn, args in targets:
            th = threading.Thread(target=fn, args=args, daemon=True)
            th.start()
            self.threads.append(th)

    def join(self):
        self.stop.set()
        for th in self.threads:
            th.join(timeout=60)
            if th.is_alive():
                raise AssertionError("a writer thread is stuck")


def records(c):
    """{id: body bytes} of every live record of KIND, from the peer."""
    cp = c.cli(0, "admin", "record", "list", KIND, "--json", check=True)
    out = {}
    for r in json.loads(cp.stdout):
        if r["kind"] == KIND and not r.get("deleted"):
            out[r["id"]] = bytes.fromhex(r["body"])
    return out


def integrity(path):
    cp = subprocess.run(["sqlite3", path, "PRAGMA integrity_check"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, timeout=60)
    return cp.stdout.strip() + cp.stderr.strip()


def as_bytes(body):
    return body if isinstance(body, bytes) else body.encode()


class CrashTest(unittest.TestCase):

    def test_kill9_during_writes(self):
        seed = int(os.environ.get("MALLEE_TEST_SEED", time.time_ns() % 10**6))
        print(f"seed {seed} (MALLEE_TEST_SEED={seed} repeats it)",
              file=sys.stderr)
        rnd = random.Random(seed)
        in_flight_total = 0
        t0 = time.monotonic()
        with Cluster(1) as c:
            db = os.path.join(c.peers[0].data_dir, "mallee.db")
            expected = {}     # id -> body every acked put that must remain
            gone = set()      # ids whose delete was acknowledged
            maybe = set()     # ids whose delete was tried, not acknowledged
            for r in range(ROUNDS):
                w = Writers(c, rnd, r)
                w.start()
                try:
                    bounded_wait(lambda: w.acked() >= MIN_ACKS, 30,
                                 f"{MIN_ACKS} acknowledged writes")
                    time.sleep(rnd.uniform(0, 0.4))
                    kill_at = time.monotonic()
                    rc = c.kill9(0)
                finally:
                    w.join()
                self.assertEqual(rc, -9)
                in_flight = [k for k in w.calls
                             if k.start < kill_at < k.end]
                in_flight_total += len(in_flight)

                c.restart(0)
                self.assertEqual(integrity(db), "ok", f"round {r}")
                have = records(c)
                self.check_round(r, w.calls, have)

                for k in w.calls:
                    if k.rc == 0 and k.op == "put" and "-ow" not in k.id:
                        expected[k.id] = as_bytes(k.body)
                    if k.op == "delete":
                        (gone if k.rc == 0 else maybe).add(k.id)
                # Earlier rounds' writes survive later crashes too.
                for id_, body in expected.items():
                    if id_ in gone:
                        self.assertFalse(id_ in have, f"deleted {id_} back")
                    elif id_ not in maybe:
                        self.assertTrue(id_ in have, f"acked {id_} lost")
                        self.assertTrue(have[id_] == body,
                                        f"{id_}: body differs")
                acked = sum(1 for k in w.calls if k.rc == 0)
                print(f"round {r}: {len(w.calls)} calls, {acked} acked, "
                      f"{len(in_flight)} in flight at the kill, "
                      f"{len(have)} records", file=sys.stderr)

            self.assertEqual(c.stop(0), 0)
            self.assertEqual(integrity(db), "ok")
            self.assertIn("stopped cleanly", c.log(0))
        # The stream was really running when the peer died.
        self.assertGreater(in_flight_total, 0,
                           "no write was in flight at any kill")
        print(f"crash: {time.monotonic() - t0:.1f}s", file=sys.stderr)

    def check_round(self, r, calls, have):
        puts = [k for k in calls if k.op == "put"]
        mine = {k: v for k, v in have.items() if k.startswith(f"r{r}-")}

        # Every acknowledged put is there, whole (unless its delete went
        # through, or might have: a delete that was attempted).
        deletes = {k.id: k for k in calls if k.op == "delete"}
        for k in puts:
            if k.rc != 0 or "-ow" in k.id:
                continue
            d = deletes.get(k.id)
            if d is not None and d.rc == 0:
                self.assertFalse(k.id in have, f"acked delete of {k.id} lost")
            elif d is None:
                self.assertTrue(k.id in have, f"acked put {k.id} lost")
                self.assertTrue(have[k.id] == as_bytes(k.body),
                                f"{k.id}: body differs")

        # Nothing present that was never written, and no torn bodies.
        attempted = {}
        for k in puts:
            attempted.setdefault(k.id, []).append(as_bytes(k.body))
        for id_, body in mine.items():
            self.assertTrue(id_ in attempted, f"{id_} was never written")
            self.assertTrue(body in attempted[id_],
                            f"{id_} has a torn body ({len(body)} bytes)")

        # Overwritten keys hold the last acknowledged version or a later
        # attempted one, never an older one.
        for key in range(OVERWRITE_KEYS):
            id_ = f"r{r}-ow{key}"
            vers = [(int(k.body.split()[1]), k.rc) for k in puts
                    if k.id == id_]
            acked = [v for v, rc in vers if rc == 0]
            if not acked:
                continue
            self.assertTrue(id_ in have, f"acked {id_} lost")
            v = int(have[id_].split()[1])
            self.assertGreaterEqual(v, max(acked), f"{id_} went back")
            self.assertLessEqual(v, max(v for v, _ in vers), id_)


if __name__ == "__main__":
    unittest.main(verbosity=2)
