//! The guest side: traits a guest implements, the export macros, and the host services.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;

pub use arrow_array::{self, Array, ArrayRef, RecordBatch};
pub use arrow_buffer;
pub use arrow_ord;
pub use arrow_schema::{self, DataType, Field, Schema, SchemaRef};
pub use serde_json;

use crate::abi;
use crate::bindings::sluice::pipeline::arrow as wit;

/// A step's `config` table from the pipeline, as JSON (`Value::Null` when there is none).
pub type Config = serde_json::Value;

/// An error whose message reaches the host's log and the query's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_owned())
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(format!("JSON: {e}"))
    }
}

/// The column `name` of `batch` as a concrete array type, or an error naming what is wrong.
pub fn column<'b, A: Array + 'static>(batch: &'b RecordBatch, name: &str) -> Result<&'b A, Error> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error(format!("no column '{name}' in the batch")))?;
    col.as_any().downcast_ref::<A>().ok_or_else(|| {
        Error(format!(
            "column '{name}' is {}, not {}",
            col.data_type(),
            std::any::type_name::<A>()
                .rsplit("::")
                .next()
                .unwrap_or("the asked type")
        ))
    })
}

/// Logging to the host's log (tagged there with the query, step and module).
pub mod log {
    use crate::bindings::sluice::pipeline::log::{Level, write};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        write(Level::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        write(Level::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        write(Level::Error, message);
    }
}

/// JSON helpers, like Spark's `from_json` and `to_json`.
pub mod json {
    use arrow_array::{Array, RecordBatch, StringArray};
    use arrow_buffer::{Buffer, OffsetBuffer};
    use arrow_schema::SchemaRef;

    use super::Error;

    /// Parses a column of JSON objects into typed columns of `schema` (Spark's `from_json`).
    ///
    /// The strings are decoded in one pass by arrow-json: no per-row allocation. A null
    /// string gives a row of nulls; a malformed one is an error naming its row.
    pub fn from_json(strings: &StringArray, schema: SchemaRef) -> Result<RecordBatch, Error> {
        let mut text = Vec::with_capacity(strings.values().len() + strings.len() * 2);
        for value in strings.iter() {
            text.extend_from_slice(value.unwrap_or("{}").as_bytes());
            text.push(b'\n');
        }
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(strings.len().max(1))
            .build_decoder()?;
        let decoded = decoder.decode(&text).and_then(|_| decoder.flush());
        match decoded {
            Ok(Some(batch)) if batch.num_rows() == strings.len() => Ok(batch),
            Ok(None) if strings.is_empty() => Ok(RecordBatch::new_empty(schema)),
            _ => {
                // Find the offending row for the message.
                for (row, value) in strings.iter().enumerate() {
                    let mut one = arrow_json::ReaderBuilder::new(schema.clone()).build_decoder()?;
                    let line = value.unwrap_or("{}");
                    if let Err(e) = one.decode(line.as_bytes()).and_then(|_| one.flush()) {
                        return Err(Error(format!("row {row}: {e}: {line}")));
                    }
                    if one.has_partial_record() || line.trim().is_empty() {
                        return Err(Error(format!(
                            "row {row}: not a complete JSON object: {line}"
                        )));
                    }
                }
                Err(Error(
                    "the JSON column did not decode into one row per value".into(),
                ))
            }
        }
    }

