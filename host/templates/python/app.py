"""{{name}}: a Sluice transform in Python, made by `sluice new transform --lang python {{name}}`.

Keeps the rows whose `amount` reaches `config.min` (SQL: WHERE amount >= :min). It reads only
the `amount` column (its plan's `reads`) and answers with a selection: the host keeps the
selected rows of every column, so one bit per row crosses back.
"""

import json

from wit_world import exports
from wit_world.exports.transform import Plan
from wit_world.imports import rows

import sluice_guest

# componentize-py makes a new Transform object per call: what init decides lives here.
SETTINGS = {}


class Transform(exports.Transform):
    def init(self, config: str, input_schema: bytes) -> Plan:
        cfg = json.loads(config or "null") or {}
        SETTINGS["min"] = int(cfg.get("min", 0))
        SETTINGS["columns"] = len(sluice_guest.schema_fields(input_schema))
        amount = sluice_guest.column_index(input_schema, "amount")
        # Rows keep their shape: the output schema is the input's.
        return Plan(output_schema=input_schema, reads=[amount])

    def process(self, batch) -> None:
        low = SETTINGS["min"]
        keep = sluice_guest.selection(a >= low for a in sluice_guest.int64_values(batch, 0))
        every_column = [rows.ColumnSource_Input(i) for i in range(SETTINGS["columns"])]
        rows.emit_rows(keep, every_column, None)
