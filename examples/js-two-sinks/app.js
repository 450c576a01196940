// The seeds' foreachBatch pattern as a JavaScript handler, the twin of `examples/two-sinks`
// (Rust) and `examples/python-two-sinks`: every row, tagged with the batch id, to the output
// `config.copy`; rows whose `amount` reaches `config.threshold` also to `config.alerts`; a
// summary file `summaries/batch-<id>.json` in the granted directory. Idempotent on the batch
// id (the host writes outputs with it; the summary is replaced whole). Built by
// `scripts/build-js-guests.sh` (ComponentizeJS, world `handler`).

import { write } from "sluice:pipeline/sinks@0.2.0";
import { writeFile } from "sluice:pipeline/files@0.2.0";
import { write as log } from "sluice:pipeline/log@0.2.0";
import * as sluice from "../../guest-sdk/js/sluice-guest.js";

let settings = null;

export const batchHandler = sluice.handler({
  init(config, inputSchema) {
    const cfg = JSON.parse(config || "null") ?? {};
    const fields = sluice.schemaFields(inputSchema);
    settings = {
      copy: cfg.copy ?? "archive",
      alerts: cfg.alerts ?? "alerts",
      threshold: BigInt(cfg.threshold ?? "9223372036854775807"),
      fields,
      amount: sluice.columnIndex(inputSchema, "amount"),
      tagged: sluice.schema([...fields, { name: "batch_id", type: "int64", nullable: false }]),
    };
  },
  handle(batchId, batch) {
    const n = batch.numRows;
    const ids = (count) => sluice.int64Column(new Array(count).fill(batchId));
    write(settings.copy, settings.tagged, sluice.batch([...batch.nodes, ids(n)]));
    const amounts = sluice.values(batch, settings.amount, "int64");
    const big = [];
    amounts.forEach((a, i) => {
      if (a !== null && a >= settings.threshold) big.push(i);
    });
    if (big.length) {
      const columns = settings.fields.map(({ type }, c) => {
        const vals = sluice.values(batch, c, type);
        return sluice.column(type, big.map((i) => vals[i]));
      });
      write(settings.alerts, settings.tagged, sluice.batch([...columns, ids(big.length)]));
    }
    const summary = JSON.stringify({ batchId: Number(batchId), rows: n, alerts: big.length });
    writeFile(`summaries/batch-${batchId}.json`, new TextEncoder().encode(summary));
    log("info", `batch ${batchId}: ${n} rows, ${big.length} alerts`);
  },
});
