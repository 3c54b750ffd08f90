#!/usr/bin/env python3
"""Check every statement of the services at a province's scale (docs/performance.md,
"At a province's scale"; decision 0030).

  scripts/scale_audit.py generate [--cases N]   drop, create and migrate the database
                                                 kesu_scale, fill it (2 million cases over
                                                 365 days by default: ~8 minutes here)
  scripts/scale_audit.py extract                 the exact SQL of every pg_stmt_t in
                                                 services/ and common/ (from the
                                                 preprocessed sources) as JSON on stdout
  scripts/scale_audit.py run [--fix FILE] [--auto] [LABEL...]
                                                 EXPLAIN (ANALYZE, BUFFERS) the statements
                                                 in CASES below on kesu_scale, custom and
                                                 generic plans (or --auto: the plan cache's
                                                 choice after 6 runs), intake's as kesu_api
                                                 under row-level security, each in a
                                                 transaction that is rolled back; one
                                                 summary line per run, plans in
                                                 .run/scale/plans/. --fix: a Python file
                                                 that may set SETUP (SQL run first, e.g. a
                                                 candidate index) and SQL[name] (a rewrite).

KESU_PG names the server (its dbname is replaced by kesu_scale); the build tree is
KESU_BUILD_DIR or build/. Statements with per-event ids take them from the data ("?SELECT ..."
parameters). A line whose seq= names a big table, or whose buffers grow with the data, is
what to look at.
"""
import ast
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KESU_BUILD_DIR") or os.path.join(ROOT, "build")
BASE = os.environ.get("KESU_PG") or "host=127.0.0.1 port=55432 dbname=kesu user=postgres"
DSN = re.sub(r"\bdbname=\S+", "dbname=kesu_scale", BASE)
if "dbname=" not in DSN:
    DSN += " dbname=kesu_scale"
ADMIN = re.sub(r"\bdbname=\S+", "dbname=postgres", DSN)
OUT = os.path.join(ROOT, ".run", "scale")


def extract():
    """name -> {var, file, sql, n} for every `static const pg_stmt_t` of the services."""
    files = sorted(glob.glob(os.path.join(ROOT, "services", "*", "*.c")) +
                   glob.glob(os.path.join(ROOT, "common", "*.c")))
    out = {}
    for f in files:
        if "/kesuctl/" in f:
            continue
        src = open(f, encoding="utf-8").read()
        if "pg_stmt_t" not in src:
            continue
        pp = subprocess.run(["cc", "-E", "-P", '-DKESU_SOURCE_DIR="%s"' % ROOT,
                             "-I" + os.path.join(ROOT, "common"), "-I" + os.path.join(BUILD, "gen"),
                             "-I" + os.path.dirname(f), "-isystem", "/usr/include/postgresql",
                             "-D_GNU_SOURCE", "-std=gnu11", f],
                            capture_output=True, text=True)
        if pp.returncode != 0:
            raise SystemExit("scale_audit: cannot preprocess %s (build first: scripts/build.sh):\n%s"
                             % (f, pp.stderr[-600:]))
        for m in re.finditer(r'static const pg_stmt_t (\w+) = \{\s*((?:"(?:[^"\\]|\\.)*"\s*)+),'
                             r'\s*((?:"(?:[^"\\]|\\.)*"\s*)+),\s*(\d+)\s*\}', pp.stdout):
            lits = lambda g: "".join(ast.literal_eval(x)  # noqa: E731
                                     for x in re.findall(r'"(?:[^"\\]|\\.)*"', g))
            var = m.group(1)
            line = next((i + 1 for i, l in enumerate(src.splitlines())
                         if re.search(r"pg_stmt_t " + var + r" = ", l)), 0)
            out[lits(m.group(2))] = {"var": var, "file": os.path.relpath(f, ROOT) + ":" + str(line),
                                     "sql": lits(m.group(3)), "n": int(m.group(4))}
    return out


now_ms = int(time.time() * 1000)
cut_ms = now_ms - 14 * 86400000
CUT = "%08x-%04x-0000-0000-000000000000" % (cut_ms >> 16, cut_ms & 0xffff)
today = datetime.date.today()
day = lambda d: (today - datetime.timedelta(days=d)).isoformat()  # noqa: E731
ts = lambda d: (datetime.datetime.utcnow() - datetime.timedelta(days=d)).strftime(  # noqa: E731
    "%Y-%m-%dT%H:%M:%SZ")
