"""Bad input: data dirs that cannot be read or written, damaged databases,
a database from a newer mallee, bad flags, bad join tokens, config files.

Each refusal is one line naming the problem (log lines at info level before
it are allowed), a non-zero exit (2 for bad input given on the command
line), and never a crash or a sanitizer report."""

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import (MALLEE_BIN, Cluster, bounded_wait, loopback_net,
                     sanitizer_report)

LISTEN = f"{loopback_net(0)}.200:7700"
API = f"{loopback_net(0)}.200:8773"
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (\w+)\s+[\w-]+: ")
IS_ROOT = os.geteuid() == 0
# Root ignores permission bits; without these two capabilities it does not.
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def mallee(*args, prefix=(), timeout=20, input=None):
    """Runs mallee; a peer that does not exit within timeout is killed and
    reported as such (returncode None)."""
    cmd = list(prefix) + [MALLEE_BIN] + [str(a) for a in args]
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              timeout=timeout, input=input,
                              start_new_session=True)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(
            cmd, None, (e.stdout or b"").decode(errors="replace"),
            (e.stderr or b"").decode(errors="replace"))


def peer(data_dir, *args, prefix=(), timeout=20):
    return mallee("peer", "--data-dir", data_dir, "--listen", LISTEN,
                  "--api-listen", API, *args, prefix=prefix, timeout=timeout)


def problem_lines(stderr):
    """stderr's lines but for log lines at debug or info level."""
    out = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        m = LOG_LINE.match(line)
        if m and m.group(2) in ("debug", "info"):
            continue
        out.append(line)
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree(path):
    """{relative path: sha256 or 'dir'} of everything under path but the
    lock file (whoever takes the lock writes its pid there)."""
    out = {}
    for dirpath, dirs, files in os.walk(path):
        for d in dirs:
            out[os.path.relpath(os.path.join(dirpath, d), path)] = "dir"
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.relpath(p, path) != "lock":
                out[os.path.relpath(p, path)] = sha256(p)
    return out


class BadInputTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mallee-badinput-")
        self.cloud_ids = {}

    def tearDown(self):
        for dirpath, dirs, files in os.walk(self.tmp):
            for n in dirs + files:
                try:
                    os.chmod(os.path.join(dirpath, n), 0o700)
                except OSError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def new_cloud(self, name="cloud"):
        d = self.path(name)
        cp = mallee("init", "--data-dir", d)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.cloud_ids[d] = re.search(r"created cloud ([0-9a-f]+)",
                                      cp.stdout).group(1)
        return d

    def assert_error(self, cp, *needles, code=None):
        """One line naming the problem (each needle, case-insensitively),
        a non-zero exit (code, when given), no crash."""
        self.assertIsNotNone(cp.returncode,
                             f"{cp.args} did not exit: {cp.stderr}")
        self.assertIsNone(sanitizer_report(cp.stderr), cp.stderr)
        self.assertGreaterEqual(cp.returncode, 0,
                                f"killed by signal: {cp.stderr}")
        if code is None:
            self.assertNotEqual(cp.returncode, 0, cp.stderr)
        else:
            self.assertEqual(cp.returncode, code, cp.stderr)
        self.assertTrue(cp.stderr.strip(), "no error message")
        lines = problem_lines(cp.stderr)
        self.assertEqual(len(lines), 1,
                         f"want one error line, got:\n{cp.stderr}")
        for n in needles:
            self.assertIn(n.lower(), lines[0].lower(),
                          f"{n!r} not in {lines[0]!r}")
        self.assertEqual(cp.stdout, "", "an error printed to stdout")
        return lines[0]

    # -- data dir --------------------------------------------------------

    def test_data_dir_is_a_file(self):
        f = self.path("file")
        with open(f, "w") as fh:
            fh.write("not a directory\n")
        self.assert_error(mallee("init", "--data-dir", f), f,
                          "not a directory")
        self.assert_error(peer(f), f, "not a directory")
        self.assert_error(mallee("init", "--data-dir", f + "/sub"),
                          f + "/sub", "not a directory")
        self.assert_error(peer(f + "/sub"), f + "/sub", "not a directory")
        token = mallee("token", "--data-dir", self.new_cloud(), "--addr",
                       LISTEN).stdout.strip()
        self.assert_error(peer(f + "/sub", "--join", token), f + "/sub",
                          "not a directory")
        self.assert_error(mallee("status", "--data-dir", f), f, code=1)
        with open(f) as fh:
            self.assertEqual(fh.read(), "not a directory\n")

    def test_missing_data_dir(self):
        d = self.path("nonexistent")
        self.assert_error(peer(d), d)
        self.assertFalse(os.path.exists(d), "a failed start made the dir")
        os.mkdir(d)
        self.assert_error(peer(d), d, "holds no cloud", code=2)

    @unittest.skipUnless(IS_ROOT and shutil.which("setpriv"),
                         "needs root and setpriv")
    def test_unreadable_data_dir(self):
        d = self.new_cloud()
        before = tree(d)
        os.chmod(d, 0)
        # The capability drop works: root cannot list the dir any more.
        ls = subprocess.run(NO_DAC + ["ls", d], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
        self.assertNotEqual(ls.returncode, 0, "setpriv did not drop DAC")
        self.assert_error(peer(d, prefix=NO_DAC), d, "permission denied")
        self.assert_error(mallee("token", "--data-dir", d, prefix=NO_DAC),
                          d, "permission denied")
        os.chmod(d, 0o700)
        for name in ("mallee.db", "cloud.keys", "identity.key"):
            p = os.path.join(d, name)
            os.chmod(p, 0)
            self.assert_error(peer(d, prefix=NO_DAC), p, "permission denied")
            os.chmod(p, 0o600)
        self.assertEqual(tree(d), before)

    @unittest.skipUnless(IS_ROOT and shutil.which("setpriv"),
                         "needs root and setpriv")
    def test_unwritable_data_dir(self):
        d = self.new_cloud()
        os.chmod(d, 0o500)
        self.assert_error(peer(d, prefix=NO_DAC), d, "not writable",
                          "permission denied")
        self.assertFalse(os.path.exists(os.path.join(d, "ctl.sock")))

    @unittest.skipUnless(IS_ROOT and shutil.which("unshare"),
                         "needs root and unshare")
    def test_read_only_mount(self):
        d = self.new_cloud()
        before = tree(d)
        # The mounts live in a private mount namespace that ends with the
        # command: nothing is left mounted whatever happens.
        script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" '
                  '&& shift && exec "$@"')
        ro = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              script, "sh", d]
        self.assert_error(peer(d, prefix=ro), d, "read-only file system")
        self.assertEqual(tree(d), before)
        # init into a read-only tmpfs
        empty = self.path("ro")
        os.mkdir(empty)
        tmpfs = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"',
                 "sh", empty]
        self.assert_error(
            mallee("init", "--data-dir", empty + "/new", prefix=tmpfs),
            empty + "/new", "read-only file system")
        self.assertEqual(os.listdir(empty), [])
        with open("/proc/self/mounts") as f:
            self.assertNotIn(self.tmp, f.read(), "a mount leaked")

    # -- the database ----------------------------------------------------

    def damage(self, d, offset, data):
        db = os.path.join(d, "mallee.db")
        with open(db, "r+b") as f:
            f.seek(offset)
            f.write(data)
        return db

    def test_garbage_database(self):
        d = self.new_cloud()
        db = os.path.join(d, "mallee.db")
        size = os.path.getsize(db)
        with open(db, "wb") as f:
            f.write(random.Random(1).randbytes(size))
        h = sha256(db)
        self.assert_error(peer(d), db, "not a mallee database")
        self.assert_error(mallee("token", "--data-dir", d), db,
                          "not a mallee database")
        self.assertEqual(sha256(db), h, "the damaged file was changed")

    def test_truncated_database(self):
        d = self.new_cloud()
        db = os.path.join(d, "mallee.db")
        with open(db, "r+b") as f:
            f.truncate(23)
        h = sha256(db)
        self.assert_error(peer(d), db, "too short")
        self.assertEqual(sha256(db), h)

    def test_empty_database(self):
        d = self.new_cloud()
        db = os.path.join(d, "mallee.db")
        open(db, "wb").close()
        self.assert_error(peer(d), d)

    def test_other_sqlite_database(self):
        d = self.new_cloud()
        db = os.path.join(d, "mallee.db")
        os.unlink(db)
        subprocess.run(["sqlite3", db, "CREATE TABLE t(x); "
                        "INSERT INTO t VALUES (1);"], check=True)
        h = sha256(db)
        self.assert_error(peer(d), db, "not a mallee database")
        self.assertEqual(sha256(db), h)

    def test_damaged_header_page(self):
        d = self.new_cloud()
        db = self.damage(d, 100, b"\xde\xad" * 1000)
        self.assert_error(peer(d), db, "damaged")

    def test_damaged_settings_page(self):
        """Page 2 (the meta table) unreadable: refused at open, one line."""
        d = self.new_cloud()
        db = self.damage(d, 4096, b"\xde\xad" * 2048)
        self.assert_error(peer(d), db, "damaged")

    def test_damaged_records_page(self):
        """The records table's root page unreadable: refused at open by
        PRAGMA quick_check, one line naming the damage."""
        d = self.new_cloud()
        root = subprocess.run(
            ["sqlite3", os.path.join(d, "mallee.db"),
             "SELECT rootpage FROM sqlite_master WHERE name = 'records'"],
            stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        page_size = 4096
        db = self.damage(d, (int(root) - 1) * page_size,
                         b"\xde\xad" * (page_size // 2))
        self.assert_error(peer(d, timeout=8), db, "damaged")

    def test_newer_schema(self):
        d = self.new_cloud()
        db = os.path.join(d, "mallee.db")
        subprocess.run(["sqlite3", db, "PRAGMA user_version = 99"],
                       check=True)
        h = sha256(db)
        before = sorted(os.listdir(d))
        line = self.assert_error(peer(d), db, "newer", "99")
        self.assertIn("upgrade", line)
        self.assertEqual(sha256(db), h, "a newer database was altered")
        self.assert_error(mallee("token", "--data-dir", d), db, "newer")
        self.assertEqual(sha256(db), h)
        # No journal left with changes in it.
        for extra in set(os.listdir(d)) - set(before):
            if extra.endswith("-wal") or extra.endswith("-journal"):
                self.assertEqual(os.path.getsize(os.path.join(d, extra)), 0)
        check = subprocess.run(["sqlite3", db, "PRAGMA user_version"],
                               stdout=subprocess.PIPE, text=True)
        self.assertEqual(check.stdout.strip(), "99")

    def test_init_refuses_existing_cloud(self):
        d = self.new_cloud()
        before = tree(d)
        self.assert_error(mallee("init", "--data-dir", d), d,
                          "already holds a cloud", "--force", code=2)
        self.assertEqual(tree(d), before)

    # -- flags -----------------------------------------------------------

    def test_bad_flags(self):
        d = self.new_cloud()
        fresh = self.path("fresh")
        cases = [
            (["peer", "--data-dir", d, "--bogus"], ["--bogus"]),
            (["peer", "--data-dir", d, "--listen", "notanaddr"],
             ["--listen", "notanaddr"]),
            (["peer", "--data-dir", d, "--listen", "127.0.0.1:99999"],
             ["--listen", "127.0.0.1:99999"]),
            (["peer", "--data-dir", d, "--advertise", "nowhere:x"],
             ["--advertise", "nowhere:x"]),
            (["peer", "--data-dir", d, "--api-listen", "1.2.3"],
             ["--api-listen", "1.2.3"]),
            (["peer", "--data-dir", d, "--log-level", "loud"],
             ["--log-level", "loud"]),
            (["peer", "--data-dir", d, "--listen"], ["--listen"]),
            (["peer", "--data-dir", fresh, "--bogus"], ["--bogus"]),
            (["peer", "--data-dir", d, "--join", "nonsense"], ["nonsense"]),
            (["init", "--data-dir", fresh, "--cidr", "300.0.0.0/8"],
             ["300.0.0.0/8"]),
            (["init", "--data-dir", fresh, "--cidr", "10.0.0.0/33"],
             ["10.0.0.0/33"]),
            (["init", "--data-dir", fresh, "--cidr", "banana"], ["banana"]),
            (["init", "--data-dir", fresh, "--name", "bad name!"],
             ["bad name!"]),
            (["init", "--data-dir", fresh, "--bogus"], ["--bogus"]),
            (["init", "--data-dir", fresh, "--cidr"], ["--cidr"]),
            (["init", "--data-dir", fresh, "stray"], ["stray"]),
            (["token", "--data-dir", d, "--bogus"], ["--bogus"]),
            (["status", "--data-dir", d, "--bogus"], ["--bogus"]),
            (["status", "--data-dir", d, "stray"], ["stray"]),
            (["admin", "--data-dir", d, "--bogus"], ["--bogus"]),
            (["nosuchcommand"], ["nosuchcommand"]),
        ]
        for args, needles in cases:
            with self.subTest(args=args):
                self.assert_error(mallee(*args, timeout=10), *needles,
                                  code=2)
        self.assertFalse(os.path.exists(fresh), "a refused command made "
                         "its data dir")

    # -- join tokens -----------------------------------------------------

    def test_bad_join_tokens(self):
        d = self.new_cloud()
        token = mallee("token", "--data-dir", d, "--addr",
                       LISTEN).stdout.strip()
        self.assertTrue(token.startswith("mallee1-"), token)
        body = token[len("mallee1-"):]
        mid = len(body) // 2
        flipped = body[:mid] + ("A" if body[mid] != "A" else "B") + \
            body[mid + 1:]
        bad = {
            "truncated": token[:len(token) // 2],
            "one char short": token[:-1],
            "corrupt": "mallee1-" + flipped,
            "not base64url": token[:20] + "!" + token[21:],
            "empty": "mallee1-",
            "trailing junk": token + "AAAA",
        }
        for what, t in bad.items():
            with self.subTest(what):
                j = self.path("join-" + what.replace(" ", "-"))
                self.assert_error(peer(j, "--join", t), "bad join token",
                                  code=2)
                # Nothing of a cloud is left behind.
                left = os.listdir(j) if os.path.isdir(j) else []
                for f in ("cloud.keys", "identity.key", "mallee.db"):
                    self.assertNotIn(f, left, what)
                for f in left:
                    p = os.path.join(j, f)
                    if os.path.isfile(p):
                        with open(p, errors="replace") as fh:
                            self.assertNotIn(body[:32], fh.read(), what)

        # The same token, intact, works: the failures above are the damage.
        j = self.path("join-good")
        st, rc, err = self.run_briefly(j, "--join", token)
        self.assertEqual(rc, 0, err)
        self.assertEqual(st["self"]["cloud"], self.cloud_ids[d])
        self.assertTrue(os.path.exists(os.path.join(j, "cloud.keys")))

        # A token for another cloud than the data dir's.
        other = self.new_cloud("other")
        t2 = mallee("token", "--data-dir", other, "--addr",
                    LISTEN).stdout.strip()
        self.assert_error(peer(j, "--join", t2), "belongs to cloud", code=2)

    def run_briefly(self, data_dir, *args):
        """Starts a peer, waits for its status, SIGTERMs it:
        (status, exit code, stderr)."""
        cmd = [MALLEE_BIN, "peer", "--data-dir", data_dir, "--listen",
               LISTEN, "--api-listen", API] + list(args)
        errf = tempfile.TemporaryFile(mode="w+")
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf,
                             start_new_session=True)
        try:
            def ready():
                if p.poll() is not None:
                    errf.seek(0)
                    raise AssertionError(f"peer exited {p.returncode}: "
                                         f"{errf.read()}")
                cp = mallee("status", "--data-dir", data_dir, "--json")
                return json.loads(cp.stdout) if cp.returncode == 0 else None
            st = bounded_wait(ready, 20, "the peer to answer status")
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=15)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        errf.seek(0)
        err = errf.read()
        errf.close()
        self.assertIsNone(sanitizer_report(err), err)
        return st, rc, err

    # -- config file -----------------------------------------------------

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_config_file(self):
        conf = self.write("peer.conf", "# a comment\n\nzone = z9\n"
                          "name = fromfile\n")
        with Cluster(1, names=[""], start=False) as c:
            c.init(0)
            me = c.start(0, extra=["--config", conf])["self"]
            self.assertEqual((me["zone"], me["name"]), ("z9", "fromfile"))
            c.stop(0)
            # A flag wins over the file.
            me = c.start(0, extra=["--config", conf, "--zone", "zflag"])[
                "self"]
            self.assertEqual((me["zone"], me["name"]), ("zflag", "fromfile"))
            c.stop(0)
            # DATA_DIR/mallee.conf is read when there is no --config.
            with open(os.path.join(c.peers[0].data_dir, "mallee.conf"),
                      "w") as f:
                f.write("[peer]\nzone = zdefault\n")
            me = c.start(0)["self"]
            self.assertEqual(me["zone"], "zdefault")
            c.stop(0)
            self.assertEqual(c.peers[0].exits, [0, 0, 0])

    def test_bad_config_files(self):
        d = self.new_cloud()
        cases = [
            ("unknown.conf", "zone = z9\n\ncolour = blue\n",
             [":3", "colour"]),
            ("noequals.conf", "zone z9\n", [":1", "key = value"]),
            ("section.conf", "[other]\nzone = z9\n", [":1", "[other]"]),
            # (not listen: the harness's --listen flag would win over it)
            ("badaddr.conf", "zone = z9\nadvertise = notanaddr\n",
             [":2", "notanaddr"]),
            ("badbool.conf", "edge = maybe\n", [":1", "maybe"]),
            ("badlevel.conf", "log-level = loud\n", [":1", "loud"]),
        ]
        for name, text, needles in cases:
            with self.subTest(name):
                p = self.write(name, text)
                self.assert_error(peer(d, "--config", p), name, *needles,
                                  code=2)
        missing = self.path("missing.conf")
        self.assert_error(peer(d, "--config", missing), missing,
                          "no such file", code=2)
        self.assertFalse(os.path.exists(os.path.join(d, "ctl.sock")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
