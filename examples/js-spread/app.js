// A user-defined aggregate in JavaScript: the spread (largest minus smallest value) of a
// BIGINT column per group, the twin of `examples/python-spread`. A group's state is 16 bytes,
// the smallest and largest value seen (little-endian); empty while it has none. Built by
// `scripts/build-js-guests.sh` (ComponentizeJS, world `aggregator`).

import { emit } from "sluice:pipeline/output@0.2.0";
import * as sluice from "../../guest-sdk/js/sluice-guest.js";

function decode(state) {
  if (state.length !== 16) return null;
  const view = new DataView(state.buffer, state.byteOffset, 16);
  return [view.getBigInt64(0, true), view.getBigInt64(8, true)];
}

function encode([lo, hi]) {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setBigInt64(0, lo, true);
  view.setBigInt64(8, hi, true);
  return out;
}

function widen(span, lo, hi) {
  if (span === null) return [lo, hi];
  return [lo < span[0] ? lo : span[0], hi > span[1] ? hi : span[1]];
}

export const aggregate = sluice.aggregate({
  init(config, inputSchema) {
    const [field] = sluice.schemaFields(inputSchema);
    if (field.type !== "int64") throw new Error(`spread needs a BIGINT column; '${field.name}' is ${field.type}`);
    return sluice.schema([{ name: "spread", type: "int64" }]);
  },
  update(states, groupIds, batch) {
    const spans = states.map(decode);
    const values = sluice.values(batch, 0, "int64");
    groupIds.forEach((g, i) => {
      const v = values[i];
      if (v !== null) spans[g] = widen(spans[g], v, v);
    });
    return spans.map((s) => (s === null ? new Uint8Array(0) : encode(s)));
  },
  merge(a, b) {
    const spanB = decode(b);
    return spanB === null ? a : encode(widen(decode(a), spanB[0], spanB[1]));
  },
  finish(states) {
    const spreads = states.map(decode).map((s) => (s === null ? null : s[1] - s[0]));
    emit(sluice.batch([sluice.int64Column(spreads)]));
  },
});