    /// Serialises each row of `batch` as a JSON object (Spark's `to_json(struct(...))`).
    pub fn to_json(batch: &RecordBatch) -> Result<StringArray, Error> {
        let mut out = Vec::with_capacity(batch.get_array_memory_size());
        {
            let mut writer = arrow_json::LineDelimitedWriter::new(&mut out);
            writer.write(batch)?;
            writer.finish()?;
        }
        // Drop the newlines in place and record where each row ends.
        let mut offsets = Vec::with_capacity(batch.num_rows() + 1);
        offsets.push(0i32);
        let mut write = 0;
        for read in 0..out.len() {
            let b = out[read];
            if b == b'\n' {
                offsets.push(
                    i32::try_from(write).map_err(|_| Error("JSON output over 2 GiB".into()))?,
                );
            } else {
                out[write] = b;
                write += 1;
            }
        }
        out.truncate(write);
        if offsets.len() != batch.num_rows() + 1 {
            return Err(Error("to_json produced a different number of rows".into()));
        }
        let array = StringArray::try_new(
            OffsetBuffer::new(offsets.into()),
            Buffer::from_vec(out),
            None,
        )?;
        Ok(array)
    }
}

/// Turns a received WIT batch into a `RecordBatch` of `schema`, taking the buffers over.
fn from_wit(schema: &SchemaRef, batch: wit::BatchResult) -> Result<RecordBatch, Error> {
    let nodes = batch.nodes.into_iter().map(|n| abi::NodeOwned {
        len: n.len,
        offset: n.offset,
        null_count: n.null_count,
        validity: n.validity.map(arrow_buffer::Buffer::from_vec),
        buffers: n
            .buffers
            .into_iter()
            .map(arrow_buffer::Buffer::from_vec)
            .collect(),
        num_children: n.num_children,
    });
    // The host sent valid Arrow arrays of the schema it gave at init: skip re-validation.
    Ok(abi::to_batch(schema, batch.num_rows, nodes, false)?)
}

/// Calls `f` with `batch` as borrowed WIT nodes (no copy on this side).
fn with_wit<R>(batch: &RecordBatch, f: impl FnOnce(wit::BatchParam<'_>) -> R) -> Result<R, Error> {
    let data = abi::batch_data(batch);
    let nodes = abi::flatten_all(&data)?;
    let params: Vec<wit::ArrayNodeParam<'_>> = nodes
        .iter()
        .map(|n| wit::ArrayNodeParam {
            len: n.len,
            offset: n.offset,
            null_count: n.null_count,
            validity: n.validity.as_deref(),
            buffers: &n.buffers,
            num_children: n.num_children,
        })
        .collect();
    Ok(f(wit::BatchParam {
        num_rows: u32::try_from(batch.num_rows())
            .map_err(|_| Error("batch over 4G rows".into()))?,
        nodes: &params,
    }))
}

/// Copies `batch` into owned WIT nodes, for a batch returned from an export.
#[cfg(feature = "processor")]
fn to_wit_owned(batch: &RecordBatch) -> Result<wit::BatchResult, Error> {
    let data = abi::batch_data(batch);
    let nodes = abi::flatten_all(&data)?;
    Ok(wit::BatchResult {
        num_rows: u32::try_from(batch.num_rows())
            .map_err(|_| Error("batch over 4G rows".into()))?,
        nodes: nodes
            .iter()
            .map(|n| wit::ArrayNodeResult {
                len: n.len,
                offset: n.offset,
                null_count: n.null_count,
                validity: n.validity.as_deref().map(<[u8]>::to_vec),
                buffers: n.buffers.iter().map(|b| b.to_vec()).collect(),
                num_children: n.num_children,
            })
            .collect(),
    })
}

thread_local! {
    // The guest's one instance of the user's type (a component instance is single-threaded).
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Sends panic messages to the host's log, so a trap's error says why the guest panicked.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        crate::bindings::sluice::pipeline::log::write(
            crate::bindings::sluice::pipeline::log::Level::Error,
            &format!("guest panicked: {info}"),
        );
    }));
}

fn parse_config(config: &str) -> Result<Config, Error> {
    if config.trim().is_empty() {
        Ok(Config::Null)
    } else {
        Ok(serde_json::from_str(config)?)
    }
}

fn with_state<S: 'static, R>(f: impl FnOnce(&mut S) -> Result<R, Error>) -> Result<R, Error> {
    STATE.with_borrow_mut(|s| {
        let state = s
            .as_mut()
            .and_then(|b| b.downcast_mut::<S>())
            .ok_or_else(|| Error("called before init".into()))?;
        f(state)
    })
}

#[cfg(feature = "transform")]
pub use transform::*;

#[cfg(feature = "transform")]
mod transform {
    use super::*;
    use crate::bindings::exports::sluice::pipeline::transform::{Guest, Plan};
    use std::sync::Arc;

