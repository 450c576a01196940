//! The smallest transform: every batch goes out as it came in. A starting point to copy, and
//! what the benchmarks use to measure the fixed cost of a call.
//!
//! It reads no column (`reads` is empty) and answers "every row, every column"
//! (`emit_rows`): the host passes its own batch on, so no column crosses the boundary.

use sluice_guest_sdk::prelude::*;

struct PassThrough {
    schema: SchemaRef,
    all: Vec<usize>,
}

impl Transform for PassThrough {
    fn init(_config: &Config, input: SchemaRef) -> Result<Self, Error> {
        Ok(PassThrough {
            all: (0..input.fields().len()).collect(),
            schema: input,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn reads(&self) -> Option<Vec<usize>> {
        Some(Vec::new())
    }

    fn process(&mut self, _batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        out.emit_rows(None, &self.all)
    }
}

export_transform!(PassThrough);
