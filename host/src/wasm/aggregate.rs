//! A user-defined aggregate: an `aggregator` component the aggregation operator calls once per
//! batch with the states of the groups the batch touched (never once per row).

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use wasmtime::Store;
use wasmtime::component::Linker;

use super::bindings::aggregator::{Aggregator, AggregatorPre};
use super::{
    GuestState, WasmRuntime, WorldLink, begin_call, explain, prepare, with_guest_batch,
    world_mismatch,
};
use crate::error::{Error, Result};
use crate::wasm::spec::GuestLimits;
use sluice_guest_sdk::abi;

/// Where a user-defined aggregate comes from (`{ module = "...", config = {...} }` in `aggs`).
#[derive(Debug, Clone, PartialEq)]
pub struct UdafSpec {
    /// The component file.
    pub module: std::path::PathBuf,
    /// Handed to the guest's `init` as JSON.
    pub config: crate::secret::GuestConfig,
    /// Per-call limits.
    pub limits: GuestLimits,
}

pub(crate) const LINK: WorldLink = WorldLink {
    what: "an aggregate",
    world: "sluice:pipeline/aggregator",
    feature: "aggregate",
    add: |linker: &mut Linker<GuestState>| {
        Aggregator::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |s| s)
    },
};

/// One user-defined aggregate of a query.
pub struct WasmAggregate {
    spec: UdafSpec,
    label: Arc<str>,
    runtime: &'static WasmRuntime,
    pre: AggregatorPre<GuestState>,
    input_schema: SchemaRef,
    output_field: Field,
    instance: Option<(Store<GuestState>, Aggregator)>,
}

impl WasmAggregate {
    /// Loads the module and calls `init` with the input column's field.
    pub fn new(spec: UdafSpec, label: &str, input: Field) -> Result<Self> {
        let label: Arc<str> = format!("{label} (module {})", spec.module.display()).into();
        let (runtime, instance_pre) = prepare(&spec.module, &spec.limits, &label, &LINK)?;
        let pre = AggregatorPre::new(instance_pre).map_err(|e| world_mismatch(&label, &LINK, e))?;
        let mut udaf = WasmAggregate {
            input_schema: Arc::new(Schema::new(vec![input.clone()])),
            output_field: input,
            spec,
            label,
            runtime,
            pre,
            instance: None,
        };
        udaf.instantiate()?;
        Ok(udaf)
    }

    /// A second instance of the same module and config (already compiled, so cheap), for a
    /// worker of a two-phase aggregation.
    pub fn another_instance(&self) -> Result<Self> {
        let mut udaf = WasmAggregate {
            spec: self.spec.clone(),
            label: self.label.clone(),
            runtime: self.runtime,
            pre: self.pre.clone(),
            input_schema: self.input_schema.clone(),
            output_field: self.output_field.clone(),
            instance: None,
        };
        udaf.instantiate()?;
        Ok(udaf)
    }

    /// The result's field, as the guest's `init` declared it.
    pub fn output_field(&self) -> &Field {
        &self.output_field
    }

    fn err(&self, message: String) -> Error {
        Error::Wasm {
            module: self.label.to_string(),
            message,
        }
    }

    fn instantiate(&mut self) -> Result<()> {
        let config = self
            .spec
            .config
            .resolve(&format!("{}: config", self.label))?;
        let encoded_input = abi::encode_schema(&self.input_schema);
        let (mut store, instance, schema) = super::start_guest(
            self.runtime.engine(),
            self.label.clone(),
            &self.spec.limits,
            None,
            "the aggregate",
            |store| self.pre.instantiate(store),
            |instance: &Aggregator, store| {
                instance
                    .sluice_pipeline_aggregate()
                    .call_init(store, &config, &encoded_input)
            },
        )?;
        let output = crate::schema::decode_ipc_schema(&schema)
            .map_err(|e| self.err(format!("init returned an unreadable schema: {e}")))?;
        let field = output
            .fields()
            .first()
            .ok_or_else(|| self.err("init returned a schema with no column".into()))?;
        self.output_field = field.as_ref().clone();
        store.data_mut().output_schema = Some(output);
        self.instance = Some((store, instance));
        Ok(())
    }

    fn with_instance<R>(
        &mut self,
        call: impl FnOnce(
            &mut Store<GuestState>,
            &Aggregator,
        ) -> wasmtime::Result<std::result::Result<R, String>>,
        what: &str,
    ) -> Result<R> {
        if self.instance.is_none() {
            self.instantiate()?;
        }
        let limits = self.spec.limits.clone();
        let Some((store, instance)) = self.instance.as_mut() else {
            return Err(self.err("no instance".into()));
        };
        begin_call(store, &limits)?;
        match call(store, instance) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(self.err(format!(
                "{what} returned an error: {}",
                super::guest_text(&msg)
            ))),
            Err(trap) => {
                let why = explain(&trap, store.data(), &limits);
                self.instance = None;
                Err(self.err(format!("{what} {why}")))
            }
        }
    }

    /// Folds `batch` (the input column) into `states`; row i belongs to `group_ids[i]`.
    pub fn update(
        &mut self,
        states: &[&[u8]],
        group_ids: &[u32],
        column: ArrayRef,
    ) -> Result<Vec<Vec<u8>>> {
        let batch = RecordBatch::try_new(self.input_schema.clone(), vec![column])
            .map_err(|e| Error::data("handing rows to an aggregate", e))?;
        let new = self.with_instance(
            |store, instance| {
                with_guest_batch(&batch, |b| {
                    instance
                        .sluice_pipeline_aggregate()
                        .call_update(store, states, group_ids, b)
                })
                .unwrap_or_else(|e| Ok(Err(e.to_string())))
            },
            "update",
        )?;
        if new.len() != states.len() {
            return Err(self.err(format!(
                "update returned {} states for {} groups",
                new.len(),
                states.len()
            )));
        }
        Ok(new)
    }

    /// Combines two states of one group: `b`, a later part, into `a`.
    pub fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>> {
        self.with_instance(
            |store, instance| instance.sluice_pipeline_aggregate().call_merge(store, a, b),
            "merge",
        )
    }

    /// The results of `states`, one row per state.
    pub fn finish(&mut self, states: &[&[u8]]) -> Result<ArrayRef> {
        let limits = self.spec.limits.clone();
        let state_bytes: u64 = states.iter().map(|s| s.len() as u64).sum();
        self.with_instance(
            |store, instance| {
                // One result per state: the budget follows how many there are.
                store.data_mut().emit_budget =
                    super::EmitBudget::for_call(&limits, states.len() as u64, state_bytes);
                instance
                    .sluice_pipeline_aggregate()
                    .call_finish(store, states)
            },
            "finish",
        )?;
        let Some((store, _)) = self.instance.as_mut() else {
            return Err(self.err("no instance".into()));
        };
        let s = store.data_mut();
        if let Some(e) = s.emit_error.take() {
            return Err(self.err(format!("finish {e}")));
        }
        let emitted = std::mem::take(&mut s.emitted);
        let column = match emitted.as_slice() {
            [one] => one.column(0).clone(),
            _ => {
                let parts: Vec<ArrayRef> = emitted.iter().map(|b| b.column(0).clone()).collect();
                let refs: Vec<&dyn arrow_array::Array> = parts.iter().map(|a| a.as_ref()).collect();
                arrow_select::concat::concat(&refs)
                    .map_err(|e| Error::data("collecting aggregate results", e))?
            }
        };
        if column.len() != states.len() {
            return Err(self.err(format!(
                "finish gave {} results for {} groups",
                column.len(),
                states.len()
            )));
        }
        Ok(column)
    }
}
