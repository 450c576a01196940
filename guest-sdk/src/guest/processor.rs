//! Keyed processors: arbitrary per-key state with TTL and timers, in the spirit of Spark's
//! `StatefulProcessor` (`transformWithState`).
//!
//! The host groups each batch's rows by the pipeline's `key` columns and calls the component
//! once per batch; this module turns that one call into the per-key callbacks below, with
//! typed handles for the state variables declared at [`Processor::init`].
//!
//! A processor that counts rows per key and emits the running count:
//!
//! ```text
//! use sluice_guest_sdk::prelude::*;
//!
//! struct Counter { count: ValueState<i64>, out: SchemaRef, keys: Vec<u32>, counts: Vec<i64> }
//!
//! impl Processor for Counter {
//!     fn init(_config: &Config, schemas: &Schemas, state: &mut StateDecl) -> Result<Self, Error> {
//!         Ok(Counter {
//!             count: state.value("count", None)?,
//!             out: Arc::new(Schema::new(vec![
//!                 Field::new("user", DataType::Utf8, false),
//!                 Field::new("count", DataType::Int64, false),
//!             ])),
//!             keys: Vec::new(),
//!             counts: Vec::new(),
//!         })
//!     }
//!     fn output_schema(&self) -> SchemaRef { self.out.clone() }
//!     fn handle_rows(&mut self, key: &Key, rows: &Rows, state: &mut KeyState, _out: &mut Output) -> Result<(), Error> {
//!         let n = state.get(&self.count)?.unwrap_or(0) + rows.num_rows() as i64;
//!         state.set(&self.count, &n);
//!         self.keys.push(key.index() as u32);
//!         self.counts.push(n);
//!         Ok(())
//!     }
//!     fn end_batch(&mut self, keys: &RecordBatch, out: &mut Output) -> Result<(), Error> {
//!         let counts = Int64Array::from(std::mem::take(&mut self.counts));
//!         out.emit_keyed(keys, std::mem::take(&mut self.keys), vec![Arc::new(counts)])
//!     }
//! }
//!
//! export_processor!(Counter);
//! ```
//!
//! In the pipeline:
//!
//! ```toml
//! [query.processor]
//! module = "counter.wasm"
//! key = ["user"]
//! timeMode = "none"          # or "processingTime", "eventTime" (needs a watermark)
//! ```
//!
//! Order within a batch, key by key (keys with rows first, in the order they first appear):
//! [`Processor::handle_rows`] with the key's rows in arrival order, then
//! [`Processor::handle_timer`] for each of its timers that fired, in time order; after the
//! last key, [`Processor::end_batch`]. A key's state is final when the next key starts, so
//! a batch of a million keys holds one key's decoded state at a time. Output handed to
//! [`Output::emit`] reaches the host once, after `end_batch`.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{BinaryBuilder, Int64Builder};
use arrow_array::{Array, BinaryArray, Int64Array, ListArray, StructArray};
use arrow_buffer::OffsetBuffer;

use super::*;
use crate::bindings::exports::sluice::pipeline::processor::{
    self as wit_processor, Guest, StateKind, StateVariable,
};

pub use wit_processor::{TimeMode, ValueEncoding};

/// What `init` is told: the key columns, the input columns, and the query's time mode.
pub struct Schemas {
    /// The key columns (the pipeline's `key`).
    pub key: SchemaRef,
    /// Every column of the rows.
    pub input: SchemaRef,
    /// The pipeline's `timeMode`.
    pub time_mode: TimeMode,
}

/// A value a state variable can hold: how it becomes bytes in the host's state store.
pub trait StateValue: Sized {
    /// What the bytes are, for the host's checks and `sluice state show`.
    const ENCODING: ValueEncoding;
    /// Appends the value's bytes.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a value back.
    fn decode(bytes: &[u8]) -> Result<Self, Error>;
}

