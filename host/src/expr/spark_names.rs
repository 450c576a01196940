//! Spark's names for functions DataFusion has under other names or forms, rewritten in the
//! parsed expression before it is planned: `if(c, a, b)` is a `CASE`, `year(ts)` is
//! `date_part('year', ts)`, `size(a)` is `cardinality(a)`, and so on. Each rewrite is Spark's
//! meaning, checked by tests/spark_conformance.rs against Spark's own answers.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{self, FunctionArguments, visit_expressions_mut};
use datafusion_sql::sqlparser::dialect::DatabricksDialect;
use datafusion_sql::sqlparser::parser::{Parser, ParserError};

/// How Spark's SQL is written: `` `quoted identifiers` ``, "double-quoted strings" beside
/// 'single-quoted' ones (`date_format(ts, "yyyy-MM-dd'T'HH:mm")`), `AS (a, b)`. Databricks'
/// dialect is Spark's.
pub(super) type SparkDialect = DatabricksDialect;

/// Functions that are only another name for one of DataFusion's.
const RENAMED: &[(&str, &str)] = &[
    ("startswith", "starts_with"),
    ("endswith", "ends_with"),
    ("array", "make_array"),
    ("size", "cardinality"),
    ("timestamp_seconds", "to_timestamp_seconds"),
    ("timestamp_millis", "to_timestamp_millis"),
];

/// A function's arguments as text, and which of them are string literals (a pattern, a
/// field name), for the rewrites that read them.
struct Args<'a> {
    text: Vec<String>,
    literals: Vec<Option<&'a str>>,
}

impl Args<'_> {
    /// Argument `i` as a chrono format, when it is Spark's datetime pattern as a literal.
    fn pattern(&self, name: &str, i: usize) -> Result<String, String> {
        let Some(Some(pattern)) = self.literals.get(i) else {
            return Err(format!(
                "{name}'s pattern must be a string literal, e.g. {name}(..., 'yyyy-MM-dd HH:mm:ss')"
            ));
        };
        let chrono = super::datetime_pattern::to_chrono(pattern)?;
        Ok(format!("'{}'", chrono.replace('\'', "''")))
    }
}

/// Spark's default pattern for timestamps written as text.
const DEFAULT_TIMESTAMP_PATTERN: &str = "'%Y-%m-%d %H:%M:%S'";

