#!/usr/bin/env bash
# Builds the Python guest components from source with componentize-py (installed from PyPI
# if missing) into examples/modules/, where the example pipelines and the tests find them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v componentize-py >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'componentize-py==0.25.1'
fi
# The SDK's one dependency, pure Python (Arrow's schemas are flatbuffers), bundled into each
# component from a folder of its own.
deps="${CARGO_TARGET_DIR:-$PWD/target}/python-guest-deps"
if [ ! -f "$deps/flatbuffers/__init__.py" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$deps" 'flatbuffers==25.2.10'
fi
mkdir -p examples/modules
root="$PWD"
# The examples, and the test fixtures (tests/guests/python-*), like scripts/build-guests.sh.
# Each as APP:WORLD.
for entry in examples/python-filter:transformer examples/python-json-events:transformer \
             examples/python-two-sinks:handler examples/python-spread:aggregator \
             tests/guests/python-hostile:transformer; do
  app="${entry%%:*}" world="${entry##*:}"
  name="$(basename "$app" | tr - _)"
  (cd "$app" && componentize-py -d "$root/wit" -w "$world" componentize app \
     -p . -p "$root/guest-sdk/python" -p "$deps" -o "$root/examples/modules/$name.wasm" >/dev/null)
done
