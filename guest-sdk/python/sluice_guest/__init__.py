"""Sluice's guest SDK for Python: what a transform built with componentize-py needs to read
the batches the host sends, describe its output, and build the batches it sends back.

A transform is a class `Transform(exports.Transform)` in the app module with
`init(config, input_schema) -> Plan` and `process(batch)`, as componentize-py generates them
from `wit/` (world `transformer`). pyarrow does not run in WASI, so columns are read straight
from the batch's Arrow buffers (`int64_values`, `utf8_values`, ...: memoryviews or lists) and
built back as Arrow buffers (`utf8_column`, `int64_column`, ..., then `batch`). Schemas cross
the boundary as Arrow IPC schema messages: `schema` writes one, `schema_fields` reads one
(with the `flatbuffers` package, the builder Arrow's own Python and C++ code uses).

A filter answers with a selection (`selection`, then `rows.emit_rows`): the host keeps the
selected rows of the columns it names, so one bit per row crosses back.

`from_json` / `to_json` are the Rust SDK's `json::from_json` / `json::to_json` for Python
lists: Spark's `from_json` (a malformed or non-object line gives a row of nulls) and
`to_json` (compact, null fields left out).
"""

import json
import struct

# Imported here, not where they are used: componentize-py bundles what the app has imported
# when it builds the component (a guest has no files to import from later).
import flatbuffers
from flatbuffers import encode
from flatbuffers import number_types as N
from flatbuffers.table import Table

try:
    from wit_world.imports.arrow import ArrayNode, Batch
except ImportError:  # outside a component (CPython, trying the helpers): no batches
    ArrayNode = Batch = None

__all__ = [
    "int64_values",
    "float64_values",
    "int32_values",
    "utf8_values",
    "selection",
    "Field",
    "schema",
    "schema_fields",
    "column_index",
    "utf8_column",
    "int64_column",
    "float64_column",
    "bool_column",
    "batch",
    "values",
    "column",
    "from_json",
    "to_json",
]


# --- reading columns --------------------------------------------------------------------


def _values(batch, column, code):
    node = batch.nodes[column]
    view = memoryview(node.buffers[0]).cast(code)
    return view[node.offset : node.offset + node.len]


def int64_values(batch, column=0):
    """The values of an Int64 (BIGINT) column of `batch` (nodes in read order), as a
    memoryview of Python ints. Null slots hold whatever the buffer holds: check `validity`."""
    return _values(batch, column, "q")


def int32_values(batch, column=0):
    """The values of an Int32 (INT) column, as a memoryview."""
    return _values(batch, column, "i")


def float64_values(batch, column=0):
    """The values of a Float64 (DOUBLE) column, as a memoryview."""
    return _values(batch, column, "d")


def utf8_values(batch, column=0):
    """The strings of a Utf8 (STRING) or Binary column, decoded as UTF-8 (None for a null
    slot)."""
    node = batch.nodes[column]
    offsets = memoryview(node.buffers[0]).cast("i")
    data = bytes(node.buffers[1])
    validity = node.validity
    out = []
    for i in range(node.offset, node.offset + node.len):
        if validity is not None and not (validity[i >> 3] >> (i & 7)) & 1:
            out.append(None)
        else:
            out.append(data[offsets[i] : offsets[i + 1]].decode("utf-8"))
    return out


def selection(keep):
    """A selection bitmap for `rows.emit_rows` from an iterable of booleans, one per row
    (least significant bit first, as Arrow's validity bitmaps)."""
    return _bitmap(keep)[0]


def _bitmap(bits_in):
    bits = bytearray()
    byte = 0
    n = 0
    ones = 0
    for k in bits_in:
        if k:
            byte |= 1 << (n & 7)
            ones += 1
        n += 1
        if n & 7 == 0:
            bits.append(byte)
            byte = 0
    if n & 7:
        bits.append(byte)
    return bytes(bits), ones, n


# --- schemas ----------------------------------------------------------------------------

# Arrow's `Type` union (format/Schema.fbs) for the types the SDK writes and reads.
_TYPE_IDS = {"bool": 6, "int32": 2, "int64": 2, "float64": 3, "binary": 4, "utf8": 5}
_TYPE_NAMES = {1: "null", 2: "int", 3: "float", 4: "binary", 5: "utf8", 6: "bool",
               8: "date", 10: "timestamp", 12: "list", 13: "struct", 19: "large_binary",
               20: "large_utf8"}