impl StateValue for i64 {
    const ENCODING: ValueEncoding = ValueEncoding::Int64;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Ok(i64::from_le_bytes(bytes.try_into().map_err(|_| {
            Error("an int64 state value is not 8 bytes".into())
        })?))
    }
}

impl StateValue for f64 {
    const ENCODING: ValueEncoding = ValueEncoding::Float64;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Ok(f64::from_le_bytes(bytes.try_into().map_err(|_| {
            Error("a float64 state value is not 8 bytes".into())
        })?))
    }
}

impl StateValue for String {
    const ENCODING: ValueEncoding = ValueEncoding::Utf8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        String::from_utf8(bytes.to_vec()).map_err(|_| Error("a state value is not UTF-8".into()))
    }
}

impl StateValue for Vec<u8> {
    const ENCODING: ValueEncoding = ValueEncoding::Bytes;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Ok(bytes.to_vec())
    }
}

/// Any serde type, stored as JSON (readable in `sluice state show`).
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize + serde::de::DeserializeOwned> StateValue for Json<T> {
    const ENCODING: ValueEncoding = ValueEncoding::Json;
    fn encode(&self, out: &mut Vec<u8>) {
        // Serializing into a Vec fails only for maps with non-string keys; store null then.
        if serde_json::to_writer(&mut *out, &self.0).is_err() {
            out.extend_from_slice(b"null");
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Json(serde_json::from_slice(bytes)?))
    }
}

/// A declared state variable holding one value (Spark's `ValueState`).
pub struct ValueState<T>(usize, PhantomData<T>);
/// A declared state variable holding values in order (Spark's `ListState`).
pub struct ListState<T>(usize, PhantomData<T>);
/// A declared state variable holding entries by key (Spark's `MapState`).
pub struct MapState<K, V>(usize, PhantomData<(K, V)>);

/// Any state handle, for [`KeyState::clear`].
pub trait StateHandle {
    /// The variable's position in the declaration.
    fn index(&self) -> usize;
}
impl<T> StateHandle for ValueState<T> {
    fn index(&self) -> usize {
        self.0
    }
}
impl<T> StateHandle for ListState<T> {
    fn index(&self) -> usize {
        self.0
    }
}
impl<K, V> StateHandle for MapState<K, V> {
    fn index(&self) -> usize {
        self.0
    }
}

/// Where `init` declares the state variables. Names are unique; a TTL evicts a variable that
/// long after its last change (processing time, or the watermark in event-time mode).
#[derive(Default)]
pub struct StateDecl {
    variables: Vec<StateVariable>,
}

impl StateDecl {
    fn add(
        &mut self,
        name: &str,
        kind: StateKind,
        encoding: ValueEncoding,
        ttl: Option<Duration>,
    ) -> Result<usize, Error> {
        if self.variables.iter().any(|v| v.name == name) {
            return Err(Error(format!("state variable '{name}' is declared twice")));
        }
        self.variables.push(StateVariable {
            name: name.to_owned(),
            kind,
            encoding,
            ttl_ms: ttl.map(|t| t.as_millis().max(1) as u64),
        });
        Ok(self.variables.len() - 1)
    }

