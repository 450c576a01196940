//! One key's state as the host keeps it: every declared variable and the key's timers in
//! one compact byte string (the state store's value for the key), and the conversions
//! between that and the Arrow columns of the state batch the guest sees.
//!
//! Layout, variables in declaration order, then the timers (integers little-endian):
//!
//! ```text
//! per variable:  u8 present (0/1); if present: [i64 expiry if the variable has a TTL]
//!                value: u32 len, bytes
//!                list:  u32 n, n × (u32 len, bytes)
//!                map:   u32 n, n × (u32 len, key bytes, u32 len, value bytes)
//! timers:        u32 n, n × i64 (ascending)
//! ```
//!
//! One allocation per key (not one per value) keeps a million keys in about a hundred bytes
//! each.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BinaryBuilder, Int64Builder};
use arrow_array::{Array, ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, SchemaRef};
use sluice_guest_sdk::abi;

use crate::wasm::processor::{StateKind, StateVariable, ValueEncoding};

/// Expiry of a variable that has none.
const NEVER: i64 = i64::MAX;

/// The schema of the state batch for `variables`: a column each, then the timers.
pub fn state_schema(variables: &[StateVariable]) -> SchemaRef {
    abi::processor_state_schema(variables.iter().map(|v| {
        (
            v.name.as_str(),
            match v.kind {
                StateKind::Value => abi::StateColumn::Value,
                StateKind::List => abi::StateColumn::List,
                StateKind::Map => abi::StateColumn::Map,
            },
        )
    }))
}

/// A cursor over a key's state bytes; `None` from any read means the bytes are corrupt.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<usize> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n)
    }
}

/// One variable of a key, as stored: its expiry and its contents' encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredVar<'a> {
    /// When it expires ([`i64::MAX`]: never).
    pub expiry: i64,
    /// The contents after the expiry, as laid out above.
    pub contents: &'a [u8],
}

/// A key's state split into its variables (`None`: absent) and timers.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// Per declared variable.
    pub vars: Vec<Option<StoredVar<'a>>>,
    /// The key's timers, ascending.
    pub timers: Vec<i64>,
}

/// Splits a key's stored state; `None` when the bytes do not fit `variables`.
pub fn parse<'a>(variables: &[StateVariable], blob: &'a [u8]) -> Option<Parsed<'a>> {
    let mut r = Reader(blob);
    let mut vars = Vec::with_capacity(variables.len());
    for v in variables {
        if r.u8()? == 0 {
            vars.push(None);
            continue;
        }
        let expiry = if v.ttl_ms.is_some() { r.i64()? } else { NEVER };
        let start = r.0;
        match v.kind {
            StateKind::Value => {
                r.bytes()?;
            }
            StateKind::List => {
                for _ in 0..r.u32()? {
                    r.bytes()?;
                }
            }
            StateKind::Map => {
                for _ in 0..r.u32()? {
                    r.bytes()?;
                    r.bytes()?;
                }
            }
        }
        let used = start.len() - r.0.len();
        vars.push(Some(StoredVar {
            expiry,
            contents: &start[..used],
        }));
    }
    let n = r.u32()?;
    let mut timers = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        timers.push(r.i64()?);
    }
    r.0.is_empty().then_some(Parsed { vars, timers })
}

/// Writes a key's state from its parts; returns `false` when nothing is left (no variable
/// present, no timer): the key can be removed.
pub fn write(
    variables: &[StateVariable],
    vars: &[Option<(i64, &[u8])>],
    timers: &[i64],
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let mut any = !timers.is_empty();
    for (v, var) in variables.iter().zip(vars) {
        match var {
            None => out.push(0),
            Some((expiry, contents)) => {
                any = true;
                out.push(1);
                if v.ttl_ms.is_some() {
                    out.extend_from_slice(&expiry.to_le_bytes());
                }
                out.extend_from_slice(contents);
            }
        }
    }
    out.extend_from_slice(&(timers.len() as u32).to_le_bytes());
    for t in timers {
        out.extend_from_slice(&t.to_le_bytes());
    }
    any
}

/// The earliest expiry among a key's variables and its first timer.
pub fn deadlines(parsed: &Parsed) -> (i64, i64) {
    let expiry = parsed
        .vars
        .iter()
        .flatten()
        .map(|v| v.expiry)
        .min()
        .unwrap_or(NEVER);
    (expiry, parsed.timers.first().copied().unwrap_or(NEVER))
}

/// Builds the state batch the guest sees, one row per key, from each key's parsed state
/// (`None`: a key with no state yet).
pub struct StateBatchBuilder<'v> {
    variables: &'v [StateVariable],
    columns: Vec<ColumnBuilder>,
    timer_offsets: Vec<i32>,
    timers: Int64Builder,
}

