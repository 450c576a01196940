//! Spark's meaning where it depends on types, applied to the planned (type-coerced)
//! expression: `/` of two integers divides as DOUBLEs and fails on a zero divisor (ANSI), a
//! timestamp cast to an integer is its seconds, and a timestamp cast to a string is written
//! `yyyy-MM-dd HH:mm:ss[.fraction]`.
//! (Rewrites that need only names are in `spark_names`, before planning.)

use std::sync::Arc;

use arrow_schema::{DataType, TimeUnit};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{DFSchema, Result, ScalarValue};
use datafusion_expr::expr::ScalarFunction;
use datafusion_expr::{BinaryExpr, Cast, Expr, ExprSchemable, Operator, lit};

/// `expr` with Spark's typed rules applied, bottom up; `ansi` off, a cast that cannot
/// convert and a division by zero give null (Spark's legacy mode).
pub(super) fn rewrite(expr: Expr, schema: &DFSchema, ansi: bool) -> Result<Expr> {
    expr.transform_up(|e| {
        let rewritten = match &e {
            Expr::BinaryExpr(b) if b.op == Operator::Divide => {
                let d = division(b, schema)?.unwrap_or_else(|| Expr::BinaryExpr(b.clone()));
                Some(if ansi {
                    fail_on_zero(d)
                } else {
                    null_on_zero(d, schema)?
                })
            }
            // Spark refuses bitwise operators on anything but integers, a `/` of integers
            // (a DOUBLE now) included; DataFusion's coercion would cast the DOUBLE to an
            // integer (and before the planner coerced again, its kernel panicked on it:
            // found by the `expression` fuzz target).
            Expr::BinaryExpr(b) if is_bitwise(b.op) => {
                for side in [&b.left, &b.right] {
                    let t = side.get_type(schema)?;
                    if !t.is_integer() && !t.is_null() {
                        return datafusion_common::plan_err!(
                            "{} needs integer operands, not {t} (`{side}`)",
                            b.op
                        );
                    }
                }
                None
            }
            Expr::Cast(c) => match timestamp_cast(c, schema)? {
                Some(t) => Some(t),
                None if !ansi => Some(Expr::TryCast(datafusion_expr::TryCast::new(
                    c.expr.clone(),
                    c.field.data_type().clone(),
                ))),
                None => None,
            },
            _ => None,
        };
        Ok(match rewritten {
            Some(new) => Transformed::yes(new),
            None => Transformed::no(e),
        })
    })
    .map(|t| t.data)
}

/// `&`, `|`, `^`, `<<`, `>>`.
fn is_bitwise(op: Operator) -> bool {
    matches!(
        op,
        Operator::BitwiseAnd
            | Operator::BitwiseOr
            | Operator::BitwiseXor
            | Operator::BitwiseShiftLeft
            | Operator::BitwiseShiftRight
    )
}

/// `a / b` with `b` checked: a zero divisor fails the batch (ANSI).
fn fail_on_zero(division: Expr) -> Expr {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = division else {
        return division;
    };
    let divisor = super::ansi::checked_divisor(*right);
    Expr::BinaryExpr(BinaryExpr::new(left, op, Box::new(divisor)))
}

/// `a / b` as `a / nullif(b, 0)`: null where the divisor is zero.
fn null_on_zero(division: Expr, schema: &DFSchema) -> Result<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = division else {
        return Ok(division);
    };
    let zero = Expr::Literal(ScalarValue::new_zero(&right.get_type(schema)?)?, None);
    let divisor = datafusion_functions::core::expr_fn::nullif(*right, zero);
    Ok(Expr::BinaryExpr(BinaryExpr::new(
        left,
        op,
        Box::new(divisor),
    )))
}

/// Spark's `/`: two integers divide as DOUBLEs (`3 / 2` is 1.5), where DataFusion keeps them
/// integers.
fn division(b: &BinaryExpr, schema: &DFSchema) -> Result<Option<Expr>> {
    if b.op != Operator::Divide
        || !b.left.get_type(schema)?.is_integer()
        || !b.right.get_type(schema)?.is_integer()
    {
        return Ok(None);
    }
    let double = |x: &Expr| datafusion_expr::cast(x.clone(), DataType::Float64);
    Ok(Some(Expr::BinaryExpr(BinaryExpr::new(
        Box::new(double(&b.left)),
        Operator::Divide,
        Box::new(double(&b.right)),
    ))))
}

/// `CAST(ts AS BIGINT)` is seconds since the epoch in Spark (rounded down), where Arrow gives
/// the timestamp's own unit; `CAST(ts AS STRING)` is Spark's text form, not ISO 8601.
fn timestamp_cast(c: &Cast, schema: &DFSchema) -> Result<Option<Expr>> {
    let DataType::Timestamp(unit, _) = c.expr.get_type(schema)? else {
        return Ok(None);
    };
    if c.field.data_type().is_integer() {
        let per_second: i64 = match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        };
        let raw = datafusion_expr::cast(c.expr.as_ref().clone(), DataType::Int64);
        // Floor division: (v - ((v % k) + k) % k) / k.
        let remainder = (raw.clone() % lit(per_second) + lit(per_second)) % lit(per_second);
        let seconds = (raw - remainder) / lit(per_second);
        return Ok(Some(datafusion_expr::cast(
            seconds,
            c.field.data_type().clone(),
        )));
    }
    if *c.field.data_type() == DataType::Utf8 {
        let to_char = datafusion_functions::datetime::to_char();
        return Ok(Some(Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::clone(&to_char),
            vec![
                c.expr.as_ref().clone(),
                Expr::Literal(ScalarValue::Utf8(Some("%Y-%m-%d %H:%M:%S%.f".into())), None),
            ],
        ))));
    }
    Ok(None)
}