    /// Declares a value variable.
    pub fn value<T: StateValue>(
        &mut self,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<ValueState<T>, Error> {
        let i = self.add(name, StateKind::Value, T::ENCODING, ttl)?;
        Ok(ValueState(i, PhantomData))
    }

    /// Declares a list variable.
    pub fn list<T: StateValue>(
        &mut self,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<ListState<T>, Error> {
        let i = self.add(name, StateKind::List, T::ENCODING, ttl)?;
        Ok(ListState(i, PhantomData))
    }

    /// Declares a map variable (keys and values share one encoding: use the same kind of
    /// type for both, e.g. `String` and `String`, or [`Json`] for both).
    pub fn map<K: StateValue, V: StateValue>(
        &mut self,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<MapState<K, V>, Error> {
        let i = self.add(name, StateKind::Map, V::ENCODING, ttl)?;
        Ok(MapState(i, PhantomData))
    }
}

/// One key of the batch: a row of the key columns.
pub struct Key<'a> {
    keys: &'a RecordBatch,
    row: usize,
}

impl Key<'_> {
    /// The key's row in the batch's key columns (what [`Processor::end_batch`] gets), for
    /// gathering output across keys and taking the key columns once.
    pub fn index(&self) -> usize {
        self.row
    }

    /// Key column `i` as a one-row array.
    pub fn column(&self, i: usize) -> ArrayRef {
        self.keys.column(i).slice(self.row, 1)
    }

    /// The key as a one-row batch of the key columns (handy to build output rows).
    pub fn as_batch(&self) -> RecordBatch {
        self.keys.slice(self.row, 1)
    }

    /// Key column `i` when it is a string.
    pub fn string(&self, i: usize) -> Result<&str, Error> {
        self.keys
            .column(i)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .map(|a| a.value(self.row))
            .ok_or_else(|| Error(format!("key column {i} is not a string")))
    }

    /// Key column `i` when it is an Int64.
    pub fn i64(&self, i: usize) -> Result<i64, Error> {
        self.keys
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.value(self.row))
            .ok_or_else(|| Error(format!("key column {i} is not an Int64")))
    }
}

/// One key's rows in this batch, in arrival order: a range of the batch's grouped rows.
/// Counting them costs nothing; [`Rows::batch`] slices them out when columns are needed.
pub struct Rows<'a> {
    all: &'a RecordBatch,
    start: usize,
    len: usize,
}

impl<'a> Rows<'a> {
    /// How many rows the key has.
    pub fn num_rows(&self) -> usize {
        self.len
    }

    /// The rows as a batch of the input schema (a zero-copy slice).
    pub fn batch(&self) -> RecordBatch {
        self.all.slice(self.start, self.len)
    }

    /// Every key's rows of the batch, and where this key's are in it: for reading columns
    /// by index without slicing per key.
    pub fn all(&self) -> (&'a RecordBatch, std::ops::Range<usize>) {
        (self.all, self.start..self.start + self.len)
    }
}

/// The batch's clock (Spark's `TimerValues`).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The engine's batch id (the same when a batch is re-run).
    pub batch_id: u64,
    /// The batch's processing time, ms since the epoch.
    pub processing_time_ms: i64,
    /// The watermark, when the query has one.
    pub watermark_ms: Option<i64>,
}

/// One variable of a key as the callbacks left it.
enum Slot {
    /// As the host sent it.
    Input,
    Value(Option<Vec<u8>>),
    List(Vec<Vec<u8>>),
    Map(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// The state batch the host sent, read per key.
struct Incoming {
    columns: Vec<Column>,
    timers: ListArray,
}

enum Column {
    Value(BinaryArray),
    List(ListArray, BinaryArray),
    Map(ListArray, BinaryArray, BinaryArray),
}

impl Incoming {
    fn new(variables: &[StateVariable], batch: &RecordBatch) -> Result<Incoming, Error> {
        let bad = || Error("the host sent a state batch of another layout".into());
        let binary = |a: &ArrayRef| a.as_any().downcast_ref::<BinaryArray>().cloned();
        let mut columns = Vec::with_capacity(variables.len());
        for (i, v) in variables.iter().enumerate() {
            let col = batch.column(i);
            columns.push(match v.kind {
                StateKind::Value => Column::Value(binary(col).ok_or_else(bad)?),
                StateKind::List => {
                    let list = col.as_any().downcast_ref::<ListArray>().ok_or_else(bad)?;
                    Column::List(list.clone(), binary(list.values()).ok_or_else(bad)?)
                }
                StateKind::Map => {
                    let list = col.as_any().downcast_ref::<ListArray>().ok_or_else(bad)?;
                    let entries = list
                        .values()
                        .as_any()
                        .downcast_ref::<StructArray>()
                        .ok_or_else(bad)?;
                    Column::Map(
                        list.clone(),
                        binary(entries.column(0)).ok_or_else(bad)?,
                        binary(entries.column(1)).ok_or_else(bad)?,
                    )
                }
            });
        }
        let timers = batch
            .column(variables.len())
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(bad)?
            .clone();
        Ok(Incoming { columns, timers })
    }

    fn range(list: &ListArray, row: usize) -> std::ops::Range<usize> {
        let o = list.value_offsets();
        o[row] as usize..o[row + 1] as usize
    }
}

/// One key's state during a batch: read from what the host sent, changed by the callbacks,
/// sent back after `end_batch`.
pub struct KeyState<'a> {
    incoming: &'a Incoming,
    row: usize,
    slots: Vec<Slot>,
    timers: Option<Vec<i64>>,
    clock: Clock,
}

impl<'a> KeyState<'a> {
    /// Key `row`'s state, its slots vector reused from the previous key.
    fn new(incoming: &'a Incoming, row: usize, clock: Clock, mut slots: Vec<Slot>) -> Self {
        slots.clear();
        slots.extend((0..incoming.columns.len()).map(|_| Slot::Input));
        KeyState {
            incoming,
            row,
            slots,
            timers: None,
            clock,
        }
    }