enum ColumnBuilder {
    Value(BinaryBuilder),
    List {
        offsets: Vec<i32>,
        items: BinaryBuilder,
    },
    Map {
        offsets: Vec<i32>,
        keys: BinaryBuilder,
        values: BinaryBuilder,
    },
}

impl<'v> StateBatchBuilder<'v> {
    /// A builder for about `keys` keys.
    pub fn new(variables: &'v [StateVariable], keys: usize) -> Self {
        let columns = variables
            .iter()
            .map(|v| match v.kind {
                StateKind::Value => ColumnBuilder::Value(BinaryBuilder::with_capacity(keys, 0)),
                StateKind::List => ColumnBuilder::List {
                    offsets: offsets(keys),
                    items: BinaryBuilder::new(),
                },
                StateKind::Map => ColumnBuilder::Map {
                    offsets: offsets(keys),
                    keys: BinaryBuilder::new(),
                    values: BinaryBuilder::new(),
                },
            })
            .collect();
        StateBatchBuilder {
            variables,
            columns,
            timer_offsets: offsets(keys),
            timers: Int64Builder::new(),
        }
    }

    /// Appends one key's row. The parsed contents were checked when they were stored.
    pub fn append(&mut self, parsed: Option<&Parsed>) {
        for (i, column) in self.columns.iter_mut().enumerate() {
            let contents = parsed.and_then(|p| p.vars[i]).map(|v| v.contents);
            let mut r = Reader(contents.unwrap_or_default());
            match column {
                ColumnBuilder::Value(b) => match contents.and_then(|_| r.bytes()) {
                    Some(bytes) => b.append_value(bytes),
                    None => b.append_null(),
                },
                ColumnBuilder::List { offsets, items } => {
                    let n = if contents.is_some() {
                        r.u32().unwrap_or(0)
                    } else {
                        0
                    };
                    for _ in 0..n {
                        items.append_value(r.bytes().unwrap_or_default());
                    }
                    offsets.push(items.len() as i32);
                }
                ColumnBuilder::Map {
                    offsets,
                    keys,
                    values,
                } => {
                    let n = if contents.is_some() {
                        r.u32().unwrap_or(0)
                    } else {
                        0
                    };
                    for _ in 0..n {
                        keys.append_value(r.bytes().unwrap_or_default());
                        values.append_value(r.bytes().unwrap_or_default());
                    }
                    offsets.push(keys.len() as i32);
                }
            }
        }
        if let Some(p) = parsed {
            self.timers.append_slice(&p.timers);
        }
        self.timer_offsets.push(self.timers.len() as i32);
    }

    /// The batch.
    pub fn finish(mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let schema = state_schema(self.variables);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 1);
        for (column, field) in self.columns.into_iter().zip(schema.fields()) {
            let item = match field.data_type() {
                DataType::List(f) => Some(f.clone()),
                _ => None,
            };
            arrays.push(match (column, item) {
                (ColumnBuilder::Value(mut b), _) => Arc::new(b.finish()),
                (ColumnBuilder::List { offsets, mut items }, Some(f)) => {
                    Arc::new(ListArray::try_new(
                        f,
                        OffsetBuffer::new(offsets.into()),
                        Arc::new(items.finish()),
                        None,
                    )?)
                }
                (
                    ColumnBuilder::Map {
                        offsets,
                        mut keys,
                        mut values,
                    },
                    Some(f),
                ) => {
                    let entries = StructArray::try_new(
                        abi::map_entry_fields(),
                        vec![Arc::new(keys.finish()), Arc::new(values.finish())],
                        None,
                    )?;
                    Arc::new(ListArray::try_new(
                        f,
                        OffsetBuffer::new(offsets.into()),
                        Arc::new(entries),
                        None,
                    )?)
                }
                _ => unreachable!("the schema is built from the same variables"),
            });
        }
        let Some(DataType::List(item)) = schema.fields().last().map(|f| f.data_type().clone())
        else {
            unreachable!("the schema ends with the timers column")
        };
        arrays.push(Arc::new(ListArray::try_new(
            item,
            OffsetBuffer::new(self.timer_offsets.into()),
            Arc::new(self.timers.finish()),
            None,
        )?));
        RecordBatch::try_new(schema, arrays)
    }
}

fn offsets(keys: usize) -> Vec<i32> {
    let mut v = Vec::with_capacity(keys + 1);
    v.push(0);
    v
}

/// Reads a returned state batch row by row, checking each value against its declared
/// encoding and the per-key size cap.
pub struct StateBatchReader<'b> {
    variables: &'b [StateVariable],
    columns: Vec<&'b dyn Array>,
    timers: &'b ListArray,
}

