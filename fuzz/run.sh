#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 60) with libFuzzer through
# cargo-fuzz, from its committed corpus, one input at most 1 s (libFuzzer's
# -timeout: a campaign measures time, the test suite never does), and print a
# line per target: runs and corpus size. New inputs go to fuzz/work/TARGET
# (not committed; copy the ones worth keeping into fuzz/corpus/TARGET, which
# tests/fuzz_corpus.rs runs in every test run); a crash is left in
# fuzz/artifacts/TARGET and fails the script. cargo-fuzz needs nightly
# flags: RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
#
#   bash fuzz/run.sh 600          # docs/reliability.md's campaign: 10 minutes each
#   bash fuzz/run.sh 30 unpack_tar
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(specs reference attrs_json documents layer_reader unpack_tar)
command -v cargo-fuzz >/dev/null || { echo "needs cargo-fuzz: cargo install cargo-fuzz --locked" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
status=0
for t in "${targets[@]}"; do
  log=$(mktemp)
  mkdir -p "work/$t"
  if cargo fuzz run "$t" "work/$t" "corpus/$t" -- -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' | tail -1)
  echo "$t: $result, ${runs:-?} runs in ${seconds}s, corpus $(ls "corpus/$t" | wc -l) seeds + $(ls "work/$t" | wc -l) found"
  [ "$result" = ok ] || tail -30 "$log" >&2
  rm -f "$log"
done
exit "$status"
