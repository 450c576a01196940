//! A transform step: a `transformer` component called once per record batch of a micro-batch.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow_buffer::{BooleanBuffer, Buffer};
use arrow_schema::{Schema, SchemaRef};
use tracing::warn;
use wasmtime::Store;
use wasmtime::component::Linker;

use super::bindings::transformer::{
    Transformer, TransformerPre, sluice::pipeline::arrow::BatchResult,
    sluice::pipeline::rows::ColumnSource,
};
use super::spec::{OnError, TransformSpec};
use super::{
    GuestState, WasmRuntime, WorldLink, batch_from_guest, begin_call, explain, prepare,
    start_guest, with_guest_batch, world_mismatch,
};
use crate::error::{Error, Result};
use crate::sink::outputs::SharedOutputs;
use sluice_guest_sdk::abi;

impl super::bindings::transformer::sluice::pipeline::output::Host for GuestState {
    fn emit(&mut self, batch: BatchResult) -> wasmtime::Result<()> {
        if self.emit_error.is_some() {
            return Ok(());
        }
        // Past its budget the guest is stopped at once (a trap), not left to spin to its
        // deadline while the host holds what it sent.
        if let Err(e) = self.emit_budget.take(&batch) {
            self.emit_error = Some(e.clone());
            return Err(wasmtime::format_err!("{e}"));
        }
        let Some(schema) = self.output_schema.clone() else {
            self.emit_error = Some("emit called outside process".into());
            return Ok(());
        };
        match batch_from_guest(&schema, batch) {
            Ok(b) => self.emitted.push(b),
            Err(e) => {
                self.emit_error = Some(format!(
                    "emitted a batch that does not match its output schema: {e}"
                ))
            }
        }
        Ok(())
    }
}

impl super::bindings::transformer::sluice::pipeline::rows::Host for GuestState {
    fn emit_rows(
        &mut self,
        selection: Option<Vec<u8>>,
        columns: Vec<ColumnSource>,
        computed: Option<BatchResult>,
    ) -> wasmtime::Result<()> {
        if self.emit_error.is_some() {
            return Ok(());
        }
        let (Some(schema), Some(input)) = (self.output_schema.clone(), self.input.clone()) else {
            self.emit_error = Some("emit-rows called outside process".into());
            return Ok(());
        };
        let rows = input.num_rows();
        let predicate = match selection_predicate(selection, rows) {
            Ok(p) => p,
            Err(e) => {
                self.emit_error = Some(e);
                return Ok(());
            }
        };
        let selected = predicate.as_ref().map_or(rows, |p| p.count());
        // What the host will hold: the selected rows, with the selected share of each input
        // column's bytes and all of `computed`'s.
        let mut taken_bytes = 0u64;
        for c in &columns {
            if let ColumnSource::Input(i) = c
                && let Some(col) = input.columns().get(*i as usize)
            {
                let size = col.get_array_memory_size() as u64;
                taken_bytes += size * selected as u64 / rows.max(1) as u64;
            }
        }
        taken_bytes += computed.as_ref().map_or(0, super::batch_bytes);
        if let Err(e) = self.emit_budget.take_counted(selected as u64, taken_bytes) {
            self.emit_error = Some(e.clone());
            return Err(wasmtime::format_err!("{e}"));
        }
        match assemble_rows(&schema, &input, predicate.as_ref(), &columns, computed) {
            Ok(b) => self.emitted.push(b),
            Err(e) => self.emit_error = Some(format!("emit-rows: {e}")),
        }
        Ok(())
    }
}

/// The filter an `emit-rows` selection bitmap (bit i set: input row i is kept) describes
/// over `rows` input rows; `None` keeps every row. A bitmap shorter than the rows is refused.
pub fn selection_predicate(
    selection: Option<Vec<u8>>,
    rows: usize,
) -> std::result::Result<Option<arrow_select::filter::FilterPredicate>, String> {
    let mask = match selection {
        Some(bits) if bits.len() < rows.div_ceil(8) => {
            return Err(format!(
                "emit-rows: a selection of {} bits for {rows} input rows",
                bits.len() * 8
            ));
        }
        Some(bits) => BooleanArray::new(BooleanBuffer::new(Buffer::from_vec(bits), 0, rows), None),
        None => return Ok(None),
    };
    // One predicate for every column (arrow picks a strategy from the selectivity once);
    // its count is the number of rows selected.
    Ok(Some(
        arrow_select::filter::FilterBuilder::new(&mask)
            .optimize()
            .build(),
    ))
}

