#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz (built by `make fuzz-build` into $FUZZ_BUILD).
#   scripts/fuzz.sh smoke          each target over its committed seed corpus, then 20 s of
#                                  fuzzing from it (CI: a crash found once stays found)
#   scripts/fuzz.sh run SECONDS    each target for SECONDS, growing a working corpus in
#                                  $FUZZ_WORK (the committed seeds are copied in first)
# A crash leaves the input in $FUZZ_WORK/<target>/artifacts/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
seconds=${2:-20}
build=${FUZZ_BUILD:-build-fuzz}
work=${FUZZ_WORK:-$build/fuzz-work}
targets=(packet_path control_line apply_reader manifests cni dns heartbeat)
[ "$mode" = smoke ] && seconds=${FUZZ_SMOKE_SECONDS:-20}

status=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: $bin is not built (make fuzz-build)" >&2; exit 1; }
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp -n tests/fuzz/corpus/"$t"/* "$work/$t/corpus/" 2>/dev/null || true
  echo "== fuzz_$t: ${seconds}s from $(ls "$work/$t/corpus" | wc -l) inputs"
  log="$work/$t/log.txt"
  # -rss_limit_mb: the daemon-like targets keep state between inputs; a leak shows as growth.
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
       -artifact_prefix="$work/$t/artifacts/" -print_final_stats=1 \
       "$work/$t/corpus" tests/fuzz/corpus/"$t" >"$log" 2>&1; then
    grep -E 'stat::number_of_executed_units|cov:' "$log" | tail -2 | sed 's/^/   /'
  else
    status=1
    echo "fuzz_$t FAILED; the last lines of $log:" >&2
    tail -40 "$log" >&2
    ls "$work/$t/artifacts/" >&2
  fi
done
exit $status
