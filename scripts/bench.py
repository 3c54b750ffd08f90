"""The benchmark behind scripts/bench.sh (see docs/performance.md).

Starts the six services as real processes on their own topics, runs a warm-up,
a measured run as fast as the system goes (sustained end-to-end cases/s: every
case reached `assigned` and its acknowledgement was sent), a run at a fixed
rate for the latency targets, and the classifier's own benchmark; prints one
JSON line with at least e2e_cases_per_s, intake_p99_ms, assign_p99_ms and
classifier_per_s, plus CPU seconds per service per 1,000 cases and peak RSS.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kesu_client as kc  # noqa: E402

WARM = int(os.environ.get("KESU_BENCH_WARMUP", "2000"))
COUNT = int(os.environ.get("KESU_BENCH_COUNT", "20000"))
RATE = int(os.environ.get("KESU_BENCH_RATE", "1000"))
RATE_S = int(os.environ.get("KESU_BENCH_RATE_SECONDS", "20"))
CONN = os.environ.get("KESU_BENCH_CONNECTIONS", "64")
CHANNELS = os.environ.get("KESU_BENCH_CHANNELS", "web,app,phone,letter,walk_in")
# the data's messages name no district; a province's cases do, and only a case with one
# is compared with its neighbours (duplicates, hotspots): spread them over N codes
DISTRICTS = os.environ.get("KESU_BENCH_DISTRICTS", "16")
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / HZ


def wal_lsn():
    """The server's current WAL position: bytes of WAL written between two calls
    is a figure of the database work that does not vary with the host's speed."""
    out = subprocess.run(["psql", kc.PG, "-XAtc", "SELECT pg_current_wal_lsn() - '0/0'"],
                         capture_output=True, text=True, check=True)
    return int(float(out.stdout.strip()))


def _is_postgres(pid):
    try:
        with open("/proc/%s/comm" % pid) as f:
            return f.read().strip() == "postgres"
    except OSError:
        return False


def infra_cpu_seconds():
    """CPU seconds so far of PostgreSQL (every backend, plus what the postmaster
    reaped from exited ones) and of the Kafka broker, from /proc."""
    out = {"postgresql": 0.0, "kafka": 0.0}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                head, tail = f.read().rsplit(")", 1)
            parts = tail.split()
            comm = head.split("(", 1)[1]
            if comm == "postgres":
                kind = "postgresql"
            else:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if b"kafka.Kafka" not in f.read():
                        continue
                kind = "kafka"
        except (OSError, IndexError):
            continue  # gone meanwhile
        t = int(parts[11]) + int(parts[12])
        if kind == "kafka" or not _is_postgres(parts[1]):
            # the broker's reaped threads; the postmaster's exited backends
            t += int(parts[13]) + int(parts[14])
        out[kind] += t / HZ
    return out


def cpu_snapshot(stack):
    """CPU seconds so far of each service process, and of PostgreSQL and the broker."""
    return {n: cpu_seconds(p.pid) for n, p in stack.procs.items()}, infra_cpu_seconds()


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return None


def load(stack, token, *args):
    cmd = [os.path.join(kc.BIN, "kesuctl"), "load", "--api", stack.api.base, "--token", token,
           "--connections", CONN, "--channels", CHANNELS, "--data_dir", kc.DATA,
           "--districts", DISTRICTS] + list(args)
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env=dict(os.environ, KESU_KAFKA_BOOTSTRAP_SERVERS=kc.KAFKA),
                         check=False)
    sys.stderr.write(out.stderr.replace("\r", "\n").splitlines()[-1] + "\n" if out.stderr
                     else "")
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit("bench: kesuctl load gave no figures: %s" % out.stderr[-800:])


