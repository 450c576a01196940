//! A query's plan: the DAG of [`Operator`]s a batch flows through, built once from the
//! pipeline when the query starts.
//!
//! Leaves are the inputs (one per source, in file order); then each input's own steps; then
//! each view (`[query.views.NAME]`) — what it reads (a stream, a union, a join), its steps,
//! its stateful operator; then the query's own stage the same way. Nodes are kept in that
//! order, children before parents, so a batch runs them front to back.
//!
//! State: each stateful node keeps its state under `state/<operator-id>/`. The query's own
//! operators keep the ids they always had (`join`, `dropDuplicates`, `aggregate`,
//! `processor`), so a checkpoint written before views existed restores into this plan
//! unchanged; a view's are `<view>.<kind>`. Ids depend on the pipeline's names only, so they
//! are stable across restarts.
//!
//! Watermarks: see [`crate::operators::operator`]; the plan computes each node's from its
//! children's, starting at the inputs with the query's (global) watermark.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::shared::{StepInfo, step_info};
use crate::error::{Error, Result};
use crate::expr::{CompiledStep, PlanOptions};
use crate::operators::aggregate::Aggregate;
use crate::operators::dedup::Dedup;
use crate::operators::exchange::{Exchange, KeyColumns, RouteRows, StatePartition};
use crate::operators::join::JoinRight;
use crate::operators::join::static_table::StreamStaticJoin;
use crate::operators::operator::{Operator, OperatorContext};
use crate::operators::processor::KeyedProcessor;
use crate::operators::stateless::{ExprNode, InputNode, StepNode, UnionNode};
use crate::operators::{BatchClock, StateOperatorProgress, Watermarks};
use crate::pipeline::{Combine, QuerySpec, StepSpec, ViewFrom, ViewSpec};
use crate::sink::outputs::SharedOutputs;
use crate::storage::Location;
use crate::wasm::function::WasmFunction;
use crate::wasm::transform::WasmTransform;

/// One node: its operator and the nodes it reads.
struct PlanNode {
    op: Box<dyn Operator>,
    children: Vec<usize>,
    /// How many nodes read its output (its rows are handed to the last, copied to the rest).
    readers: usize,
    /// The offsets log's name for the table it joins with, if it joins with one.
    table_key: Option<String>,
    /// For an input's leaf: the input (its rows are the source's).
    source: Option<usize>,
}

/// The DAG of a query's operators.
pub(super) struct Plan {
    nodes: Vec<PlanNode>,
    /// Per input: the node whose output carries that input's event time as the watermark
    /// reads it (after the input's own steps; a single input without views, after every
    /// step of the query, as it always was).
    event_time_at: Vec<usize>,
}

/// What one batch's run of the plan needs besides the inputs' rows.
pub(super) struct PlanRun<'a> {
    pub batch_id: u64,
    pub processing_time_ms: i64,
    /// The query's watermark of the previous batch and of this one.
    pub previous_ms: i64,
    pub current_ms: i64,
    pub steps: &'a mut [WasmTransform],
    pub outputs: &'a SharedOutputs,
    pub parallelism: usize,
}

/// Each node's watermarks as they leave it: late-events, eviction, and eviction as of the
/// previous batch.
#[derive(Clone, Copy)]
struct Flow {
    late: i64,
    eviction: i64,
    previous: i64,
}

impl Plan {
    /// The schema of what the plan emits (the sink's input).
    pub(super) fn schema(&self) -> SchemaRef {
        self.root().op.schema()
    }

    fn root(&self) -> &PlanNode {
        &self.nodes[self.nodes.len() - 1]
    }

    /// The schema input `i`'s event time is read from.
    pub(super) fn event_time_schema(&self, input: usize) -> SchemaRef {
        self.nodes[self.event_time_at[input]].op.schema()
    }

    /// Whether any node keeps state between batches.
    pub(super) fn is_stateful(&self) -> bool {
        self.nodes.iter().any(|n| n.op.is_stateful())
    }

