//! Spark 4's ANSI checks DataFusion does not make: a division by zero is an error
//! (`DIVIDE_BY_ZERO`), for doubles too, where IEEE arithmetic would give an infinity or NaN.
//! The divisor passes through `ansi_divisor`, which hands it on unchanged (no copy) unless a
//! row is zero; one vectorised comparison per batch.

use std::sync::{Arc, OnceLock};

use arrow_array::Scalar;
use arrow_schema::DataType;
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `ansi_divisor(x)`: `x`, or an error when a row of it is zero.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AnsiDivisor {
    signature: Signature,
}

impl ScalarUDFImpl for AnsiDivisor {
    fn name(&self) -> &str {
        "ansi_divisor"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let divisor = &args.args[0];
        let zero = ScalarValue::new_zero(&divisor.data_type())?;
        let any_zero = match divisor {
            ColumnarValue::Scalar(s) => !s.is_null() && s == &zero,
            ColumnarValue::Array(a) => {
                arrow_ord::cmp::eq(a, &Scalar::new(zero.to_array()?))?.true_count() > 0
            }
        };
        if any_zero {
            return exec_err!(
                "[DIVIDE_BY_ZERO] Division by zero (ANSI mode, as in Spark 4; a query's ansiEnabled = false makes it null)"
            );
        }
        Ok(divisor.clone())
    }
}

/// `divisor` checked for zeros.
pub(super) fn checked_divisor(divisor: Expr) -> Expr {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    let udf = UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(AnsiDivisor {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    });
    Expr::ScalarFunction(datafusion_expr::expr::ScalarFunction::new_udf(
        Arc::clone(udf),
        vec![divisor],
    ))
}
