#!/usr/bin/env bash
# Build everything into build/ (or $KESU_BUILD_DIR): libkesu, the six
# services, kesuctl and the tests. The Dockerfile runs this same script, so
# the local build and the image cannot drift.
#   scripts/build.sh [--asan] [--release] [extra cmake -D options]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="$KESU_BUILD_DIR"
opts=()
type="RelWithDebInfo"
for a in "$@"; do
  case "$a" in
    --asan) dir="${KESU_ASAN_BUILD_DIR:-$KESU_ROOT/build-asan}"; opts+=(-DKESU_SANITIZE=ON); type=Debug ;;
    --release) type=Release ;;
    -D*) opts+=("$a") ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) die "unknown option $a (see --help)" ;;
  esac
done
log_step "build ($type${opts[*]:+ ${opts[*]}}) in $dir"
mkdir -p "$dir"
cmake -S "$KESU_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "${opts[@]}" >"$dir/cmake-configure.log" 2>&1 ||
  { cat "$dir/cmake-configure.log" >&2; die "cmake configure failed"; }
if ! cmake --build "$dir" -j"$(nproc)" >"$dir/cmake-build.log" 2>&1; then
  grep -E -B2 -A6 'error|Error' "$dir/cmake-build.log" | head -80 >&2
  die "build failed (full log: $dir/cmake-build.log)"
fi
log_info "binaries in $dir/bin"
