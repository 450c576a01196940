"""A user-defined aggregate in Python: the spread (largest minus smallest value) of a BIGINT
column per group — the Python twin of what `sluice new aggregate` writes in Rust.

The host keeps each group's state as bytes in its checkpointed state store and calls the
aggregate once per batch with every group the batch touched: `update` folds the rows into
the states, `merge` combines two states of one group (rows folded on several workers),
`finish` turns states into the output column. A state here is 16 bytes: the smallest and
the largest value seen, little-endian (empty: no value yet).

Built by `scripts/build-python-guests.sh` (componentize-py, world `aggregator`).
"""

import struct

from wit_world import exports
from wit_world.imports import output

import sluice_guest
from sluice_guest import Field

STATE = struct.Struct("<qq")


def _decode(state):
    return STATE.unpack(state) if len(state) == STATE.size else None


def _widen(span, lo, hi):
    if span is None:
        return lo, hi
    return min(span[0], lo), max(span[1], hi)


class Aggregate(exports.Aggregate):
    def init(self, config: str, input_schema: bytes) -> bytes:
        [(name, kind)] = sluice_guest.schema_fields(input_schema)
        if kind != "int64":
            raise ValueError(f"spread needs a BIGINT column; '{name}' is {kind}")
        return sluice_guest.schema([Field("spread", "int64")])

    def update(self, states, group_ids, batch):
        spans = [_decode(s) for s in states]
        for g, v in zip(group_ids, sluice_guest.values(batch, 0, "int64")):
            if v is not None:
                spans[g] = _widen(spans[g], v, v)
        return [b"" if s is None else STATE.pack(*s) for s in spans]

    def merge(self, a, b):
        span_b = _decode(b)
        if span_b is None:
            return a
        return STATE.pack(*_widen(_decode(a), *span_b))

    def finish(self, states):
        spreads = [None if s is None else s[1] - s[0] for s in map(_decode, states)]
        output.emit(sluice_guest.batch([sluice_guest.int64_column(spreads)]))
