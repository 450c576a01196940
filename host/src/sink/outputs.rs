//! Named outputs: extra sinks a query declares (`[query.outputs.NAME]`) for its foreachBatch
//! handler to write to and for dead-lettered rows.
//!
//! Writes during a batch are *staged*, then written with the batch id when the batch's main
//! sink has succeeded ([`SharedOutputs::flush`]). So a handler can call `sinks.write` several
//! times per batch and still get one idempotent write per output per batch id, and nothing is
//! written for a batch that fails.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::Sink;
use crate::error::Result;

/// The column dead-letter rows carry their error in, after the rows' own columns.
pub const ERROR_COLUMN: &str = "_error";

/// The schema of dead-letter rows for rows of `rows`: their columns, then [`ERROR_COLUMN`].
pub fn dead_letter_schema(rows: &Schema) -> SchemaRef {
    let mut fields: Vec<_> = rows.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(ERROR_COLUMN, DataType::Utf8, false)));
    Arc::new(Schema::new(fields))
}

/// `rows` as dead letters of `schema` (from [`dead_letter_schema`]), each with its error.
pub fn dead_letter_rows(
    schema: &SchemaRef,
    rows: &RecordBatch,
    errors: StringArray,
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(errors));
    RecordBatch::try_new(schema.clone(), columns)
}

#[derive(Default)]
struct Inner {
    sinks: BTreeMap<String, Box<dyn Sink>>,
    staged: BTreeMap<String, Vec<RecordBatch>>,
}

/// The named outputs of one query, shared by its steps and its sink.
#[derive(Clone, Default)]
pub struct SharedOutputs(Arc<Mutex<Inner>>);

impl SharedOutputs {
    /// The outputs, each opened under its name.
    pub fn new(sinks: Vec<(String, Box<dyn Sink>)>) -> Self {
        SharedOutputs(Arc::new(Mutex::new(Inner {
            sinks: sinks.into_iter().collect(),
            staged: BTreeMap::new(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stages rows for output `name` in the current batch.
    pub fn stage(&self, name: &str, batch: RecordBatch) -> std::result::Result<(), String> {
        let mut inner = self.lock();
        if !inner.sinks.contains_key(name) {
            let known: Vec<_> = inner.sinks.keys().cloned().collect();
            return Err(format!(
                "no output named '{name}' in the pipeline (declared: {}); add [query.outputs.{name}]",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
        let staged = inner.staged.entry(name.to_owned()).or_default();
        if let Some(first) = staged.first()
            && first.schema() != batch.schema()
        {
            return Err(format!(
                "rows written to output '{name}' in one batch must share one schema"
            ));
        }
        staged.push(batch);
        Ok(())
    }

    /// Drops what was staged (the batch failed).
    pub fn discard_staged(&self) {
        self.lock().staged.clear();
    }

    /// Writes everything staged, one `add_batch(batch_id, ..)` per output that got rows.
    pub fn flush(&self, batch_id: u64) -> Result<u64> {
        let mut inner = self.lock();
        let staged = std::mem::take(&mut inner.staged);
        let mut rows = 0;
        for (name, batches) in staged {
            let Some(sink) = inner.sinks.get_mut(&name) else {
                continue;
            };
            let schema = batches[0].schema();
            rows += sink.add_batch(batch_id, &schema, &batches)?;
        }
        Ok(rows)
    }
}
