//! `to_krw(amount)`: an amount converted to Korean won at `config.rate` won per unit (1,300
//! when unset), rounded to whole won — a scalar function callable in any expression once the
//! pipeline declares it:
//!
//! ```toml
//! [functions]
//! to_krw = { module = "to_krw.wasm", config = { rate = 1350.5 } }
//!
//! [[query.transform]]
//! selectExpr = ["order_id", "to_krw(amount) AS krw"]
//! ```
//!
//! The host calls it once per batch with the whole `amount` column; it answers with one
//! column of the same length.

use sluice_guest_sdk::arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use sluice_guest_sdk::prelude::*;

struct ToKrw {
    rate: f64,
}

impl ScalarFunction for ToKrw {
    fn init(config: &Config, arguments: &Schema) -> Result<Self, Error> {
        let [amount] = arguments.fields().iter().collect::<Vec<_>>()[..] else {
            return Err(format!(
                "to_krw takes one argument (an amount), not {}",
                arguments.fields().len()
            )
            .into());
        };
        if !amount.data_type().is_numeric() {
            return Err(format!(
                "to_krw takes a number, not {}",
                amount.data_type()
            )
            .into());
        }
        let rate = config["rate"].as_f64().unwrap_or(1300.0);
        Ok(ToKrw { rate })
    }

    fn output_field(&self) -> Field {
        Field::new("krw", DataType::Float64, true)
    }

    fn call(&mut self, arguments: &RecordBatch) -> Result<ArrayRef, Error> {
        // One pass over the values, nulls kept as they are (no per-row Option).
        let rate = self.rate;
        let c = arguments.column(0);
        let krw: Float64Array = match c.data_type() {
            DataType::Int64 => c
                .as_primitive::<Int64Type>()
                .unary(|v| (v as f64 * rate).round()),
            DataType::Int32 => c
                .as_primitive::<Int32Type>()
                .unary(|v| (f64::from(v) * rate).round()),
            DataType::Float64 => c
                .as_primitive::<Float64Type>()
                .unary(|v| (v * rate).round()),
            DataType::Float32 => c
                .as_primitive::<Float32Type>()
                .unary(|v| (f64::from(v) * rate).round()),
            other => return Err(format!("to_krw takes a number, not {other}").into()),
        };
        Ok(Arc::new(krw))
    }
}

export_function!(ToKrw);