/// The batch `rows.emit-rows` describes: each output column an input column at the rows
/// `predicate` selects (all without one), or the next column of `computed`, checked against
/// the output schema. Everything here but `input` and `schema` comes from the guest.
pub fn assemble_rows(
    schema: &SchemaRef,
    input: &RecordBatch,
    predicate: Option<&arrow_select::filter::FilterPredicate>,
    columns: &[ColumnSource],
    computed: Option<BatchResult>,
) -> std::result::Result<RecordBatch, String> {
    let fields = schema.fields();
    if columns.len() != fields.len() {
        return Err(format!(
            "{} columns for an output of {}",
            columns.len(),
            fields.len()
        ));
    }
    let rows = predicate.map_or(input.num_rows(), |p| p.count());
    // The computed columns' types are the output's where they are used, in order.
    let computed_fields: Vec<_> = columns
        .iter()
        .zip(fields.iter())
        .filter(|(c, _)| matches!(c, ColumnSource::Computed))
        .map(|(_, f)| f.clone())
        .collect();
    let mut computed = match computed {
        Some(b) => {
            let b = batch_from_guest(&Arc::new(Schema::new(computed_fields)), b)?;
            if b.num_rows() != rows {
                return Err(format!(
                    "computed has {} rows, the selection {rows}",
                    b.num_rows()
                ));
            }
            b.columns().to_vec().into_iter()
        }
        None if !computed_fields.is_empty() => {
            return Err(format!(
                "{} computed columns named and none given",
                computed_fields.len()
            ));
        }
        None => Vec::new().into_iter(),
    };
    let mut out: Vec<ArrayRef> = Vec::with_capacity(fields.len());
    for (c, field) in columns.iter().zip(fields.iter()) {
        match c {
            ColumnSource::Input(i) => {
                let col = input.columns().get(*i as usize).ok_or_else(|| {
                    format!(
                        "the input has {} columns, not a column {i}",
                        input.num_columns()
                    )
                })?;
                if col.data_type() != field.data_type() {
                    return Err(format!(
                        "input column {i} is {}, but output column '{}' is {}",
                        col.data_type(),
                        field.name(),
                        field.data_type()
                    ));
                }
                out.push(match predicate {
                    Some(p) => p.filter(col).map_err(|e| e.to_string())?,
                    None => col.clone(),
                });
            }
            ColumnSource::Computed => out.extend(computed.next()),
        }
    }
    RecordBatch::try_new_with_options(
        schema.clone(),
        out,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| e.to_string())
}

pub(crate) const LINK: WorldLink = WorldLink {
    what: "a transform step",
    world: "sluice:pipeline/transformer",
    feature: "transform",
    add: |linker: &mut Linker<GuestState>| {
        Transformer::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |s| s)
    },
};

/// What a step's calls did since the last progress record.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    /// Calls into the guest (one per record batch).
    pub calls: u64,
    /// Calls that failed (trap, error, deadline), whatever `onError` then did.
    pub failed: u64,
    /// Time spent in the calls, seconds.
    pub seconds: f64,
}

/// A guest instance of a step: its store and its bindings.
type Instance = (Store<GuestState>, Transformer);

/// What every instance of a step shares: the module, its limits, the schemas. Shared by the
/// workers of a batch, so it holds no instance itself.
struct StepCore {
    spec: TransformSpec,
    label: Arc<str>,
    runtime: &'static WasmRuntime,
    pre: TransformerPre<GuestState>,
    encoded_input_schema: Vec<u8>,
    output_schema: SchemaRef,
    /// The input columns the guest reads (its plan); `None`: all.
    reads: Option<Vec<usize>>,
}

/// One transform step of a query.
///
/// A batch's record batches run on up to `parallelism` workers at once, each with a guest
/// instance of its own (started when first needed, kept across batches); what they emit is
/// put back in input order, so the step's output does not depend on the workers.
pub struct WasmTransform {
    core: StepCore,
    /// One guest instance per worker (`None`: not started yet, or dropped after a trap).
    instances: Vec<Option<Instance>>,
    dead_letter_schema: SchemaRef,
    /// Calls since the last progress record.
    stats: CallStats,
    /// `sha256:<hex>` of the module's bytes.
    digest: String,
}

