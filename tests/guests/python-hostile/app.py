"""A Python transform that misbehaves on purpose, for the containment tests: its config's
`behave` says how.

- "loop": spins forever in `process` (the deadline must stop it);
- "allocate": grows a list of 10 MB buffers without end (the memory cap must stop it);
- "read-file": opens the host's /etc/hostname (nothing is granted: it must fail);
- "raise": raises ValueError("bad row 7") (the query's error must say so);
- anything else: passes rows through (every column, by `rows.emit_rows`).
"""

import json

from wit_world import exports
from wit_world.exports.transform import Plan
from wit_world.imports import rows

import sluice_guest

SETTINGS = {}


class Transform(exports.Transform):
    def init(self, config: str, input_schema: bytes) -> Plan:
        SETTINGS["behave"] = (json.loads(config or "null") or {}).get("behave")
        SETTINGS["columns"] = len(sluice_guest.schema_fields(input_schema))
        return Plan(output_schema=input_schema, reads=[])

    def process(self, batch) -> None:
        behave = SETTINGS["behave"]
        if behave == "loop":
            n = 0
            while True:
                n += 1
        if behave == "allocate":
            hoard = []
            while True:
                hoard.append(bytearray(10_000_000))
        if behave == "read-file":
            with open("/etc/hostname") as f:
                f.read()
        if behave == "raise":
            raise ValueError("bad row 7")
        rows.emit_rows(None, [rows.ColumnSource_Input(i) for i in range(SETTINGS["columns"])], None)