    /// The batch's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn value_bytes(&self, i: usize) -> Option<&[u8]> {
        match &self.slots[i] {
            Slot::Value(v) => v.as_deref(),
            _ => match &self.incoming.columns[i] {
                Column::Value(a) if a.is_valid(self.row) => Some(a.value(self.row)),
                _ => None,
            },
        }
    }

    fn list_items(&self, i: usize) -> Vec<&[u8]> {
        match &self.slots[i] {
            Slot::List(items) => items.iter().map(|v| v.as_slice()).collect(),
            _ => match &self.incoming.columns[i] {
                Column::List(list, items) => Incoming::range(list, self.row)
                    .map(|j| items.value(j))
                    .collect(),
                _ => Vec::new(),
            },
        }
    }

    fn map_slot(&mut self, i: usize) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
        if !matches!(self.slots[i], Slot::Map(_)) {
            let mut m = BTreeMap::new();
            if let Column::Map(list, keys, values) = &self.incoming.columns[i] {
                for j in Incoming::range(list, self.row) {
                    m.insert(keys.value(j).to_vec(), values.value(j).to_vec());
                }
            }
            self.slots[i] = Slot::Map(m);
        }
        match &mut self.slots[i] {
            Slot::Map(m) => m,
            _ => unreachable!("just set"),
        }
    }

    fn encode<T: StateValue>(&mut self, v: &T) -> Vec<u8> {
        let mut bytes = Vec::new();
        v.encode(&mut bytes);
        bytes
    }

    /// The value, if set.
    pub fn get<T: StateValue>(&self, h: &ValueState<T>) -> Result<Option<T>, Error> {
        self.value_bytes(h.0).map(T::decode).transpose()
    }

    /// Sets the value.
    pub fn set<T: StateValue>(&mut self, h: &ValueState<T>, v: &T) {
        let bytes = self.encode(v);
        self.slots[h.0] = Slot::Value(Some(bytes));
    }

    /// The list's values.
    pub fn list<T: StateValue>(&self, h: &ListState<T>) -> Result<Vec<T>, Error> {
        self.list_items(h.0).into_iter().map(T::decode).collect()
    }

    /// Replaces the list.
    pub fn set_list<T: StateValue>(&mut self, h: &ListState<T>, values: &[T]) {
        let items = values.iter().map(|v| self.encode(v)).collect();
        self.slots[h.0] = Slot::List(items);
    }

    /// Appends to the list.
    pub fn append<T: StateValue>(&mut self, h: &ListState<T>, v: &T) {
        let bytes = self.encode(v);
        if !matches!(self.slots[h.0], Slot::List(_)) {
            let items = self
                .list_items(h.0)
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
            self.slots[h.0] = Slot::List(items);
        }
        if let Slot::List(items) = &mut self.slots[h.0] {
            items.push(bytes);
        }
    }

    /// The map's value for `k`.
    pub fn map_get<K: StateValue, V: StateValue>(
        &mut self,
        h: &MapState<K, V>,
        k: &K,
    ) -> Result<Option<V>, Error> {
        let key = self.encode(k);
        self.map_slot(h.0)
            .get(&key)
            .map(|v| V::decode(v))
            .transpose()
    }

    /// Sets the map's value for `k`.
    pub fn map_put<K: StateValue, V: StateValue>(&mut self, h: &MapState<K, V>, k: &K, v: &V) {
        let (key, value) = (self.encode(k), self.encode(v));
        self.map_slot(h.0).insert(key, value);
    }

    /// Removes `k` from the map.
    pub fn map_remove<K: StateValue, V: StateValue>(&mut self, h: &MapState<K, V>, k: &K) {
        let key = self.encode(k);
        self.map_slot(h.0).remove(&key);
    }

    /// The map's entries, in the order of their keys' bytes.
    pub fn map_entries<K: StateValue, V: StateValue>(
        &mut self,
        h: &MapState<K, V>,
    ) -> Result<Vec<(K, V)>, Error> {
        self.map_slot(h.0)
            .iter()
            .map(|(k, v)| Ok((K::decode(k)?, V::decode(v)?)))
            .collect()
    }

    /// Clears one variable.
    pub fn clear(&mut self, h: &impl StateHandle) {
        let i = h.index();
        self.slots[i] = match self.incoming.columns[i] {
            Column::Value(_) => Slot::Value(None),
            Column::List(..) => Slot::List(Vec::new()),
            Column::Map(..) => Slot::Map(BTreeMap::new()),
        };
    }

    /// Clears every variable and timer of the key: it leaves the state store.
    pub fn clear_all(&mut self) {
        for i in 0..self.slots.len() {
            self.slots[i] = match self.incoming.columns[i] {
                Column::Value(_) => Slot::Value(None),
                Column::List(..) => Slot::List(Vec::new()),
                Column::Map(..) => Slot::Map(BTreeMap::new()),
            };
        }
        self.timers = Some(Vec::new());
    }

    /// The timers the host sent for this key (no copy).
    fn incoming_timers(&self) -> &[i64] {
        let range = Incoming::range(&self.incoming.timers, self.row);
        self.incoming
            .timers
            .values()
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| &a.values()[range])
            .unwrap_or_default()
    }

    fn timers_mut(&mut self) -> &mut Vec<i64> {
        if self.timers.is_none() {
            self.timers = Some(self.incoming_timers().to_vec());
        }
        self.timers.get_or_insert_with(Vec::new)
    }

    /// The key's registered timers (ms), ascending.
    pub fn timers(&mut self) -> Vec<i64> {
        self.timers_mut().clone()
    }

    /// Registers a timer (ms): it must lie after the batch's clock (the watermark in
    /// event-time mode, the processing time otherwise), or the host fails the batch.
    pub fn register_timer(&mut self, at_ms: i64) {
        let t = self.timers_mut();
        if let Err(pos) = t.binary_search(&at_ms) {
            t.insert(pos, at_ms);
        }
    }

    /// Deletes a timer, if registered.
    pub fn delete_timer(&mut self, at_ms: i64) {
        let t = self.timers_mut();
        if let Ok(pos) = t.binary_search(&at_ms) {
            t.remove(pos);
        }
    }
}

