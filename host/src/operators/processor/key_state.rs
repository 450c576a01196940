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

/// One variable of a key, as stored: its expiry and where its contents' encoded bytes are
/// in the key's state bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredVar {
    /// When it expires ([`i64::MAX`]: never).
    pub expiry: i64,
    /// The contents after the expiry, as laid out above: `blob[start..end]`.
    pub start: u32,
    /// End of the contents.
    pub end: u32,
}

impl StoredVar {
    /// The contents in `blob` (the bytes this was parsed from).
    pub fn contents<'b>(&self, blob: &'b [u8]) -> &'b [u8] {
        &blob[self.start as usize..self.end as usize]
    }
}

/// A key's state split into its variables (`None`: absent) and timers. Holds positions,
/// not borrows, so one `Parsed` is reused for every key of a batch.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// Per declared variable.
    pub vars: Vec<Option<StoredVar>>,
    /// The key's timers, ascending.
    pub timers: Vec<i64>,
}

impl Parsed {
    /// Splits `blob` into this (reusing its buffers); `false` when the bytes do not fit
    /// `variables`.
    pub fn parse_into(&mut self, variables: &[StateVariable], blob: &[u8]) -> bool {
        self.vars.clear();
        self.timers.clear();
        self.try_parse(variables, blob).is_some()
    }

    fn try_parse(&mut self, variables: &[StateVariable], blob: &[u8]) -> Option<()> {
        let mut r = Reader(blob);
        let at = |r: &Reader| (blob.len() - r.0.len()) as u32;
        for v in variables {
            if r.u8()? == 0 {
                self.vars.push(None);
                continue;
            }
            let expiry = if v.ttl_ms.is_some() { r.i64()? } else { NEVER };
            let start = at(&r);
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
            self.vars.push(Some(StoredVar {
                expiry,
                start,
                end: at(&r),
            }));
        }
        let n = r.u32()?;
        if r.0.len() != n * 8 {
            return None;
        }
        for _ in 0..n {
            self.timers.push(r.i64()?);
        }
        Some(())
    }

    /// The earliest expiry among the variables and the first timer.
    pub fn deadlines(&self) -> (i64, i64) {
        let expiry = self
            .vars
            .iter()
            .flatten()
            .map(|v| v.expiry)
            .min()
            .unwrap_or(NEVER);
        (expiry, self.timers.first().copied().unwrap_or(NEVER))
    }
}