impl WasmTransform {
    /// Loads the module, instantiates it and calls `init`, which fixes the output schema.
    pub fn new(spec: TransformSpec, query: &str, input_schema: SchemaRef) -> Result<Self> {
        let label: Arc<str> = format!(
            "query '{query}' step '{}' (module {})",
            spec.name,
            spec.module_ref
                .clone()
                .unwrap_or_else(|| spec.module.display().to_string())
        )
        .into();
        let digest = crate::registry::digest_of(&spec.module).unwrap_or_default();
        let (runtime, instance_pre) = prepare(&spec.module, &spec.limits, &label, &LINK)?;
        let pre =
            TransformerPre::new(instance_pre).map_err(|e| world_mismatch(&label, &LINK, e))?;
        let mut core = StepCore {
            encoded_input_schema: abi::encode_schema(&input_schema),
            output_schema: input_schema.clone(),
            reads: None,
            spec,
            label,
            runtime,
            pre,
        };
        let (first, output, reads) = core.start()?;
        if let Some(r) = &reads
            && let Some(&bad) = r.iter().find(|&&c| c >= input_schema.fields().len())
        {
            return Err(core.wasm_err(format!(
                "init's plan reads column {bad}; the input has {}",
                input_schema.fields().len()
            )));
        }
        core.output_schema = output;
        core.reads = reads;
        Ok(WasmTransform {
            core,
            instances: vec![Some(first)],
            dead_letter_schema: crate::sink::outputs::dead_letter_schema(&input_schema),
            stats: CallStats::default(),
            digest,
        })
    }

    /// The schema of the batches this step emits.
    pub fn output_schema(&self) -> SchemaRef {
        self.core.output_schema.clone()
    }

    /// The step's name in the pipeline.
    pub fn name(&self) -> &str {
        &self.core.spec.name
    }

    /// The step's spec.
    pub fn spec(&self) -> &TransformSpec {
        &self.core.spec
    }

    /// `sha256:<hex>` of the module this step runs.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn wasm_err(&self, message: String) -> Error {
        self.core.wasm_err(message)
    }
}

impl StepCore {
    fn wasm_err(&self, message: String) -> Error {
        Error::Wasm {
            module: self.label.to_string(),
            message,
        }
    }

    /// A fresh instance, initialised, with the output schema its `init` returned. Called at
    /// start, for each further worker, and after a trap.
    fn start(&self) -> Result<(Instance, SchemaRef, Option<Vec<usize>>)> {
        let config = self
            .spec
            .config
            .resolve(&format!("{}: config", self.label))?;
        let (mut store, instance, plan) = start_guest(
            self.runtime.engine(),
            self.label.clone(),
            &self.spec.limits,
            None,
            "the step",
            |store| self.pre.instantiate(store),
            |instance: &Transformer, store| {
                instance.sluice_pipeline_transform().call_init(
                    store,
                    &config,
                    &self.encoded_input_schema,
                )
            },
        )?;
        let output = crate::schema::decode_ipc_schema(&plan.output_schema).map_err(|e| {
            self.wasm_err(format!("init returned an unreadable output schema: {e}"))
        })?;
        store.data_mut().output_schema = Some(output.clone());
        let reads = plan
            .reads
            .map(|r| r.into_iter().map(|c| c as usize).collect());
        Ok(((store, instance), output, reads))
    }

