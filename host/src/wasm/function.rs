//! A scalar function in Wasm (the `function` world), callable by name inside expression steps:
//! a DataFusion scalar function whose body is a guest call per batch — all the batch's rows of
//! its arguments at once, never one call per row (RisingWave's Arrow UDFs work the same way).
//!
//! Guarantees: the guest's `init` runs when an expression using the function is planned, with
//! the argument types, and fixes the result type; a call's result is refused unless it is one
//! column of exactly that type with one value per row; every call runs under the pipeline's
//! limits for the function (deadline, fuel, memory, output size), and a guest that breaks one
//! fails the batch with the function and module named. Instances are pooled per argument types
//! (a component instance is single-threaded; batches may be evaluated on several threads).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion_common::{DataFusionError, Result as DfResult};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use wasmtime::Store;
use wasmtime::component::Linker;

use super::bindings::function::{Function, FunctionPre};
use super::{GuestState, WasmRuntime, WorldLink, begin_call, explain, prepare, world_mismatch};
use crate::wasm::spec::GuestLimits;
use sluice_guest_sdk::abi;

/// A function the pipeline declares (`[functions] to_krw = "to_krw.wasm"`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The name expressions call it by (matched without regard to case).
    pub name: String,
    /// The component file.
    pub module: std::path::PathBuf,
    /// Handed to the guest's `init` as JSON.
    pub config: crate::secret::GuestConfig,
    /// Per-call limits.
    pub limits: GuestLimits,
}

pub(crate) const LINK: WorldLink = WorldLink {
    what: "a function",
    world: "sluice:pipeline/function",
    feature: "function",
    add: |linker: &mut Linker<GuestState>| {
        Function::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |s| s)
    },
};

/// One started instance, its `init` done for one list of argument types.
struct Instance {
    store: Store<GuestState>,
    bindings: Function,
}

/// The instances started for one list of argument types: the result field their `init`
/// declared, and those idle now.
struct Pool {
    field: Field,
    idle: Vec<Instance>,
}

/// A Wasm scalar function as DataFusion calls it.
pub struct WasmFunction {
    spec: FunctionSpec,
    label: Arc<str>,
    runtime: &'static WasmRuntime,
    pre: FunctionPre<GuestState>,
    signature: Signature,
    /// Instances by argument types.
    pools: Mutex<HashMap<Vec<DataType>, Pool>>,
}

impl std::fmt::Debug for WasmFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmFunction")
            .field("name", &self.spec.name)
            .field("module", &self.spec.module)
            .finish()
    }
}

// DataFusion compares functions to deduplicate them: one declared name is one function.
impl PartialEq for WasmFunction {
    fn eq(&self, other: &Self) -> bool {
        self.spec.name == other.spec.name && self.spec.module == other.spec.module
    }
}
impl Eq for WasmFunction {}
impl std::hash::Hash for WasmFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.spec.name.hash(state);
        self.spec.module.hash(state);
    }
}

impl WasmFunction {
    /// Loads (compiles, or takes from the cache) the module; no instance starts until an
    /// expression uses the function.
    pub fn load(spec: FunctionSpec) -> crate::error::Result<WasmFunction> {
        let label: Arc<str> = format!(
            "function '{}' (module {})",
            spec.name,
            spec.module.display()
        )
        .into();
        let (runtime, instance_pre) = prepare(&spec.module, &spec.limits, &label, &LINK)?;
        let pre = FunctionPre::new(instance_pre).map_err(|e| world_mismatch(&label, &LINK, e))?;
        Ok(WasmFunction {
            spec,
            label,
            runtime,
            pre,
            signature: Signature::variadic_any(Volatility::Immutable),
            pools: Mutex::new(HashMap::new()),
        })
    }

