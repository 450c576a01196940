//! A keyed processor: a `keyed-processor` component the processor operator
//! ([`crate::operators::processor`]) calls once per batch with every key the batch touches,
//! their rows and their state. This module is only the call across the boundary; what the
//! state means, how it is stored, expired and checked lives with the operator.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use wasmtime::Store;
use wasmtime::component::Linker;

use super::bindings::processor::exports::sluice::pipeline::processor as wit;
use super::bindings::processor::{KeyedProcessor, KeyedProcessorPre};
use super::{
    GuestState, WasmRuntime, WorldLink, batch_from_guest, begin_call, explain, prepare,
    start_guest, with_guest_batch, world_mismatch,
};
use crate::error::{Error, Result};
use crate::wasm::spec::GuestLimits;
use sluice_guest_sdk::abi;

pub use wit::{BatchContext, ExpiredTimer, StateKind, TimeMode, ValueEncoding};

pub(crate) const LINK: WorldLink = WorldLink {
    what: "a keyed processor",
    world: "sluice:pipeline/keyed-processor",
    feature: "processor",
    add: |linker: &mut Linker<GuestState>| {
        KeyedProcessor::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |s| s)
    },
};

/// A state variable as the guest declared it at `init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVariable {
    /// Its name (a column of the state batch).
    pub name: String,
    /// Value, list or map.
    pub kind: StateKind,
    /// What its bytes are.
    pub encoding: ValueEncoding,
    /// Evicted this long after its last change (in the query's time), if set.
    pub ttl_ms: Option<u64>,
}

/// What one `process` call returned: every touched key's new state, and the rows emitted.
pub struct ProcessOutput {
    /// One row per key, in the order the keys were given, of the state batch's schema.
    pub state: RecordBatch,
    /// What the guest emitted through `output.emit`.
    pub emitted: Vec<RecordBatch>,
}

/// The Wasm side of a `[query.processor]`: the module, its instance and what it declared.
pub struct WasmProcessor {
    module: PathBuf,
    config: String,
    limits: GuestLimits,
    label: Arc<str>,
    runtime: &'static WasmRuntime,
    pre: KeyedProcessorPre<GuestState>,
    key_schema: Vec<u8>,
    input_schema: Vec<u8>,
    mode: TimeMode,
    output_schema: SchemaRef,
    variables: Vec<StateVariable>,
    instance: Option<(Store<GuestState>, KeyedProcessor)>,
}

impl WasmProcessor {
    /// Loads the module and calls `init`, which declares the output schema and the state.
    pub fn new(
        module: PathBuf,
        config: &crate::secret::GuestConfig,
        limits: GuestLimits,
        label: String,
        key_schema: &SchemaRef,
        input_schema: &SchemaRef,
        mode: TimeMode,
    ) -> Result<Self> {
        let label: Arc<str> = label.into();
        let (runtime, instance_pre) = prepare(&module, &limits, &label, &LINK)?;
        let pre =
            KeyedProcessorPre::new(instance_pre).map_err(|e| world_mismatch(&label, &LINK, e))?;
        let mut p = WasmProcessor {
            module,
            config: config.resolve(&format!("{label}: config"))?,
            limits,
            label,
            runtime,
            pre,
            key_schema: abi::encode_schema(key_schema),
            input_schema: abi::encode_schema(input_schema),
            mode,
            output_schema: Arc::new(arrow_schema::Schema::empty()),
            variables: Vec::new(),
            instance: None,
        };
        p.instantiate()?;
        Ok(p)
    }

    /// "query 'q' processor (module m.wasm)", for errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The module file.
    pub fn module(&self) -> &std::path::Path {
        &self.module
    }

    /// The schema of what the guest emits.
    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// The state variables the guest declared.
    pub fn variables(&self) -> &[StateVariable] {
        &self.variables
    }

    fn err(&self, message: String) -> Error {
        Error::Wasm {
            module: self.label.to_string(),
            message,
        }
    }

