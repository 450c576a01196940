//! A keyed processor: how many rows each key has had, kept in one `ValueState<i64>` per key
//! and emitted (key columns + `count`) for every key the batch changed — the smallest
//! `transformWithState` there is, and the one the benchmark runs over a million keys.
//!
//! Output is gathered across the batch's keys (their row in the key columns and the new
//! count) and emitted once in `end_batch`: a batch costs one hand-over, whatever its keys.

use sluice_guest_sdk::prelude::*;

struct KeyCounter {
    count: ValueState<i64>,
    output: SchemaRef,
    keys: Vec<u32>,
    counts: Vec<i64>,
}

impl Processor for KeyCounter {
    fn init(_config: &Config, schemas: &Schemas, state: &mut StateDecl) -> Result<Self, Error> {
        let mut fields: Vec<Field> = schemas
            .key
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("count", DataType::Int64, false));
        Ok(KeyCounter {
            count: state.value("count", None)?,
            output: Arc::new(Schema::new(fields)),
            keys: Vec::new(),
            counts: Vec::new(),
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn handle_rows(
        &mut self,
        key: &Key,
        rows: &Rows,
        state: &mut KeyState,
        _out: &mut Output,
    ) -> Result<(), Error> {
        let n = state.get(&self.count)?.unwrap_or(0) + rows.num_rows() as i64;
        state.set(&self.count, &n);
        self.keys.push(key.index() as u32);
        self.counts.push(n);
        Ok(())
    }

    fn end_batch(&mut self, keys: &RecordBatch, out: &mut Output) -> Result<(), Error> {
        out.emit_keyed(
            keys,
            std::mem::take(&mut self.keys),
            vec![Arc::new(Int64Array::from(std::mem::take(&mut self.counts)))],
        )
    }
}

export_processor!(KeyCounter);
