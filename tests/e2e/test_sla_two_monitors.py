"""End to end: two real kesu-sla-monitor processes (same consumer group, own ops
ports) share one database. N timers fall due over a few seconds; every one must
breach exactly once (one SlaBreached + one CaseEscalated in the case history, one
`breach` row in sla_timer_log) and within a few seconds of its due time - also
when one monitor is killed with SIGKILL mid-run and started again.

The timers are inserted directly (calendar time, warnings already counted), so the
test measures the scan and its locking, not the policy.
"""
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

N = int(os.environ.get("KESU_SLA_E2E_TIMERS", "300"))
SPREAD_MS = int(os.environ.get("KESU_SLA_E2E_SPREAD_MS", "12000"))
PORTS = (int(os.environ.get("KESU_SLA_E2E_OPS_A", "19711")),
         int(os.environ.get("KESU_SLA_E2E_OPS_B", "19712")))
MAX_LAG_S = 5.0  # "within a few seconds": a scan every second, plus the SIGKILL gap

failures = []
PROCS = {}


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def start(stack, i, group):
    logf = open(os.path.join(stack.logdir, "sla-monitor-%d.log" % i), "ab")
    PROCS[i] = subprocess.Popen(
        [os.path.join(kc.BIN, "kesu-sla-monitor"), "--ops.listen", "127.0.0.1:%d" % PORTS[i],
         "--group", group], stdout=logf, stderr=logf, env=stack.env, stdin=subprocess.DEVNULL)
    logf.close()
    deadline = time.time() + 60
    while True:
        if PROCS[i].poll() is not None:
            raise RuntimeError("sla-monitor %d exited with %d" % (i, PROCS[i].returncode))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % PORTS[i], timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.time() > deadline:
            raise RuntimeError("sla-monitor %d not ready" % i)
        time.sleep(0.2)


def fired(i):
    """kesu_sla_timers_fired_total{what="breach"} of monitor i (since its start)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % PORTS[i], timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith('kesu_sla_timers_fired_total{what="breach"}'):
                    return int(float(line.split()[-1]))
    except (urllib.error.URLError, OSError):
        pass
    return -1


def main():
    stack = kc.Stack(ops_base=19700)
    kc.log("logs in " + stack.logdir)
    run = uuid.uuid4().hex[:8]
    prefix = "SLA2-%s-" % run
    group = "kesu-sla-monitor-e2e-%s" % run
    for i in (0, 1):
        start(stack, i, group)

    # N assigned cases, each with an accept timer due in [3 s, 3 s + SPREAD_MS)
    kc.psql("""
INSERT INTO cases (id, case_no, access_code_hash, channel, title, body, trace_id,
                   request_type, urgency)
SELECT gen_random_uuid(), '%(p)s' || g, '\\x00'::bytea, 'web', 't', 'b', 'e2e-sla2',
       'complaint', 'normal' FROM generate_series(1, %(n)d) g;
UPDATE cases SET status = 'classified' WHERE case_no LIKE '%(p)s%%';
UPDATE cases SET status = 'assigned', department = 'd_sla2', dispatch_attempt = 1
 WHERE case_no LIKE '%(p)s%%';
INSERT INTO sla_timers (case_id, kind, cycle, started_at, due_at, state, limit_spec, work,
                        total_ms, used_ms, anchor_at, escalate_ms, next_at, warned, department,
                        request_type, urgency)
SELECT id, 'accept', 1, d - interval '10 minutes', d, 'running', '10m', false, 600000, 0,
       d - interval '10 minutes', 86400000, d, 2, 'd_sla2', 'complaint', 'normal'
  FROM (SELECT id, now() + interval '3 seconds'
               + (row_number() OVER (ORDER BY id) - 1) * interval '%(step)d microseconds' AS d
          FROM cases WHERE case_no LIKE '%(p)s%%') x;