    /// A transform step: map, filter, projection to a new schema, flat-map.
    pub trait Transform: Sized + 'static {
        /// Called once when the query starts, with the step's config and the input schema.
        fn init(config: &Config, input_schema: SchemaRef) -> Result<Self, Error>;

        /// The schema of every batch [`Transform::process`] emits; fixed after `init`.
        fn output_schema(&self) -> SchemaRef;

        /// Called once per micro-batch. Emit zero or more batches through `out`.
        ///
        /// `batch` holds the columns [`Transform::reads`] names (all of them by default).
        fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error>;

        /// The input columns `process` reads, as indices into the input schema (called once,
        /// after `init`). Columns not listed never cross into the guest: `process` gets a
        /// batch of the listed columns only, in ascending index order. Pass columns through
        /// with [`Output::emit_rows`] without reading them. `None` (the default): every column.
        fn reads(&self) -> Option<Vec<usize>> {
            None
        }
    }

    /// Where a column of [`Output::emit_rows_with`]'s output comes from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum OutputColumn {
        /// This input column (an index into the whole input schema), at the selected rows.
        Input(usize),
        /// The next column of the computed batch.
        Computed,
    }

    /// Where a transform's output goes.
    pub struct Output {
        schema: SchemaRef,
        input: SchemaRef,
        rows: usize,
    }

    impl Output {
        /// Hands the host rows and columns of the input instead of building them: the input
        /// rows where `selection` is true (null counts as false; `None`: every row), with the
        /// input columns `columns` (indices into the whole input schema, read or not), in that
        /// order. The host takes them from the batch it holds, so nothing crosses the
        /// boundary but the selection's bits: a filter, a projection or a reordering of
        /// columns costs the guest almost nothing.
        pub fn emit_rows(
            &mut self,
            selection: Option<&arrow_array::BooleanArray>,
            columns: &[usize],
        ) -> Result<(), Error> {
            let columns: Vec<OutputColumn> =
                columns.iter().map(|&c| OutputColumn::Input(c)).collect();
            self.emit_rows_inner(selection, &columns, None)
        }

        /// Like [`Output::emit_rows`], with new columns among the input's: output column j is
        /// `columns[j]`, an input column or the next column of `computed` (which has one row
        /// per selected row). A map that replaces or adds a column sends only that column.
        pub fn emit_rows_with(
            &mut self,
            selection: Option<&arrow_array::BooleanArray>,
            columns: &[OutputColumn],
            computed: &RecordBatch,
        ) -> Result<(), Error> {
            self.emit_rows_inner(selection, columns, Some(computed))
        }

        fn emit_rows_inner(
            &mut self,
            selection: Option<&arrow_array::BooleanArray>,
            columns: &[OutputColumn],
            computed: Option<&RecordBatch>,
        ) -> Result<(), Error> {
            use crate::bindings::sluice::pipeline::rows::{ColumnSource, emit_rows};
            let mut types = Vec::with_capacity(columns.len());
            let mut next_computed = 0;
            for c in columns {
                types.push(match *c {
                    OutputColumn::Input(i) => self
                        .input
                        .fields()
                        .get(i)
                        .ok_or_else(|| {
                            Error(format!(
                                "emit_rows: the input has {} columns, not a column {i}",
                                self.input.fields().len()
                            ))
                        })?
                        .data_type()
                        .clone(),
                    OutputColumn::Computed => {
                        let field = computed
                            .and_then(|b| b.schema_ref().fields().get(next_computed).cloned())
                            .ok_or_else(|| {
                                Error("emit_rows: more computed columns named than given".into())
                            })?;
                        next_computed += 1;
                        field.data_type().clone()
                    }
                });
            }
            if computed.is_some_and(|b| b.num_columns() != next_computed) {
                return Err(Error(
                    "emit_rows: computed has columns the output does not use".into(),
                ));
            }
            let expected = self.schema.fields();
            if types.len() != expected.len()
                || types
                    .iter()
                    .zip(expected.iter())
                    .any(|(t, f)| t != f.data_type())
            {
                return Err(Error(format!(
                    "emit_rows: the columns ({}) do not match the output schema ({})",
                    types
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    describe(&self.schema)
                )));
            }
            let bits = match selection {
                Some(mask) if mask.len() != self.rows => {
                    return Err(Error(format!(
                        "emit_rows: the selection has {} rows, the input {}",
                        mask.len(),
                        self.rows
                    )));
                }
                Some(mask) => Some(match mask.nulls() {
                    Some(nulls) => (mask.values() & nulls.inner()).sliced(),
                    None => mask.values().sliced(),
                }),
                None => None,
            };
            let sources: Vec<ColumnSource> = columns
                .iter()
                .map(|c| match *c {
                    OutputColumn::Input(i) => ColumnSource::Input(i as u32),
                    OutputColumn::Computed => ColumnSource::Computed,
                })
                .collect();
            let selection = bits.as_ref().map(|b| b.as_slice());
            match computed {
                None => {
                    emit_rows(selection, &sources, None);
                    Ok(())
                }
                Some(batch) => with_wit(batch, |b| emit_rows(selection, &sources, Some(b))),
            }
        }

        /// Hands a batch to the host. Its columns must have the output schema's types.
        pub fn emit(&mut self, batch: &RecordBatch) -> Result<(), Error> {
            let fields = batch.schema_ref().fields();
            let expected = self.schema.fields();
            if fields.len() != expected.len()
                || fields
                    .iter()
                    .zip(expected.iter())
                    .any(|(a, b)| a.data_type() != b.data_type())
            {
                return Err(Error(format!(
                    "emitted batch columns ({}) do not match the output schema ({})",
                    describe(batch.schema_ref()),
                    describe(&self.schema)
                )));
            }
            with_wit(batch, crate::bindings::sluice::pipeline::output::emit)
        }
    }

    fn describe(schema: &Schema) -> String {
        schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    struct State<T> {
        user: T,
        /// The whole input schema.
        input: SchemaRef,
        /// The schema of what `process` gets: the columns the step reads.
        read: SchemaRef,
        output: SchemaRef,
    }

    #[doc(hidden)]
    pub struct TransformAdapter<T>(std::marker::PhantomData<T>);

    impl<T: Transform> Guest for TransformAdapter<T> {
        fn init(config: String, input_schema: Vec<u8>) -> Result<Plan, String> {
            install_panic_hook();
            let run = || -> Result<Plan, Error> {
                let config = parse_config(&config)?;
                let input = abi::decode_schema(&input_schema)?;
                let user = T::init(&config, input.clone())?;
                let output = user.output_schema();
                let reads = match user.reads() {
                    Some(mut reads) => {
                        reads.sort_unstable();
                        reads.dedup();
                        if let Some(&bad) = reads.iter().find(|&&c| c >= input.fields().len()) {
                            return Err(Error(format!(
                                "reads() names column {bad}; the input has {}",
                                input.fields().len()
                            )));
                        }
                        Some(reads)
                    }
                    None => None,
                };
                let read = match &reads {
                    Some(r) => Arc::new(input.project(r)?),
                    None => input.clone(),
                };
                let plan = Plan {
                    output_schema: abi::encode_schema(&output),
                    reads: reads.map(|r| r.into_iter().map(|c| c as u32).collect()),
                };
                STATE.set(Some(Box::new(State {
                    user,
                    input,
                    read,
                    output,
                })));
                Ok(plan)
            };
            run().map_err(|e| e.0)
        }

        fn process(batch: wit::BatchResult) -> Result<(), String> {
            with_state::<State<T>, _>(|s| {
                let rows = batch.num_rows as usize;
                let batch = from_wit(&s.read, batch)?;
                let mut out = Output {
                    schema: s.output.clone(),
                    input: s.input.clone(),
                    rows,
                };
                s.user.process(batch, &mut out)
            })
            .map_err(|e| e.0)
        }
    }

    /// Exports a [`Transform`] implementation as the component's `transform` interface.
    #[macro_export]
    macro_rules! export_transform {
        ($t:ty) => {
            type __SluiceTransform = $crate::TransformAdapter<$t>;
            $crate::bindings::__export_world!(__SluiceTransform with_types_in $crate::bindings);
        };
    }
}

