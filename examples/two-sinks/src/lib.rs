//! The seeds' foreachBatch pattern — one handler writing each micro-batch to several places:
//!
//! ```python
//! def process_batch(batch_df, batch_id):
//!     batch_df.write.format(...).save()      # 1. one store
//!     batch_df.write.format(...).save()      # 2. another
//!     update_cache(batch_df)                 # 3. a side file
//! ```
//!
//! Here: every row, tagged with the batch id, goes to the output named `config.copy`
//! (default `"archive"`); rows whose `amount` reaches `config.threshold` also go to
//! `config.alerts` (default `"alerts"`); and a summary file `summaries/batch-<id>.json` is
//! written in the granted directory.
//!
//! Idempotent on the batch id: outputs are written by the host with the engine's batch id
//! (a replayed id is skipped by sinks that remember ids), and the summary file is replaced
//! whole, so running a batch twice leaves the same result as running it once.

use sluice_guest_sdk::prelude::*;

struct TwoSinks {
    copy: String,
    alerts: String,
    threshold: i64,
    tagged: SchemaRef,
}

impl Handler for TwoSinks {
    fn init(config: &Config, schema: SchemaRef) -> Result<Self, Error> {
        let name = |key: &str, default: &str| config[key].as_str().unwrap_or(default).to_owned();
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("batch_id", DataType::Int64, false)));
        Ok(TwoSinks {
            copy: name("copy", "archive"),
            alerts: name("alerts", "alerts"),
            threshold: config["threshold"].as_i64().unwrap_or(i64::MAX),
            tagged: Arc::new(Schema::new(fields)),
        })
    }

    fn handle(&mut self, batch_id: u64, batch: RecordBatch) -> Result<(), Error> {
        let ids = Int64Array::from(vec![batch_id as i64; batch.num_rows()]);
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(ids));
        let tagged = RecordBatch::try_new(self.tagged.clone(), columns)?;
        sinks::write(&self.copy, &tagged)?;

        let amount = column::<Int64Array>(&batch, "amount")?;
        let big: BooleanArray = amount
            .iter()
            .map(|a| Some(a.is_some_and(|a| a >= self.threshold)))
            .collect();
        let alerts = filter_record_batch(&tagged, &big)?;
        if alerts.num_rows() > 0 {
            sinks::write(&self.alerts, &alerts)?;
        }

        let summary = serde_json::json!({
            "batchId": batch_id,
            "rows": batch.num_rows(),
            "alerts": alerts.num_rows(),
        });
        files::write_file(
            &format!("summaries/batch-{batch_id}.json"),
            summary.to_string().as_bytes(),
        )?;
        log::info(&format!(
            "batch {batch_id}: {} rows, {} alerts",
            batch.num_rows(),
            alerts.num_rows()
        ));
        Ok(())
    }
}

export_handler!(TwoSinks);
