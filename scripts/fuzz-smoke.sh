#!/usr/bin/env bash
# A short fuzz smoke run of every cargo-fuzz target (CI). For real fuzzing,
# run a target for longer by hand, e.g.:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run keyset_json -- -max_total_time=600
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz's nightly-only sanitizer flags work on the
# stable toolchain; it is used for the fuzz harness only, never the library.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
for target in keyset_json keyset_binary decrypt streaming_decrypt; do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${SECONDS_PER_TARGET}s"
  log=$(mktemp)
  if ! cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target FAILED" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
  rm -f "$log"
done
