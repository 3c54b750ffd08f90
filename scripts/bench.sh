#!/usr/bin/env bash
# The benchmark: build (Release), start PostgreSQL and Kafka, run the six
# services on their own topics, warm up, measure, and print ONE JSON line:
#   e2e_cases_per_s   sustained cases/s through all stages (assigned + acknowledged)
#   all_stages_cases_per_s  the same run until every stage caught up (handlers'
#                     notices, timers, public feed), drain_after_complete_s
#   intake_p99_ms     intake answer time at KESU_BENCH_RATE (default 1000/s)
#   assign_p99_ms     submit -> assigned at that rate
#   classifier_per_s  the classifier's classifications/s on one core
#   cpu_s_per_1000_cases, peak_rss_mb per service; cpu_ms_per_case of PostgreSQL,
#   the broker and the services; wal_kb_per_case; events_per_batch (events each
#   consumer stage acted on per transaction in the measured run); pg_exec_ms_per_case
#   (statement execution; the statements themselves in .run/bench-statements.txt,
#   KESU_BENCH_STATEMENTS: another file)
# It runs on a fresh database, kesu_bench (KESU_BENCH_PG: another, used as is), so
# one run's cases do not slow the next and the demo's database stays as it was;
# pg_stat_statements is reset there, and again before the measured run.
# Settings: KESU_BENCH_COUNT (20000), KESU_BENCH_WARMUP (2000), KESU_BENCH_RATE (1000),
# KESU_BENCH_RATE_SECONDS (20), KESU_BENCH_CONNECTIONS (64), KESU_BENCH_DISTRICTS (16: district
# codes the messages are spread over, so duplicates are searched; 0: none), KESU_BENCH_WRK
# (1: intake alone under wrk at 1/16/64 connections), KESU_BENCH_INSTANCES ("classifier=3,dispatcher=3": scale
# out), KESU_BENCH_SOAK_SECONDS (0; e.g. 600: a steady soak with RSS samples, then a 5x burst
# and the seconds until consumer lag is zero again). Durability stays on:
# fsync and synchronous_commit on, acks=all.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,24p' "$0"; exit 0; }

kesu_install_packages >&2
KESU_BUILD_DIR="${KESU_BENCH_BUILD_DIR:-$KESU_ROOT/build-release}" \
  bash "$KESU_ROOT/scripts/build.sh" --release -DKESU_TESTS=OFF >&2
bash "$KESU_ROOT/scripts/infra.sh" up >&2
export KESU_BIN_DIR="${KESU_BENCH_BUILD_DIR:-$KESU_ROOT/build-release}/bin"
if [[ -n "${KESU_BENCH_PG:-}" ]]; then
  KESU_PG="$KESU_BENCH_PG"
else
  kesu_psql -q -c "DROP DATABASE IF EXISTS kesu_bench WITH (FORCE)" -c "CREATE DATABASE kesu_bench" >&2
  KESU_PG="host=127.0.0.1 port=$KESU_PG_PORT dbname=kesu_bench user=postgres"
  "$KESU_BIN_DIR/kesuctl" migrate --pg "$KESU_PG" >/dev/null
  KESU_PG="$KESU_PG" kesu_psql -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
    -c "SELECT pg_stat_statements_reset()" >/dev/null 2>&1 || true
fi
export KESU_PG KESU_KAFKA
python3 "$KESU_ROOT/scripts/bench.py"