    /// This function as DataFusion's.
    pub fn into_udf(self) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(self))
    }

    fn err(&self, message: String) -> DataFusionError {
        DataFusionError::Execution(format!("{}: {message}", self.label))
    }

    /// A new instance, its `init` called with `types`; and the result field it declared.
    fn start(&self, types: &[DataType]) -> DfResult<(Instance, Field)> {
        let arguments = Schema::new(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("arg{i}"), t.clone(), true))
                .collect::<Vec<_>>(),
        );
        let config = self
            .spec
            .config
            .resolve(&format!("{}: config", self.label))
            .map_err(|e| self.err(e.to_string()))?;
        let encoded = abi::encode_schema(&Arc::new(arguments));
        let (mut store, bindings, schema) = super::start_guest(
            self.runtime.engine(),
            self.label.clone(),
            &self.spec.limits,
            None,
            "the function",
            |store| self.pre.instantiate(store),
            |instance: &Function, store| {
                instance
                    .sluice_pipeline_scalar_function()
                    .call_init(store, &config, &encoded)
            },
        )
        .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let output = crate::schema::decode_ipc_schema(&schema)
            .map_err(|e| self.err(format!("init returned an unreadable schema: {e}")))?;
        let [field] = output.fields().iter().collect::<Vec<_>>()[..] else {
            return Err(self.err(format!(
                "init must return a one-column schema, not {} columns",
                output.fields().len()
            )));
        };
        let field = field.as_ref().clone().with_name(self.spec.name.clone());
        store.data_mut().output_schema = Some(Arc::new(Schema::new(vec![field.clone()])));
        Ok((Instance { store, bindings }, field))
    }

    /// An idle instance for `types` (started if there is none) and the result field.
    fn take(&self, types: &[DataType]) -> DfResult<(Instance, Field)> {
        if let Some(pool) = lock(&self.pools).get_mut(types)
            && let Some(instance) = pool.idle.pop()
        {
            return Ok((instance, pool.field.clone()));
        }
        let (instance, field) = self.start(types)?;
        lock(&self.pools)
            .entry(types.to_vec())
            .or_insert_with(|| Pool {
                field: field.clone(),
                idle: Vec::new(),
            });
        Ok((instance, field))
    }

    /// Hands a healthy instance back to its pool.
    fn give_back(&self, types: &[DataType], instance: Instance) {
        if let Some(pool) = lock(&self.pools).get_mut(types) {
            pool.idle.push(instance);
        }
    }

    /// One guest call over `arguments`, its result checked against `field`.
    fn call(
        &self,
        instance: &mut Instance,
        arguments: &RecordBatch,
        field: &Field,
    ) -> DfResult<ArrayRef> {
        let limits = &self.spec.limits;
        let store = &mut instance.store;
        begin_call(store, limits).map_err(|e| self.err(e.to_string()))?;
        let rows = arguments.num_rows() as u64;
        store.data_mut().emit_budget =
            super::EmitBudget::for_call(limits, rows, arguments.get_array_memory_size() as u64);
        let outcome = super::with_guest_batch(arguments, |b| {
            instance
                .bindings
                .sluice_pipeline_scalar_function()
                .call_call(&mut *store, b)
        })
        .map_err(|e| self.err(e.to_string()))?;
        let state = store.data_mut();
        // A refused emit is the reason, whatever the guest said after it.
        if let Some(e) = state.emit_error.take() {
            return Err(self.err(format!("call {e}")));
        }
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(self.err(format!(
                    "call returned an error: {}",
                    super::guest_text(&message)
                )));
            }
            Err(trap) => return Err(self.err(format!("call {}", explain(&trap, state, limits)))),
        }
        let emitted = std::mem::take(&mut state.emitted);
        let column = match emitted.as_slice() {
            [one] => Arc::clone(one.column(0)),
            parts => {
                let columns: Vec<&dyn arrow_array::Array> =
                    parts.iter().map(|b| b.column(0).as_ref()).collect();
                arrow_select::concat::concat(&columns)
                    .map_err(|e| self.err(format!("joining its output: {e}")))?
            }
        };
        if column.len() != arguments.num_rows() {
            return Err(self.err(format!(
                "call gave {} values for {} rows; a function answers every row, once",
                column.len(),
                arguments.num_rows()
            )));
        }
        if column.data_type() != field.data_type() {
            return Err(self.err(format!(
                "call gave {} values where init declared {}",
                column.data_type(),
                field.data_type()
            )));
        }
        Ok(column)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ScalarUDFImpl for WasmFunction {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        let (instance, field) = self.take(arg_types)?;
        self.give_back(arg_types, instance);
        Ok(field.data_type().clone())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let (instance, field) = self.take(&types)?;
        self.give_back(&types, instance);
        Ok(Arc::new(field))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let schema: SchemaRef = Arc::new(Schema::new(
            args.arg_fields
                .iter()
                .enumerate()
                .map(|(i, f)| Field::new(format!("arg{i}"), f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let columns = args
            .args
            .iter()
            .map(|a| a.clone().into_array(args.number_rows))
            .collect::<DfResult<Vec<_>>>()?;
        let arguments = RecordBatch::try_new_with_options(
            schema,
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(args.number_rows)),
        )?;
        let (mut instance, field) = self.take(&types)?;
        match self.call(&mut instance, &arguments, &field) {
            Ok(column) => {
                self.give_back(&types, instance);
                Ok(ColumnarValue::Array(column))
            }
            // A failed call's instance may be mid-way through anything: dropped, not reused.
            Err(e) => Err(e),
        }
    }
}