/// Where a processor's output rows go; the host receives them once, after `end_batch`.
pub struct Output {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Output {
    /// Queues a batch of output rows (of the output schema's types).
    pub fn emit(&mut self, batch: RecordBatch) -> Result<(), Error> {
        let same = batch.schema_ref().fields().len() == self.schema.fields().len()
            && batch
                .schema_ref()
                .fields()
                .iter()
                .zip(self.schema.fields())
                .all(|(a, b)| a.data_type() == b.data_type());
        if !same {
            return Err(Error(
                "emitted a batch whose columns do not match the output schema".into(),
            ));
        }
        if batch.num_rows() > 0 {
            self.batches.push(batch);
        }
        Ok(())
    }

    /// Queues one output row per gathered key: the key columns at `keys` (each key's
    /// [`Key::index`], from the batch's key columns `end_batch` gets), then `columns`, in the
    /// output schema's order. The usual way to emit what `handle_rows` gathered.
    pub fn emit_keyed(
        &mut self,
        key_columns: &RecordBatch,
        keys: Vec<u32>,
        columns: Vec<ArrayRef>,
    ) -> Result<(), Error> {
        let taken = arrow_select::take::take_record_batch(
            key_columns,
            &arrow_array::UInt32Array::from(keys),
        )?;
        let mut all = taken.columns().to_vec();
        all.extend(columns);
        let batch = RecordBatch::try_new(self.schema.clone(), all)?;
        self.emit(batch)
    }
}

/// A keyed processor (Spark's `StatefulProcessor`).
pub trait Processor: Sized + 'static {
    /// Called once when the query starts: read the config, declare the state variables.
    fn init(config: &Config, schemas: &Schemas, state: &mut StateDecl) -> Result<Self, Error>;

