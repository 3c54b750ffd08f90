"""Small stdlib-only client for Kesu, shared by scripts/demo.py and the e2e tests.

It starts the six services as real processes (Stack), talks HTTP to intake,
reads PostgreSQL through psql and Kafka through `kesuctl events tail`.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("KESU_BIN_DIR") or os.path.join(ROOT, "build", "bin")
PG = os.environ.get("KESU_PG") or "host=127.0.0.1 port=55432 dbname=kesu user=postgres"
KAFKA = os.environ.get("KESU_KAFKA") or "127.0.0.1:59092"
DATA = os.environ.get("KESU_DATA_DIR") or os.path.join(os.path.dirname(ROOT), "shared", "data")

SERVICES = [  # name, binary, ops port offset
    ("intake", "kesu-intake", 1),
    ("classifier", "kesu-classifier", 2),
    ("dispatcher", "kesu-dispatcher", 3),
    ("sla-monitor", "kesu-sla-monitor", 4),
    ("notifier", "kesu-notifier", 5),
    ("archiver", "kesu-archiver", 6),
]

PHONE_RE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def has_phone(text):
    """A mainland mobile number in text. UUIDs are removed first: their hex groups can
    hold 11 digits in a row (a13912345678) without being anyone's phone."""
    return PHONE_RE.search(UUID_RE.sub("-", str(text))) is not None


def log(msg):
    print(msg, flush=True)


def finish(failures, summary, limit=50):
    """An e2e test's last word: the summary and the first `limit` failures; exit 1 if any."""
    log(summary)
    if failures:
        for f in failures[:limit]:
            log("  " + f)
        sys.exit(1)


def own_database(name):
    """Point this process (psql, kesuctl, every Stack started after) at a database of its
    own, dropped if it was there and freshly migrated: kesu_e2e_<name> on KESU_PG's server.
    What another test left behind (cases, tokens, handlers' load, counts over all cases)
    cannot change what this one sees; a failed test's database stays for a look until the
    next run. KESU_E2E_SHARED_DB=1, or a KESU_PG without `dbname=`, keeps KESU_PG as is."""
    global PG
    if os.environ.get("KESU_E2E_SHARED_DB") == "1" or not re.search(r"\bdbname=\S+", PG):
        return PG
    db = "kesu_e2e_" + re.sub(r"[^a-z0-9_]", "_", name.lower())
    admin = re.sub(r"\bdbname=\S+", "dbname=postgres", PG)
    out = subprocess.run(["psql", admin, "-X", "-q", "-v", "ON_ERROR_STOP=1",
                          "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db,
                          "-c", "CREATE DATABASE %s" % db],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError("cannot create the test's database %s: %s" % (db, out.stderr))
    mine = re.sub(r"\bdbname=\S+", "dbname=" + db, PG)
    kesuctl("migrate", "--pg", mine)
    PG = mine
    os.environ["KESU_PG"] = mine  # child processes that read it themselves
    log("database %s (migrated)" % db)
    return PG


def run_main(main, stacks=(), services=None, cleanup=None):
    """Run an e2e test's main() on a database of its own (own_database, named after the
    test's file). On an exception: the traceback, the log tails of `services` (default all)
    of every stack in `stacks`, the stacks stopped, `cleanup()`, exit 1."""
    try:
        own_database(os.path.splitext(os.path.basename(sys.argv[0]))[0])
        main()
    except Exception as e:  # noqa: BLE001 - report, then fail
        traceback.print_exc()
        log("ERROR: %s" % e)
        for st in stacks:
            for name in services or [s[0] for s in SERVICES]:
                log("--- %s log tail ---\n%s" % (name, st.log_tail(name, 15)))
            st.stop()
        if cleanup:
            cleanup()
        sys.exit(1)


def psql(sql, *params):
    """Run one query; returns rows as lists of strings. Params are passed as psql variables."""
    cmd = ["psql", PG, "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"]
    for i, p in enumerate(params):
        cmd += ["-v", "p%d=%s" % (i + 1, p)]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % (sql, out.stderr))
    return [line.split("\t") for line in out.stdout.splitlines() if line != ""]