/// The expression `name(args)` means in Spark, written in DataFusion's terms, if it is one of
/// the functions rewritten here; `Err` when its arguments cannot mean anything (a pattern
/// that is not a literal, or has letters chrono lacks).
fn spark_form(name: &str, args: &Args) -> Result<Option<String>, String> {
    let a = args.text.as_slice();
    Ok(Some(match (name, a) {
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
        // datafusion-spark's date_part counts Sunday as 1, as Spark does.
        ("dayofweek", [x]) => format!("CAST(date_part('dow', {x}) AS INT)"),
        ("dayofyear", [x]) => format!("CAST(date_part('doy', {x}) AS INT)"),
        ("weekofyear", [x]) => format!("CAST(date_part('week', {x}) AS INT)"),
        // Spark's integer literals are INT; DataFusion's BIGINT, which these do not take.
        ("date_add" | "date_sub" | "add_months", [d, n]) => {
            format!("{name}({d}, CAST({n} AS INT))")
        }
        ("datediff", [end, start]) => format!("date_diff({end}, {start})"),
        // Spark replaces every match; DataFusion's three-argument form only the first.
        ("regexp_replace", [s, pattern, replacement]) => {
            format!("regexp_replace({s}, {pattern}, {replacement}, 'g')")
        }
        // Group `idx` of the first match (0: the whole match), '' when nothing matches.
        ("regexp_extract", [s, pattern]) => regexp_extract(s, pattern, "1"),
        ("regexp_extract", [s, pattern, idx]) => regexp_extract(s, pattern, idx),
        ("unix_seconds", [x]) => format!("CAST(floor(date_part('epoch', {x})) AS BIGINT)"),
        ("unix_millis", [x]) => {
            format!("CAST(floor(date_part('epoch', {x}) * 1000) AS BIGINT)")
        }
        ("unix_timestamp" | "to_unix_timestamp", []) => {
            "CAST(floor(date_part('epoch', current_timestamp())) AS BIGINT)".to_owned()
        }
        ("unix_timestamp" | "to_unix_timestamp", [x]) => {
            format!("CAST(floor(date_part('epoch', {x})) AS BIGINT)")
        }
        ("unix_timestamp" | "to_unix_timestamp", [x, _]) => format!(
            "CAST(floor(date_part('epoch', to_timestamp_micros({x}, {}))) AS BIGINT)",
            args.pattern(name, 1)?
        ),
        // Spark's timestamps are microseconds.
        ("to_timestamp", [x]) => format!("to_timestamp_micros({x})"),
        ("to_timestamp", [x, _]) => {
            format!("to_timestamp_micros({x}, {})", args.pattern(name, 1)?)
        }
        ("to_date", [x, _]) => format!("to_date({x}, {})", args.pattern(name, 1)?),
        ("date_format", [x, _]) => format!("to_char({x}, {})", args.pattern(name, 1)?),
        ("from_unixtime", [x]) => {
            format!("to_char(to_timestamp_seconds({x}), {DEFAULT_TIMESTAMP_PATTERN})")
        }
        ("from_unixtime", [x, _]) => format!(
            "to_char(to_timestamp_seconds({x}), {})",
            args.pattern(name, 1)?
        ),
        // Spark's [] and element_at count from 0 and 1; DataFusion's [] from 1 (this text is
        // not rewritten again).
        ("element_at", [a, i]) => format!("{a}[{i}]"),
        ("sort_array", [a]) => format!("array_sort({a}, 'ASC', 'NULLS FIRST')"),
        ("sort_array", [a, asc]) => format!(
            "CASE WHEN {asc} THEN array_sort({a}, 'ASC', 'NULLS FIRST') ELSE array_sort({a}, 'DESC', 'NULLS LAST') END"
        ),
        ("sign" | "signum", [x]) => format!("CAST(signum({x}) AS DOUBLE)"),
        // Spark: the logarithm of a number ≤ 0 is null, a negative square root NaN.
        ("ln" | "log10" | "log2", [x]) => {
            format!("CASE WHEN {x} <= 0 THEN NULL ELSE {name}({x}) END")
        }
        ("sqrt", [x]) => {
            format!("CASE WHEN {x} < 0 THEN CAST('NaN' AS DOUBLE) ELSE sqrt({x}) END")
        }
        _ => return Ok(None),
    }))
}

/// `regexp_extract(s, pattern, idx)`: the whole pattern is made group 1 so that `idx` 0
/// (the whole match) and group `idx` are both `idx + 1` of DataFusion's `regexp_match`.
fn regexp_extract(s: &str, pattern: &str, idx: &str) -> String {
    format!(
        "CASE WHEN {s} IS NULL THEN NULL ELSE coalesce(regexp_match({s}, concat('(', {pattern}, ')'))[{idx} + 1], '') END"
    )
}

/// `struct(a, b.c, x AS k, 1)` as Spark names its fields: after the column (`a`, `c`), the
/// alias (`k`), or `colN`.
fn named_struct(values: &[ast::Expr]) -> String {
    let pairs: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let (name, value) = match value {
                ast::Expr::Identifier(id) => (id.value.clone(), value),
                ast::Expr::CompoundIdentifier(ids) => (
                    ids.last().map(|id| id.value.clone()).unwrap_or_default(),
                    value,
                ),
                ast::Expr::Named { expr, name } => (name.value.clone(), expr.as_ref()),
                _ => (format!("col{}", i + 1), value),
            };
            format!("'{}', ({value})", name.replace('\'', "''"))
        })
        .collect();
    format!("named_struct({})", pairs.join(", "))
}