/// A returned key's state, checked: per variable its encoded contents (`None`: absent), and
/// its timers (ascending, no repeats).
pub struct Returned {
    /// Each variable's contents as laid out in the stored form (without the expiry).
    pub vars: Vec<Option<Vec<u8>>>,
    /// The timers.
    pub timers: Vec<i64>,
}

impl<'b> StateBatchReader<'b> {
    /// A reader over `batch`, which has the state schema (checked when it was received).
    pub fn new(variables: &'b [StateVariable], batch: &'b RecordBatch) -> Option<Self> {
        let n = variables.len();
        let timers = batch.column(n).as_any().downcast_ref::<ListArray>()?;
        Some(StateBatchReader {
            variables,
            columns: (0..n).map(|i| batch.column(i).as_ref()).collect(),
            timers,
        })
    }

    /// Row `row`'s state, or what is wrong with it (naming the variable).
    pub fn row(&self, row: usize, max_bytes: u64) -> Result<Returned, String> {
        let mut vars = Vec::with_capacity(self.variables.len());
        let mut total = 0u64;
        for (v, column) in self.variables.iter().zip(&self.columns) {
            let mut out = Vec::new();
            let present = match v.kind {
                StateKind::Value => {
                    let a = binary(*column)?;
                    if a.is_null(row) {
                        false
                    } else {
                        let value = a.value(row);
                        check_value(v, "value", value)?;
                        put_bytes(&mut out, value);
                        true
                    }
                }
                StateKind::List => {
                    let list = column
                        .as_any()
                        .downcast_ref::<ListArray>()
                        .ok_or("a list variable is not a list column")?;
                    let items = list.value(row);
                    let items = binary(items.as_ref())?;
                    if items.null_count() > 0 {
                        return Err(format!("list state '{}' holds a null element", v.name));
                    }
                    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
                    for item in items.iter().flatten() {
                        check_value(v, "element", item)?;
                        put_bytes(&mut out, item);
                    }
                    !items.is_empty()
                }
                StateKind::Map => {
                    let list = column
                        .as_any()
                        .downcast_ref::<ListArray>()
                        .ok_or("a map variable is not a list column")?;
                    let entries = list.value(row);
                    let entries = entries
                        .as_any()
                        .downcast_ref::<StructArray>()
                        .ok_or("a map variable's entries are not structs")?;
                    let keys = binary(entries.column(0).as_ref())?;
                    let values = binary(entries.column(1).as_ref())?;
                    if keys.null_count() + values.null_count() > 0 {
                        return Err(format!("map state '{}' holds a null key or value", v.name));
                    }
                    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
                    let mut previous: Option<&[u8]> = None;
                    for (k, value) in keys.iter().flatten().zip(values.iter().flatten()) {
                        if previous.is_some_and(|p| p >= k) {
                            return Err(format!(
                                "map state '{}' has entries out of key order or a repeated key",
                                v.name
                            ));
                        }
                        previous = Some(k);
                        check_value(v, "key", k)?;
                        check_value(v, "value", value)?;
                        put_bytes(&mut out, k);
                        put_bytes(&mut out, value);
                    }
                    !keys.is_empty()
                }
            };
            total += out.len() as u64;
            vars.push(present.then_some(out));
        }
        let timers = self.timers.value(row);
        let timers = timers
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("the timers column is not Int64")?;
        if timers.null_count() > 0 {
            return Err("a timer is null".into());
        }
        let mut timers: Vec<i64> = timers.values().to_vec();
        timers.sort_unstable();
        timers.dedup();
        total += 8 * timers.len() as u64;
        if total > max_bytes {
            return Err(format!(
                "the key's state is {} (over maxStateBytesPerKey = {})",
                crate::wasm::human_bytes(total),
                crate::wasm::human_bytes(max_bytes)
            ));
        }
        Ok(Returned { vars, timers })
    }
}

fn binary(a: &dyn Array) -> Result<&BinaryArray, String> {
    a.as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| format!("a state column is {}, not Binary", a.data_type()))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Checks one value's bytes against the variable's declared encoding.
fn check_value(v: &StateVariable, what: &str, bytes: &[u8]) -> Result<(), String> {
    let ok = match v.encoding {
        ValueEncoding::Bytes => true,
        ValueEncoding::Utf8 => std::str::from_utf8(bytes).is_ok(),
        ValueEncoding::Json => serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok(),
        ValueEncoding::Int64 | ValueEncoding::Float64 => bytes.len() == 8,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "state '{}' got a {what} that is not {} ({} bytes: {})",
            v.name,
            encoding_name(v.encoding),
            bytes.len(),
            preview(bytes)
        ))
    }
}

