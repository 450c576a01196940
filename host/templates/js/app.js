// {{name}}: a Sluice transform in JavaScript, made by `sluice new transform --lang js {{name}}`.
//
// Keeps the rows whose `amount` reaches `config.min` (SQL: WHERE amount >= :min). It reads
// only the `amount` column (its plan's `reads`) and answers with a selection: the host keeps
// the selected rows of every column, so one bit per row crosses back.

import { emitRows } from "sluice:pipeline/rows@0.2.0";
import * as sluice from "./sluice-guest/sluice-guest.js";

let min = 0n;
let columns = 0;

export const transform = sluice.transform({
  init(config, inputSchema) {
    const cfg = JSON.parse(config || "null") ?? {};
    min = BigInt(cfg.min ?? 0);
    columns = sluice.schemaFields(inputSchema).length;
    const amount = sluice.columnIndex(inputSchema, "amount");
    // Rows keep their shape: the output schema is the input's.
    return { outputSchema: inputSchema, reads: new Uint32Array([amount]) };
  },
  process(batch) {
    const keep = Array.from(sluice.int64Values(batch, 0), (a) => a >= min);
    const every = [];
    for (let i = 0; i < columns; i++) every.push({ tag: "input", val: i });
    emitRows(sluice.selection(keep), every, undefined);
  },
});
