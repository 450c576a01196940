"""Sluice's guest SDK for Python (a first slice, issue 20): helpers over the WIT batches a
transform receives, for components built with componentize-py.

A transform is a class `Transform(exports.Transform)` in the app module with
`init(config, input_schema) -> Plan` and `process(batch)`, as componentize-py generates them
from `wit/` (world `transformer`). These helpers read the columns the plan asked for
straight from the batch's buffers (no pyarrow: it does not run in WASI) and build the
selection `rows.emit_rows` takes, so a filter hands back one bit per row and the host keeps
the selected rows of the columns it names.

Not here yet: an Arrow IPC schema encoder (a step's output schema is the input's, or one of
its own built elsewhere), builders for new columns, `from_json`/`to_json`.
"""

__all__ = ["int64_values", "float64_values", "int32_values", "utf8_values", "selection"]


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
    """The strings of a Utf8 (STRING) column, decoded (None for a null slot)."""
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
    bits = bytearray()
    byte = 0
    n = 0
    for k in keep:
        if k:
            byte |= 1 << (n & 7)
        n += 1
        if n & 7 == 0:
            bits.append(byte)
            byte = 0
    if n & 7:
        bits.append(byte)
    return bytes(bits)