SUP = ("supervisor", "", "")
H05 = ("handler", "d05", "")
N = None
# label, statement, params, RLS scope (role, department, access hash) or None (service connection)
CASES = [
 ('st_due', 'st_due', [200, now_ms], None),
 ('st_pending', 'st_pending', [], None),
 ('ar_pending_stats', 'ar_pending_stats', [], None),
 ('ar_gaps', 'ar_gaps', [60000], None),
 ('as_retention', 'as_retention', [180, 100], None),
 ('as_counts_fold', 'as_counts_fold', [], None),
 ('as_judge_late', 'as_judge_late', [30, 1000], None),
 ('nt_due', 'nt_due', [20], None),
 ('nt_unrecorded', 'nt_unrecorded', [50], None),
 ('de_catalogue_version', 'de_catalogue_version', [], None),
 ('de_catalogue_doc', 'de_catalogue_doc', [], None),
 ('outbox_lock.full', 'outbox_lock', ['archiver', 500, 0], None),
 ('outbox_count', 'outbox_count', ['archiver'], None),
 ('outbox_delete', 'outbox_delete', ['{1,7,13}', 'intake'], None),
 ('kc_inbox_horizon', 'kc_inbox_horizon', ['notifier', CUT], None),
 ('kc_inbox_purge_chunk', 'kc_inbox_purge_chunk', ['notifier', CUT, 14, 5000], None),
 ('console_counts', 'console_counts', [], SUP),
 ('console_counts.h', 'console_counts', [], H05),
 ('console_sla', 'console_sla', [50], SUP),
 ('console_sla.h', 'console_sla', [50], H05),
 ('console_departments', 'console_departments', [14], SUP),
 ('console_departments.h', 'console_departments', [14], H05),
 ('console_emergencies', 'console_emergencies', [50], SUP),
 ('console_emergencies.h', 'console_emergencies', [50], H05),
 ('console_satisfaction', 'console_satisfaction', [14], SUP),
 ('console_hotspots', 'console_hotspots', [14, 50], SUP),
 # intake_list: statuses, department, category, channel, district, overdue, from, to, cursor_at, cursor_id, scope, limit
 ('list.none', 'intake_list', [N, N, N, N, N, N, N, N, N, N, N, 51], SUP),
 ('list.received', 'intake_list', ['{received}', N, N, N, N, N, N, N, N, N, N, 51], SUP),
 ('list.dept_open', 'intake_list', ['{assigned,accepted,in_progress}', 'd05', N, N, N, N, N, N, N, N, N, 51], SUP),
 ('list.handler', 'intake_list', [N, N, N, N, N, N, N, N, N, N, 'd05', 51], H05),
 ('list.handler_open', 'intake_list', ['{assigned,accepted,in_progress,returned,reopened}', N, N, N, N, N, N, N, N, N, 'd05', 51], H05),
 ('list.overdue', 'intake_list', [N, N, N, N, N, 'true', N, N, N, N, N, 51], SUP),
 ('list.handler_overdue', 'intake_list', [N, N, N, N, N, 'true', N, N, N, N, 'd05', 51], H05),
 ('list.category_month', 'intake_list', [N, N, 'cat7', N, N, N, day(30), N, N, N, N, 51], SUP),
 ('list.district_rejected', 'intake_list', ['{rejected}', N, N, N, '110150', N, N, N, N, N, N, 51], SUP),
 ('list.withdrawn_day', 'intake_list', ['{withdrawn}', N, N, N, N, N, day(200), day(200), N, N, N, 51], SUP),
 ('stats.month', 'api_stats_json', [day(29), day(0), '{department}'], SUP),
 ('stats.csv_week', 'api_stats_csv', [day(6), day(0), '{day,department}'], SUP),
 ('archive_get', 'api_archive_get', ['K0000100000', ''], SUP),
 ('archive_range', 'api_archive_range', [day(100), day(100), 100, 0, "?SELECT (extract(epoch FROM ('%s'::date)::timestamp AT TIME ZONE 'Asia/Shanghai') * 1000000)::bigint" % day(100), '', 0], SUP),
 ('archive_range.p50', 'api_archive_range', [day(100), day(100), 100, 5000, "?SELECT (extract(epoch FROM ('%s'::date)::timestamp AT TIME ZONE 'Asia/Shanghai') * 1000000)::bigint" % day(100), '', 0], SUP),
 # the same page by cursor: the 5,000th record of the day (µs, case_no, version)
 ('archive_range.cursor50', 'api_archive_range', [day(100), day(100), 100, 0] + [
     "?SELECT %s FROM archive_records WHERE closed_at >= ('%s'::date)::timestamp AT TIME ZONE "
     "'Asia/Shanghai' ORDER BY closed_at, case_no, case_version OFFSET 4999 LIMIT 1" % (col, day(100))
     for col in ("(extract(epoch FROM closed_at) * 1000000)::bigint", "case_no", "case_version")], SUP),
 ('case_staff', 'intake_case_staff', ['K0001999000', N], SUP),
 ('history', 'intake_history', ['K0001999000', N], SUP),
 ('sv_case', 'sv_case', ['K0001999000'], SUP),
 ('sv_timers', 'sv_timers', ['00000000-0000-0000-0000-000000000000'], SUP),
 ('sv_log', 'sv_log', ['00000000-0000-0000-0000-000000000000'], SUP),
 ('o311_requests', 'open311_requests_public', [N, ts(90), ts(0), N, N], None),
 ('o311_requests.status', 'open311_requests_public', [N, ts(90), ts(0), N, '{received}'], None),
 ('o311_updates', 'open311_updates_public', [ts(90), ts(0)], None),
 ('o311_updates.day', 'open311_updates_public', [ts(1), ts(0)], None),
 ('auth_token', 'intake_auth_token', ['00'], None),
 ('sv_timers.real', 'sv_timers', ["?SELECT id FROM cases WHERE status = 'assigned' ORDER BY created_at DESC LIMIT 1"], SUP),
 ('sv_log.real', 'sv_log', ["?SELECT id FROM cases WHERE status = 'assigned' ORDER BY created_at DESC LIMIT 1"], SUP),
 ('ev.ar_record', 'ar_record', ["?SELECT id FROM cases WHERE status = 'closed' ORDER BY created_at LIMIT 1", 99, 5, now_ms], None),
 ('ev.dd_candidates', 'dd_candidates', ["?SELECT id FROM cases WHERE status = 'received' ORDER BY created_at DESC LIMIT 1", '110191', 12345, 86400000, 3, 'public_safety'], None),
 ('ev.nt_case', 'nt_case', ["?SELECT id FROM cases WHERE status = 'assigned' ORDER BY created_at DESC LIMIT 1", 'x'], None),
 ('ev.as_closed', 'as_closed', ["?SELECT id FROM cases WHERE status = 'assigned' ORDER BY created_at DESC LIMIT 1", now_ms], None),
 ('ev.de_read_handlers', 'de_read_handlers', ['{d05,d07,d12}'], None),
 # a CaseAssigned's two timers of the newest assigned case (cycle 7: new rows, so the settle
 # look-up runs), as the SLA monitor's batch-end statement writes them (decision 0039)
 ('ev.st_start', 'st_start', ['sla-monitor',
     "?SELECT '{' || id || ',' || id || '}' FROM cases WHERE status = 'assigned' ORDER BY created_at DESC LIMIT 1",
     '{%d,%d}' % (now_ms, now_ms), '{5,5}', '{complaint,complaint}', '{normal,normal}',
     '{accept,resolve}', '{7,7}', '{%d,%d}' % (now_ms + 86400000, now_ms + 15 * 86400000),
     '{24h,15wd}', '{false,true}', '{86400000,1296000000}', '{0,0}',
     '{%d,%d}' % (now_ms + 86400000, now_ms + 15 * 86400000), '{d05,d05}', '{itest,itest}',
     '{"{CaseAccepted}","{CaseResolved,CaseClosed}"}', '{false,true}',
     '{CaseAssigned,CaseAssigned}'], None),
 # a batch's end: one fingerprint and one link (decision 0046)
 ('ev.dd_write_many', 'dd_write_many', ["?SELECT '{' || id || '}' FROM cases WHERE status = 'received' ORDER BY created_at DESC LIMIT 1",
     '{110191}', '{public_safety}', '{12345}',
     "?SELECT '{' || id || '}' FROM cases WHERE status = 'received' ORDER BY created_at DESC LIMIT 1",
     "?SELECT '{' || id || '}' FROM cases WHERE status = 'assigned' ORDER BY created_at DESC LIMIT 1", '{3}'], None),
 # a batch's search at its claim: three new cases in two districts (decision 0046)
 ('ev.dd_candidates_many', 'dd_candidates_many', [
     "?SELECT '{' || string_agg(id::text, ',') || '}' FROM (SELECT id FROM cases WHERE status = 'received' ORDER BY created_at DESC LIMIT 3) c",
     '{110191,110191,110105}', '{12345,-98765,4242}', 86400000, 18], None),
 ('ev.de_record_return', 'de_record_return', ["?SELECT id FROM cases WHERE status = 'assigned' ORDER BY created_at DESC LIMIT 1", "?SELECT id FROM cases WHERE status = 'assigned' ORDER BY created_at DESC OFFSET 1 LIMIT 1", 1, 'd05', 'r', now_ms], None),
]