    /// Whether a batch's output depends on nothing but its own rows (no state, no table):
    /// then the next batch may be read while the sink finishes this one.
    pub(super) fn is_stateless(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| !n.op.is_stateful() && n.table_key.is_none())
    }

    /// Runs one batch: `inputs` are the sources' rows, in input order. `observe` is given
    /// each input's rows where its event time is read; `timing` each node's time (whether
    /// the node is stateful, how long it took).
    pub(super) fn run(
        &mut self,
        run: PlanRun<'_>,
        mut inputs: Vec<Vec<RecordBatch>>,
        observe: &mut dyn FnMut(usize, &[RecordBatch]) -> Result<()>,
        timing: &mut dyn FnMut(bool, Duration),
    ) -> Result<Vec<RecordBatch>> {
        let mut outputs: Vec<Option<Vec<RecordBatch>>> = vec![None; self.nodes.len()];
        let mut flows: Vec<Flow> = Vec::with_capacity(self.nodes.len());
        let mut ctx = OperatorContext {
            clock: BatchClock {
                batch_id: run.batch_id,
                processing_time_ms: run.processing_time_ms,
                watermarks: Watermarks::single(run.current_ms),
            },
            steps: run.steps,
            outputs: run.outputs,
            parallelism: run.parallelism,
        };
        let mut remaining: Vec<usize> = self.nodes.iter().map(|n| n.readers).collect();
        for id in 0..self.nodes.len() {
            let node = &mut self.nodes[id];
            let (rows, input_flow) = match node.source {
                Some(i) => (
                    vec![std::mem::take(&mut inputs[i])],
                    // Spark 3.4+ (`statefulOperator.allowMultiple`, on by default): a row is
                    // late by the previous batch's watermark; state is final by this one's.
                    Flow {
                        late: run.previous_ms,
                        eviction: run.current_ms,
                        previous: run.previous_ms,
                    },
                ),
                None => {
                    let mut rows = Vec::with_capacity(node.children.len());
                    for &c in &node.children {
                        remaining[c] -= 1;
                        let out = match remaining[c] {
                            // The last reader takes the rows; earlier ones get a copy (of
                            // the batches' handles, not their buffers).
                            0 => outputs[c].take(),
                            _ => outputs[c].clone(),
                        };
                        rows.push(out.unwrap_or_default());
                    }
                    let flow = node.children.iter().map(|&c| flows[c]).fold(
                        Flow {
                            late: i64::MAX,
                            eviction: i64::MAX,
                            previous: i64::MAX,
                        },
                        |a, b| Flow {
                            late: a.late.min(b.late),
                            eviction: a.eviction.min(b.eviction),
                            previous: a.previous.min(b.previous),
                        },
                    );
                    (rows, flow)
                }
            };
            ctx.clock.watermarks = Watermarks {
                late_ms: input_flow.late,
                eviction_ms: input_flow.eviction,
            };
            let started = Instant::now();
            let out = node.op.process(&mut ctx, rows)?;
            if node.op.is_stateful() {
                node.op.commit(run.batch_id)?;
            }
            timing(node.op.is_stateful(), started.elapsed());
            for (i, _) in self
                .event_time_at
                .iter()
                .enumerate()
                .filter(|(_, n)| **n == id)
            {
                observe(i, &out)?;
            }
            let lag = node.op.output_lag_ms();
            let held = |ms: i64| if ms > 0 { (ms - lag).max(0) } else { 0 };
            flows.push(Flow {
                late: if node.op.emits_on_watermark() {
                    held(input_flow.previous.min(input_flow.eviction))
                } else {
                    held(input_flow.late)
                },
                eviction: held(input_flow.eviction),
                previous: held(input_flow.previous),
            });
            outputs[id] = Some(out);
        }
        Ok(outputs.pop().flatten().unwrap_or_default())
    }

    /// Loads every stateful node's state after batch `version`.
    pub(super) fn restore(&mut self, version: Option<u64>) -> Result<()> {
        self.nodes
            .iter_mut()
            .try_for_each(|n| n.op.restore(version))
    }

    /// Removes state versions older than `keep_from`.
    pub(super) fn purge(&mut self, keep_from: u64) -> Result<()> {
        self.nodes
            .iter_mut()
            .try_for_each(|n| n.op.purge(keep_from))
    }

    /// Between batches: each table a node joins with looks for a newer version.
    pub(super) fn refresh(&mut self) -> Result<()> {
        self.nodes.iter_mut().try_for_each(|n| n.op.refresh())
    }

    /// The table versions a batch planned now joins with (for its offsets entry).
    pub(super) fn table_versions(&self) -> BTreeMap<String, String> {
        self.nodes
            .iter()
            .filter_map(|n| Some((n.table_key.clone()?, n.op.table_version()?)))
            .collect()
    }

    /// Every stateful node's figures of the last batch, children first.
    pub(super) fn progress(&self) -> Vec<StateOperatorProgress> {
        self.nodes.iter().filter_map(|n| n.op.progress()).collect()
    }

    /// Whether a watermark that moved without data could make a node emit or evict.
    pub(super) fn wants_no_data_batches(&self) -> bool {
        self.nodes.iter().any(|n| n.op.wants_no_data_batches())
    }

    /// Whether something falls due by processing time `now_ms`.
    pub(super) fn due_by_processing_time(&self, now_ms: i64) -> bool {
        self.nodes
            .iter()
            .any(|n| n.op.due_by_processing_time(now_ms))
    }
}