/// Splits a key's stored state; `None` when the bytes do not fit `variables`.
pub fn parse(variables: &[StateVariable], blob: &[u8]) -> Option<Parsed> {
    let mut p = Parsed::default();
    p.parse_into(variables, blob).then_some(p)
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

    /// Appends one key's row (its stored bytes and their parse; `None`: no state yet). The
    /// contents were checked when they were stored.
    pub fn append(&mut self, state: Option<(&[u8], &Parsed)>) {
        let parsed = state.map(|(_, p)| p);
        for (i, column) in self.columns.iter_mut().enumerate() {
            let contents = state.and_then(|(blob, p)| p.vars[i].map(|v| v.contents(blob)));
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

/// What [`StateBatchReader::write_row`] found in a returned key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Whether anything is left (else the key leaves the store).
    pub keep: bool,
    /// The earliest expiry of its variables.
    pub expiry: i64,
}

/// Reusable buffers for [`StateBatchReader::write_row`].
#[derive(Debug, Default)]
pub struct RowBuffers {
    /// The key's new stored bytes.
    pub blob: Vec<u8>,
    /// Its timers, ascending.
    pub timers: Vec<i64>,
    contents: Vec<u8>,
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

    /// Checks row `row` and writes it as a key's stored state into `buf.blob`, and its
    /// timers (ascending, without repeats) into `buf.timers`. A variable whose contents did
    /// not change from `old` (the key's stored bytes and their parse) keeps its expiry; a
    /// changed one with a TTL expires at `ttl_from + ttl`. Errors name the variable.
    pub fn write_row(
        &self,
        row: usize,
        old: Option<(&[u8], &Parsed)>,
        ttl_from: i64,
        max_bytes: u64,
        buf: &mut RowBuffers,
    ) -> Result<Written, String> {
        let RowBuffers {
            blob: out,
            timers,
            contents,
        } = buf;
        out.clear();
        let mut keep = false;
        let mut min_expiry = NEVER;
        for (j, (v, column)) in self.variables.iter().zip(&self.columns).enumerate() {
            contents.clear();
            if !self.contents(v, *column, row, contents)? {
                out.push(0);
                continue;
            }
            keep = true;
            let before = old.and_then(|(blob, p)| p.vars[j].map(|s| (s.contents(blob), s.expiry)));
            let expiry = match (before, v.ttl_ms) {
                (Some((b, e)), _) if b == contents.as_slice() => e,
                (_, Some(ttl)) => ttl_from.saturating_add(ttl as i64),
                (_, None) => NEVER,
            };
            out.push(1);
            if v.ttl_ms.is_some() {
                out.extend_from_slice(&expiry.to_le_bytes());
                min_expiry = min_expiry.min(expiry);
            }
            out.extend_from_slice(contents);
        }
        let (start, end) = offsets_of(self.timers, row);
        let values = self
            .timers
            .values()
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("the timers column is not Int64")?;
        timers.clear();
        for i in start..end {
            if values.is_null(i) {
                return Err("a timer is null".into());
            }
            timers.push(values.value(i));
        }
        timers.sort_unstable();
        timers.dedup();
        keep |= !timers.is_empty();
        out.extend_from_slice(&(timers.len() as u32).to_le_bytes());
        for t in timers.iter() {
            out.extend_from_slice(&t.to_le_bytes());
        }
        if out.len() as u64 > max_bytes {
            return Err(format!(
                "the key's state is {} (over maxStateBytesPerKey = {})",
                crate::wasm::human_bytes(out.len() as u64),
                crate::wasm::human_bytes(max_bytes)
            ));
        }
        Ok(Written {
            keep,
            expiry: min_expiry,
        })
    }

    /// Encodes one variable of `row` into `out` as stored; `false` when it is absent.
    fn contents(
        &self,
        v: &StateVariable,
        column: &dyn Array,
        row: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        Ok(match v.kind {
            StateKind::Value => {
                let a = binary(column)?;
                if a.is_null(row) {
                    false
                } else {
                    let value = a.value(row);
                    check_value(v, "value", value)?;
                    put_bytes(out, value);
                    true
                }
            }
            StateKind::List => {
                let list = column
                    .as_any()
                    .downcast_ref::<ListArray>()
                    .ok_or("a list variable is not a list column")?;
                let (start, end) = offsets_of(list, row);
                let items = binary(list.values().as_ref())?;
                out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                for i in start..end {
                    if items.is_null(i) {
                        return Err(format!("list state '{}' holds a null element", v.name));
                    }
                    let item = items.value(i);
                    check_value(v, "element", item)?;
                    put_bytes(out, item);
                }
                end > start
            }
            StateKind::Map => {
                let list = column
                    .as_any()
                    .downcast_ref::<ListArray>()
                    .ok_or("a map variable is not a list column")?;
                let (start, end) = offsets_of(list, row);
                let entries = list
                    .values()
                    .as_any()
                    .downcast_ref::<StructArray>()
                    .ok_or("a map variable's entries are not structs")?;
                let keys = binary(entries.column(0).as_ref())?;
                let values = binary(entries.column(1).as_ref())?;
                out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                let mut previous: Option<&[u8]> = None;
                for i in start..end {
                    if keys.is_null(i) || values.is_null(i) {
                        return Err(format!("map state '{}' holds a null key or value", v.name));
                    }
                    let (k, value) = (keys.value(i), values.value(i));
                    if previous.is_some_and(|p| p >= k) {
                        return Err(format!(
                            "map state '{}' has entries out of key order or a repeated key",
                            v.name
                        ));
                    }
                    previous = Some(k);
                    check_value(v, "key", k)?;
                    check_value(v, "value", value)?;
                    put_bytes(out, k);
                    put_bytes(out, value);
                }
                end > start
            }
        })
    }
}

fn offsets_of(list: &ListArray, row: usize) -> (usize, usize) {
    let o = list.value_offsets();
    (o[row] as usize, o[row + 1] as usize)
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
        assert_eq!(parsed.deadlines(), (500, 10));
        let mut b = StateBatchBuilder::new(&vars, 2);
        b.append(Some((&blob, &parsed)));
        b.append(None);
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let reader = StateBatchReader::new(&vars, &batch).unwrap();
        let mut buf = RowBuffers::default();
        // Unchanged contents keep their expiry: the same bytes come back.
        let w = reader
            .write_row(0, Some((&blob, &parsed)), 9_000, 1 << 20, &mut buf)
            .unwrap();
        assert_eq!(
            w,
            Written {
                keep: true,
                expiry: 500
            }
        );
        assert_eq!(buf.blob, blob);
        assert_eq!(buf.timers, vec![10, 20]);
        // Without the old state the TTL starts from `ttl_from`.
        let w = reader.write_row(0, None, 9_000, 1 << 20, &mut buf).unwrap();
        assert_eq!(w.expiry, 10_000);
        let empty = reader.write_row(1, None, 0, 1 << 20, &mut buf).unwrap();
        assert!(!empty.keep && buf.timers.is_empty());
        assert!(
            reader
                .write_row(0, None, 0, 10, &mut buf)
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
