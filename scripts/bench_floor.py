"""The design's floor in PostgreSQL: what the rows of one case cost at the least.

scripts/bench.sh measures the pipeline; this measures the rows it has to write.
It makes a fresh database (kesu_floor, the real schema through kesuctl migrate),
then runs scripts/bench_floor.sql under pgbench: each pgbench transaction takes a
batch of 50 new cases through the row work the six stages do per case (counted in
scripts/bench.sh's database from pg_stat_user_tables), a transaction per stage of
set-based statements and a DELETE ... RETURNING per relay pass. No service logic,
no Kafka, no protobuf, no per-event statements: PostgreSQL's CPU per case here is
the lowest the design's rows allow, to hold against cpu_ms_per_case.postgresql.

Run: python3 scripts/bench_floor.py, with KESU_PG naming a database on the server to use
(kesu_floor is made beside it). Settings: KESU_FLOOR_BATCH (cases per statement, 50),
KESU_FLOOR_BATCHES (batches per client, 10,000 cases in all by default), KESU_FLOOR_CLIENTS
(2), KESU_BIN_DIR (where kesuctl is; build-release/bin), KESU_FLOOR_NO_FK (1: drop every
foreign key after the migration, to see what their checks cost).
Prints one JSON line: cases, cases_per_s, pg_cpu_ms_per_case, wal_kb_per_case.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the /proc and WAL readings of scripts/bench.py)
import kesu_client as kc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = int(os.environ.get("KESU_FLOOR_BATCH", "50"))
BATCHES = int(os.environ.get("KESU_FLOOR_BATCHES", str(10000 // BATCH)))
CLIENTS = int(os.environ.get("KESU_FLOOR_CLIENTS", "2"))
BIN = os.environ.get("KESU_BIN_DIR", os.path.join(ROOT, "build-release", "bin"))
NO_FK = os.environ.get("KESU_FLOOR_NO_FK", "0") == "1"


def psql(conn, *sql):
    args = ["psql", conn, "-XAtq", "-v", "ON_ERROR_STOP=1"]
    for s in sql:
        args += ["-c", s]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__.strip())
        return
    base = kc.PG
    floor = " ".join(p for p in base.split() if not p.startswith("dbname=")) + " dbname=kesu_floor"
    print("floor: fresh database kesu_floor", file=sys.stderr)
    psql(base, "DROP DATABASE IF EXISTS kesu_floor WITH (FORCE)", "CREATE DATABASE kesu_floor")
    subprocess.run([os.path.join(BIN, "kesuctl"), "migrate", "--pg", floor], check=True,
                   stdout=subprocess.DEVNULL)
    if NO_FK:
        fks = psql(floor, "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, "
                          "conname) FROM pg_constraint WHERE contype = 'f'").split("\n")
        psql(floor, *[f for f in fks if f])
    psql(floor, "CREATE SEQUENCE floor_batch")
    # the ids of a batch b, time-ordered like the services' (version 7) ids; SQL
    # functions of one expression, inlined where bench_floor.sql uses them
    psql(floor,
         "CREATE FUNCTION floor_case(b bigint, i int) RETURNS uuid IMMUTABLE LANGUAGE sql AS "
         "$$ SELECT (lpad(to_hex(b), 12, '0') || '7' || lpad(to_hex(i), 19, '0'))::uuid $$",
         "CREATE FUNCTION floor_person(b bigint, i int) RETURNS uuid IMMUTABLE LANGUAGE sql AS "
         "$$ SELECT (lpad(to_hex(b), 12, '0') || '4' || lpad(to_hex(i), 19, '0'))::uuid $$",
         "CREATE FUNCTION floor_event(b bigint, i int, k int) RETURNS uuid IMMUTABLE "
         "LANGUAGE sql AS $$ SELECT (lpad(to_hex(b), 12, '0') || '7' || lpad(to_hex(i), 15, '0') "
         "|| lpad(k::text, 4, '0'))::uuid $$",
         "CREATE FUNCTION floor_cases(b bigint, n int) RETURNS uuid[] IMMUTABLE LANGUAGE sql AS "
         "$$ SELECT ARRAY(SELECT floor_case(b, i) FROM generate_series(1, n) i) $$")
    try:  # loaded by scripts/infra.sh: afterwards it shows what each statement cost
        psql(floor, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    except subprocess.CalledProcessError:
        pass
    # one warm-up batch per client, so plans and caches are made before the measurement
    pgbench = ["pgbench", "-n", "-M", "prepared", "-c", str(CLIENTS), "-j", str(CLIENTS),
               "-D", "n=%d" % BATCH, "-f", os.path.join(ROOT, "scripts", "bench_floor.sql")]
    subprocess.run(pgbench + ["-t", "1", floor], check=True, capture_output=True)
    bench.kc.PG = floor
    psql(floor, "ANALYZE")
    try:
        psql(floor, "SELECT pg_stat_statements_reset()")
    except subprocess.CalledProcessError:
        pass
    cases = BATCH * BATCHES * CLIENTS
    print("floor: %d cases in batches of %d, %d clients" % (cases, BATCH, CLIENTS),
          file=sys.stderr)
    cpu0, wal0, t0 = bench.infra_cpu_seconds()["postgresql"], bench.wal_lsn(), time.time()
    subprocess.run(pgbench + ["-t", str(BATCHES), floor], check=True, capture_output=True)
    secs = time.time() - t0
    cpu1, wal1 = bench.infra_cpu_seconds()["postgresql"], bench.wal_lsn()
    n = int(psql(floor, "SELECT count(*) FROM cases WHERE status = 'assigned'").strip())
    left = int(psql(floor, "SELECT count(*) FROM outbox").strip())
    if n != cases + CLIENTS * BATCH or left != 0:
        sys.exit("floor: %d cases assigned (want %d), %d outbox rows left (want 0)"
                 % (n, cases + CLIENTS * BATCH, left))
    print(json.dumps({
        "cases": cases,
        "cases_per_s": round(cases / secs, 1),
        "pg_cpu_ms_per_case": round((cpu1 - cpu0) * 1000 / cases, 3),
        "wal_kb_per_case": round((wal1 - wal0) / 1024 / cases, 1),
    }))


if __name__ == "__main__":
    main()
