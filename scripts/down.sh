#!/usr/bin/env bash
# Stop the six services started by scripts/up.sh (by their PID files:
# SIGTERM, then SIGKILL after 20 s). With --all, also stop PostgreSQL and Kafka.
#   scripts/down.sh [--all]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,4p' "$0"; exit 0; }

log_step "stopping services"
for entry in "${KESU_SERVICES[@]}"; do
  read -r name _ _ <<<"$entry"
  pidf="$KESU_RUN/pids/$name.pid"
  [[ -f "$pidf" ]] || continue
  pid="$(cat "$pidf")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log_warn "$name (pid $pid) did not stop in 20 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log_info "$name stopped"
  fi
  rm -f "$pidf"
done
if [[ "${1:-}" == --all ]]; then
  bash "$KESU_ROOT/scripts/infra.sh" down
fi
