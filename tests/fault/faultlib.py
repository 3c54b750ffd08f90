"""Shared harness of the fault tests (tests/fault/test_*.py).

Each test starts its own stack (scripts/kesu_client.Stack: six real services,
own topic prefix), drives it with Load (complaints at a steady rate over HTTP,
each with an Idempotency-Key it keeps across retries, so a request whose answer
was lost to a crash is retried without making a second case), injects its
faults, and ends with finish(): wait until every acknowledged case is assigned,
explicit checks, then `kesuctl verify --since <start>` (the reconciliation of
history, outbox, inbox, notifications and the public feed), and one FIGURES
line for docs/reliability.md.
"""
import json  # noqa: F401 - tests use fl.json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import kesu_client as kc  # noqa: E402

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)
    return cond


def pg_now_ms(pg=None):
    """The database's clock (cases.created_at is stamped by it)."""
    return int(psql("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", pg=pg)[0][0])


def psql(sql, pg=None):
    cmd = ["psql", pg or kc.PG, "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % (sql[:300], out.stderr))
    return [line.split("\t") for line in out.stdout.splitlines() if line != ""]


def kill9(stack, name):
    """SIGKILL one service and reap it."""
    p = stack.procs.pop(name)
    p.send_signal(signal.SIGKILL)
    p.wait()


def restart(stack, name, env=None, wait=True):
    """Start a service again (optionally with extra environment, e.g. a fault switch)."""
    saved = stack.env
    if env:
        stack.env = dict(saved, **env)
    try:
        if wait:
            stack.start([name])
        else:
            start_nowait(stack, name)
    finally:
        stack.env = saved


def start_nowait(stack, name):
    for n, binary, off in kc.SERVICES:
        if n != name:
            continue
        args = [os.path.join(kc.BIN, binary), "--ops.listen",
                "127.0.0.1:%d" % (stack.ops_base + off)]
        if name == "intake":
            args += ["--http.listen", "127.0.0.1:%d" % stack.http_port]
        args += stack.extra.get(name, [])
        logf = open(os.path.join(stack.logdir, name + ".log"), "ab")
        stack.procs[name] = subprocess.Popen(args, stdout=logf, stderr=logf, env=stack.env,
                                             stdin=subprocess.DEVNULL)
        logf.close()


def ready(stack, name):
    try:
        with urllib.request.urlopen(stack.ops_url(name, "/readyz"), timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Load:
    """Complaints at a steady rate; every acknowledged case is remembered.

    A request that got no answer (connection refused while intake restarts,
    reset, timeout) or a 503 is retried with the same Idempotency-Key after
    Retry-After (or a short pause): the same complaint, never a second case.
    """

    def __init__(self, api, token, rate, threads=4, pii=True):
        self.api, self.token, self.rate = api, token, rate
        self.threads = threads
        self.msgs = kc.load_messages(400, 100)
        self.run = uuid.uuid4().hex[:8]
        self.acked = {}          # case_no -> {"id", "code", "name", "phone", "key"}
        self.status = {}         # HTTP status -> count
        self.retries = 0
        self.retry_after = []    # Retry-After values seen on 503
        self.errors_503 = []     # error bodies of 503s
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.seq = 0
        self.pii = pii
        self.t0 = self.t1 = None
        self.workers = []

    def _next(self):
        with self.lock:
            i = self.seq
            self.seq += 1
        return i

    def _body(self, i):
        m = self.msgs[i % len(self.msgs)]
        name = "故障测试%s%d" % (self.run[:4], i)
        phone = "139%08d" % ((int(self.run[:6], 16) * 7 + i) % 10**8)
        body = m["body"] + (" 联系电话%s" % phone if i % 2 == 0 else "")
        ch = ("web", "app", "phone")[i % 3]
        req = {"channel": ch, "title": m["title"], "body": body, "language": m["language"]}
        if ch == "phone":
            req.update({"call_id": "call-%s-%d" % (self.run, i), "agent_id": "A%03d" % (i % 40)})
        if self.pii:
            req["complainant"] = {"name": name, "phone": phone}
        return req, name, phone

    def _submit(self, i):
        req, name, phone = self._body(i)
        key = "fault-%s-%d" % (self.run, i)
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                st, js, hdr = self.api.call("POST", "/v1/complaints", req, token=self.token,
                                            headers={"Idempotency-Key": key})
            except (urllib.error.URLError, OSError, ValueError):
                st, js, hdr = None, None, {}
            with self.lock:
                self.status[st] = self.status.get(st, 0) + 1
            if st in (200, 201):
                with self.lock:
                    self.acked[js["case_no"]] = {"id": js["case_id"], "code": js["access_code"],
                                                 "name": name, "phone": phone, "key": key,
                                                 "first": st}
                return
            if st is not None and st < 500 and st != 429:
                check(False, "submit %s: %s %s" % (key, st, js))
                return
            if st == 503:
                with self.lock:
                    self.retry_after.append(hdr.get("Retry-After"))
                    self.errors_503.append(js)
            with self.lock:
                self.retries += 1
            pause = 0.5
            try:
                pause = min(float(hdr.get("Retry-After") or 0.5), 2.0)
            except ValueError:
                pass
            time.sleep(pause)
        check(False, "submit %s: no answer in 180 s" % key)

    def _worker(self, period):
        nxt = time.time()
        while not self.stop_ev.is_set():
            self._submit(self._next())
            nxt += period
            delay = nxt - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.time()

    def start(self):
        self.t0 = time.time()
        period = self.threads / float(self.rate)
        for _ in range(self.threads):
            t = threading.Thread(target=self._worker, args=(period,), daemon=True)
            t.start()
            self.workers.append(t)

    def stop(self):
        self.stop_ev.set()
        for t in self.workers:
            t.join(timeout=200)
        self.t1 = time.time()

    def held_rate(self):
        return len(self.acked) / max(self.t1 - self.t0, 0.001)


def wait_assigned(cases, timeout, pg=None):
    """Every acknowledged case has reached assigned (the end of the automatic line)."""
    ids = [c["id"] for c in cases.values()]

    def done():
        if not ids:
            return True
        rows = psql("SELECT count(*) FROM cases WHERE id = ANY('{%s}'::uuid[]) "
                    "AND status = 'assigned'" % ",".join(ids), pg=pg)
        return int(rows[0][0]) == len(ids)

    return kc.wait_for(done, timeout, "every acknowledged case assigned", interval=1)


def explicit_checks(cases, pg=None, stack=None):
    """Checks the test states in its own words, besides kesuctl verify:
    every acknowledged case is there, every stage applied its event once,
    one acknowledgement per case, the public feed gap-free per case.
    Returns (lost, applied_twice)."""
    ids = [c["id"] for c in cases.values()]
    lost = twice = 0
    if not ids:
        return 0, 0
    arr = "'{%s}'::uuid[]" % ",".join(ids)
    present = {r[0] for r in psql("SELECT id FROM cases WHERE id = ANY(%s)" % arr, pg=pg)}
    for no, c in cases.items():
        if c["id"] not in present:
            lost += 1
            check(False, "acknowledged case %s is missing" % no)
    # the automatic line: each event exactly once per case
    rows = psql("SELECT case_id, event_type, count(*) FROM case_events WHERE case_id = ANY(%s) "
                "AND event_type IN ('CaseReceived','CaseClassified','CaseAssigned') "
                "GROUP BY 1, 2" % arr, pg=pg)
    per = {}
    for cid, et, n in rows:
        per.setdefault(cid, {})[et] = int(n)
        if int(n) > 1:
            twice += 1
            check(False, "case %s has %s x %s" % (cid, n, et))
    for cid in present:
        for et in ("CaseReceived", "CaseClassified", "CaseAssigned"):
            if per.get(cid, {}).get(et, 0) == 0:
                lost += 1
                check(False, "case %s never got %s" % (cid, et))
    # the complainant told once: one acknowledgement notice per case and channel
    rows = psql("SELECT n.case_id, n.channel, n.audience, count(*) FROM notifications n "
                "JOIN case_events e ON e.event_id = n.trigger_event_id "
                "WHERE n.case_id = ANY(%s) AND e.event_type = 'CaseReceived' "
                "AND n.audience = 'complainant' GROUP BY 1, 2, 3" % arr, pg=pg)
    acked = {}
    for cid, ch, aud, n in rows:
        acked[cid] = acked.get(cid, 0) + 1
        if int(n) > 1:
            twice += 1
            check(False, "case %s: %s acknowledgements on %s" % (cid, n, ch))
    check(len(acked) == len(present), "acknowledgement notices for %d of %d cases"
          % (len(acked), len(present)))
    # the public feed, per case: first copies are seq 1..n of the history
    hist = {}
    for cid, n in psql("SELECT case_id, count(*) FROM case_events WHERE case_id = ANY(%s) "
                       "GROUP BY 1" % arr, pg=pg):
        hist[cid] = int(n)
    feed = {}
    for e in kc.tail("kesu.public.v1", timeout_ms=3000):
        if e.get("case_id") in hist:
            feed.setdefault(e["case_id"], []).append(e)
    for cid, n in hist.items():
        evs = sorted(feed.get(cid, []), key=lambda e: (e["_partition"], e["_offset"]))
        seen, seqs = set(), []
        for e in evs:
            if e["event_id"] not in seen:
                seen.add(e["event_id"])
                seqs.append(e.get("case_seq"))
        check(seqs == list(range(1, n + 1)), "case %s public feed %s, history has %d"
              % (cid, seqs[:20], n))
    return lost, twice


def verify(since_ms, wait=120, pg=None, env=None):
    """kesuctl verify over this run's cases; returns its JSON summary."""
    e = dict(os.environ, KESU_PG=pg or kc.PG, KESU_KAFKA_BOOTSTRAP_SERVERS=kc.KAFKA)
    e.update(env or {})
    out = subprocess.run([os.path.join(kc.BIN, "kesuctl"), "verify", "--since", str(since_ms),
                          "--wait", str(wait), "--json"], capture_output=True, text=True, env=e,
                         check=False)
    try:
        summary = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        summary = {"discrepancies": -1}
    check(out.returncode == 0, "kesuctl verify exit %d:\n%s%s" % (out.returncode, out.stderr,
                                                                    out.stdout))
    kc.log("kesuctl verify: %s" % json.dumps(summary))
    return summary


def figures(scenario, load, faults, lost, twice, summary, **extra):
    fig = {"scenario": scenario, "held_cases_per_s": round(load.held_rate(), 1),
           "faults_injected": faults, "cases_acknowledged": len(load.acked),
           "lost": lost, "applied_twice": twice,
           "verify_discrepancies": summary.get("discrepancies"),
           "feed_republished": summary.get("feed_republished"),
           "http": {str(k): v for k, v in load.status.items()}, "retries": load.retries}
    fig.update(extra)
    print("FIGURES " + json.dumps(fig, ensure_ascii=False), flush=True)
    return fig


def finish(stack, load, name, faults, since, pg=None, assign_timeout=180, **extra):
    wait_assigned(load.acked, assign_timeout, pg=pg)
    summary = verify(since, pg=pg)  # waits for the feed and the outboxes to drain
    lost, twice = explicit_checks(load.acked, pg=pg, stack=stack)
    check(lost == 0, "lost %d" % lost)
    check(twice == 0, "applied twice %d" % twice)
    return figures(name, load, faults, lost, twice, summary, **extra)


def run(main):
    """Run a test body; stop whatever it started; exit 1 on any failure."""
    stacks = []
    try:
        main(stacks)
    except Exception as e:  # report, then clean up
        import traceback
        traceback.print_exc()
        failures.append("exception: %s" % e)
    finally:
        for s in stacks:
            codes = s.stop()
            bad = {k: v for k, v in codes.items() if v not in (0, -9, 137)}
            if bad:
                kc.log("services exited with %s; logs in %s" % (bad, s.logdir))
            s.delete_topics()
    if failures:
        kc.log("%d failures" % len(failures))
        sys.exit(1)
    kc.log("OK")


def seed(n):
    random.seed(n)


class Private:
    """A private Kafka broker or PostgreSQL cluster (scripts/infra.sh kafka-up / pg-up with
    its own KESU_RUN and ports), so that the shared instances others use are never stopped."""

    def __init__(self, kind, port):
        self.kind = kind  # "kafka" or "pg"
        self.run = "/tmp/kesu-fault-%s-%s" % (kind, uuid.uuid4().hex[:8])
        os.makedirs(self.run, mode=0o755)
        os.chmod(self.run, 0o755)
        self.env = dict(os.environ, KESU_RUN=self.run)
        if kind == "kafka":
            self.env.update({"KESU_BROKER_PORT": str(port),
                             "KESU_BROKER_CONTROLLER_PORT": str(port + 1)})
            self.address = "127.0.0.1:%d" % port
        else:
            self.env["KESU_PG_PORT"] = str(port)
            self.env.pop("KESU_PG", None)
            self.address = "host=127.0.0.1 port=%d dbname=kesu user=postgres" % port
        self.script = os.path.join(HERE, "..", "..", "scripts", "infra.sh")

    def _do(self, what):
        t0 = time.time()
        out = subprocess.run(["bash", self.script, "%s-%s" % (self.kind, what)], env=self.env,
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError("infra.sh %s-%s: %s%s" % (self.kind, what, out.stdout, out.stderr))
        if self.kind == "pg" and os.path.islink(os.path.join(self.run, "pg")):
            raise RuntimeError("private PostgreSQL was placed outside %s" % self.run)
        return time.time() - t0

    def up(self):
        return self._do("up")

    def down(self):
        return self._do("down")

    def destroy(self):
        try:
            self.down()
        finally:
            subprocess.run(["rm", "-rf", self.run], check=False)
