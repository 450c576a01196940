"""The seeds' foreachBatch pattern as a Python handler, the twin of `examples/two-sinks`:
every row, tagged with the batch id, goes to the output named `config.copy` (default
"archive"); rows whose `amount` reaches `config.threshold` also go to `config.alerts`
(default "alerts"); and a summary file `summaries/batch-<id>.json` is written in the granted
directory.

Idempotent on the batch id: the host writes the outputs with the engine's batch id (a
replayed id is skipped by sinks that remember ids), and the summary file is replaced whole.

Built by `scripts/build-python-guests.sh` (componentize-py, world `handler`).
"""

import json

from wit_world import exports
from wit_world.imports import files, log, sinks

import sluice_guest
from sluice_guest import Field

SETTINGS = {}


class BatchHandler(exports.BatchHandler):
    def init(self, config: str, input_schema: bytes) -> None:
        cfg = json.loads(config or "null") or {}
        fields = sluice_guest.schema_fields(input_schema)
        SETTINGS["copy"] = cfg.get("copy", "archive")
        SETTINGS["alerts"] = cfg.get("alerts", "alerts")
        SETTINGS["threshold"] = int(cfg.get("threshold", 2**63 - 1))
        SETTINGS["fields"] = fields
        SETTINGS["amount"] = sluice_guest.column_index(input_schema, "amount")
        SETTINGS["tagged"] = sluice_guest.schema(
            [Field(name, kind) for name, kind in fields] + [Field("batch_id", "int64", False)]
        )

    def handle(self, batch_id: int, batch) -> None:
        fields = SETTINGS["fields"]
        n = batch.num_rows
        ids = sluice_guest.int64_column([batch_id] * n)
        # The input's columns as they came, plus the batch id.
        tagged = sluice_guest.batch(list(batch.nodes) + [ids])
        sinks.write(SETTINGS["copy"], SETTINGS["tagged"], tagged)

        amounts = sluice_guest.values(batch, SETTINGS["amount"], "int64")
        big = [i for i, a in enumerate(amounts) if a is not None and a >= SETTINGS["threshold"]]
        if big:
            columns = [
                sluice_guest.column(kind, [vals[i] for i in big])
                for vals, kind in (
                    (sluice_guest.values(batch, c, kind), kind)
                    for c, (_, kind) in enumerate(fields)
                )
            ]
            columns.append(sluice_guest.int64_column([batch_id] * len(big)))
            sinks.write(SETTINGS["alerts"], SETTINGS["tagged"], sluice_guest.batch(columns))

        summary = {"batchId": batch_id, "rows": n, "alerts": len(big)}
        files.write_file(
            f"summaries/batch-{batch_id}.json", json.dumps(summary, separators=(",", ":")).encode()
        )
        log.write(log.Level.INFO, f"batch {batch_id}: {n} rows, {len(big)} alerts")