#[cfg(feature = "handler")]
pub use handler::*;

#[cfg(feature = "handler")]
mod handler {
    use super::*;
    use crate::bindings::exports::sluice::pipeline::batch_handler::Guest;

    /// A foreachBatch handler.
    pub trait Handler: Sized + 'static {
        /// Called once when the query starts, with the sink's config and the batch schema.
        fn init(config: &Config, schema: SchemaRef) -> Result<Self, Error>;

        /// Called once per micro-batch with the engine's batch id (the same on a replay).
        fn handle(&mut self, batch_id: u64, batch: RecordBatch) -> Result<(), Error>;
    }

    struct State<T> {
        user: T,
        input: SchemaRef,
    }

    #[doc(hidden)]
    pub struct HandlerAdapter<T>(std::marker::PhantomData<T>);

    impl<T: Handler> Guest for HandlerAdapter<T> {
        fn init(config: String, input_schema: Vec<u8>) -> Result<(), String> {
            install_panic_hook();
            let run = || -> Result<(), Error> {
                let config = parse_config(&config)?;
                let input = abi::decode_schema(&input_schema)?;
                let user = T::init(&config, input.clone())?;
                STATE.set(Some(Box::new(State { user, input })));
                Ok(())
            };
            run().map_err(|e| e.0)
        }

        fn handle(batch_id: u64, batch: wit::BatchResult) -> Result<(), String> {
            with_state::<State<T>, _>(|s| {
                let batch = from_wit(&s.input, batch)?;
                s.user.handle(batch_id, batch)
            })
            .map_err(|e| e.0)
        }
    }

    /// Exports a [`Handler`] implementation as the component's `batch-handler` interface.
    #[macro_export]
    macro_rules! export_handler {
        ($t:ty) => {
            type __SluiceHandler = $crate::HandlerAdapter<$t>;
            $crate::bindings::__export_world!(__SluiceHandler with_types_in $crate::bindings);
        };
    }

    /// The named outputs the pipeline declares for this query (`[query.outputs.NAME]`).
    pub mod sinks {
        use super::super::*;

        /// Writes `batch` to output `name`. Everything written during one `handle` call is
        /// committed together with the batch id after `handle` succeeds.
        pub fn write(name: &str, batch: &RecordBatch) -> Result<(), Error> {
            let schema = abi::encode_schema(batch.schema_ref());
            with_wit(batch, |b| {
                crate::bindings::sluice::pipeline::sinks::write(name, &schema, b)
            })?
            .map_err(Error)
        }
    }

    /// Files under the directory the pipeline grants (`directory`).
    pub mod files {
        use super::super::Error;

        /// Creates or replaces `path` (relative to the granted directory) atomically.
        pub fn write_file(path: &str, contents: &[u8]) -> Result<(), Error> {
            crate::bindings::sluice::pipeline::files::write_file(path, contents).map_err(Error)
        }

        /// Reads `path` (relative to the granted directory).
        pub fn read_file(path: &str) -> Result<Vec<u8>, Error> {
            crate::bindings::sluice::pipeline::files::read_file(path).map_err(Error)
        }
    }

    /// HTTP to the hosts the pipeline allow-lists (`allowHosts`).
    pub mod http {
        use super::super::Error;
        pub use crate::bindings::sluice::pipeline::http::Response;

        /// Sends a request; hosts not on the allow-list are refused by the host.
        pub fn send(
            method: &str,
            url: &str,
            headers: &[(&str, &str)],
            body: &[u8],
        ) -> Result<Response, Error> {
            let req = crate::bindings::sluice::pipeline::http::Request {
                method,
                url,
                headers,
                body,
            };
            crate::bindings::sluice::pipeline::http::send(req).map_err(Error)
        }
    }
}

