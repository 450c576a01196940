// A JavaScript transform that misbehaves on purpose, for the containment tests: its
// config's `behave` says how — "loop" spins forever (the deadline must stop it), "allocate"
// grows arrays of 10 MB buffers without end (the memory cap must stop it), "fetch" tries
// the network (nothing is granted: it must fail), "raise" throws Error("bad row 7");
// anything else passes every column through.

import { emitRows } from "sluice:pipeline/rows@0.2.0";
import * as sluice from "../../../guest-sdk/js/sluice-guest.js";

let behave = null;
let columns = 0;

export const transform = sluice.transform({
  init(config, inputSchema) {
    behave = (JSON.parse(config || "null") ?? {}).behave ?? null;
    columns = sluice.schemaFields(inputSchema).length;
    return { outputSchema: inputSchema, reads: new Uint32Array([]) };
  },
  process(batch) {
    if (behave === "loop") {
      let n = 0;
      for (;;) n++;
    }
    if (behave === "allocate") {
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(10_000_000).fill(1));
    }
    if (behave === "raise") {
      throw new Error("bad row 7");
    }
    const every = [];
    for (let i = 0; i < columns; i++) every.push({ tag: "input", val: i });
    emitRows(undefined, every, undefined);
  },
});
