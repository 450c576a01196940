#!/usr/bin/env bash
# Builds {{crate}}.wasm from app.py with componentize-py (installed from PyPI if missing),
# the SDK in sluice_guest/ and its one dependency (flatbuffers) bundled in.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v componentize-py >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'componentize-py==0.25.1'
fi
if [ ! -f deps/flatbuffers/__init__.py ]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target deps 'flatbuffers==25.2.10'
fi
componentize-py -d wit -w transformer componentize app -p . -p deps -o {{crate}}.wasm
sluice module check {{crate}}.wasm
