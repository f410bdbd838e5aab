#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time with libFuzzer.
#
# No nightly toolchain can be installed on our machines, so cargo-fuzz runs on the stable toolchain:
# RUSTC_BOOTSTRAP=1 lets it pass its unstable rustc flags, and `--sanitizer none` leaves out
# AddressSanitizer (which needs a nightly-only runtime). Coverage guidance (SanitizerCoverage) still
# works, so the engine is real libFuzzer, not a random-input loop.
#
# Usage: hack/fuzz.sh [target ...]   (default: every target; FUZZ_SECONDS per target, default 60)
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the run; turn it into a regression
# test in crates/core/tests/fuzz_stable.rs (or the crate that owns the code) before fixing it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
cargo_fuzz_version=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  echo "==> installing cargo-fuzz $cargo_fuzz_version from crates.io"
  cargo install --locked --quiet "cargo-fuzz@$cargo_fuzz_version"
fi

cd "$repo/fuzz"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
mkdir -p target
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "==> $target: libFuzzer (cargo-fuzz $cargo_fuzz_version, stable toolchain, no sanitizer) for ${seconds}s"
  if cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"target/$target.log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^Done ' "target/$target.log" | sed 's/^/    /'
  else
    echo "    FAILED: see fuzz/target/$target.log and fuzz/artifacts/$target/"; status=1
  fi
done
exit $status
