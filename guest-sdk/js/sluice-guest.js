// Sluice's guest SDK for JavaScript (ComponentizeJS): what a transform needs to read the
// batches the host sends, describe its output, and build the batches it sends back.
//
// Columns are typed arrays over the batch's Arrow buffers (`int64Values` is a BigInt64Array
// view, no copy); strings are decoded to JavaScript strings. Schemas cross the boundary as
// Arrow IPC schema messages, written and read here with the `flatbuffers` package (the one
// Arrow's own JavaScript library uses). `fromJson` / `toJson` are the Rust SDK's for arrays:
// Spark's `from_json` (a malformed line gives nulls) and `to_json` (compact, nulls left out).

import * as flatbuffers from "flatbuffers";

// --- reading columns ---

/** The values of an Int64 column: a BigInt64Array over the buffer (no copy). */
export function int64Values(batch, column = 0) {
  const node = batch.nodes[column];
  const b = node.buffers[0];
  return new BigInt64Array(b.buffer, b.byteOffset + node.offset * 8, node.len);
}

/** The values of a Float64 column: a Float64Array over the buffer. */
export function float64Values(batch, column = 0) {
  const node = batch.nodes[column];
  const b = node.buffers[0];
  return new Float64Array(b.buffer, b.byteOffset + node.offset * 8, node.len);
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The strings of a Utf8 column (null for a null slot). */
export function utf8Values(batch, column = 0) {
  const node = batch.nodes[column];
  const o = node.buffers[0];
  const offsets = new Int32Array(o.buffer, o.byteOffset, node.offset + node.len + 1);
  const data = node.buffers[1];
  const validity = node.validity;
  const out = new Array(node.len);
  for (let i = node.offset; i < node.offset + node.len; i++) {
    if (validity && !((validity[i >> 3] >> (i & 7)) & 1)) {
      out[i - node.offset] = null;
    } else {
      out[i - node.offset] = decoder.decode(data.subarray(offsets[i], offsets[i + 1]));
    }
  }
  return out;
}

/** A selection bitmap for `emitRows` from an array of booleans. */
export function selection(keep) {
  const bits = new Uint8Array((keep.length + 7) >> 3);
  keep.forEach((k, i) => {
    if (k) bits[i >> 3] |= 1 << (i & 7);
  });
  return bits;
}

// --- schemas ---

const TYPE_IDS = { bool: 6, int32: 2, int64: 2, float64: 3, binary: 4, utf8: 5 };
const TYPE_NAMES = { 2: "int", 3: "float64", 4: "binary", 5: "utf8", 6: "bool", 10: "timestamp", 12: "list", 13: "struct" };

/** The Arrow IPC schema message for `fields`: `[{ name, type, nullable = true }]`, type one
 * of utf8, binary, int64, int32, float64, bool. */
export function schema(fields) {
  const b = new flatbuffers.Builder(256);
  const offsets = fields.map((f) => {
    if (!(f.type in TYPE_IDS)) throw new Error(`field ${f.name}: type ${f.type} is not one of ${Object.keys(TYPE_IDS)}`);
    const name = b.createString(f.name);
    if (f.type === "int64" || f.type === "int32") {
      b.startObject(2);
      b.addFieldInt32(0, f.type === "int64" ? 64 : 32, 0);
      b.addFieldInt8(1, 1, 0);
    } else if (f.type === "float64") {
      b.startObject(1);
      b.addFieldInt16(0, 2, 0);
    } else {
      b.startObject(0);
    }
    const typeTable = b.endObject();
    b.startVector(4, 0, 4);
    const children = b.endVector();
    b.startObject(7);
    b.addFieldOffset(0, name, 0);
    b.addFieldInt8(1, f.nullable === false ? 0 : 1, 0);
    b.addFieldInt8(2, TYPE_IDS[f.type], 0);
    b.addFieldOffset(3, typeTable, 0);
    b.addFieldOffset(5, children, 0);
    return b.endObject();
  });
  b.startVector(4, offsets.length, 4);
  for (let i = offsets.length - 1; i >= 0; i--) b.addOffset(offsets[i]);
  const vector = b.endVector();
  b.startObject(4);
  b.addFieldOffset(1, vector, 0);
  const schemaTable = b.endObject();
  b.startObject(5);
  b.addFieldInt16(0, 4, 0); // MetadataVersion V5
  b.addFieldInt8(1, 1, 0); // MessageHeader Schema
  b.addFieldOffset(2, schemaTable, 0);
  b.addFieldInt64(3, BigInt(0), BigInt(0));
  b.finish(b.endObject());
  return b.asUint8Array();
}

/** The fields of an IPC schema message: `[{ name, type }]`. */
export function schemaFields(bytes) {
  const bb = new flatbuffers.ByteBuffer(bytes);
  const table = (pos) => ({ pos, field: (slot) => bb.__offset(pos, 4 + 2 * slot) });
  const message = table(bb.readInt32(bb.position()) + bb.position());
  const s = table(bb.__indirect(message.pos + message.field(2)));
  const at = s.field(1);
  if (!at) return [];
  const out = [];
  const len = bb.__vector_len(s.pos + at);
  const start = bb.__vector(s.pos + at);
  for (let i = 0; i < len; i++) {
    const f = table(bb.__indirect(start + 4 * i));
    const name = f.field(0) ? bb.__string(f.pos + f.field(0)) : "";
    const typeId = f.field(2) ? bb.readUint8(f.pos + f.field(2)) : 0;
    let type = TYPE_NAMES[typeId] ?? `type ${typeId}`;
    if (typeId === 2) {
      const t = table(bb.__indirect(f.pos + f.field(3)));
      type = `int${t.field(0) ? bb.readInt32(t.pos + t.field(0)) : 0}`;
    }
    out.push({ name, type });
  }
  return out;
}

/** The index of column `name` in an IPC schema (for a plan's `reads`). */
export function columnIndex(bytes, name) {
  const names = schemaFields(bytes).map((f) => f.name);
  const i = names.indexOf(name);
  if (i < 0) throw new Error(`the input has no column ${name} (it has ${names.join(", ")})`);
  return i;
}

// --- building columns ---

function validityOf(values) {
  const nulls = values.filter((v) => v === null || v === undefined).length;
  return { nulls, bitmap: nulls ? selection(values.map((v) => v !== null && v !== undefined)) : undefined };
}

/** A Utf8 column from an array of strings (null for null). */
export function utf8Column(values) {
  const parts = values.map((v) => (v === null || v === undefined ? new Uint8Array(0) : encoder.encode(v)));
  const offsets = new Int32Array(values.length + 1);
  let total = 0;
  parts.forEach((p, i) => {
    total += p.length;
    offsets[i + 1] = total;
  });
  const data = new Uint8Array(total);
  parts.forEach((p, i) => data.set(p, offsets[i]));
  const { nulls, bitmap } = validityOf(values);
  return { len: values.length, offset: 0, nullCount: nulls, validity: bitmap, buffers: [new Uint8Array(offsets.buffer), data], numChildren: 0 };
}

/** An Int64 column from an array of BigInt or numbers (null for null). */
export function int64Column(values) {
  const data = new BigInt64Array(values.map((v) => BigInt(v ?? 0)));
  const { nulls, bitmap } = validityOf(values);
  return { len: values.length, offset: 0, nullCount: nulls, validity: bitmap, buffers: [new Uint8Array(data.buffer)], numChildren: 0 };
}

/** Column `index` of `batch` as an array of values (null for nulls): BigInt for int64,
 * numbers for float64, strings for utf8. */
export function values(batch, index, type) {
  const node = batch.nodes[index];
  let raw;
  if (type === "utf8" || type === "binary") return utf8Values(batch, index);
  if (type === "int64") raw = Array.from(int64Values(batch, index));
  else if (type === "float64") raw = Array.from(float64Values(batch, index));
  else throw new Error(`column ${index}: type ${type} cannot be read as values`);
  const v = node.validity;
  if (!v) return raw;
  return raw.map((x, i) => ((v[(node.offset + i) >> 3] >> ((node.offset + i) & 7)) & 1 ? x : null));
}

/** A column of `type` (utf8, int64) from an array of values. */
export function column(type, items) {
  if (type === "utf8" || type === "binary") return utf8Column(items);
  if (type === "int64") return int64Column(items);
  throw new Error(`type ${type} cannot be built from values`);
}

/** A batch for `emit` from columns built above, in the output schema's order. */
export function batch(columns) {
  const lengths = new Set(columns.map((c) => c.len));
  if (lengths.size > 1) throw new Error(`columns of different lengths: ${[...lengths]}`);
  return { numRows: columns.length ? columns[0].len : 0, nodes: columns };
}

// --- JSON ---

/** Parses each JSON object of `lines`; one array per name, null where a line is null,
 * malformed, not an object, or lacks the field. */
export function fromJson(lines, names) {
  const columns = names.map(() => []);
  for (const line of lines) {
    let row = null;
    if (line !== null) {
      try {
        row = JSON.parse(line);
      } catch {
        row = null;
      }
    }
    if (row === null || typeof row !== "object" || Array.isArray(row)) row = {};
    names.forEach((n, i) => columns[i].push(row[n] ?? null));
  }
  return columns;
}

/** One compact JSON object per row of `columns` (an object of name → array, in field
 * order); null fields are left out. */
export function toJson(columns) {
  const names = Object.keys(columns);
  const n = names.length ? columns[names[0]].length : 0;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const row = {};
    for (const name of names) {
      const v = columns[name][i];
      if (v !== null && v !== undefined) row[name] = v;
    }
    out[i] = JSON.stringify(row);
  }
  return out;
}