/// Builds a query's plan (and loads its Wasm steps, each fixing its output schema before any
/// batch runs).
pub(super) struct PlanBuilder<'a> {
    spec: &'a QuerySpec,
    checkpoint: &'a Location,
    /// State partitions of every stateful node.
    shuffle: usize,
    nodes: Vec<PlanNode>,
    /// The node each input and view ends at, by name.
    named: HashMap<String, usize>,
    steps: Vec<WasmTransform>,
    infos: Vec<StepInfo>,
    /// The pipeline's Wasm functions, loaded when the first expression step is planned.
    functions: Option<Vec<Arc<datafusion_expr::ScalarUDF>>>,
}

/// What [`PlanBuilder::build`] makes: the plan, and the steps its step nodes run.
pub(super) struct Built {
    pub plan: Plan,
    pub steps: Vec<WasmTransform>,
    pub infos: Vec<StepInfo>,
}

impl<'a> PlanBuilder<'a> {
    /// A builder for `spec`, whose stateful nodes keep their state under `checkpoint` in
    /// `shuffle` partitions.
    pub(super) fn new(spec: &'a QuerySpec, checkpoint: &'a Location, shuffle: usize) -> Self {
        PlanBuilder {
            spec,
            checkpoint,
            shuffle,
            nodes: Vec::new(),
            named: HashMap::new(),
            steps: Vec::new(),
            infos: Vec::new(),
            functions: None,
        }
    }

    /// The pipeline's Wasm functions (`[functions]`), loaded once.
    fn functions(&mut self) -> Result<&[Arc<datafusion_expr::ScalarUDF>]> {
        if self.functions.is_none() {
            let loaded = self
                .spec
                .functions
                .iter()
                .map(|f| Ok(WasmFunction::load(f.clone())?.into_udf()))
                .collect::<Result<Vec<_>>>()?;
            self.functions = Some(loaded);
        }
        Ok(self.functions.as_deref().unwrap_or_default())
    }

    fn add(&mut self, op: Box<dyn Operator>, children: Vec<usize>) -> usize {
        for &c in &children {
            self.nodes[c].readers += 1;
        }
        self.nodes.push(PlanNode {
            op,
            children,
            readers: 0,
            table_key: None,
            source: None,
        });
        self.nodes.len() - 1
    }

    fn schema(&self, node: usize) -> SchemaRef {
        self.nodes[node].op.schema()
    }

    fn node_of(&self, name: &str) -> Result<usize> {
        self.named.get(name).copied().ok_or_else(|| {
            Error::data(
                "plan",
                format!("no input or view named '{name}' before this"),
            )
        })
    }

    /// Steps `transforms` after `node`: a Wasm step loads its module (whose init fixes its
    /// output schema), an expression step is planned against the schema reaching it.
    fn steps_after(&mut self, mut node: usize, transforms: &[StepSpec]) -> Result<usize> {
        for t in transforms {
            let input = self.schema(node);
            match t {
                StepSpec::Wasm(t) => {
                    let step = WasmTransform::new(t.clone(), &self.spec.name, input.clone())?;
                    self.infos.push(step_info(&step, input));
                    let out = step.output_schema();
                    self.steps.push(step);
                    node = self.add(
                        Box::new(StepNode::new(self.steps.len() - 1, out)),
                        vec![node],
                    );
                }
                StepSpec::Expr(e) => {
                    let ansi = self.spec.ansi;
                    let options = PlanOptions {
                        functions: self.functions()?,
                        ansi,
                    };
                    let step = CompiledStep::with_options(e, &input, &options).map_err(|err| {
                        Error::Data {
                            context: format!("query '{}' step '{}'", self.spec.name, e.name),
                            message: err.to_string(),
                        }
                    })?;
                    node = self.add(
                        Box::new(ExprNode::new(step, &input, e.on_error.clone())),
                        vec![node],
                    );
                }
            }
        }
        Ok(node)
    }