def psql(sql, dsn=DSN):
    r = subprocess.run(["psql", dsn, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("scale_audit: %s: %s" % (sql, r.stderr.strip()))
    return r.stdout.strip()


def lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


# statements their handler runs with SET LOCAL plan_cache_mode = force_custom_plan
# (services/intake/open311.c): every mode is measured as custom for them
CUSTOM_ONLY = {"open311_updates", "open311_updates_public"}


def script(sql, params, scope, mode, warm, setup):
    # jit = off as in every Kesu session (common/pg.c, decision 0033)
    s = ["\\set ON_ERROR_STOP 1", "BEGIN;", "SET LOCAL plan_cache_mode = '%s';" % mode,
         "SET LOCAL jit = off;", setup]
    if scope:
        s.append("SELECT set_config('role', 'kesu_api', true), set_config('kesu.role', %s, true), "
                 "set_config('kesu.department', %s, true), "
                 "set_config('kesu.access_hash', %s, true) \\g /dev/null"
                 % tuple(lit(x) for x in scope))
    s.append("PREPARE p AS %s;" % sql)
    ex = "EXECUTE p%s" % ("(" + ", ".join(lit(p) for p in params) + ")" if params else "")
    for _ in range(warm):
        s.append("SAVEPOINT w; %s \\g /dev/null\nROLLBACK TO SAVEPOINT w;" % ex)
    s.append("EXPLAIN (ANALYZE, BUFFERS) %s;" % ex)
    s.append("ROLLBACK;")
    return "\n".join(s) + "\n"


def run(args):
    D = extract()
    setup, rewrites, tag, modes = "", {}, "", ("force_custom_plan", "force_generic_plan")
    if args and args[0] == "--fix":
        fix = {"SQL": {}, "SETUP": "", "D": D}
        path = args[1]
        exec(open(path).read(), fix)  # noqa: S102 - the operator's own file
        setup, rewrites, tag = fix["SETUP"], fix["SQL"], "." + os.path.basename(path)[:-3]
        args = args[2:]
    if args and args[0] == "--auto":
        modes, args = ("auto",), args[1:]
    os.makedirs(os.path.join(OUT, "plans"), exist_ok=True)
    looked = {}
    for label, stmt, params, scope in CASES:
        if args and not any(x in label for x in args):
            continue
        if stmt not in D:
            raise SystemExit("scale_audit: no statement %s in the sources (renamed?)" % stmt)
        params = [looked.setdefault(p, psql(p[1:])) if isinstance(p, str) and p.startswith("?")
                  else p for p in params]
        for mode in modes:
            run_mode = "force_custom_plan" if stmt in CUSTOM_ONLY else mode
            sc = script(rewrites.get(stmt, D[stmt]["sql"]), params, scope, run_mode,
                        6 if mode == "auto" else 1, setup)
            r = subprocess.run(["psql", DSN, "-X", "-At", "-f", "-"], input=sc,
                               capture_output=True, text=True)
            out = r.stdout + r.stderr
            name = "%s.%s%s.txt" % (label, mode.replace("force_", "").replace("_plan", ""), tag)
            with open(os.path.join(OUT, "plans", name), "w") as f:
                f.write("-- %s (%s) params %r scope %r\n%s" % (stmt, D[stmt]["file"], params,
                                                               scope, out))
            t = re.search(r"Execution Time: ([\d.]+)", out)
            b = re.search(r"Buffers: ([^\n]+)", out)
            seq = sorted(set(re.findall(r"Seq Scan on (\w+)", out)))
            print("%-24s %-7s %10s ms  seq=%-28s %s%s" % (
                label, mode[6:12] or mode, "%.1f" % float(t.group(1)) if t else "-",
                ",".join(seq), b.group(1)[:80] if b else "", "  ERROR" if "ERROR" in out else ""),
                flush=True)


def generate(args):
    cases = args[args.index("--cases") + 1] if "--cases" in args else "2000000"
    sys.stderr.write("scale_audit: creating kesu_scale (%s cases)\n" % cases)
    psql("DROP DATABASE IF EXISTS kesu_scale WITH (FORCE)", ADMIN)
    psql("CREATE DATABASE kesu_scale", ADMIN)
    subprocess.run([os.path.join(BUILD, "bin", "kesuctl"), "migrate", "--pg", DSN], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["psql", DSN, "-X", "-v", "ON_ERROR_STOP=1", "-v", "n_cases=" + cases,
                    "-f", os.path.join(ROOT, "scripts", "scale", "gen.sql")], check=True)


def main():
    a = sys.argv[1:]
    if not a or a[0] in ("-h", "--help"):
        print(__doc__)
        return
    if a[0] == "extract":
        json.dump(extract(), sys.stdout, indent=1, ensure_ascii=False)
    elif a[0] == "run":
        run(a[1:])
    elif a[0] == "generate":
        generate(a[1:])
    else:
        raise SystemExit("scale_audit: unknown command %r (see --help)" % a[0])


if __name__ == "__main__":
    main()