// --- exports ---

function asString(e) {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** `impl`'s method `name` (called on `impl`), with what it throws turned into the error
 * string WIT's `result<_, string>` carries: ComponentizeJS only turns a thrown string into
 * an error; an `Error` object aborts the component. */
function guarded(impl, name) {
  return (...args) => {
    try {
      return impl[name](...args);
    } catch (e) {
      throw asString(e);
    }
  };
}

/** Wraps a foreachBatch handler's `init` and `handle` as `transform` does a transform's:
 * `export const batchHandler = sluice.handler({ init, handle })`. */
export function handler(impl) {
  return { init: guarded(impl, "init"), handle: guarded(impl, "handle") };
}

/** Wraps a user-defined aggregate's `init`, `update`, `merge` and `finish` as `transform`
 * does a transform's: `export const aggregate = sluice.aggregate({ ... })`. */
export function aggregate(impl) {
  return {
    init: guarded(impl, "init"),
    update: guarded(impl, "update"),
    merge: guarded(impl, "merge"),
    finish: guarded(impl, "finish"),
  };
}

/** Wraps a transform's `init` and `process` so that what they throw reaches the host as an
 * error (see `guarded`): `export const transform = sluice.transform({ init, process })`. */
export function transform(impl) {
  return { init: guarded(impl, "init"), process: guarded(impl, "process") };
}
