//! The smallest transform: every batch goes out as it came in. A starting point to copy, and
//! what the benchmarks use to measure the cost of the Wasm boundary alone.

use sluice_guest_sdk::prelude::*;

struct PassThrough {
    schema: SchemaRef,
}

impl Transform for PassThrough {
    fn init(_config: &Config, input: SchemaRef) -> Result<Self, Error> {
        Ok(PassThrough { schema: input })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        out.emit(&batch)
    }
}

export_transform!(PassThrough);