    /// Runs one record batch through the instance in `slot` (starting one if there is none),
    /// appending what it emits to `out`.
    fn call(
        &self,
        slot: &mut Option<Instance>,
        batch: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> std::result::Result<(), String> {
        if slot.is_none() {
            let (instance, output, reads) = self.start().map_err(|e| e.to_string())?;
            if output != self.output_schema || reads != self.reads {
                return Err(
                    "returned a different plan (output schema or columns read) after a restart"
                        .into(),
                );
            }
            *slot = Some(instance);
        }
        let limits = &self.spec.limits;
        let Some((store, instance)) = slot.as_mut() else {
            return Err("no instance".into());
        };
        begin_call(store, limits).map_err(|e| e.to_string())?;
        store.data_mut().emit_budget = super::EmitBudget::for_call(
            limits,
            batch.num_rows() as u64,
            batch.get_array_memory_size() as u64,
        );
        // The guest gets the columns it reads; `emit-rows` takes the rest from here.
        let read = match &self.reads {
            Some(r) => batch.project(r).map_err(|e| e.to_string())?,
            None => batch.clone(),
        };
        store.data_mut().input = Some(batch.clone());
        let result = with_guest_batch(&read, |b| {
            instance
                .sluice_pipeline_transform()
                .call_process(&mut *store, b)
        })
        .map_err(|e| e.to_string());
        store.data_mut().input = None;
        let result = result?;
        match result {
            Ok(Ok(())) => {
                let s = store.data_mut();
                if let Some(e) = s.emit_error.take() {
                    return Err(e);
                }
                // `append` keeps the emitted vector's capacity for the next call.
                out.append(&mut s.emitted);
                Ok(())
            }
            Ok(Err(msg)) => Err(format!("returned an error: {}", super::guest_text(&msg))),
            Err(trap) => {
                let why = explain(&trap, store.data(), limits);
                // A trapped instance may be in any state: start over with a fresh one.
                *slot = None;
                Err(why)
            }
        }
    }
}

/// Smallest piece a record batch is cut into for the workers.
const MIN_PIECE_ROWS: usize = 8192;

/// Cuts `input` into at least `workers` record batches when it has fewer (a source that
/// hands over one large batch, e.g. a Kafka topic or a rate generator), by zero-copy slices
/// of at least [`MIN_PIECE_ROWS`] rows, in order. Each piece is then one guest call: the
/// contract is one call per record batch, whatever their size.
fn split_for(input: Vec<RecordBatch>, workers: usize) -> Vec<RecordBatch> {
    if workers <= 1 || input.len() >= workers {
        return input;
    }
    let rows: usize = input.iter().map(|b| b.num_rows()).sum();
    let piece = rows.div_ceil(workers).max(MIN_PIECE_ROWS);
    let mut out = Vec::with_capacity(workers);
    for batch in input {
        if batch.num_rows() < 2 * piece {
            out.push(batch);
            continue;
        }
        let mut at = 0;
        while at < batch.num_rows() {
            let len = piece.min(batch.num_rows() - at);
            out.push(batch.slice(at, len));
            at += len;
        }
    }
    out
}

/// One record batch's call: its input, what it emitted (or why it failed), and how long.
type CallOutcome = (
    RecordBatch,
    std::result::Result<Vec<RecordBatch>, String>,
    f64,
);

impl WasmTransform {
    /// Runs a micro-batch — one call per record batch, on up to `parallelism` workers at
    /// once — and applies the step's `onError` policy to each failed call, in input order.
    pub fn process(
        &mut self,
        batch_id: u64,
        input: Vec<RecordBatch>,
        outputs: &SharedOutputs,
        parallelism: usize,
    ) -> Result<Vec<RecordBatch>> {
        let input = split_for(input, parallelism);
        let workers = parallelism.clamp(1, input.len().max(1));
        if self.instances.len() < workers {
            self.instances.resize_with(workers, || None);
        }
        let core = &self.core;
        let runs: Vec<Vec<CallOutcome>> =
            crate::parallel::on_workers(&mut self.instances[..workers], input, |slot, run| {
                run.into_iter()
                    .map(|batch| {
                        let started = std::time::Instant::now();
                        let mut emitted = Vec::new();
                        let called = core.call(slot, &batch, &mut emitted).map(|()| emitted);
                        (batch, called, started.elapsed().as_secs_f64())
                    })
                    .collect()
            });
        let mut out = Vec::new();
        for (batch, called, seconds) in runs.into_iter().flatten() {
            self.stats.calls += 1;
            self.stats.seconds += seconds;
            match called {
                Ok(mut emitted) => out.append(&mut emitted),
                Err(why) => {
                    self.stats.failed += 1;
                    let message = format!("{} in batch {batch_id}: {why}", self.core.label);
                    match &self.core.spec.on_error {
                        OnError::Fail => {
                            return Err(self.wasm_err(format!("{why} (batch {batch_id})")));
                        }
                        OnError::Skip => {
                            warn!(batch_id, rows = batch.num_rows(), error = %message, "skipping the rows of a failed transform call (onError = \"skip\")");
                        }
                        OnError::DeadLetter(name) => {
                            warn!(batch_id, rows = batch.num_rows(), output = %name, error = %message, "sending the rows of a failed transform call to the dead-letter output");
                            let errors =
                                StringArray::from(vec![message.as_str(); batch.num_rows()]);
                            let dl = crate::sink::outputs::dead_letter_rows(
                                &self.dead_letter_schema,
                                &batch,
                                errors,
                            )
                            .map_err(|e| Error::data("building dead-letter rows", e))?;
                            outputs.stage(name, dl).map_err(|e| self.wasm_err(e))?;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Calls, failed calls and time in the guest since the last call of this method.
    pub fn take_stats(&mut self) -> CallStats {
        std::mem::take(&mut self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    fn batch(rows: i64) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "v",
            Arc::new(Int64Array::from_iter_values(0..rows)) as ArrayRef,
        )])
        .unwrap()
    }

    #[test]
    fn one_large_batch_is_cut_into_a_piece_per_worker_in_order() {
        let pieces = split_for(vec![batch(100_000)], 4);
        assert_eq!(
            pieces.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [25_000; 4]
        );
        let first: &Int64Array = pieces[1].column(0).as_any().downcast_ref().unwrap();
        assert_eq!(first.value(0), 25_000);
        // Small batches, or enough of them, stay as they are.
        assert_eq!(split_for(vec![batch(10_000)], 4).len(), 1);
        assert_eq!(split_for(vec![batch(100_000); 4], 4).len(), 4);
        assert_eq!(split_for(vec![batch(100_000)], 1).len(), 1);
    }
}
