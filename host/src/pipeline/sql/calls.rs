//! What a call in the SQL is: an aggregate (built-in, or a Wasm one `[functions]` declares),
//! its plain arguments, a duration literal — read by the FROM and the SELECT planners alike.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    self, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, visit_expressions_mut,
};

use super::{Planned, at};
use crate::operators::aggregate::AggFunc;
use crate::wasm::aggregate::UdafSpec;

/// The plain arguments of `f`.
pub(super) fn arguments(f: &ast::Function) -> Planned<Vec<&SqlExpr>> {
    let FunctionArguments::List(list) = &f.args else {
        return Ok(Vec::new());
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            other => Err(at(
                other,
                format!("'{other}' is not an argument this takes"),
            )),
        })
        .collect()
}

/// A duration literal (`'5 minutes'` or `INTERVAL 5 MINUTES`).
pub(super) fn duration(e: &SqlExpr) -> Planned<std::time::Duration> {
    let text = match e {
        SqlExpr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            _ => String::new(),
        },
        SqlExpr::Interval(i) => {
            let amount = i.value.to_string().trim_matches('\'').to_owned();
            match &i.leading_field {
                Some(unit) => format!("{amount} {unit}"),
                None => amount,
            }
        }
        _ => String::new(),
    };
    crate::config::parse_duration(&text.to_ascii_lowercase())
        .map_err(|why| at(e, format!("'{e}' is not a duration ('5 minutes'): {why}")))
}

/// The aggregate `name(...)` is, if it is one (`count` with `DISTINCT` is `count_distinct`;
/// a name `[functions]` declares an aggregate is that Wasm aggregate).
pub(super) fn aggregate_of(f: &ast::Function, udafs: &[(String, UdafSpec)]) -> Option<AggFunc> {
    let name = f.name.to_string();
    if udafs.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
        return Some(AggFunc::Udaf);
    }
    let distinct = matches!(
        &f.args,
        FunctionArguments::List(l) if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct))
    );
    match AggFunc::parse(&name)? {
        AggFunc::Count if distinct => Some(AggFunc::CountDistinct),
        AggFunc::Udaf => None,
        f => Some(f),
    }
}

/// Whether `f` calls an aggregate.
pub(super) fn is_aggregate_call(f: &ast::Function, udafs: &[(String, UdafSpec)]) -> bool {
    aggregate_of(f, udafs).is_some()
}

pub(super) fn contains_aggregate(e: &SqlExpr, udafs: &[(String, UdafSpec)]) -> bool {
    let mut e = e.clone();
    let found = visit_expressions_mut(&mut e, |x| match x {
        SqlExpr::Function(f) if aggregate_of(f, udafs).is_some() => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    found.is_break()
}
