//! Filter and projection to a new schema, in SQL terms
//! `SELECT id, amount FROM input WHERE amount >= config.min`.
//!
//! Used by the Wasm boundary benchmark (`cargo bench -p sluice --bench wasm_boundary`), which
//! runs the same kernels natively to measure what the boundary costs.

use sluice_guest_sdk::prelude::*;

struct FilterProject {
    min: i64,
    indices: Vec<usize>,
    output: SchemaRef,
}

impl Transform for FilterProject {
    fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
        let indices = ["id", "amount"]
            .iter()
            .map(|c| {
                input
                    .index_of(c)
                    .map_err(|_| Error(format!("the input needs a column `{c}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FilterProject {
            min: config["min"].as_i64().unwrap_or(0),
            output: Arc::new(input.project(&indices)?),
            indices,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let amount = column::<Int64Array>(&batch, "amount")?;
        let keep =
            sluice_guest_sdk::arrow_ord::cmp::gt_eq(amount, &Int64Array::new_scalar(self.min))?;
        let projected = batch.project(&self.indices)?;
        out.emit(&filter_record_batch(&projected, &keep)?)
    }
}

export_transform!(FilterProject);