#[cfg(feature = "aggregate")]
pub use aggregate::*;

#[cfg(feature = "processor")]
mod processor;
#[cfg(feature = "processor")]
pub use processor::*;

#[cfg(feature = "aggregate")]
mod aggregate {
    use std::sync::Arc;

    use super::*;
    use crate::bindings::exports::sluice::pipeline::aggregate::Guest;

    /// A user-defined aggregate: group states are opaque bytes the host stores and
    /// checkpoints; the guest is called once per batch for all groups it touched.
    pub trait Aggregate: Sized + 'static {
        /// Called once with the config and the input column's field.
        fn init(config: &Config, input: &Field) -> Result<Self, Error>;

        /// The result's field (its type and nullability; the name is the pipeline's `as`).
        fn output_field(&self) -> Field;

        /// Folds `rows` of `column` into `state` (empty for a new group).
        fn update(
            &mut self,
            state: &mut Vec<u8>,
            column: &ArrayRef,
            rows: &[usize],
        ) -> Result<(), Error>;

        /// Combines `other`, a later part of the same group, into `state`: the host folds
        /// the rows of a batch on several workers at once (each from an empty state) and
        /// merges what they made, in row order. The result must be what folding all those
        /// rows into `state` would have given.
        fn merge(&mut self, state: &mut Vec<u8>, other: &[u8]) -> Result<(), Error>;