    /// The schema of every batch emitted; fixed after `init`.
    fn output_schema(&self) -> SchemaRef;

    /// The rows of one key in this batch (Spark's `handleInputRows`), in arrival order.
    fn handle_rows(
        &mut self,
        key: &Key,
        rows: &Rows,
        state: &mut KeyState,
        out: &mut Output,
    ) -> Result<(), Error>;

    /// A timer of `key` fired (Spark's `handleExpiredTimer`); it is already deleted.
    fn handle_timer(
        &mut self,
        _key: &Key,
        _at_ms: i64,
        _state: &mut KeyState,
        _out: &mut Output,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// After every callback of the batch: emit what was gathered in builders. `keys` holds
    /// the batch's key columns, a row per key ([`Key::index`]).
    fn end_batch(&mut self, _keys: &RecordBatch, _out: &mut Output) -> Result<(), Error> {
        Ok(())
    }
}

struct State<T> {
    user: T,
    key: SchemaRef,
    input: SchemaRef,
    output: SchemaRef,
    variables: Vec<StateVariable>,
    state: SchemaRef,
}

/// Sends a key's final state into the state batch's builders.
struct StateBuilder {
    columns: Vec<ColumnBuilder>,
    timer_offsets: Vec<i32>,
    timers: Int64Builder,
}

enum ColumnBuilder {
    Value(BinaryBuilder),
    List(Vec<i32>, BinaryBuilder),
    Map(Vec<i32>, BinaryBuilder, BinaryBuilder),
}

impl StateBuilder {
    fn new(variables: &[StateVariable]) -> Self {
        StateBuilder {
            columns: variables
                .iter()
                .map(|v| match v.kind {
                    StateKind::Value => ColumnBuilder::Value(BinaryBuilder::new()),
                    StateKind::List => ColumnBuilder::List(vec![0], BinaryBuilder::new()),
                    StateKind::Map => {
                        ColumnBuilder::Map(vec![0], BinaryBuilder::new(), BinaryBuilder::new())
                    }
                })
                .collect(),
            timer_offsets: vec![0],
            timers: Int64Builder::new(),
        }
    }

