//! A scalar function for expressions: `with_tax(amount, rate)` is the amount with a tax rate
//! (percent) added, rounded to a whole unit. The pipeline declares it once under
//! `[functions]`; any `selectExpr`, `where` or `withColumn` may then call it. The host calls
//! it once per batch with every row's arguments (never once per row).

use sluice_guest_sdk::arrow_array::types::Int64Type;
use sluice_guest_sdk::prelude::*;

struct WithTax;

impl ScalarFunction for WithTax {
    /// Checks the arguments once, when an expression using the function is planned.
    fn init(_config: &Config, arguments: &Schema) -> Result<Self, Error> {
        let types: Vec<&DataType> = arguments.fields().iter().map(|f| f.data_type()).collect();
        match types[..] {
            [DataType::Int64, DataType::Int64] => Ok(WithTax),
            _ => Err(format!(
                "takes (BIGINT amount, BIGINT percent), not ({})",
                types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            )
            .into()),
        }
    }

    fn output_field(&self) -> Field {
        Field::new("with_tax", DataType::Int64, true)
    }

    fn call(&mut self, arguments: &RecordBatch) -> Result<ArrayRef, Error> {
        let amount = arguments.column(0).as_primitive::<Int64Type>();
        let rate = arguments.column(1).as_primitive::<Int64Type>();
        let out: Int64Array = amount
            .iter()
            .zip(rate.iter())
            .map(|(a, r)| Some((a? * (100 + r?) + 50) / 100))
            .collect();
        Ok(Arc::new(out))
    }
}

export_function!(WithTax);