        /// The results of `states`, one per state, in order.
        fn finish(&mut self, states: &[&[u8]]) -> Result<ArrayRef, Error>;
    }

    struct State<T> {
        user: T,
        input: SchemaRef,
        output: SchemaRef,
    }

    #[doc(hidden)]
    pub struct AggregateAdapter<T>(std::marker::PhantomData<T>);

    impl<T: Aggregate> Guest for AggregateAdapter<T> {
        fn init(config: String, input_schema: Vec<u8>) -> Result<Vec<u8>, String> {
            install_panic_hook();
            let run = || -> Result<Vec<u8>, Error> {
                let config = parse_config(&config)?;
                let input = abi::decode_schema(&input_schema)?;
                let field = input
                    .fields()
                    .first()
                    .ok_or("the input schema has no column")?
                    .clone();
                let user = T::init(&config, &field)?;
                let output = Arc::new(Schema::new(vec![user.output_field()]));
                let encoded = abi::encode_schema(&output);
                STATE.set(Some(Box::new(State {
                    user,
                    input,
                    output,
                })));
                Ok(encoded)
            };
            run().map_err(|e| e.0)
        }

        fn update(
            states: Vec<Vec<u8>>,
            group_ids: Vec<u32>,
            batch: wit::BatchResult,
        ) -> Result<Vec<Vec<u8>>, String> {
            with_state::<State<T>, _>(|s| {
                let batch = from_wit(&s.input, batch)?;
                let column = batch.column(0).clone();
                // Rows per group, then one call per group.
                let mut rows: Vec<Vec<usize>> = vec![Vec::new(); states.len()];
                for (row, &g) in group_ids.iter().enumerate() {
                    rows.get_mut(g as usize)
                        .ok_or("a group id is out of range")?
                        .push(row);
                }
                let mut states = states;
                for (state, rows) in states.iter_mut().zip(&rows) {
                    if !rows.is_empty() {
                        s.user.update(state, &column, rows)?;
                    }
                }
                Ok(states)
            })
            .map_err(|e| e.0)
        }

        fn merge(a: Vec<u8>, b: Vec<u8>) -> Result<Vec<u8>, String> {
            with_state::<State<T>, _>(|s| {
                let mut a = a;
                s.user.merge(&mut a, &b)?;
                Ok(a)
            })
            .map_err(|e| e.0)
        }

        fn finish(states: Vec<Vec<u8>>) -> Result<(), String> {
            with_state::<State<T>, _>(|s| {
                let refs: Vec<&[u8]> = states.iter().map(|v| v.as_slice()).collect();
                let values = s.user.finish(&refs)?;
                let batch = RecordBatch::try_new(s.output.clone(), vec![values])?;
                with_wit(&batch, crate::bindings::sluice::pipeline::output::emit)
            })
            .map_err(|e| e.0)
        }
    }

    /// Exports an [`Aggregate`] implementation as the component's `aggregate` interface.
    #[macro_export]
    macro_rules! export_aggregate {
        ($t:ty) => {
            type __SluiceAggregate = $crate::AggregateAdapter<$t>;
            $crate::bindings::__export_world!(__SluiceAggregate with_types_in $crate::bindings);
        };
    }
}

#[cfg(feature = "function")]
pub use function::*;

#[cfg(feature = "function")]
mod function {
    use std::sync::Arc;

