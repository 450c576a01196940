#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of everything input can reach: builds the
# targets in fuzz/ and runs each for SECONDS on its committed corpus (fuzz/corpus/<target>)
# and the inputs of crashes found before (fuzz/regressions/<target>), which must not crash.
# New inputs go to a scratch copy; a crash stops with the input saved under fuzz/artifacts/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     (default: 30 seconds, every target)
#
# Runs on the machine's stable toolchain: no sanitizer (`-s none`; safe Rust needs no ASan
# to find panics, overflows with debug assertions, and allocations past -rss_limit_mb).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(pipeline decode checkpoint guest module_upload expression sql)
fi
if ! cargo fuzz --version 2>/dev/null | grep -q '0\.13\.2'; then
  cargo install --locked cargo-fuzz@0.13.2
fi
# The module upload target starts from a real component, built from source.
bash scripts/build-guests.sh >/dev/null
cargo fuzz build -s none
mkdir -p fuzz/artifacts
for t in "${targets[@]}"; do
  scratch=$(mktemp -d)
  cp -r "fuzz/corpus/$t/." "$scratch/"
  if [ "$t" = module_upload ]; then
    { printf '\000'; cat examples/modules/pass_through.wasm; } > "$scratch/pass_through"
  fi
  dirs=("$scratch" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  max_len=65536
  [ "$t" = module_upload ] && max_len=4194304
  echo "== fuzz $t for ${seconds}s"
  log=$(mktemp)
  set +e
  cargo fuzz run -s none "$t" "${dirs[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len="$max_len" \
    -artifact_prefix="fuzz/artifacts/$t-" -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus)|panicked|ERROR|SUMMARY|Test unit written' "$log" || true
  if [ "$status" != 0 ]; then
    # The panic's message is the line after "panicked at"; the backtrace can push it out of
    # the tail.
    grep -a -A2 'panicked at' "$log" >&2 || true
    tail -n 60 "$log" >&2
  fi
  rm -f "$log"
  rm -rf "$scratch"
  if [ "$status" != 0 ]; then
    echo "fuzz target $t failed (exit $status); the input is in fuzz/artifacts/" >&2
    exit 1
  fi
done
