#!/bin/sh
# The long fuzzing run behind the figures in the README: every target for SECONDS seconds
# (default 300), one after another on one core, printing libFuzzer's final statistics.
# Needs cargo-fuzz (cargo install cargo-fuzz); runs on stable Rust with --sanitizer none.
set -u
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-300}
for target in transmit apdu tlv cvc keyblob vpcd_frames secure_messaging; do
    mkdir -p "fuzz/corpus/$target"
    [ -d "fixtures/fuzz/$target" ] && cp -n fixtures/fuzz/$target/* "fuzz/corpus/$target/" 2>/dev/null
    echo "== $target"
    cargo fuzz run --sanitizer none -O "$target" -- -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 2>&1 \
        | grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb|cov: |panicked|SUMMARY|Test unit written" | tail -8
done
