//! The memory sink: rows kept in a named in-process table that the process (and tests)
//! can read with [`table`]. Like Spark's, it skips a batch id it has already seen, and in
//! complete mode the table is replaced by each batch.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::config::OutputMode;
use crate::error::Result;
use crate::sink::Sink;

#[derive(Default)]
struct Table {
    /// The rows' schema, once a batch has arrived.
    schema: Option<SchemaRef>,
    last_batch: Option<u64>,
    /// Rows per batch id, in batch order.
    batches: Vec<(u64, Vec<RecordBatch>)>,
}

fn tables() -> &'static Mutex<HashMap<String, Table>> {
    static TABLES: OnceLock<Mutex<HashMap<String, Table>>> = OnceLock::new();
    TABLES.get_or_init(Default::default)
}

/// The rows currently in memory table `name`, or `None` if no query wrote it.
pub fn table(name: &str) -> Option<Vec<RecordBatch>> {
    let tables = tables().lock().unwrap_or_else(|p| p.into_inner());
    tables
        .get(name)
        .map(|t| t.batches.iter().flat_map(|(_, b)| b.clone()).collect())
}

/// Every memory table that has a schema (a batch arrived), with its rows, by name.
pub fn snapshot() -> Vec<(String, SchemaRef, Vec<RecordBatch>)> {
    let tables = tables().lock().unwrap_or_else(|p| p.into_inner());
    let mut all: Vec<_> = tables
        .iter()
        .filter_map(|(name, t)| {
            let schema = t.schema.clone()?;
            let rows = t.batches.iter().flat_map(|(_, b)| b.clone()).collect();
            Some((name.clone(), schema, rows))
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// The rows of memory table `name` grouped by the batch id that wrote them.
pub fn batches(name: &str) -> Option<Vec<(u64, Vec<RecordBatch>)>> {
    let tables = tables().lock().unwrap_or_else(|p| p.into_inner());
    tables.get(name).map(|t| t.batches.clone())
}

/// Writes batches into a named in-memory table.
pub struct MemorySink {
    name: String,
    mode: OutputMode,
}

impl MemorySink {
    /// Creates (or reuses) the table `name`.
    pub fn new(name: &str, mode: OutputMode) -> Self {
        tables()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_default();
        MemorySink {
            name: name.to_owned(),
            mode,
        }
    }
}

impl Sink for MemorySink {
    fn description(&self) -> String {
        format!("MemorySink[{}]", self.name)
    }

    fn add_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        let mut tables = tables().lock().unwrap_or_else(|p| p.into_inner());
        let table = tables.entry(self.name.clone()).or_default();
        table.schema = Some(schema.clone());
        if table.last_batch.is_some_and(|last| batch_id <= last) {
            return Ok(0);
        }
        if self.mode == OutputMode::Complete {
            table.batches.clear();
        }
        table.batches.push((batch_id, batches.to_vec()));
        table.last_batch = Some(batch_id);
        Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
    }

    fn add_continuous(
        &mut self,
        epoch: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        // Appended as they arrive (a continuous query is stateless: append mode only).
        let mut tables = tables().lock().unwrap_or_else(|p| p.into_inner());
        let table = tables.entry(self.name.clone()).or_default();
        table.schema = Some(schema.clone());
        table.batches.push((epoch, batches.to_vec()));
        table.last_batch = Some(epoch);
        Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
    }
}
