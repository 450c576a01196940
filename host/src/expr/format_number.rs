//! `format_number(x, d)` as Spark has it: `x` rounded to `d` decimal places (half to even, on
//! the double's exact value, as Java's `DecimalFormat` rounds) with thousands separators:
//! `format_number(10000000000.0, 2)` is `10,000,000,000.00`. Not among DataFusion's or
//! datafusion-spark's functions.

use std::sync::Arc;

use arrow_array::Array;
use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_schema::DataType;
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// `x` with `places` decimals and a comma between each three integer digits.
fn format(x: f64, places: usize) -> String {
    if !x.is_finite() {
        // Java's DecimalFormat: the infinity sign and NaN's replacement character.
        return if x.is_nan() {
            "\u{FFFD}".into()
        } else if x > 0.0 {
            "∞".into()
        } else {
            "-∞".into()
        };
    }
    let text = format!("{:.*}", places, x.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::with_capacity(text.len() + int.len() / 3 + 1);
    let negative = x < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0');
    if negative {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// `format_number(x, d)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct FormatNumber {
    signature: Signature,
}

impl FormatNumber {
    pub(super) fn new() -> FormatNumber {
        FormatNumber {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FormatNumber {
    fn name(&self) -> &str {
        "format_number"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [x, d] if x.is_numeric() && d.is_integer() => {
                Ok(vec![DataType::Float64, DataType::Int64])
            }
            _ => plan_err!(
                "format_number takes a number and a number of decimal places, e.g. format_number(amount, 2)"
            ),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let places = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(d))) => *d,
            ColumnarValue::Scalar(_) => -1,
            ColumnarValue::Array(_) => {
                return exec_err!("format_number takes its decimal places as a literal");
            }
        };
        let x = args.args[0].clone().into_array(args.number_rows)?;
        let x = x.as_primitive::<Float64Type>();
        let mut out = StringBuilder::with_capacity(x.len(), x.len() * 8);
        for i in 0..x.len() {
            // Spark: a negative number of places gives null.
            if x.is_null(i) || !(0..=340).contains(&places) {
                out.append_null();
            } else {
                out.append_value(format(x.value(i), places as usize));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn groups_thousands_and_rounds_half_to_even() {
        assert_eq!(format(1e10, 2), "10,000,000,000.00");
        assert_eq!(format(-0.25, 2), "-0.25");
        assert_eq!(format(1234.5, 0), "1,234");
        assert_eq!(format(999.999, 2), "1,000.00");
        assert_eq!(format(-0.001, 2), "0.00");
    }
}
