#!/usr/bin/env bash
# Builds every guest component — the examples and the test fixtures — from source for
# wasm32-wasip2, and copies them to examples/modules/, where the example pipelines find them.
# The test suite runs this itself; run it by hand before trying an example pipeline.
#
# Each guest is built on its own (-p): the SDK's `transform` and `handler` features select
# one world per component, and building them together would unify the features.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
target="${CARGO_TARGET_DIR:-$PWD/target}/guests"
guests=(from-json key-counter user-profile sessionize burst-alert json-events word-count two-sinks dead-letter filter-project top-k parse-orders pass-through nexmark nexmark-hot-items to-krw hostile-transform hostile-handler hostile-processor hostile-function foreign-world old-sdk-transform)
# From inside examples/ so that examples/.cargo/config.toml (SIMD for guests) applies.
for guest in "${guests[@]}"; do
  (cd examples && cargo build --quiet --locked --target wasm32-wasip2 --release --target-dir "$target" -p "$guest")
done
mkdir -p examples/modules
for guest in "${guests[@]}"; do
  cp "$target/wasm32-wasip2/release/${guest//-/_}.wasm" examples/modules/
done
