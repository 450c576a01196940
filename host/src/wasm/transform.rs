//! A transform step: a `transformer` component called once per record batch of a micro-batch.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use tracing::warn;
use wasmtime::Store;
use wasmtime::component::Linker;

use super::bindings::transformer::{
    Transformer, TransformerPre, sluice::pipeline::arrow::BatchResult,
};
use super::{
    GuestState, WasmRuntime, WorldLink, batch_from_guest, begin_call, explain, prepare,
    start_guest, with_guest_batch, world_mismatch,
};
use crate::error::{Error, Result};
use crate::pipeline::{OnError, TransformSpec};
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
        let mut dl_fields: Vec<_> = input_schema.fields().iter().cloned().collect();
        dl_fields.push(Arc::new(Field::new("_error", DataType::Utf8, false)));
        let mut core = StepCore {
            encoded_input_schema: abi::encode_schema(&input_schema),
            output_schema: input_schema.clone(),
            spec,
            label,
            runtime,
            pre,
        };
        let (first, output) = core.start()?;
        core.output_schema = output;
        Ok(WasmTransform {
            core,
            instances: vec![Some(first)],
            dead_letter_schema: Arc::new(Schema::new(dl_fields)),
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
    fn start(&self) -> Result<(Instance, SchemaRef)> {
        let config = self.spec.config.to_string();
        let (mut store, instance, encoded) = start_guest(
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
        let output = abi::decode_schema(&encoded).map_err(|e| {
            self.wasm_err(format!("init returned an unreadable output schema: {e}"))
        })?;
        store.data_mut().output_schema = Some(output.clone());
        Ok(((store, instance), output))
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
            let (instance, output) = self.start().map_err(|e| e.to_string())?;
            if output != self.output_schema {
                return Err("returned a different output schema after a restart".into());
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
        let result = with_guest_batch(batch, |b| {
            instance
                .sluice_pipeline_transform()
                .call_process(&mut *store, b)
        })
        .map_err(|e| e.to_string())?;
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
                            let errors: ArrayRef =
                                Arc::new(StringArray::from(vec![
                                    message.as_str();
                                    batch.num_rows()
                                ]));
                            let mut columns = batch.columns().to_vec();
                            columns.push(errors);
                            let dl = RecordBatch::try_new(self.dead_letter_schema.clone(), columns)
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
