//! Validates orders before they reach the sink: every row needs a non-empty `product` and a
//! positive `amount`. A batch holding a bad row is refused with the reason (naming the row);
//! with `onError = "deadLetter"` in the pipeline, the host sends that batch's rows, with the
//! reason in an `_error` column, to the dead-letter output, and the query goes on.
//!
//! Good batches pass through with an added `amount_krw` column (`amount * config.rate`).

use sluice_guest_sdk::prelude::*;

struct ValidateOrders {
    rate: i64,
    output: SchemaRef,
    /// Every input column (passed through), and the two the check reads.
    all: Vec<usize>,
    reads: Vec<usize>,
}

impl Transform for ValidateOrders {
    fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
        for (name, ty) in [("product", DataType::Utf8), ("amount", DataType::Int64)] {
            match input.field_with_name(name) {
                Ok(f) if *f.data_type() == ty => {}
                _ => return Err(format!("the input needs a {ty} column `{name}`").into()),
            }
        }
        let mut fields: Vec<_> = input.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("amount_krw", DataType::Int64, true)));
        let mut reads = vec![input.index_of("product")?, input.index_of("amount")?];
        reads.sort_unstable();
        Ok(ValidateOrders {
            rate: config["rate"].as_i64().unwrap_or(1),
            output: Arc::new(Schema::new(fields)),
            all: (0..input.fields().len()).collect(),
            reads,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let product = column::<StringArray>(&batch, "product")?;
        let amount = column::<Int64Array>(&batch, "amount")?;
        for row in 0..batch.num_rows() {
            if product.is_null(row) || product.value(row).is_empty() {
                return Err(format!("row {row}: missing product").into());
            }
            if amount.is_null(row) || amount.value(row) <= 0 {
                return Err(format!(
                    "row {row}: amount must be positive, got {:?}",
                    amount.iter().nth(row).flatten()
                )
                .into());
            }
        }
        let converted: Int64Array = amount.iter().map(|a| a.map(|a| a * self.rate)).collect();
        // The input columns pass through on the host's side; only the new one crosses back.
        let computed = RecordBatch::try_from_iter([("amount_krw", Arc::new(converted) as ArrayRef)])?;
        let mut columns: Vec<OutputColumn> =
            self.all.iter().map(|&c| OutputColumn::Input(c)).collect();
        columns.push(OutputColumn::Computed);
        out.emit_rows_with(None, &columns, &computed)
    }

    fn reads(&self) -> Option<Vec<usize>> {
        Some(self.reads.clone())
    }
}

export_transform!(ValidateOrders);