    /// Appends a key's final state; gives its slots vector back for the next key.
    fn push(&mut self, mut ks: KeyState) -> Vec<Slot> {
        for (i, column) in self.columns.iter_mut().enumerate() {
            let slot = std::mem::replace(&mut ks.slots[i], Slot::Input);
            match (column, slot) {
                (ColumnBuilder::Value(b), Slot::Value(v)) => b.append_option(v),
                (ColumnBuilder::Value(b), _) => b.append_option(ks.value_bytes(i)),
                (ColumnBuilder::List(offsets, b), Slot::List(items)) => {
                    for item in items {
                        b.append_value(item);
                    }
                    offsets.push(arrow_array::builder::ArrayBuilder::len(b) as i32);
                }
                (ColumnBuilder::List(offsets, b), _) => {
                    for item in ks.list_items(i) {
                        b.append_value(item);
                    }
                    offsets.push(arrow_array::builder::ArrayBuilder::len(b) as i32);
                }
                (ColumnBuilder::Map(offsets, kb, vb), Slot::Map(m)) => {
                    for (k, v) in m {
                        kb.append_value(k);
                        vb.append_value(v);
                    }
                    offsets.push(arrow_array::builder::ArrayBuilder::len(kb) as i32);
                }
                (ColumnBuilder::Map(offsets, kb, vb), _) => {
                    if let Column::Map(list, keys, values) = &ks.incoming.columns[i] {
                        for j in Incoming::range(list, ks.row) {
                            kb.append_value(keys.value(j));
                            vb.append_value(values.value(j));
                        }
                    }
                    offsets.push(arrow_array::builder::ArrayBuilder::len(kb) as i32);
                }
            }
        }
        match &ks.timers {
            Some(changed) => self.timers.append_slice(changed),
            None => self.timers.append_slice(ks.incoming_timers()),
        }
        self.timer_offsets
            .push(arrow_array::builder::ArrayBuilder::len(&self.timers) as i32);
        std::mem::take(&mut ks.slots)
    }

    fn finish(self, schema: &SchemaRef) -> Result<RecordBatch, Error> {
        let item = |i: usize| match schema.field(i).data_type() {
            DataType::List(f) => Ok(f.clone()),
            _ => Err(Error("state schema mismatch".into())),
        };
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 1);
        for (i, column) in self.columns.into_iter().enumerate() {
            arrays.push(match column {
                ColumnBuilder::Value(mut b) => Arc::new(b.finish()),
                ColumnBuilder::List(offsets, mut b) => Arc::new(ListArray::try_new(
                    item(i)?,
                    OffsetBuffer::new(offsets.into()),
                    Arc::new(b.finish()),
                    None,
                )?),
                ColumnBuilder::Map(offsets, mut kb, mut vb) => {
                    let entries = StructArray::try_new(
                        abi::map_entry_fields(),
                        vec![Arc::new(kb.finish()), Arc::new(vb.finish())],
                        None,
                    )?;
                    Arc::new(ListArray::try_new(
                        item(i)?,
                        OffsetBuffer::new(offsets.into()),
                        Arc::new(entries),
                        None,
                    )?)
                }
            });
        }
        let mut timers = self.timers;
        arrays.push(Arc::new(ListArray::try_new(
            item(arrays.len())?,
            OffsetBuffer::new(self.timer_offsets.into()),
            Arc::new(timers.finish()),
            None,
        )?));
        Ok(RecordBatch::try_new(schema.clone(), arrays)?)
    }
}

#[doc(hidden)]
pub struct ProcessorAdapter<T>(PhantomData<T>);

impl<T: Processor> Guest for ProcessorAdapter<T> {
    fn init(
        config: String,
        key_schema: Vec<u8>,
        input_schema: Vec<u8>,
        mode: TimeMode,
    ) -> Result<wit_processor::ProcessorSpec, String> {
        install_panic_hook();
        let run = || -> Result<wit_processor::ProcessorSpec, Error> {
            let config = parse_config(&config)?;
            let schemas = Schemas {
                key: abi::decode_schema(&key_schema)?,
                input: abi::decode_schema(&input_schema)?,
                time_mode: mode,
            };
            let mut decl = StateDecl::default();
            let user = T::init(&config, &schemas, &mut decl)?;
            let output = user.output_schema();
            let state = abi::processor_state_schema(decl.variables.iter().map(|v| {
                (
                    v.name.as_str(),
                    match v.kind {
                        StateKind::Value => abi::StateColumn::Value,
                        StateKind::List => abi::StateColumn::List,
                        StateKind::Map => abi::StateColumn::Map,
                    },
                )
            }));
            let spec = wit_processor::ProcessorSpec {
                output_schema: abi::encode_schema(&output),
                state: decl.variables.clone(),
            };
            STATE.set(Some(Box::new(State {
                user,
                key: schemas.key,
                input: schemas.input,
                output,
                variables: decl.variables,
                state,
            })));
            Ok(spec)
        };
        run().map_err(|e| e.0)
    }