    /// The node of what a stage reads. `view` is the view it belongs to (`None`: the query's
    /// own stage, whose operator ids and table key are the ones checkpoints always had).
    fn reads(&mut self, from: &ViewFrom, view: Option<&str>) -> Result<usize> {
        match from {
            ViewFrom::Stream(name) => self.node_of(name),
            ViewFrom::Union(names) => {
                let children = names
                    .iter()
                    .map(|n| self.node_of(n))
                    .collect::<Result<Vec<_>>>()?;
                let schemas: Vec<SchemaRef> = children.iter().map(|&c| self.schema(c)).collect();
                let context = match view {
                    Some(v) => format!("union of view '{v}' of query '{}'", self.spec.name),
                    None => format!("union of query '{}'", self.spec.name),
                };
                let union = UnionNode::new(&context, names, &schemas)?;
                Ok(self.add(Box::new(union), children))
            }
            ViewFrom::Join(join) => {
                let left = self.node_of(&join.left)?;
                match &join.right {
                    JoinRight::Table(table) => {
                        let cache = self.checkpoint.join("tables").join(view.unwrap_or("0"));
                        let op = StreamStaticJoin::open(
                            (**join).clone(),
                            table.clone(),
                            self.schema(left),
                            cache,
                        )?;
                        let node = self.add(Box::new(op), vec![left]);
                        self.nodes[node].table_key = Some(match view {
                            Some(v) => format!("{v}.join"),
                            None => "join".to_owned(),
                        });
                        Ok(node)
                    }
                    JoinRight::Input(right) => {
                        let right = self.node_of(right)?;
                        let id = operator_id(view, crate::operators::join::symmetric::STATE_NAME);
                        let op = crate::operators::join::symmetric::exchange(
                            (**join).clone(),
                            self.schema(left),
                            self.schema(right),
                            self.checkpoint,
                            &id,
                            self.shuffle,
                        )?;
                        Ok(self.add(Box::new(op), vec![left, right]))
                    }
                }
            }
        }
    }