    /// A fresh instance, initialised (at start and after a trap). A restarted instance must
    /// declare what the first one did.
    fn instantiate(&mut self) -> Result<()> {
        let (mut store, instance, spec) = start_guest(
            self.runtime.engine(),
            self.label.clone(),
            &self.limits,
            None,
            "the processor",
            |store| self.pre.instantiate(store),
            |instance: &KeyedProcessor, store| {
                instance.sluice_pipeline_processor().call_init(
                    store,
                    &self.config,
                    &self.key_schema,
                    &self.input_schema,
                    self.mode,
                )
            },
        )?;
        let output = crate::schema::decode_ipc_schema(&spec.output_schema)
            .map_err(|e| self.err(format!("init returned an unreadable output schema: {e}")))?;
        let variables: Vec<StateVariable> = spec
            .state
            .into_iter()
            .map(|v| StateVariable {
                name: v.name,
                kind: v.kind,
                encoding: v.encoding,
                ttl_ms: v.ttl_ms,
            })
            .collect();
        if self.instance.is_some() || !self.variables.is_empty() {
            if output != self.output_schema || variables != self.variables {
                return Err(
                    self.err("declared a different output schema or state after a restart".into())
                );
            }
        } else {
            check_variables(&variables).map_err(|m| self.err(format!("init declared {m}")))?;
        }
        store.data_mut().output_schema = Some(output.clone());
        self.output_schema = output;
        self.variables = variables;
        self.instance = Some((store, instance));
        Ok(())
    }

    /// One batch's call: `keys`, their grouped `rows` (`row_ends` per key), their `state`
    /// (of `state_schema`) and the timers that fired. `emit_budget` is what the call may hand
    /// the host through `output.emit`. Errors are in the guest's terms (the operator adds the
    /// batch id).
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        ctx: BatchContext,
        keys: &RecordBatch,
        rows: &RecordBatch,
        row_ends: &[u32],
        state: &RecordBatch,
        expired: &[ExpiredTimer],
        emit_budget: (u64, u64),
    ) -> std::result::Result<ProcessOutput, String> {
        if self.instance.is_none() {
            self.instantiate().map_err(|e| e.to_string())?;
        }
        let limits = self.limits.clone();
        let state_schema = state.schema();
        let Some((store, instance)) = self.instance.as_mut() else {
            return Err("no instance".into());
        };
        begin_call(store, &limits).map_err(|e| e.to_string())?;
        store.data_mut().emit_budget =
            super::EmitBudget::for_call(&limits, emit_budget.0, emit_budget.1);
        let called = with_guest_batch(keys, |k| {
            with_guest_batch(rows, |r| {
                with_guest_batch(state, |s| {
                    instance.sluice_pipeline_processor().call_process(
                        &mut *store,
                        ctx,
                        k,
                        r,
                        row_ends,
                        s,
                        expired,
                    )
                })
            })
        })
        .and_then(|r| r)
        .and_then(|r| r)
        .map_err(|e| e.to_string())?;
        match called {
            Ok(Ok(new_state)) => {
                let s = store.data_mut();
                if let Some(e) = s.emit_error.take() {
                    return Err(e);
                }
                let emitted = std::mem::take(&mut s.emitted);
                let state = batch_from_guest(&state_schema, new_state).map_err(|e| {
                    format!("returned state that does not fit its declared variables: {e}")
                })?;
                Ok(ProcessOutput { state, emitted })
            }
            Ok(Err(msg)) => Err(format!("returned an error: {}", super::guest_text(&msg))),
            Err(trap) => {
                let why = explain(&trap, store.data(), &limits);
                // A trapped instance may be in any state: the next batch gets a fresh one.
                self.instance = None;
                Err(why)
            }
        }
    }
}

/// Names are unique, not empty, and not the host's own `__timers` column.
fn check_variables(variables: &[StateVariable]) -> std::result::Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for v in variables {
        if v.name.is_empty() || v.name.starts_with("__") {
            return Err(format!(
                "a state variable named '{}' (names must be non-empty and not start with '__')",
                v.name
            ));
        }
        if !seen.insert(v.name.as_str()) {
            return Err(format!("the state variable '{}' twice", v.name));
        }
        if v.ttl_ms == Some(0) {
            return Err(format!(
                "state variable '{}' with a TTL of 0 (leave it out for none)",
                v.name
            ));
        }
    }
    Ok(())
}
