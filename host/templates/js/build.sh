#!/usr/bin/env bash
# Builds {{crate}}.wasm from app.js with ComponentizeJS (npm, pinned in
# sluice-guest/package-lock.json): the app is bundled with the SDK first (rolldown), since a
# component has no module loader, then componentized and checked as an upload would be.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x sluice-guest/node_modules/.bin/componentize-js ]; then
  npm ci --prefix sluice-guest --no-audit --no-fund --silent
fi
mkdir -p build
sluice-guest/node_modules/.bin/rolldown app.js -o build/app.js -f esm -p browser \
  --external 'sluice:pipeline/rows@0.2.0' --external 'sluice:pipeline/output@0.2.0' \
  --external 'sluice:pipeline/log@0.2.0' >/dev/null
(cd build && ../sluice-guest/node_modules/.bin/componentize-js app.js --wit ../wit \
  --world-name transformer -d http fetch-event -o ../{{crate}}.wasm >/dev/null)
sluice module check {{crate}}.wasm
