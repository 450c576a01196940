//! Spark's names for functions DataFusion has under other names or forms, rewritten in the
//! parsed expression before it is planned: `if(c, a, b)` is a `CASE`, `year(ts)` is
//! `date_part('year', ts)`, `size(a)` is `cardinality(a)`, and so on. Each rewrite is Spark's
//! meaning, checked by tests/spark_conformance.rs against Spark's own answers.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{self, FunctionArguments, visit_expressions_mut};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::{Parser, ParserError};

/// Functions that are only another name for one of DataFusion's.
const RENAMED: &[(&str, &str)] = &[
    ("startswith", "starts_with"),
    ("endswith", "ends_with"),
    ("array", "make_array"),
    ("size", "cardinality"),
    ("timestamp_seconds", "to_timestamp_seconds"),
    ("timestamp_millis", "to_timestamp_millis"),
];

/// The expression `name(args)` means in Spark, written in DataFusion's terms, if it is one of
/// the functions rewritten here.
fn spark_form(name: &str, args: &[String]) -> Option<String> {
    Some(match (name, args) {
        ("if", [c, a, b]) => format!("CASE WHEN {c} THEN {a} ELSE {b} END"),
        ("isnull", [x]) => format!("({x}) IS NULL"),
        ("isnotnull", [x]) => format!("({x}) IS NOT NULL"),
        ("string", [x]) => format!("CAST({x} AS STRING)"),
        ("locate", [sub, s]) => format!("strpos({s}, {sub})"),
        ("year" | "month" | "quarter" | "hour" | "minute", [x]) => {
            format!("CAST(date_part('{name}', {x}) AS INT)")
        }
        ("day" | "dayofmonth", [x]) => format!("CAST(date_part('day', {x}) AS INT)"),
        ("second", [x]) => format!("CAST(floor(date_part('second', {x})) AS INT)"),
        // Spark counts Sunday as 1; DataFusion's `dow` counts it as 0.
        ("dayofweek", [x]) => format!("CAST(date_part('dow', {x}) AS INT) + 1"),
        ("dayofyear", [x]) => format!("CAST(date_part('doy', {x}) AS INT)"),
        ("weekofyear", [x]) => format!("CAST(date_part('week', {x}) AS INT)"),
        // Spark replaces every match; DataFusion's three-argument form only the first.
        ("regexp_replace", [s, pattern, replacement]) => {
            format!("regexp_replace({s}, {pattern}, {replacement}, 'g')")
        }
        // Spark's concat is null when any argument is; DataFusion's skips nulls.
        ("concat", args) if !args.is_empty() => format!(
            "CASE WHEN {} THEN NULL ELSE concat({}) END",
            args.iter()
                .map(|a| format!("{a} IS NULL"))
                .collect::<Vec<_>>()
                .join(" OR "),
            args.join(", ")
        ),
        ("unix_seconds", [x]) => format!("CAST(floor(date_part('epoch', {x})) AS BIGINT)"),
        ("unix_millis", [x]) => {
            format!("CAST(floor(date_part('epoch', {x}) * 1000) AS BIGINT)")
        }
        _ => return None,
    })
}

/// Rewrites Spark's function names and forms in `expr` into DataFusion's.
pub(super) fn rewrite(expr: &mut ast::Expr) -> Result<(), ParserError> {
    let outcome = visit_expressions_mut(expr, |e| {
        let ast::Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let name = f.name.to_string().to_ascii_lowercase();
        if let Some((_, to)) = RENAMED.iter().find(|(from, _)| *from == name) {
            f.name = ast::ObjectName::from(vec![ast::Ident::new(*to)]);
            return ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &f.args else {
            return ControlFlow::Continue(());
        };
        let args: Vec<String> = list.args.iter().map(|a| format!("({a})")).collect();
        let Some(text) = spark_form(&name, &args) else {
            return ControlFlow::Continue(());
        };
        let parsed = Parser::new(&GenericDialect {})
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr());
        match parsed {
            Ok(rewritten) => {
                *e = rewritten;
                ControlFlow::Continue(())
            }
            Err(err) => ControlFlow::Break(err),
        }
    });
    match outcome {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}
