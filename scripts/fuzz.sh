#!/usr/bin/env bash
# Fuzz every decoder of outside input for a bounded time (issue 7 item 6).
#   scripts/fuzz.sh [seconds-per-target]      (default 20)
# Configures build-fuzz (or $KESU_FUZZ_BUILD_DIR) with clang and -DKESU_FUZZ=ON,
# the whole tree instrumented (-fsanitize=fuzzer-no-link,address,undefined), builds
# the tests/fuzz/fuzz_*.c targets and runs each over its seeds in
# tests/fuzz/corpus/<target>/. New inputs go to a scratch corpus in the build dir,
# never into git; a crash leaves its input in build-fuzz/artifacts/ and makes the
# script exit 1 (add the input to the seeds once the bug is fixed).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

secs="${1:-20}"
[[ "$secs" =~ ^[0-9]+$ ]] || die "seconds must be a whole number, got '$secs'"
command -v clang >/dev/null || die "clang not found: apt-get install clang libclang-rt-14-dev"
dir="${KESU_FUZZ_BUILD_DIR:-$KESU_ROOT/build-fuzz}"
mkdir -p "$dir"
# two runs at once (two ctest runs) would rebuild under each other's feet
exec 9>"$dir/.lock"
flock 9

san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
log_step "fuzz build (clang) in $dir"
CC=clang cmake -S "$KESU_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKESU_FUZZ=ON \
  -DCMAKE_C_FLAGS="$san" >"$dir/cmake-configure.log" 2>&1 ||
  { cat "$dir/cmake-configure.log" >&2; die "cmake configure failed"; }
targets=()
for f in "$KESU_ROOT"/tests/fuzz/fuzz_*.c; do
  t="$(basename "$f" .c)"
  targets+=("$t")
done
(( ${#targets[@]} )) || die "no fuzz targets in tests/fuzz"
if ! cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}" >"$dir/cmake-build.log" 2>&1; then
  grep -E -B2 -A6 'error|Error' "$dir/cmake-build.log" | head -80 >&2
  die "fuzz build failed (full log: $dir/cmake-build.log)"
fi

failed=()
mkdir -p "$dir/artifacts"
for t in "${targets[@]}"; do
  seeds="$KESU_ROOT/tests/fuzz/corpus/$t"
  work="$dir/corpus/$t"
  mkdir -p "$work" "$seeds"
  log_step "fuzz $t for ${secs}s ($(find "$seeds" -type f | wc -l) seeds)"
  # detect_leaks: a decoder that leaks per message leaks per Kafka message in production
  if ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$dir/fuzz/$t" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
      -artifact_prefix="$dir/artifacts/$t-" "$work" "$seeds" >"$dir/$t.log" 2>&1; then
    log_info "$(grep -E '^stat::number_of_executed_units' "$dir/$t.log" | tail -1) $(grep -E 'cov:' "$dir/$t.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)"
  else
    grep -E -A30 'ERROR|SUMMARY|runtime error|Test unit written' "$dir/$t.log" | head -60 >&2 || tail -40 "$dir/$t.log" >&2
    failed+=("$t")
  fi
done
if (( ${#failed[@]} )); then
  die "fuzz targets failed: ${failed[*]} (inputs in $dir/artifacts, logs $dir/<target>.log)"
fi
log_step "fuzz: ${#targets[@]} targets clean for ${secs}s each"
