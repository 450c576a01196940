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
        let amount = arrow_cast_f64(arguments.column(0))?;
        let krw: Float64Array = amount
            .iter()
            .map(|a| a.map(|a| (a * self.rate).round()))
            .collect();
        Ok(Arc::new(krw))
    }
}

/// The argument as doubles, whatever numeric type it came as.
fn arrow_cast_f64(column: &ArrayRef) -> Result<Float64Array, Error> {
    use sluice_guest_sdk::arrow_array::types::*;
    let c = column.as_ref();
    Ok(match c.data_type() {
        DataType::Float64 => c.as_primitive::<Float64Type>().clone(),
        DataType::Float32 => c.as_primitive::<Float32Type>().unary(f64::from),
        DataType::Int64 => c.as_primitive::<Int64Type>().unary(|v| v as f64),
        DataType::Int32 => c.as_primitive::<Int32Type>().unary(f64::from),
        other => return Err(format!("to_krw takes a number, not {other}").into()),
    })
}

export_function!(ToKrw);
