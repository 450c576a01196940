"""A Sluice transform written in Python: `SELECT * FROM input WHERE amount >= config.min`.

It asks for the `amount` column only (its plan's `reads`) and answers with a selection:
the host keeps the selected rows of every column from the batch it holds, so nothing but
`amount` crosses into the guest and one bit per row crosses back.

Built into a component by `scripts/build-python-guests.sh` (componentize-py, the world
`transformer` of `wit/`, this SDK's `guest-sdk/python` on the path).
"""

import json

from wit_world import exports
from wit_world.exports.transform import Plan
from wit_world.imports import rows

import sluice_guest


# What `init` decides, for every `process` call (componentize-py makes a new `Transform`
# object per call, so state lives in the module).
SETTINGS = {}


class Transform(exports.Transform):
    def init(self, config: str, input_schema: bytes) -> Plan:
        cfg = json.loads(config or "null") or {}
        SETTINGS["min"] = int(cfg.get("min", 0))
        # The column layout is the pipeline's; this example expects `amount` BIGINT at the
        # index the config names (default 2: `id, city, amount`).
        amount = int(cfg.get("amountColumn", 2))
        SETTINGS["columns"] = int(cfg.get("columns", 3))
        # The output is the input's rows, unchanged in shape: its schema is the input's.
        return Plan(output_schema=input_schema, reads=[amount])

    def process(self, batch) -> None:
        low = SETTINGS["min"]
        amounts = sluice_guest.int64_values(batch, 0)
        keep = sluice_guest.selection(a >= low for a in amounts)
        every_column = [rows.ColumnSource_Input(i) for i in range(SETTINGS["columns"])]
        rows.emit_rows(keep, every_column, None)