    fn process(
        ctx: wit_processor::BatchContext,
        keys: wit::BatchResult,
        rows: wit::BatchResult,
        row_ends: Vec<u32>,
        state: wit::BatchResult,
        expired: Vec<wit_processor::ExpiredTimer>,
    ) -> Result<wit::BatchResult, String> {
        with_state::<State<T>, _>(|s| {
            let keys = from_wit(&s.key, keys)?;
            let rows = from_wit(&s.input, rows)?;
            let state = from_wit(&s.state, state)?;
            if row_ends.len() != keys.num_rows() || state.num_rows() != keys.num_rows() {
                return Err(Error(
                    "the host sent keys, rows and state that do not line up".into(),
                ));
            }
            let incoming = Incoming::new(&s.variables, &state)?;
            let clock = Clock {
                batch_id: ctx.batch_id,
                processing_time_ms: ctx.processing_time_ms,
                watermark_ms: ctx.watermark_ms,
            };
            let mut out = Output {
                schema: s.output.clone(),
                batches: Vec::new(),
            };
            // Timers by key, in time order within a key.
            let mut timers: Vec<(u32, i64)> = expired.iter().map(|t| (t.key, t.at_ms)).collect();
            timers.sort_unstable();
            let mut next_timer = timers.iter().peekable();
            let mut builder = StateBuilder::new(&s.variables);
            let mut slots = Vec::new();
            let mut start = 0usize;
            // Key by key: its rows, then its timers; its state is final then and goes straight
            // into the state batch, so a batch holds one key's state at a time.
            for (i, &end) in row_ends.iter().enumerate() {
                let end = end as usize;
                if end < start || end > rows.num_rows() {
                    return Err(Error("the host sent row ranges out of order".into()));
                }
                let key = Key {
                    keys: &keys,
                    row: i,
                };
                let mut ks = KeyState::new(&incoming, i, clock, std::mem::take(&mut slots));
                if end > start {
                    let rows = Rows {
                        all: &rows,
                        start,
                        len: end - start,
                    };
                    s.user.handle_rows(&key, &rows, &mut ks, &mut out)?;
                }
                while let Some(&&(_, at)) = next_timer.peek().filter(|t| t.0 as usize == i) {
                    next_timer.next();
                    s.user.handle_timer(&key, at, &mut ks, &mut out)?;
                }
                slots = builder.push(ks);
                start = end;
            }
            if next_timer.next().is_some() {
                return Err(Error("a fired timer names no key".into()));
            }
            s.user.end_batch(&keys, &mut out)?;
            match out.batches.as_slice() {
                [] => {}
                [one] => with_wit(one, crate::bindings::sluice::pipeline::output::emit)?,
                many => {
                    let all = arrow_select::concat::concat_batches(&s.output, many)?;
                    with_wit(&all, crate::bindings::sluice::pipeline::output::emit)?;
                }
            }
            let batch = builder.finish(&s.state)?;
            to_wit_owned(&batch)
        })
        .map_err(|e| e.0)
    }
}

/// Exports a [`Processor`] implementation as the component's `processor` interface.
#[macro_export]
macro_rules! export_processor {
    ($t:ty) => {
        type __SluiceProcessor = $crate::ProcessorAdapter<$t>;
        $crate::bindings::__export_world!(__SluiceProcessor with_types_in $crate::bindings);
    };
}