    /// A stage's stateful operators after `node`, in the order they run.
    fn operators_after(&mut self, mut node: usize, stage: Stage<'_>) -> Result<usize> {
        let spec = self.spec;
        let checkpoint = self.checkpoint;
        let shuffle = self.shuffle;
        if let Some(d) = stage.dedup {
            let schema = self.schema(node);
            let columns: Vec<String> = if d.columns.is_empty() {
                schema.fields().iter().map(|f| f.name().clone()).collect()
            } else {
                d.columns.clone()
            };
            let id = operator_id(stage.view, crate::operators::dedup::STATE_NAME);
            let parts = (0..shuffle.max(1))
                .map(|p| {
                    Dedup::new(
                        d.clone(),
                        schema.clone(),
                        spec.watermark().cloned(),
                        checkpoint,
                        &id,
                        p,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let op = by_key("Deduplicate", parts, &schema, columns, false)?;
            node = self.add(Box::new(op), vec![node]);
        }
        if let Some(a) = stage.aggregate {
            let schema = self.schema(node);
            let id = operator_id(stage.view, crate::operators::aggregate::STATE_NAME);
            // Pre-aggregated per chunk on the workers, or each row routed to its key's
            // partition (see operators/aggregate/shuffle.rs).
            let parts = (0..shuffle.max(1))
                .map(|p| {
                    Aggregate::new(
                        a.clone(),
                        spec.output_mode,
                        spec.watermark(),
                        schema.clone(),
                        checkpoint,
                        &id,
                        p,
                        &spec.name,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let op = crate::operators::aggregate::shuffle::exchange(parts, spec.parallelism)?;
            node = self.add(Box::new(op), vec![node]);
        }
        if let Some(pr) = stage.processor {
            let schema = self.schema(node);
            let id = operator_id(stage.view, crate::operators::processor::STATE_NAME);
            let parts = (0..shuffle.max(1))
                .map(|p| {
                    KeyedProcessor::new(
                        pr.clone(),
                        schema.clone(),
                        spec.watermark(),
                        checkpoint,
                        &id,
                        p,
                        &spec.name,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let op = by_key("KeyedProcessor", parts, &schema, pr.key.clone(), true)?;
            node = self.add(Box::new(op), vec![node]);
        }
        Ok(node)
    }

    /// Builds the plan of `inputs` (each source's schema, in input order).
    pub(super) fn build(mut self, inputs: &[SchemaRef]) -> Result<Built> {
        let spec = self.spec;
        let mut event_time_at = Vec::with_capacity(inputs.len());
        for (i, (input, schema)) in spec.inputs.iter().zip(inputs).enumerate() {
            let leaf = self.add(Box::new(InputNode::new(schema.clone())), Vec::new());
            self.nodes[leaf].source = Some(i);
            let end = self.steps_after(leaf, &input.transforms)?;
            event_time_at.push(end);
            self.named.insert(input.name.clone(), end);
        }
        for view in &spec.views {
            let node = self
                .view(view)
                .map_err(|e| in_view(&spec.name, &view.name, e))?;
            self.named.insert(view.name.clone(), node);
        }
        // One input reads under its own name (`source`, or a lone `[query.inputs.NAME]`).
        let from = match (&spec.combine, spec.inputs.as_slice()) {
            (Combine::Single, [only]) => crate::pipeline::ViewFrom::Stream(only.name.clone()),
            _ => spec.combine.reads(),
        };
        let node = self.reads(&from, None)?;
        let node = self.steps_after(node, &spec.transforms)?;
        // One input without views: its event time is read after every step, as it always
        // was (a step may be what makes the event-time column).
        if spec.views.is_empty() && matches!(spec.combine, Combine::Single) {
            event_time_at[0] = node;
        }
        self.operators_after(
            node,
            Stage {
                view: None,
                dedup: spec.dedup.as_ref(),
                aggregate: spec.aggregate.as_ref(),
                processor: spec.processor.as_ref(),
            },
        )?;
        Ok(Built {
            plan: Plan {
                nodes: self.nodes,
                event_time_at,
            },
            steps: self.steps,
            infos: self.infos,
        })
    }

    fn view(&mut self, view: &ViewSpec) -> Result<usize> {
        let node = self.reads(&view.from, Some(&view.name))?;
        let node = self.steps_after(node, &view.transforms)?;
        self.operators_after(
            node,
            Stage {
                view: Some(&view.name),
                dedup: view.dedup.as_ref(),
                aggregate: view.aggregate.as_ref(),
                processor: view.processor.as_ref(),
            },
        )
    }
}

/// A stage's stateful operators (a view's, or the query's own).
struct Stage<'s> {
    view: Option<&'s str>,
    dedup: Option<&'s crate::operators::dedup::DedupSpec>,
    aggregate: Option<&'s crate::operators::aggregate::AggregateSpec>,
    processor: Option<&'s crate::operators::processor::ProcessorSpec>,
}

/// A stateful operator's state id: its kind for the query's own, `<view>.<kind>` in a view.
fn operator_id(view: Option<&str>, kind: &str) -> String {
    match view {
        Some(v) => format!("{v}.{kind}"),
        None => kind.to_owned(),
    }
}

/// An error building view `view`, saying so.
fn in_view(query: &str, view: &str, e: Error) -> Error {
    match e {
        Error::Data { context, message } => Error::Data {
            context: format!("query '{query}' view '{view}': {context}"),
            message,
        },
        other => other,
    }
}

/// Operator `name`'s state partitions `parts`, each row routed to the partition of its `key`
/// columns of `schema` (with one partition, none is routed: its state is in partition 0, as
/// before partitioning existed).
fn by_key<P: StatePartition + 'static>(
    name: &'static str,
    parts: Vec<P>,
    schema: &SchemaRef,
    key: Vec<String>,
    emits_on_watermark: bool,
) -> Result<Exchange<P>> {
    let keys = KeyColumns::new(schema, &key)?;
    Exchange::new(
        name,
        parts,
        key,
        Box::new(RouteRows::new(Box::new(keys))),
        emits_on_watermark,
    )
}
