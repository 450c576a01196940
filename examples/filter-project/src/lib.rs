//! Filter and projection to a new schema, in SQL terms
//! `SELECT id, amount FROM input WHERE amount >= config.min`.
//!
//! The guest reads only `amount` (its plan's `reads`) and answers with a selection: the host
//! keeps the selected rows of `id` and `amount` from the batch it holds, so `id` and `city`
//! never cross the boundary and nothing is copied back but one bit per row.
//!
//! Used by the Wasm boundary benchmark (`cargo bench -p sluice --bench wasm_boundary`), which
//! runs the same kernels natively to measure what the boundary costs.

use sluice_guest_sdk::prelude::*;

struct FilterProject {
    min: i64,
    /// `id` and `amount` in the input.
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

    fn reads(&self) -> Option<Vec<usize>> {
        Some(vec![self.indices[1]])
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let amount = column::<Int64Array>(&batch, "amount")?;
        let keep =
            sluice_guest_sdk::arrow_ord::cmp::gt_eq(amount, &Int64Array::new_scalar(self.min))?;
        out.emit_rows(Some(&keep), &self.indices)
    }
}

export_transform!(FilterProject);
