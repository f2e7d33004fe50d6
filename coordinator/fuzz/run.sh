#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints libFuzzer's
# closing stats. Needs cargo-fuzz (`cargo install cargo-fuzz`). The toolchain
# here is stable only: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
export RUSTC_BOOTSTRAP=1
for target in fleet_file agent_message csr; do
  echo "== $target (${seconds}s)"
  cargo fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb|Done [0-9]+ runs|SUMMARY|panicked|deadly signal" || true
done
