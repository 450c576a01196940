#!/usr/bin/env bash
# Builds the Python guest components from source with componentize-py (installed from PyPI
# if missing) into examples/modules/, where the example pipelines and the tests find them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v componentize-py >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'componentize-py==0.25.1'
fi
mkdir -p examples/modules
for app in examples/python-filter; do
  name="$(basename "$app" | tr - _)"
  (cd "$app" && componentize-py -d ../../wit -w transformer componentize app \
     -p . -p ../../guest-sdk/python -o "../modules/$name.wasm" >/dev/null)
done
