//! A foreachBatch handler: called once per micro-batch with the batch and its id. This one
//! sends every row to the pipeline's output named `config.output` (default `"copy"`) and
//! writes a summary `summaries/batch-<id>.json` into the directory the pipeline grants.
//!
//! Be idempotent on the batch id: after a crash the host runs the same batch again with the
//! same id. Outputs written through `sinks::write` are skipped for ids already committed,
//! and the summary file is replaced whole, so a second run leaves the same result.

use sluice_guest_sdk::prelude::*;

struct Handler1 {
    output: String,
}

impl Handler for Handler1 {
    fn init(config: &Config, _schema: SchemaRef) -> Result<Self, Error> {
        let output = config["output"].as_str().unwrap_or("copy").to_owned();
        Ok(Handler1 { output })
    }

    fn handle(&mut self, batch_id: u64, batch: RecordBatch) -> Result<(), Error> {
        sinks::write(&self.output, &batch)?;
        let amount = column::<Int64Array>(&batch, "amount")?;
        let total: i64 = amount.iter().flatten().sum();
        let summary = serde_json::json!({
            "batchId": batch_id,
            "rows": batch.num_rows(),
            "amount": total,
        });
        files::write_file(
            &format!("summaries/batch-{batch_id}.json"),
            summary.to_string().as_bytes(),
        )?;
        log::info(&format!("batch {batch_id}: {} rows", batch.num_rows()));
        Ok(())
    }
}

export_handler!(Handler1);