class Field:
    """A column of a schema: its name, one of "utf8", "binary", "int64", "int32",
    "float64", "bool", and whether it may hold nulls."""

    def __init__(self, name, type, nullable=True):
        if type not in _TYPE_IDS:
            raise ValueError(f"field {name!r}: type {type!r} is not one of {sorted(_TYPE_IDS)}")
        self.name = name
        self.type = type
        self.nullable = nullable


def schema(fields):
    """The Arrow IPC schema message for `fields` (a list of `Field`), as `Plan` takes it."""
    b = flatbuffers.Builder(256)
    offsets = []
    for f in fields:
        name = b.CreateString(f.name)
        # The type's table: Int { bitWidth, is_signed }, FloatingPoint { precision }, or an
        # empty table for utf8, binary and bool.
        if f.type in ("int64", "int32"):
            b.StartObject(2)
            b.PrependInt32Slot(0, 64 if f.type == "int64" else 32, 0)
            b.PrependBoolSlot(1, True, False)
        elif f.type == "float64":
            b.StartObject(1)
            b.PrependInt16Slot(0, 2, 0)  # DOUBLE
        else:
            b.StartObject(0)
        type_table = b.EndObject()
        b.StartVector(4, 0, 4)
        children = b.EndVector()
        b.StartObject(7)
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        b.PrependBoolSlot(1, f.nullable, False)
        b.PrependUint8Slot(2, _TYPE_IDS[f.type], 0)
        b.PrependUOffsetTRelativeSlot(3, type_table, 0)
        b.PrependUOffsetTRelativeSlot(5, children, 0)
        offsets.append(b.EndObject())
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    field_vector = b.EndVector()
    b.StartObject(4)  # Schema { endianness, fields, custom_metadata, features }
    b.PrependUOffsetTRelativeSlot(1, field_vector, 0)
    schema_table = b.EndObject()
    b.StartObject(5)  # Message { version, header_type, header, bodyLength, custom_metadata }
    b.PrependInt16Slot(0, 4, 0)  # MetadataVersion V5
    b.PrependUint8Slot(1, 1, 0)  # MessageHeader Schema
    b.PrependUOffsetTRelativeSlot(2, schema_table, 0)
    b.PrependInt64Slot(3, 0, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def schema_fields(ipc_schema):
    """The fields of an Arrow IPC schema message (what `init` receives): a list of
    `(name, type)`, the type one of "utf8", "binary", "int64", "int32", "float64",
    "bool", "timestamp", "list", "struct", ... (the Arrow type's name)."""
    buf = bytearray(ipc_schema)
    message = Table(buf, encode.Get(N.UOffsetTFlags.packer_type, buf, 0))

    def field_offset(table, slot):
        return table.Offset(4 + 2 * slot)

    o = field_offset(message, 2)
    if not o:
        raise ValueError("not an Arrow IPC schema message")
    schema_table = Table(buf, message.Indirect(o + message.Pos))
    o = field_offset(schema_table, 1)
    out = []
    if not o:
        return out
    start = schema_table.Vector(o)
    for i in range(schema_table.VectorLen(o)):
        field = Table(buf, schema_table.Indirect(start + 4 * i))
        name_at = field_offset(field, 0)
        name = field.String(name_at + field.Pos).decode("utf-8") if name_at else ""
        type_at = field_offset(field, 2)
        type_id = field.Get(N.Uint8Flags, type_at + field.Pos) if type_at else 0
        kind = _TYPE_NAMES.get(type_id, f"type {type_id}")
        if type_id == 2:
            table_at = field_offset(field, 3)
            int_table = Table(buf, field.Indirect(table_at + field.Pos))
            width_at = field_offset(int_table, 0)
            width = int_table.Get(N.Int32Flags, width_at + int_table.Pos) if width_at else 0
            kind = f"int{width}"
        elif type_id == 3:
            kind = "float64"
        out.append((name, kind))
    return out


def column_index(ipc_schema, name):
    """The index of column `name` in an IPC schema (for `Plan.reads`); raises ValueError
    naming the columns there are when it is missing."""
    names = [n for n, _ in schema_fields(ipc_schema)]
    if name not in names:
        raise ValueError(f"the input has no column {name!r} (it has {', '.join(names)})")
    return names.index(name)


# --- building columns -------------------------------------------------------------------


def _node(length, buffers, validity):
    bitmap, valid, _ = _bitmap(validity)
    nulls = length - valid
    return ArrayNode(
        len=length,
        offset=0,
        null_count=nulls,
        validity=bitmap if nulls else None,
        buffers=buffers,
        num_children=0,
    )


def utf8_column(values):
    """A Utf8 column from a list of str (None for null)."""
    data = bytearray()
    offsets = [0]
    for v in values:
        if v is not None:
            data += v.encode("utf-8")
        offsets.append(len(data))
    if len(data) > 0x7FFFFFFF:
        raise ValueError("a Utf8 column holds at most 2 GiB of text")
    return _node(
        len(values),
        [struct.pack(f"<{len(offsets)}i", *offsets), bytes(data)],
        (v is not None for v in values),
    )


def int64_column(values):
    """An Int64 column from a list of int (None for null)."""
    return _node(
        len(values),
        [struct.pack(f"<{len(values)}q", *(0 if v is None else v for v in values))],
        (v is not None for v in values),
    )


def float64_column(values):
    """A Float64 column from a list of float (None for null)."""
    return _node(
        len(values),
        [struct.pack(f"<{len(values)}d", *(0.0 if v is None else v for v in values))],
        (v is not None for v in values),
    )


def bool_column(values):
    """A Bool column from a list of bool (None for null)."""
    data, _, _ = _bitmap(bool(v) for v in values)
    return _node(len(values), [data], (v is not None for v in values))


def batch(columns):
    """A batch (what `output.emit` takes) from columns built above, in the output schema's
    order; every column must have as many rows."""
    lengths = {c.len for c in columns}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    return Batch(num_rows=lengths.pop() if lengths else 0, nodes=list(columns))


def values(batch, index, type):
    """Column `index` of `batch` as a list of Python values (None for nulls); `type` is its
    type as `schema_fields` names it ("utf8", "binary", "int64", "int32", "float64",
    "bool")."""
    node = batch.nodes[index]
    if type in ("utf8", "binary"):
        return utf8_values(batch, index)
    if type == "bool":
        data = node.buffers[0]
        raw = [
            bool((data[i >> 3] >> (i & 7)) & 1)
            for i in range(node.offset, node.offset + node.len)
        ]
    else:
        code = {"int64": "q", "int32": "i", "float64": "d"}.get(type)
        if code is None:
            raise ValueError(f"column {index}: type {type!r} cannot be read as values")
        raw = list(_values(batch, index, code))
    validity = node.validity
    if validity is None:
        return raw
    return [
        v if (validity[(node.offset + i) >> 3] >> ((node.offset + i) & 7)) & 1 else None
        for i, v in enumerate(raw)
    ]


def column(type, items):
    """A column of `type` ("utf8", "int64", "float64", "bool") from a list of values."""
    build = {
        "utf8": utf8_column,
        "binary": utf8_column,
        "int64": int64_column,
        "float64": float64_column,
        "bool": bool_column,
    }.get(type)
    if build is None:
        raise ValueError(f"type {type!r} cannot be built from values")
    return build(items)


# --- JSON -------------------------------------------------------------------------------


def from_json(lines, names):
    """Parses each JSON object of `lines` (str or None) and returns one list per name in
    `names`: the field's value in each row, None when the line is null, malformed, not an
    object, or has no such field (Spark's `from_json`, PERMISSIVE)."""
    columns = [[] for _ in names]
    for line in lines:
        row = None
        if line is not None:
            try:
                row = json.loads(line)
            except ValueError:
                row = None
        if not isinstance(row, dict):
            row = {}
        for values, name in zip(columns, names):
            values.append(row.get(name))
    return columns


def to_json(columns):
    """One compact JSON object per row from `columns` (a dict of name → list of values, in
    field order); null fields are left out, as Spark's `to_json` does."""
    names = list(columns)
    rows = zip(*(columns[n] for n in names))
    return [
        json.dumps(
            {n: v for n, v in zip(names, row) if v is not None},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        for row in rows
    ]
