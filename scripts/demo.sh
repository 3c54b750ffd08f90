#!/usr/bin/env bash
# Bring everything up (scripts/up.sh: packages, build, PostgreSQL, Kafka,
# migrations, the six services) and run the main job on a demo load of real
# citizen messages from ../shared/data: submit, classify, dispatch, accept,
# resolve, reply, feedback, close, archive; then print cases per status and
# per department. Leaves the system running; scripts/down.sh --all stops it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,6p' "$0"; exit 0; }

bash "$KESU_ROOT/scripts/up.sh"
export KESU_PG KESU_KAFKA KESU_BIN_DIR="$KESU_BUILD_DIR/bin"
log_step "demo load"
python3 "$KESU_ROOT/scripts/demo.py"
log_step "the system is still running: scripts/down.sh --all stops it"