/// The encoding's name in messages and `sluice state show`.
pub fn encoding_name(e: ValueEncoding) -> &'static str {
    match e {
        ValueEncoding::Bytes => "bytes",
        ValueEncoding::Utf8 => "UTF-8 text",
        ValueEncoding::Json => "JSON",
        ValueEncoding::Int64 => "an 8-byte int64",
        ValueEncoding::Float64 => "an 8-byte float64",
    }
}

fn preview(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 16 {
        format!("{hex}…")
    } else {
        hex
    }
}

/// A value's bytes as JSON for `sluice state show`, by its encoding.
pub fn value_json(encoding: ValueEncoding, bytes: &[u8]) -> serde_json::Value {
    use serde_json::Value;
    match encoding {
        ValueEncoding::Utf8 => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        ValueEncoding::Json => {
            serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(preview(bytes)))
        }
        ValueEncoding::Int64 => bytes
            .try_into()
            .map(|b| Value::from(i64::from_le_bytes(b)))
            .unwrap_or(Value::Null),
        ValueEncoding::Float64 => bytes
            .try_into()
            .map(|b| Value::from(f64::from_le_bytes(b)))
            .unwrap_or(Value::Null),
        ValueEncoding::Bytes => Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

/// A stored variable's contents as JSON (a value, an array, or an object of entries).
pub fn var_json(v: &StateVariable, contents: &[u8]) -> serde_json::Value {
    let mut r = Reader(contents);
    match v.kind {
        StateKind::Value => r
            .bytes()
            .map(|b| value_json(v.encoding, b))
            .unwrap_or_default(),
        StateKind::List => {
            let n = r.u32().unwrap_or(0);
            (0..n)
                .filter_map(|_| r.bytes().map(|b| value_json(v.encoding, b)))
                .collect()
        }
        StateKind::Map => {
            let n = r.u32().unwrap_or(0);
            let mut m = serde_json::Map::new();
            for _ in 0..n {
                let (Some(k), Some(val)) = (r.bytes(), r.bytes()) else {
                    break;
                };
                let key = match value_json(v.encoding, k) {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(key, value_json(v.encoding, val));
            }
            serde_json::Value::Object(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<StateVariable> {
        vec![
            StateVariable {
                name: "count".into(),
                kind: StateKind::Value,
                encoding: ValueEncoding::Int64,
                ttl_ms: Some(1000),
            },
            StateVariable {
                name: "events".into(),
                kind: StateKind::List,
                encoding: ValueEncoding::Utf8,
                ttl_ms: None,
            },
            StateVariable {
                name: "seen".into(),
                kind: StateKind::Map,
                encoding: ValueEncoding::Utf8,
                ttl_ms: None,
            },
        ]
    }

    #[test]
    fn state_round_trips_through_the_state_batch() {
        let vars = vars();
        let mut count = Vec::new();
        put_bytes(&mut count, &7i64.to_le_bytes());
        let mut events = 2u32.to_le_bytes().to_vec();
        put_bytes(&mut events, b"a");
        put_bytes(&mut events, b"bc");
        let mut blob = Vec::new();
        assert!(write(
            &vars,
            &[Some((500, &count)), Some((NEVER, &events)), None],
            &[10, 20],
            &mut blob
        ));
        let parsed = parse(&vars, &blob).expect("parses");
        assert_eq!(deadlines(&parsed), (500, 10));
        let mut b = StateBatchBuilder::new(&vars, 2);
        b.append(Some(&parsed));
        b.append(None);
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let reader = StateBatchReader::new(&vars, &batch).unwrap();
        let row = reader.row(0, 1 << 20).unwrap();
        assert_eq!(row.vars[0].as_deref(), Some(count.as_slice()));
        assert_eq!(row.vars[1].as_deref(), Some(events.as_slice()));
        assert!(row.vars[2].is_none());
        assert_eq!(row.timers, vec![10, 20]);
        let empty = reader.row(1, 1 << 20).unwrap();
        assert!(empty.vars.iter().all(Option::is_none) && empty.timers.is_empty());
        assert!(
            reader
                .row(0, 10)
                .unwrap_err()
                .contains("maxStateBytesPerKey")
        );
        assert!(parse(&vars, &blob[..blob.len() - 1]).is_none());
        assert_eq!(var_json(&vars[1], &events), serde_json::json!(["a", "bc"]));
    }

    #[test]
    fn a_value_that_is_not_its_encoding_is_refused() {
        let vars = vars();
        let err = check_value(&vars[0], "value", b"abc").unwrap_err();
        assert!(
            err.contains("state 'count'") && err.contains("8-byte int64"),
            "{err}"
        );
    }
}