def wrk_intake(stack, token, conns, seconds=10):
    """Intake alone under wrk (issue 3's figures): requests/s, p50, p99 at a concurrency."""
    threads = str(min(conns, 4))
    env = dict(os.environ, KESU_BENCH_TOKEN=token, KESU_BENCH_RUN="%d%d" % (time.time(), conns))
    out = subprocess.run(["wrk", "-t", threads, "-c", str(conns), "-d", "%ds" % seconds,
                          "--latency", "-s", os.path.join(kc.ROOT, "scripts", "wrk_intake.lua"),
                          stack.api.base], capture_output=True, text=True, env=env, check=False)
    res = {"connections": conns}
    for line in out.stdout.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            res["requests_per_s"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            v = parts[1]
            ms = float(v[:-2]) if v.endswith("ms") else (float(v[:-2]) / 1000 if v.endswith("us")
                                                          else float(v[:-1]) * 1000)
            res["p%s_ms" % parts[0][:-1]] = round(ms, 2)
        elif "Non-2xx" in line:
            res["non_2xx"] = int(parts[-1])
    return res


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return None


def total_lag(stack):
    lag = 0
    for name in stack.procs:
        base = name.split("#")[0]
        if base == "intake":
            continue
        try:
            url = stack.ops_url(base, "/metrics") if "#" not in name else None
            if not url:
                continue
            with urllib.request.urlopen(url, timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("kesu_consumer_lag{"):
                        lag += float(line.split()[-1])
        except OSError:
            return None
    return lag


STATEMENTS_FILE = os.environ.get("KESU_BENCH_STATEMENTS") or os.path.join(
    kc.ROOT, ".run", "bench-statements.txt")


def statements_reset():
    """Start pg_stat_statements afresh (False when the extension is not there)."""
    out = subprocess.run(["psql", kc.PG, "-XAtc", "SELECT pg_stat_statements_reset()"],
                         capture_output=True, text=True, check=False)
    return out.returncode == 0


def statements_report(cases):
    """The measured run's statements, the costliest first, to STATEMENTS_FILE; returns
    their execution time per case in ms (None without pg_stat_statements). Execution
    time is the backends' time in the statements - CPU, and waits for locks and reads;
    not the commits' WAL flushes."""
    q = ("SELECT round(total_exec_time::numeric / %d, 4), round(calls::numeric / %d, 3), "
         "round((total_exec_time / calls)::numeric, 3), round(rows::numeric / %d, 2), "
         "CASE WHEN toplevel THEN '' ELSE '(nested) ' END || "
         "left(regexp_replace(query, '\\s+', ' ', 'g'), 160) FROM pg_stat_statements "
         "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
         "ORDER BY total_exec_time DESC" % (cases, cases, cases))
    out = subprocess.run(["psql", kc.PG, "-XAt", "-F", "\t", "-c", q],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    rows = [line.split("\t") for line in out.stdout.splitlines() if line]
    # a nested statement's time (a trigger's, a foreign key check's) is its caller's too
    total = sum(float(r[0]) for r in rows if not r[4].startswith("(nested) "))
    os.makedirs(os.path.dirname(STATEMENTS_FILE), exist_ok=True)
    with open(STATEMENTS_FILE, "w") as f:
        f.write("# the measured run's statements (%d cases), pg_stat_statements; per case:\n"
                "# exec_ms  calls  ms_per_call  rows  statement\n" % cases)
        for r in rows[:40]:
            f.write("%8s %6s %8s %7s  %s\n" % tuple(r[:5]))
        f.write("# %.3f ms of statement execution per case in all (%d statements)\n"
                % (total, len(rows)))
        f.write("# (nested): run inside another statement (trigger, foreign key check), "
                "whose time includes it\n")
    sys.stderr.write("bench: the measured run's statements in %s\n" % STATEMENTS_FILE)
    return round(total, 3)


def batch_counts(stack):
    """Per consumer service (first instance): events acted on (consumed less those of
    types it ignores) and batches that wrote, from its /metrics (kesu_events_in_total,
    kesu_events_ignored_total, kesu_batch_apply_seconds_count)."""
    out = {}
    for name in stack.procs:
        if name == "intake" or "#" in name:
            continue
        try:
            with urllib.request.urlopen(stack.ops_url(name, "/metrics"), timeout=2) as r:
                text = r.read().decode()
        except OSError:
            continue
        ev = bt = 0.0
        for line in text.splitlines():
            if line.startswith("kesu_events_in_total"):
                ev += float(line.split()[-1])
            elif line.startswith("kesu_events_ignored_total"):
                ev -= float(line.split()[-1])
            elif line.startswith("kesu_batch_apply_seconds_count"):
                bt += float(line.split()[-1])
        out[name] = (ev, bt)
    return out


def drained(stack, timeout=300):
    """Wait until every stage has finished the work the cases so far caused - no
    consumer lag, no outbox row unpublished, no public-feed event held, no notice
    due - and nothing was written for a second; returns when the last write was
    seen. kesuctl load stops at `assigned` and the acknowledgement, while the
    handlers' notices, the timers and the feed may still be catching up: a run that
    ends with a backlog has not sustained its rate, and the next run would wait
    behind it."""
    q = ("SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM public_feed_pending), "
         "(SELECT count(*) FROM notifications WHERE state = 'pending' AND "
         "next_attempt_at <= now()), (SELECT count(*) FROM case_events), "
         "(SELECT count(*) FROM notifications)")
    deadline = time.time() + timeout
    last, changed = None, time.time()
    while time.time() < deadline:
        out = subprocess.run(["psql", kc.PG, "-XAtc", q], capture_output=True, text=True,
                             check=True).stdout.strip().split("|")
        outbox, feed, due, written = int(out[0]), int(out[1]), int(out[2]), out[3:]
        now = time.time()
        if written != last:
            last, changed = written, now
        if outbox == 0 and feed == 0 and due == 0 and now - changed >= 1.0 and \
                total_lag(stack) == 0:
            return changed
        time.sleep(0.1)
    sys.stderr.write("bench: the stages had not caught up after %d s\n" % timeout)
    return time.time()


def wait_assigned(stack, timeout=30):
    """Until every consumer instance has its partitions (kesu_consumer_partitions > 0)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        waiting = 0
        for name in stack.procs:
            if name == "intake" or "#" in name:  # extra instances: no ops URL here
                continue
            try:
                with urllib.request.urlopen(stack.ops_url(name, "/metrics"), timeout=2) as r:
                    parts = [float(ln.split()[-1]) for ln in r.read().decode().splitlines()
                             if ln.startswith("kesu_consumer_partitions{")]
                waiting += not parts or parts[0] <= 0
            except OSError:
                waiting += 1
        if not waiting:
            return
        time.sleep(0.2)
    sys.stderr.write("bench: not every consumer had partitions after %d s\n" % timeout)


def soak(stack, token, seconds, rate):
    """Steady load for `seconds` in one-minute windows (latency and RSS per window, so drift
    shows), then a 5x burst for 10 s and the time until consumer lag is back to zero."""
    windows = []
    t0 = time.time()
    for w in range(max(1, seconds // 60)):
        r = load(stack, token, "--rate", str(rate), "--duration", "60", "--drain", "60")
        windows.append({
            "minute": w + 1,
            "e2e_cases_per_s": r.get("e2e_cases_per_s"),
            "complete": r.get("complete_measured") == r.get("measured_cases"),
            "intake_p99_ms": r.get("intake_p99_ms"),
            "assign_p50_ms": r.get("assign_p50_ms"),
            "assign_p99_ms": r.get("assign_p99_ms"),
            "ack_p99_ms": r.get("ack_p99_ms"),
            "rss_mb": {n: rss_mb(p.pid) for n, p in stack.procs.items()},
        })
        sys.stderr.write("bench: soak minute %d: %s\n" % (w + 1, json.dumps(windows[-1])))
    sys.stderr.write("bench: burst at %d/s for 10 s\n" % (5 * rate))
    burst = load(stack, token, "--rate", str(5 * rate), "--duration", "10", "--drain", "0")
    t1 = time.time()
    back = None
    while time.time() - t1 < 600:
        lag = total_lag(stack)
        if lag == 0:
            back = round(time.time() - t1, 1)
            break
        time.sleep(1)
    # and until every stage has done the burst's work (notices, timers, the feed)
    caught_up = round(drained(stack) - t1, 1)
    first, last = windows[0]["rss_mb"], windows[-1]["rss_mb"]
    return {
        "soak_seconds": round(time.time() - t0),
        "soak_rate": rate,
        "soak_complete": all(w["complete"] for w in windows),
        "assign_p99_ms_per_minute": [w["assign_p99_ms"] for w in windows],
        "intake_p99_ms_per_minute": [w["intake_p99_ms"] for w in windows],
        "rss_mb_first_last_max": {n: [first[n], last[n], max(w["rss_mb"][n] for w in windows)]
                                  for n in first},
        "windows": windows,
        "burst_rate": 5 * rate,
        "burst_submitted": burst.get("accepted"),
        "lag_zero_after_burst_s": back,
        "caught_up_after_burst_s": caught_up,
    }


def classifier_bench():
    b = os.path.join(kc.BIN, "kesu-classifier")
    out = subprocess.run([b, "bench"], capture_output=True, text=True, check=False,
                         timeout=300)
    for line in reversed(out.stdout.splitlines()):
        try:
            js = json.loads(line)
            if "classifier_per_s" in js:
                return js["classifier_per_s"]
        except ValueError:
            continue
    return None


def main():
    stack = kc.Stack(http_port=int(os.environ.get("KESU_BENCH_HTTP_PORT", "18480")),
                     ops_base=int(os.environ.get("KESU_BENCH_OPS_BASE", "19400")))
    try:
        stack.start()
        # KESU_BENCH_INSTANCES="classifier=3,dispatcher=3": scale-out runs
        for spec in filter(None, os.environ.get("KESU_BENCH_INSTANCES", "").split(",")):
            name, n = spec.split("=")
            for k in range(2, int(n) + 1):
                stack.add_instance(name, k)
        token = kc.token("agent", label="bench")
        # the first case of a fresh system (its groups joined): every stage's first
        # event to each topic
        wait_assigned(stack)
        # what the stack costs while nothing arrives (decision 0029): a province's
        # ordinary day is 1.4 cases a second, so the pipeline is near idle most of it
        idle_s = float(os.environ.get("KESU_BENCH_IDLE_SECONDS", "10"))
        idle0, infra0 = cpu_snapshot(stack)
        sys.stderr.write("bench: idle stack for %g s\n" % idle_s)
        time.sleep(idle_s)
        idle1, infra1 = cpu_snapshot(stack)
        idle = {k: round((infra1[k] - infra0[k]) / idle_s, 3) for k in infra0}
        idle["services"] = round(sum(idle1[n] - idle0[n] for n in idle0) / idle_s, 3)
        first = load(stack, token, "--count", "1")
        sys.stderr.write("bench: warm-up (%d cases)\n" % WARM)
        load(stack, token, "--count", str(WARM))
        drained(stack)  # the measured run starts on a stack with nothing left to do
        # the state of a running system: statistics that know the tables are
        # no longer empty (plans cached while they were pick sequential scans;
        # autovacuum would get there within a minute or two)
        subprocess.run(["psql", kc.PG, "-Xqc", "ANALYZE"], check=True)
        before, infra_before = cpu_snapshot(stack)
        wal_before = wal_lsn()
        batches_before = batch_counts(stack)
        have_statements = statements_reset()
        sys.stderr.write("bench: measured run, as fast as possible (%d cases)\n" % COUNT)
        t0 = time.time()
        full = load(stack, token, "--count", str(COUNT))
        t1 = time.time()
        # the CPU and WAL of all the run's work, the backlog the stages still had
        # when the last case was assigned and acknowledged included
        t2 = drained(stack)
        after, infra_after = cpu_snapshot(stack)
        wal_after = wal_lsn()
        batches_after = batch_counts(stack)
        pg_exec = (statements_report(max(full.get("complete_measured", 0), 1))
                   if have_statements else None)
        sys.stderr.write("bench: every stage caught up %.1f s after the last case completed\n"
                         % max(t2 - t1, 0))
        sys.stderr.write("bench: %d cases/s for %d s (latency)\n" % (RATE, RATE_S))
        steady = load(stack, token, "--rate", str(RATE), "--duration", str(RATE_S))
        rss = {n: peak_rss_mb(p.pid) for n, p in stack.procs.items()}
        soak_s = int(os.environ.get("KESU_BENCH_SOAK_SECONDS", "0"))
        soaked = soak(stack, token, soak_s, RATE) if soak_s > 0 else None
        wrk = []
        if os.environ.get("KESU_BENCH_WRK", "1") == "1":
            for c in (1, 16, 64):
                sys.stderr.write("bench: intake alone, wrk at %d connections\n" % c)
                wrk.append(wrk_intake(stack, token, c))
    finally:
        stack.stop()
        stack.delete_topics()
    done = max(full.get("complete_measured", 0), 1)
    def base(n):
        return n.split("#")[0]
    cpu = {}
    for n in before:
        cpu[base(n)] = cpu.get(base(n), 0) + (after[n] - before[n])
    result = {
        "e2e_cases_per_s": full["e2e_cases_per_s"],
        # the same run until every stage (handlers' notices, timers, the feed) had
        # done its work: the rate all six stages sustained
        "all_stages_cases_per_s": round(COUNT / max(t2 - t0, 0.001), 1),
        "drain_after_complete_s": round(max(t2 - t1, 0), 1),
        "intake_p50_ms": steady["intake_p50_ms"],
        "intake_p99_ms": steady["intake_p99_ms"],
        "assign_p50_ms": steady["assign_p50_ms"],
        "assign_p99_ms": steady["assign_p99_ms"],
        "ack_p99_ms": steady["ack_p99_ms"],
        "first_case_assign_ms": first.get("assign_p50_ms"),
        "instances": os.environ.get("KESU_BENCH_INSTANCES", ""),
        "steady_rate": RATE,
        "steady_e2e_cases_per_s": steady["e2e_cases_per_s"],
        "steady_complete": steady["complete_measured"] == steady["measured_cases"],
        "max_run": {k: full.get(k) for k in ("measured_cases", "complete_measured", "failed",
                                              "sample_errors", "intake_p99_ms", "assign_p99_ms",
                                              "ack_p99_ms")},
        "cpu_s_per_1000_cases": {n: round(v * 1000.0 / done, 2) for n, v in cpu.items()},
        # where the time goes: CPU ms per case of the database, the broker and
        # the six services together during the measured run
        "cpu_ms_per_case": {
            "postgresql": round((infra_after["postgresql"] - infra_before["postgresql"])
                                * 1000.0 / done, 2),
            "kafka": round((infra_after["kafka"] - infra_before["kafka"]) * 1000.0 / done, 2),
            "services": round(sum(cpu.values()) * 1000.0 / done, 2),
        },
        # the measured run's statement execution per case (pg_stat_statements; the
        # statements themselves in STATEMENTS_FILE)
        "pg_exec_ms_per_case": pg_exec,
        "wal_kb_per_case": round((wal_after - wal_before) / 1024.0 / done, 1),
        # the consumer batches of the measured run: events acted on per batch that wrote
        # (one transaction), of each stage's first instance (the fewer, the more each case pays for the
        # batch's statements and commit)
        "events_per_batch": {
            n: round((batches_after[n][0] - batches_before[n][0])
                     / max(batches_after[n][1] - batches_before[n][1], 1), 1)
            for n in batches_after if n in batches_before},
        # CPU seconds per second of the idle stack, before any load
        "idle_cpu_s_per_s": idle,
        "peak_rss_mb": rss,
        "intake_wrk": wrk,
        "soak": soaked,
        "classifier_per_s": classifier_bench(),
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
