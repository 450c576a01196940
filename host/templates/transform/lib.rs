//! A transform step: called once per micro-batch with an Arrow `RecordBatch`, it emits the
//! rows whose `amount` is at least `config.min`, with `user` in upper case.
//!
//! Change `process` to do your own work; `output_schema` says what you emit (here the input
//! schema unchanged), and the host checks every emitted batch against it.
//!
//! A step that only filters or projects should not rebuild its rows: declare the columns it
//! reads (`fn reads`) and answer with `out.emit_rows(Some(&keep), &columns)` — the host keeps
//! the selected rows of the columns named from its own copy, so nothing else crosses the
//! Wasm boundary (see examples/filter-project).

use sluice_guest_sdk::arrow_array::builder::StringBuilder;
use sluice_guest_sdk::prelude::*;

struct Transform1 {
    min: i64,
    schema: SchemaRef,
}

impl Transform for Transform1 {
    fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
        let min = config["min"].as_i64().unwrap_or(0);
        Ok(Transform1 { min, schema: input })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let amount = column::<Int64Array>(&batch, "amount")?;
        let keep: BooleanArray = amount
            .iter()
            .map(|a| Some(a.is_some_and(|a| a >= self.min)))
            .collect();
        let kept = filter_record_batch(&batch, &keep)?;

        let users = column::<StringArray>(&kept, "user")?;
        let mut upper = StringBuilder::new();
        for user in users.iter() {
            upper.append_option(user.map(str::to_uppercase));
        }
        let index = kept.schema().index_of("user")?;
        let mut columns = kept.columns().to_vec();
        columns[index] = Arc::new(upper.finish());
        out.emit(&RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

export_transform!(Transform1);
