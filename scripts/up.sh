#!/usr/bin/env bash
# Bring the whole system up locally: build what is missing, start PostgreSQL
# and Kafka (scripts/infra.sh up: packages, topics, migrations), then the six
# services in the background (logs in .run/logs, PIDs in .run/pids), and wait
# until every /readyz answers. Running it again starts only what is not running.
#   scripts/up.sh            (settings via KESU_* environment, see docs/operations.md)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,7p' "$0"; exit 0; }

kesu_install_packages
bash "$KESU_ROOT/scripts/build.sh"
bash "$KESU_ROOT/scripts/infra.sh" up

mkdir -p "$KESU_RUN/logs" "$KESU_RUN/pids"
# the complainants' contact data is encrypted with this key (AES-256-GCM)
if [[ -z "${KESU_PII_KEY:-}" ]]; then
  if [[ ! -s "$KESU_RUN/pii.key" ]]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' >"$KESU_RUN/pii.key")
    log_info "created a development PII key in $KESU_RUN/pii.key"
  fi
  export KESU_PII_KEY="file:$KESU_RUN/pii.key"
fi
export KESU_PG
export KESU_KAFKA_BOOTSTRAP_SERVERS="${KESU_KAFKA_BOOTSTRAP_SERVERS:-$KESU_KAFKA}"

log_step "services"
for entry in "${KESU_SERVICES[@]}"; do
  read -r name bin ops <<<"$entry"
  pidf="$KESU_RUN/pids/$name.pid"
  if [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    log_info "$name already running (pid $(cat "$pidf"))"
    continue
  fi
  args=(--ops.listen "127.0.0.1:$ops")
  [[ "$name" == intake ]] && args+=(--http.listen "${KESU_HTTP_LISTEN:-127.0.0.1:8080}")
  setsid "$KESU_BUILD_DIR/bin/$bin" "${args[@]}" >>"$KESU_RUN/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pidf"
  log_info "$name started (pid $!, log .run/logs/$name.log)"
done

for entry in "${KESU_SERVICES[@]}"; do
  read -r name bin ops <<<"$entry"
  if ! wait_http "http://127.0.0.1:$ops/readyz" 60; then
    tail -n 20 "$KESU_RUN/logs/$name.log" >&2
    die "$name is not ready; see .run/logs/$name.log"
  fi
done
log_step "all six services ready; public API on http://${KESU_HTTP_LISTEN:-127.0.0.1:8080}"