""" % {"p": prefix, "n": N, "step": SPREAD_MS * 1000 // N})
    ids_sql = "SELECT id FROM cases WHERE case_no LIKE '%s%%'" % prefix
    t0 = time.time()

    # mid-run: monitor 0 dies without a goodbye (its open transaction, its locks, its
    # consumer-group seat), then comes back
    time.sleep(3 + SPREAD_MS / 2000.0)
    before = [fired(0), fired(1)]
    PROCS[0].send_signal(signal.SIGKILL)
    PROCS[0].wait()
    kc.log("killed monitor 0 after %.1fs (breaches so far: %s)" % (time.time() - t0, before))
    time.sleep(1)
    start(stack, 0, group)

    def all_breached():
        rows = kc.psql("SELECT count(*) FROM sla_timers WHERE case_id IN (%s) AND "
                       "breached_at IS NOT NULL" % ids_sql)
        return int(rows[0][0]) == N

    kc.wait_for(all_breached, 60, "every timer breached", interval=0.5)
    time.sleep(3)  # a few more scans of both: nothing may fire again
    after = [fired(0), fired(1)]
    kc.log("breach firings: before the kill %s, after the restart %s" % (before, after))

    rows = kc.psql("SELECT t.case_id, (SELECT count(*) FROM case_events e WHERE e.case_id = "
                   "t.case_id AND e.event_type = 'SlaBreached'), (SELECT count(*) FROM "
                   "case_events e WHERE e.case_id = t.case_id AND e.event_type = "
                   "'CaseEscalated'), (SELECT count(*) FROM sla_timer_log l WHERE l.case_id = "
                   "t.case_id AND l.action = 'breach'), extract(epoch FROM t.breached_at - "
                   "t.due_at), t.state, t.breach_count FROM sla_timers t WHERE t.case_id IN "
                   "(%s)" % ids_sql)
    check(len(rows) == N, "%d timers, expected %d" % (len(rows), N))
    lags = []
    for r in rows:
        check(r[1:4] == ["1", "1", "1"],
              "timer of %s: SlaBreached/CaseEscalated/log rows %s, expected one each"
              % (r[0], r[1:4]))
        check(r[5] == "breached" and r[6] == "1", "timer of %s: %s/%s" % (r[0], r[5], r[6]))
        lags.append(float(r[4]))
    lags.sort()
    if lags:
        kc.log("fired after due: min %.3fs, median %.3fs, p99 %.3fs, max %.3fs"
               % (lags[0], lags[len(lags) // 2], lags[int(len(lags) * 0.99) - 1], lags[-1]))
        check(lags[0] >= 0, "a timer fired %.3fs before its due time" % lags[0])
        check(lags[-1] <= MAX_LAG_S, "a timer fired %.3fs after its due time" % lags[-1])

    # the events left through the outbox; then the test's rows go
    def outbox_empty():
        r = kc.psql("SELECT count(*) FROM outbox WHERE msg_key IN (SELECT id::text FROM cases "
                    "WHERE case_no LIKE '%s%%')" % prefix)
        return int(r[0][0]) == 0

    kc.wait_for(outbox_empty, 30, "the breaches published")
    for i in (0, 1):
        PROCS[i].send_signal(signal.SIGTERM)
    codes = [PROCS[i].wait(timeout=30) for i in (0, 1)]
    check(codes == [0, 0], "clean exit codes: %s" % codes)
    kc.psql("""
DELETE FROM sla_timer_log WHERE case_id IN (%(ids)s);
DELETE FROM sla_timers WHERE case_id IN (%(ids)s);
DELETE FROM case_events WHERE case_id IN (%(ids)s);
DELETE FROM cases WHERE case_no LIKE '%(p)s%%';
""" % {"ids": ids_sql, "p": prefix})
    stack.delete_topics()
    kc.finish(failures, "%d timers, two monitors, one killed: %d checks failed"
              % (N, len(failures)), limit=30)


def kill_all():
    for p in PROCS.values():
        if p.poll() is None:
            p.kill()
            p.wait()


if __name__ == "__main__":
    kc.run_main(main, cleanup=kill_all)
