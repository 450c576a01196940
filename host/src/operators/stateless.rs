//! The plan's stateless nodes: an input (a source's rows), a Wasm step, an expression step,
//! and a union.
//!
//! Guarantees: each passes every row it receives on (a step as its module's `onError` policy
//! says) and keeps no state; a union's output is its inputs' rows in the order of its
//! children, relabelled with one schema without copying any buffer.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};

use super::operator::{Operator, OperatorContext};
use crate::error::{Error, Result};

/// A leaf: the rows its source read for the batch.
pub struct InputNode {
    schema: SchemaRef,
}

impl InputNode {
    /// A source whose rows have `schema`.
    pub fn new(schema: SchemaRef) -> InputNode {
        InputNode { schema }
    }
}

impl Operator for InputNode {
    fn name(&self) -> &'static str {
        "Input"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process(
        &mut self,
        _ctx: &mut OperatorContext<'_>,
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        Ok(inputs.pop().unwrap_or_default())
    }
}

/// Runs step `index` of the query's Wasm steps.
pub struct StepNode {
    index: usize,
    schema: SchemaRef,
}

impl StepNode {
    /// Step `index` (of [`OperatorContext::steps`]), which emits `schema`.
    pub fn new(index: usize, schema: SchemaRef) -> StepNode {
        StepNode { index, schema }
    }
}

impl Operator for StepNode {
    fn name(&self) -> &'static str {
        "WasmStep"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process(
        &mut self,
        ctx: &mut OperatorContext<'_>,
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        let rows = inputs.pop().unwrap_or_default();
        let Some(step) = ctx.steps.get_mut(self.index) else {
            return Err(Error::data(
                "plan",
                format!("no step {} among the query's steps", self.index),
            ));
        };
        step.process(ctx.clock.batch_id, rows, ctx.outputs, ctx.parallelism)
    }
}

/// An expression step (`selectExpr`, `where`, ...), planned when the plan is built.
///
/// A batch whose expressions fail (an ANSI cast of text that is not a number) fails the query
/// with `onError = "fail"`; with `skip` or `deadLetter` the batch is run again row by row, so
/// only the failing rows are skipped (logged) or staged to the dead-letter output with an
/// `_error` column, and every other row goes on.
pub struct ExprNode {
    step: crate::expr::CompiledStep,
    on_error: crate::wasm::spec::OnError,
    /// The input's columns and `_error`, for dead letters.
    dead_letter: SchemaRef,
}

impl ExprNode {
    /// Runs `step` (whose input has `input` schema) over each batch, failing as `on_error` says.
    pub fn new(
        step: crate::expr::CompiledStep,
        input: &SchemaRef,
        on_error: crate::wasm::spec::OnError,
    ) -> ExprNode {
        ExprNode {
            step,
            on_error,
            dead_letter: crate::sink::outputs::dead_letter_schema(input),
        }
    }

    /// A failed batch's rows one by one: those that pass, and those that fail with why.
    fn row_by_row(&self, batch: &RecordBatch) -> (Vec<RecordBatch>, Vec<(RecordBatch, String)>) {
        let (mut passed, mut failed) = (Vec::new(), Vec::new());
        for i in 0..batch.num_rows() {
            let row = batch.slice(i, 1);
            match self.step.evaluate(&row) {
                Ok(out) => passed.push(out),
                Err(e) => failed.push((row, e.to_string())),
            }
        }
        (passed, failed)
    }
}

impl Operator for ExprNode {
    fn name(&self) -> &'static str {
        "Expression"
    }
    fn schema(&self) -> SchemaRef {
        self.step.schema()
    }
    fn process(
        &mut self,
        ctx: &mut OperatorContext<'_>,
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        use crate::wasm::spec::OnError;
        let batches = inputs.pop().unwrap_or_default();
        // The batch's recorded time, for current_timestamp() (a re-run sees the same).
        self.step.set_batch_time(ctx.clock.processing_time_ms);
        // Batches are independent: up to `parallelism` of them at once, output in order.
        let step = &self.step;
        let results = crate::parallel::try_map(batches, ctx.parallelism, |b| {
            Ok::<_, crate::error::Error>(step.evaluate(&b).map_err(|e| (b, e)))
        })?;
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            let (batch, error) = match result {
                Ok(rows) => {
                    out.push(rows);
                    continue;
                }
                Err(failed) => failed,
            };
            if self.on_error == OnError::Fail {
                return Err(error);
            }
            let (passed, failed) = self.row_by_row(&batch);
            out.extend(passed);
            for (row, why) in failed {
                let batch_id = ctx.clock.batch_id;
                match &self.on_error {
                    OnError::DeadLetter(name) => {
                        tracing::warn!(batch_id, output = %name, error = %why, "sending a row an expression step failed on to the dead-letter output");
                        let errors = arrow_array::StringArray::from(vec![format!(
                            "{why} (batch {batch_id})"
                        )]);
                        let dead =
                            crate::sink::outputs::dead_letter_rows(&self.dead_letter, &row, errors)
                                .map_err(|e| Error::data("building dead-letter rows", e))?;
                        ctx.outputs
                            .stage(name, dead)
                            .map_err(|e| Error::data("dead letter", e))?;
                    }
                    _ => {
                        tracing::warn!(batch_id, error = %why, "skipping a row an expression step failed on (onError = \"skip\")");
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The rows of several streams with the same columns.
pub struct UnionNode {
    schema: SchemaRef,
}

impl UnionNode {
    /// The union of streams `names` with `schemas`: every one must have the same column names
    /// and types in the same order (a column is nullable if it is in any); `context` names
    /// the union in the error.
    pub fn new(context: &str, names: &[String], schemas: &[SchemaRef]) -> Result<UnionNode> {
        let first = schemas[0].clone();
        let describe = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut fields: Vec<arrow_schema::Field> =
            first.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (name, schema) in names.iter().zip(schemas).skip(1) {
            let same = schema.fields().len() == fields.len()
                && schema
                    .fields()
                    .iter()
                    .zip(&fields)
                    .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
            if !same {
                return Err(Error::Data {
                    context: context.to_owned(),
                    message: format!(
                        "input '{}' has ({}) but input '{}' has ({}); give each input steps that produce the same columns",
                        name,
                        describe(schema),
                        names[0],
                        describe(&first)
                    ),
                });
            }
            for (f, other) in fields.iter_mut().zip(schema.fields()) {
                if other.is_nullable() {
                    *f = f.clone().with_nullable(true);
                }
            }
        }
        Ok(UnionNode {
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

impl Operator for UnionNode {
    fn name(&self) -> &'static str {
        "Union"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process(
        &mut self,
        _ctx: &mut OperatorContext<'_>,
        inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        inputs
            .into_iter()
            .flatten()
            .map(|b| {
                RecordBatch::try_new(self.schema.clone(), b.columns().to_vec())
                    .map_err(|e| Error::data("union", e))
            })
            .collect()
    }
}