    use super::*;
    use crate::bindings::exports::sluice::pipeline::scalar_function::Guest;

    /// A scalar function callable by name in a pipeline's expressions
    /// (`selectExpr = ["to_krw(amount) AS krw"]`): called once per batch with every row's
    /// arguments, never once per row.
    pub trait ScalarFunction: Sized + 'static {
        /// Called once per use in an expression, with the config and the arguments' types
        /// (one field per argument, named `arg0`, `arg1`, ...). Refuse arguments it cannot
        /// take here: the error names the expression.
        fn init(config: &Config, arguments: &Schema) -> Result<Self, Error>;

        /// The result's type and nullability (the name is not used).
        fn output_field(&self) -> Field;

        /// The result for every row of `arguments` (one column per argument): exactly one
        /// value per row, of the type `output_field` declared.
        fn call(&mut self, arguments: &RecordBatch) -> Result<ArrayRef, Error>;
    }

    struct State<T> {
        user: T,
        input: SchemaRef,
        output: SchemaRef,
    }

    #[doc(hidden)]
    pub struct FunctionAdapter<T>(std::marker::PhantomData<T>);

    impl<T: ScalarFunction> Guest for FunctionAdapter<T> {
        fn init(config: String, argument_schema: Vec<u8>) -> Result<Vec<u8>, String> {
            install_panic_hook();
            let run = || -> Result<Vec<u8>, Error> {
                let config = parse_config(&config)?;
                let input = abi::decode_schema(&argument_schema)?;
                let user = T::init(&config, &input)?;
                let output = Arc::new(Schema::new(vec![user.output_field()]));
                let encoded = abi::encode_schema(&output);
                STATE.set(Some(Box::new(State {
                    user,
                    input,
                    output,
                })));
                Ok(encoded)
            };
            run().map_err(|e| e.0)
        }

        fn call(arguments: wit::BatchResult) -> Result<(), String> {
            with_state::<State<T>, _>(|s| {
                let batch = from_wit(&s.input, arguments)?;
                let values = s.user.call(&batch)?;
                let out = RecordBatch::try_new(s.output.clone(), vec![values])?;
                with_wit(&out, crate::bindings::sluice::pipeline::output::emit)
            })
            .map_err(|e| e.0)
        }
    }

    /// Exports a [`ScalarFunction`] implementation as the component's `scalar-function`
    /// interface.
    #[macro_export]
    macro_rules! export_function {
        ($t:ty) => {
            type __SluiceFunction = $crate::FunctionAdapter<$t>;
            $crate::bindings::__export_world!(__SluiceFunction with_types_in $crate::bindings);
        };
    }
}

/// Everything a guest usually needs, in one import.
pub mod prelude {
    pub use super::{Config, Error, column, json, log, serde_json};
    pub use arrow_array::cast::AsArray;
    pub use arrow_array::{
        Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch,
        StringArray, UInt32Array,
    };
    pub use arrow_schema::{DataType, Field, Schema, SchemaRef};
    pub use arrow_select::filter::filter_record_batch;
    pub use arrow_select::take::{take, take_record_batch};
    pub use std::sync::Arc;

    #[cfg(feature = "aggregate")]
    pub use super::Aggregate;
    #[cfg(feature = "function")]
    pub use super::ScalarFunction;
    #[cfg(feature = "processor")]
    pub use super::{
        Clock, Json, Key, KeyState, ListState, MapState, Output, Processor, Rows, Schemas,
        StateDecl, StateValue, TimeMode, ValueState,
    };
    #[cfg(feature = "handler")]
    pub use super::{Handler, files, http, sinks};
    #[cfg(feature = "transform")]
    pub use super::{Output, OutputColumn, Transform};
    #[cfg(feature = "aggregate")]
    pub use crate::export_aggregate;
    #[cfg(feature = "function")]
    pub use crate::export_function;
    #[cfg(feature = "handler")]
    pub use crate::export_handler;
    #[cfg(feature = "processor")]
    pub use crate::export_processor;
    #[cfg(feature = "transform")]
    pub use crate::export_transform;
    #[cfg(feature = "processor")]
    pub use std::time::Duration;
}
