"""The seeds' JSON pipeline as a Python transform, the twin of `examples/json-events` (Rust):

    value_df = events.select(from_json(col("value").cast("string"), schema).alias("value"))
    ... lower(city) as lower_city ... where event in config.events ...
    to_json(named_struct('lower_city', lower_city, 'domain', domain, 'behavior', behavior)) as value

Input: a string column `value` holding `{"city": .., "domain": .., "event": ..}`.
Output: a string column `value` holding `{"lower_city": .., "domain": .., "behavior": ..}`,
for the rows whose event is one of `config.events` (all events when not configured).

Built by `scripts/build-python-guests.sh` (componentize-py, world `transformer`).
"""

import json

from wit_world import exports
from wit_world.exports.transform import Plan
from wit_world.imports import output

import sluice_guest
from sluice_guest import Field

# What `init` decides, for every `process` call (componentize-py makes a new `Transform`
# object per call, so state lives in the module).
SETTINGS = {}


class Transform(exports.Transform):
    def init(self, config: str, input_schema: bytes) -> Plan:
        cfg = json.loads(config or "null") or {}
        events = cfg.get("events")
        if events is not None and not all(isinstance(e, str) for e in events):
            raise ValueError("config.events must be an array of strings")
        SETTINGS["events"] = None if events is None else set(events)
        value = sluice_guest.column_index(input_schema, "value")
        return Plan(
            output_schema=sluice_guest.schema([Field("value", "utf8")]),
            reads=[value],
        )

    def process(self, batch) -> None:
        events = SETTINGS["events"]
        city, domain, event = sluice_guest.from_json(
            sluice_guest.utf8_values(batch, 0), ["city", "domain", "event"]
        )
        keep = [
            i
            for i, e in enumerate(event)
            if e is not None and (events is None or e in events)
        ]
        values = sluice_guest.to_json(
            {
                "lower_city": [None if city[i] is None else city[i].lower() for i in keep],
                "domain": [domain[i] for i in keep],
                "behavior": [event[i] for i in keep],
            }
        )
        output.emit(sluice_guest.batch([sluice_guest.utf8_column(values)]))
