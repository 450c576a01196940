#!/usr/bin/env bash
# Builds the JavaScript guest components from source with ComponentizeJS (npm, pinned in
# guest-sdk/js/package-lock.json) into examples/modules/, where the example pipelines and
# the tests find them. Each app is bundled with its SDK first (rolldown, which ComponentizeJS
# brings): a component has no module loader to find `flatbuffers` in node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
sdk="$root/guest-sdk/js"
if [ ! -x "$sdk/node_modules/.bin/componentize-js" ]; then
  npm ci --prefix "$sdk" --no-audit --no-fund --silent
fi
out="${CARGO_TARGET_DIR:-$PWD/target}/js-guests"
mkdir -p "$out" examples/modules
for entry in examples/js-json-events:transformer examples/js-two-sinks:handler \
             examples/js-spread:aggregator tests/guests/js-hostile:transformer; do
  app="${entry%%:*}" world="${entry##*:}"
  name="$(basename "$app" | tr - _)"
  # The WIT interfaces stay imports of the bundle: the component provides them.
  "$sdk/node_modules/.bin/rolldown" "$app/app.js" -o "$out/$name.js" -f esm -p browser \
    --external 'sluice:pipeline/output@0.2.0' --external 'sluice:pipeline/rows@0.2.0' \
    --external 'sluice:pipeline/log@0.2.0' --external 'sluice:pipeline/sinks@0.2.0' \
    --external 'sluice:pipeline/files@0.2.0' >/dev/null
  # From the bundle's own folder: componentize-js names the source relative to the working
  # directory by string prefix, which breaks when one path merely starts like the other.
  (cd "$out" && "$sdk/node_modules/.bin/componentize-js" "$name.js" --wit "$root/wit" \
    --world-name "$world" -d http fetch-event -o "$root/examples/modules/$name.wasm" >/dev/null)
done