def kesuctl(*args, check=True):
    env = dict(os.environ, KESU_PG=PG, KESU_KAFKA_BOOTSTRAP_SERVERS=KAFKA)
    out = subprocess.run([os.path.join(BIN, "kesuctl")] + list(args), capture_output=True,
                         text=True, env=env, check=False)
    if check and out.returncode != 0:
        raise RuntimeError("kesuctl %s failed (%d): %s" % (" ".join(args), out.returncode,
                                                           out.stderr))
    return out


def unique_tag(n=8):
    """A run's own marker for titles and references: letters only, because intake
    masks digit runs that look like phone or ID numbers in free text (a hex tag
    of eight digits, 1 run in 43, came back as ********)."""
    return uuid.uuid4().hex[:n].translate(str.maketrans("0123456789", "ghijklmnop"))


def token(role, department=None, label=None):
    args = ["token", "create", "--role", role]
    if department:
        args += ["--department", department]
    if label:
        args += ["--label", label]
    return kesuctl(*args).stdout.strip()


def tail(topic, timeout_ms=4000):
    """Every envelope of a topic, decoded to dicts, from the beginning."""
    out = kesuctl("events", "tail", "--topic", topic, "--from-beginning",
                  "--timeout_ms", str(timeout_ms))
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read().decode()
                return resp.status, (json.loads(text) if text else None), dict(resp.headers)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                js = json.loads(text)
            except ValueError:
                js = {"raw": text}
            return e.code, js, dict(e.headers)