/// The string literal `arg` is, if it is one.
fn literal(arg: &ast::FunctionArg) -> Option<&str> {
    match arg {
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v))) => {
            match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => Some(s),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether `e` is a string literal (a map key or field name in `a['k']`).
fn is_string_literal(e: &ast::Expr) -> bool {
    matches!(
        e,
        ast::Expr::Value(v) if matches!(v.value, ast::Value::SingleQuotedString(_) | ast::Value::DoubleQuotedString(_))
    )
}

/// Parses rewritten text back into an expression.
fn parse(text: &str) -> Result<ast::Expr, ParserError> {
    Parser::new(&SparkDialect::default())
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
}

/// Spark's meaning of one node, in DataFusion's terms (its children are already rewritten).
fn rewrite_node(e: &mut ast::Expr) -> Result<(), ParserError> {
    match e {
        ast::Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            if let Some((_, to)) = RENAMED.iter().find(|(from, _)| *from == name) {
                f.name = ast::ObjectName::from(vec![ast::Ident::new(*to)]);
                return Ok(());
            }
            let FunctionArguments::List(list) = &f.args else {
                return Ok(());
            };
            let text = if name == "struct" {
                let values: Option<Vec<ast::Expr>> = list
                    .args
                    .iter()
                    .map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .collect();
                values.map(|v| named_struct(&v))
            } else {
                let args = Args {
                    text: list.args.iter().map(|a| format!("({a})")).collect(),
                    literals: list.args.iter().map(literal).collect(),
                };
                spark_form(&name, &args).map_err(ParserError::ParserError)?
            };
            if let Some(text) = text {
                *e = parse(&text)?;
            }
        }
        ast::Expr::Struct { values, fields } if fields.is_empty() => {
            *e = parse(&named_struct(values))?;
        }
        // Spark's substring (a start of 0 is 1, a negative one counts from the end), whichever
        // syntax wrote it; under a name the parser does not read as SUBSTRING's syntax again.
        ast::Expr::Substring {
            expr,
            substring_from: Some(from),
            substring_for,
            ..
        } => {
            let length = substring_for
                .as_ref()
                .map(|l| format!(", ({l})"))
                .unwrap_or_default();
            *e = parse(&format!("spark_substring(({expr}), ({from}){length})"))?;
        }
        // `s RLIKE 'p'` (Java regular expressions, found anywhere in s).
        ast::Expr::RLike {
            negated,
            expr,
            pattern,
            ..
        } => {
            let not = if *negated { "NOT " } else { "" };
            *e = parse(&format!("{not}regexp_like(({expr}), ({pattern}))"))?;
        }
        // `f(x).field` (DataFusion plans only `f(x)['field']`) and Spark's 0-based `a[i]`.
        ast::Expr::CompoundFieldAccess { access_chain, .. } => {
            for access in access_chain {
                match access {
                    ast::AccessExpr::Dot(ast::Expr::Identifier(id)) => {
                        *access = ast::AccessExpr::Dot(ast::Expr::value(
                            ast::Value::SingleQuotedString(id.value.clone()),
                        ));
                    }
                    ast::AccessExpr::Subscript(ast::Subscript::Index { index })
                        if !is_string_literal(index) =>
                    {
                        *index = parse(&format!("({index}) + 1"))?;
                    }
                    _ => {}
                }
            }
        }
        // Spark's BINARY is DataFusion's BYTEA.
        ast::Expr::Cast { data_type, .. }
            if matches!(
                data_type,
                ast::DataType::Binary(_) | ast::DataType::Varbinary(_)
            ) =>
        {
            *data_type = ast::DataType::Bytea;
        }
        _ => {}
    }
    Ok(())
}

/// Whether Spark's function `name` is one rewritten here (so it exists, under another form).
pub(super) fn rewrites(name: &str) -> bool {
    const ALSO: &[&str] = &[
        "if",
        "isnull",
        "isnotnull",
        "string",
        "locate",
        "year",
        "month",
        "quarter",
        "hour",
        "minute",
        "day",
        "dayofmonth",
        "second",
        "dayofweek",
        "dayofyear",
        "weekofyear",
        "date_add",
        "date_sub",
        "add_months",
        "datediff",
        "regexp_replace",
        "regexp_extract",
        "unix_seconds",
        "unix_millis",
        "unix_timestamp",
        "to_unix_timestamp",
        "to_timestamp",
        "to_date",
        "date_format",
        "from_unixtime",
        "element_at",
        "sort_array",
        "sign",
        "signum",
        "struct",
        "explode",
        "explode_outer",
        "json_tuple",
    ];
    RENAMED.iter().any(|(from, _)| *from == name) || ALSO.contains(&name)
}

/// Rewrites Spark's function names and forms in `expr` into DataFusion's.
pub(super) fn rewrite(expr: &mut ast::Expr) -> Result<(), ParserError> {
    let outcome = visit_expressions_mut(expr, |e| match rewrite_node(e) {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => ControlFlow::Break(err),
    });
    match outcome {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}
