#!/usr/bin/env bash
# Run every test on this machine, with nothing done by hand first:
#   1. install missing Debian packages, build (build/) and an ASan+UBSan build (build-asan/)
#   2. start PostgreSQL and Kafka (scripts/infra.sh up: topics, migrations), and a
#      fresh database kesu_test for this run (KESU_TEST_PG: use that one instead);
#      each end-to-end test makes its own kesu_e2e_<test> beside it (kesu_client.own_database)
#   3. unit + integration tests under ASan/UBSan (leak checks on)
#   4. the fault tests (crashes, broker and database outages, rebalances, poison) on a
#      build with the test-only fault-injection switch (build-fault/)
#   5. every test (unit, integration, end-to-end with all six services, deployment
#      files) on the normal build; ctest's summary is the last thing printed.
#   scripts/test.sh [ctest args, e.g. -R e2e]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,12p' "$0"; exit 0; }

kesu_install_packages
bash "$KESU_ROOT/scripts/build.sh"
bash "$KESU_ROOT/scripts/infra.sh" up
# services from scripts/up.sh would compete with the tests' own instances
if compgen -G "$KESU_RUN/pids/*.pid" >/dev/null; then
  log_step "stopping the services of scripts/up.sh so the tests run their own"
  bash "$KESU_ROOT/scripts/down.sh"
fi

# a fresh database for every run: what the demo (scripts/up.sh), benchmarks or an
# earlier run left in the default one must not change what the tests see (the
# console's lists, counts over all cases). KESU_TEST_PG names another to use as is.
if [[ -n "${KESU_TEST_PG:-}" ]]; then
  KESU_PG="$KESU_TEST_PG"
else
  log_step "a fresh database for the tests (kesu_test)"
  kesu_psql -q -c "DROP DATABASE IF EXISTS kesu_test WITH (FORCE)" -c "CREATE DATABASE kesu_test"
  KESU_PG="host=127.0.0.1 port=$KESU_PG_PORT dbname=kesu_test user=postgres"
  "$KESU_BUILD_DIR/bin/kesuctl" migrate --pg "$KESU_PG" >/dev/null
fi
export KESU_PG KESU_KAFKA
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$KESU_ROOT/tests/lsan.supp:print_suppressions=0}"

if [[ -z "${KESU_SKIP_ASAN:-}" ]]; then
  bash "$KESU_ROOT/scripts/build.sh" --asan
  log_step "unit + integration tests under ASan/UBSan"
  (cd "$KESU_ROOT/build-asan" && ctest --output-on-failure -L 'unit|integration' "$@")
fi

if [[ -z "${KESU_SKIP_FAULT:-}" ]]; then
  KESU_BUILD_DIR="$KESU_ROOT/build-fault" bash "$KESU_ROOT/scripts/build.sh" -DKESU_FAULT_INJECTION=ON
  # their load leaves thousands of cases behind: a database of their own keeps the
  # other tests' view of the case store as they expect it
  fault_pg="host=127.0.0.1 port=$KESU_PG_PORT dbname=kesu_fault user=postgres"
  kesu_psql -q -c "DROP DATABASE IF EXISTS kesu_fault WITH (FORCE)" -c "CREATE DATABASE kesu_fault"
  "$KESU_ROOT/build-fault/bin/kesuctl" migrate --pg "$fault_pg" >/dev/null
  log_step "fault tests (own database; private broker and database for the outages)"
  (cd "$KESU_ROOT/build-fault" && KESU_PG="$fault_pg" ctest --output-on-failure -L fault "$@")
fi

log_step "all tests"
cd "$KESU_BUILD_DIR"
ctest --output-on-failure "$@"