class Sink:
    """A local HTTP receiver for webhook notifications."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        sink = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with sink.lock:
                    sink.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def bodies(self):
        with self.lock:
            out = []
            for r in self.requests:
                try:
                    out.append(json.loads(r["body"]))
                except ValueError:
                    out.append({"raw": r["body"].decode(errors="replace")})
            return out

    def close(self):
        self.server.shutdown()


class Stack:
    """The six services as real processes, on their own ports."""

    def __init__(self, http_port=8080, ops_base=9100, env=None, logdir=None, extra=None):
        self.http_port = http_port
        self.ops_base = ops_base
        self.logdir = logdir or tempfile.mkdtemp(prefix="kesu-stack-")
        self.procs = {}
        self.env = dict(os.environ)
        self.env.update({"KESU_PG": PG, "KESU_KAFKA_BOOTSTRAP_SERVERS": KAFKA})
        if not self.env.get("KESU_PII_KEY"):
            keyf = os.path.join(self.logdir, "pii.key")
            with open(keyf, "w") as f:
                f.write(os.urandom(32).hex())
            self.env["KESU_PII_KEY"] = "file:" + keyf
        self.env.update(env or {})
        self.extra = extra or {}
        self.api = Api("http://127.0.0.1:%d" % http_port)
        # own topics per stack: runs sharing a broker never see each other's events
        # the caller's prefix if it set one (fault tests restart stacks on one set of
        # topics), else a fresh one; only a fresh one is deleted by delete_topics
        given = self.env.get("KESU_TOPICS_PREFIX")
        self.own_prefix = not given
        self.prefix = given or "t%s." % os.urandom(4).hex()
        self.env["KESU_TOPICS_PREFIX"] = self.prefix
        os.environ["KESU_TOPICS_PREFIX"] = self.prefix  # kesuctl calls (tail) follow it
        kesuctl("topics", "create", "--partitions", os.environ.get("KESU_PARTITIONS", "6"))

    def start(self, names=None):
        for name, binary, off in SERVICES:
            if names and name not in names:
                continue
            args = [os.path.join(BIN, binary), "--ops.listen",
                    "127.0.0.1:%d" % (self.ops_base + off)]
            if name == "intake":
                args += ["--http.listen", "127.0.0.1:%d" % self.http_port]
            args += self.extra.get(name, [])
            logf = open(os.path.join(self.logdir, name + ".log"), "ab")
            self.procs[name] = subprocess.Popen(args, stdout=logf, stderr=logf, env=self.env,
                                                stdin=subprocess.DEVNULL)
            logf.close()
        self.wait_ready(names)

    def add_instance(self, name, k, timeout=60):
        """Start instance k (>= 2) of a consumer service in the same group, own ops port."""
        binary, off = [(b, o) for n, b, o in SERVICES if n == name][0]
        key = "%s#%d" % (name, k)
        port = self.ops_base + 10 * k + off
        args = [os.path.join(BIN, binary), "--ops.listen", "127.0.0.1:%d" % port]
        args += self.extra.get(name, [])
        logf = open(os.path.join(self.logdir, key + ".log"), "ab")
        self.procs[key] = subprocess.Popen(args, stdout=logf, stderr=logf, env=self.env,
                                           stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                    if r.status == 200:
                        return key
            except (urllib.error.URLError, OSError):
                pass
            if self.procs[key].poll() is not None or time.time() > deadline:
                raise RuntimeError("%s did not become ready" % key)
            time.sleep(0.2)

    def ops_url(self, name, path):
        off = [o for n, _, o in SERVICES if n == name][0]
        return "http://127.0.0.1:%d%s" % (self.ops_base + off, path)

    def wait_ready(self, names=None, timeout=60):
        deadline = time.time() + timeout
        for name, _, _ in SERVICES:
            if names and name not in names:
                continue
            while True:
                p = self.procs[name]
                if p.poll() is not None:
                    raise RuntimeError("%s exited with %d; log:\n%s" % (name, p.returncode,
                                                                       self.log_tail(name)))
                try:
                    with urllib.request.urlopen(self.ops_url(name, "/readyz"), timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.time() > deadline:
                    raise RuntimeError("%s not ready in %ds; log:\n%s" % (name, timeout,
                                                                         self.log_tail(name)))
                time.sleep(0.2)

    def log_tail(self, name, n=30):
        try:
            with open(os.path.join(self.logdir, name + ".log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def delete_topics(self):
        """Delete this stack's topics — never topics of a prefix the caller gave."""
        if self.own_prefix:
            kesuctl("topics", "delete", check=False)
            if os.environ.get("KESU_TOPICS_PREFIX") == self.prefix:
                del os.environ["KESU_TOPICS_PREFIX"]

    def stop(self, names=None, sig=signal.SIGTERM, timeout=30):
        """Stop services; returns {name: exit code}."""
        codes = {}
        for name, p in list(self.procs.items()):
            if names and name not in names:
                continue
            if p.poll() is None:
                p.send_signal(sig)
        for name, p in list(self.procs.items()):
            if names and name not in names:
                continue
            try:
                codes[name] = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
            del self.procs[name]
        return codes


def load_messages(n_zh, n_en):
    """Real citizen messages: Chinese from the TeddyCup set, English from NYC/Baltimore 311."""
    out = []
    with open(os.path.join(DATA, "teddy2020c-test-unlabeled.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            title = (r.get("title") or "").strip()[:200]
            body = (r.get("body") or "").strip()
            if title and body:
                out.append({"title": title, "body": body[:20000], "language": "zh-CN",
                            "ref": "teddy-%s" % r.get("id")})
            if len(out) >= n_zh:
                break
    en = []
    with open(os.path.join(DATA, "nyc311.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            title = (r.get("complaint_type") or "").strip()
            desc = " ".join(x for x in [r.get("descriptor"), r.get("location_type"),
                                         r.get("incident_address"), r.get("city")] if x)
            if title and desc:
                en.append({"title": title[:200], "body": desc, "language": "en",
                           "ref": "nyc-%s" % r.get("unique_key")})
            if len(en) >= n_en:
                break
    return out + en


def wait_for(fn, timeout, what, interval=0.3):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))
