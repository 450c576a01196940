//! `sql = "SELECT ..."`: a query written as Spark SQL over its named inputs, planned onto the
//! same operators a TOML query uses (expression steps, the windowed aggregation), so it runs,
//! checkpoints, explains and validates exactly as the TOML form would.
//!
//! What this first form plans: one input in `FROM` (with an alias or without), `WHERE`,
//! `SELECT` expressions, `GROUP BY` columns with `window(ts, '5 minutes'[, slide[, start]])` or
//! `session_window(ts, gap)`, the built-in aggregates (`count(*)`, `count(x)`,
//! `count(DISTINCT x)`, `sum`, `min`, `max`, `avg`, `first`, `last`) over columns or
//! expressions, anywhere inside the `SELECT` items, and `HAVING`; and `UNION ALL` of such
//! SELECTs without aggregation (each a view `sql_N`, their union the view `sql`). An
//! aggregation becomes a view named `sql` (state under `state/sql.aggregate/`) that the
//! query's projection reads. The rest of Spark SQL (joins, `WITH`, subqueries) is refused
//! with its position and what to write instead, never approximated.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    self, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    SelectItem, SetExpr, Statement, TableFactor, visit_expressions_mut,
};
use datafusion_sql::sqlparser::dialect::DatabricksDialect;
use datafusion_sql::sqlparser::parser::Parser;

use super::*;
use crate::operators::aggregate::{AggFunc, AggSpec, AggregateSpec};
use crate::operators::window::WindowSpec;

/// The name of the view an aggregation in SQL becomes.
pub const SQL_VIEW: &str = "sql";

/// What a SQL query becomes: the pieces a TOML query would have written.
#[derive(Debug)]
pub(super) struct SqlPlan {
    /// The aggregation's view, if the query aggregates.
    pub views: Vec<ViewSpec>,
    /// What the query reads.
    pub combine: Combine,
    /// The query's own steps.
    pub transforms: Vec<StepSpec>,
}

/// A mistake in the SQL, at its 1-based line and column (0: the whole statement).
#[derive(Debug, PartialEq)]
pub(super) struct SqlError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

type Planned<T> = std::result::Result<T, SqlError>;

fn at(node: &impl ast::Spanned, message: String) -> SqlError {
    let start = node.span().start;
    SqlError {
        line: start.line,
        column: start.column,
        message,
    }
}

fn whole(message: String) -> SqlError {
    SqlError {
        line: 0,
        column: 0,
        message,
    }
}

/// An expression step named after what it does in the SQL.
fn step(name: &str, kind: ExprStepKind) -> StepSpec {
    StepSpec::Expr(ExprStepSpec {
        name: format!("sql.{name}"),
        kind,
        on_error: crate::wasm::spec::OnError::Fail,
    })
}

/// Plans `text` over the query's `inputs` (their names).
pub(super) fn plan(text: &str, inputs: &[&str]) -> Planned<SqlPlan> {
    let statements = Parser::parse_sql(&DatabricksDialect {}, text).map_err(|e| {
        // sqlparser says "... at Line: 3, Column: 14"; keep its words, place them.
        let message = e.to_string();
        let (line, column) = parse_position(&message).unwrap_or((0, 0));
        SqlError {
            line,
            column,
            message: message
                .trim_start_matches("sql parser error: ")
                .split(" at Line: ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    })?;
    let query = match statements.as_slice() {
        [Statement::Query(q)] => q,
        [] => return Err(whole("no statement: write one SELECT".into())),
        [other] => return Err(at(other, "a query is one SELECT statement".into())),
        [_, second, ..] => return Err(at(second, "one statement per query".into())),
    };
    if let Some(with) = &query.with {
        return Err(at(
            with,
            "WITH is not planned yet; name the intermediate result as a view ([query.views.NAME])"
                .into(),
        ));
    }
    if let Some(order) = &query.order_by {
        return Err(at(
            order,
            "ORDER BY is not supported on a stream (as in Spark, outside complete mode); sort where you read the output".into(),
        ));
    }
    if let Some(limit) = &query.limit_clause {
        return Err(at(limit, "LIMIT is not supported on a stream".into()));
    }
    let select = match query.body.as_ref() {
        SetExpr::Select(s) => s,
        SetExpr::SetOperation {
            op: ast::SetOperator::Union,
            set_quantifier: ast::SetQuantifier::All,
            ..
        } => return union_all(&query.body, inputs),
        body @ SetExpr::SetOperation {
            op: ast::SetOperator::Union,
            ..
        } => {
            return Err(at(
                body,
                "UNION removes duplicates, which a stream cannot know it has seen all of; write UNION ALL (then [query.dropDuplicates] with a watermark)".into(),
            ));
        }
        other => {
            return Err(at(
                other,
                "only SELECT and UNION ALL are planned yet".into(),
            ));
        }
    };
    let planned = plan_select(select, inputs)?;
    if planned.plan.views.is_empty() && inputs.len() > 1 {
        return Err(whole(format!(
            "the query has {} inputs; this SELECT reads one (combine them with UNION ALL, or write [query.join])",
            inputs.len()
        )));
    }
    Ok(planned.plan)
}

/// A SELECT planned, with the input it reads.
struct PlannedSelect {
    plan: SqlPlan,
    input: String,
}

/// `a UNION ALL b [UNION ALL ...]` of SELECTs without aggregation: each branch a view
/// (`sql_0`, `sql_1`, ...) of its input's rows through its steps, and the view `sql` their
/// union, which the query reads. The branches' columns must match, as for [query.union].
fn union_all(body: &SetExpr, inputs: &[&str]) -> Planned<SqlPlan> {
    fn branches<'b>(e: &'b SetExpr, out: &mut Vec<&'b SetExpr>) -> Planned<()> {
        match e {
            SetExpr::SetOperation {
                op: ast::SetOperator::Union,
                set_quantifier: ast::SetQuantifier::All,
                left,
                right,
            } => {
                branches(left, out)?;
                branches(right, out)
            }
            SetExpr::SetOperation { .. } => {
                Err(at(e, "only UNION ALL combines SELECTs here".into()))
            }
            other => {
                out.push(other);
                Ok(())
            }
        }
    }
    let mut parts = Vec::new();
    branches(body, &mut parts)?;
    let mut views = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let SetExpr::Select(select) = part else {
            return Err(at(*part, "each side of UNION ALL is a SELECT".into()));
        };
        let planned = plan_select(select, inputs)?;
        if !planned.plan.views.is_empty() {
            return Err(at(
                *part,
                "an aggregation inside UNION ALL is not planned yet; union the rows, then aggregate them in a view".into(),
            ));
        }
        let name = format!("{SQL_VIEW}_{i}");
        // Step names are unique in a query: each branch's under its view's name.
        let transforms = planned
            .plan
            .transforms
            .into_iter()
            .map(|mut t| {
                if let StepSpec::Expr(e) = &mut t {
                    e.name = e.name.replacen(SQL_VIEW, &name, 1);
                }
                t
            })
            .collect();
        views.push(ViewSpec {
            name,
            from: ViewFrom::Stream(planned.input.clone()),
            transforms,
            dedup: None,
            aggregate: None,
            processor: None,
        });
    }
    let names = views.iter().map(|v| v.name.clone()).collect();
    views.push(ViewSpec {
        name: SQL_VIEW.to_owned(),
        from: ViewFrom::Union(names),
        transforms: Vec::new(),
        dedup: None,
        aggregate: None,
        processor: None,
    });
    Ok(SqlPlan {
        views,
        combine: Combine::From(SQL_VIEW.to_owned()),
        transforms: Vec::new(),
    })
}

/// One SELECT: its steps (and, when it aggregates, its view).
fn plan_select(select: &ast::Select, inputs: &[&str]) -> Planned<PlannedSelect> {
    if select.distinct.is_some() {
        return Err(at(
            &select.select_token.0,
            "SELECT DISTINCT is not planned yet; write [query.dropDuplicates]".into(),
        ));
    }
    let mut select = select.clone();
    let input = from_input(&select, inputs)?;
    // Column references may be qualified by the input's name or alias: drop the qualifier.
    let qualifiers = qualifiers(&select, &input);
    unqualify(&mut select, &qualifiers);

    let mut transforms = Vec::new();
    if let Some(predicate) = &select.selection {
        if contains_aggregate(predicate) {
            return Err(at(
                predicate,
                "an aggregate cannot be in WHERE; filter groups with HAVING".into(),
            ));
        }
        transforms.push(step("where", ExprStepKind::Where(predicate.to_string())));
    }
    let groups = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
        other => {
            return Err(at(
                other,
                "GROUP BY ALL and modifiers are not supported".into(),
            ));
        }
    };
    let aggregates = select.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            contains_aggregate(e)
        }
        _ => false,
    }) || select.having.is_some();
    if groups.is_empty() && !aggregates {
        // Stateless: the filter, then the projection.
        let items = select
            .projection
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>();
        if items != ["*"] {
            transforms.push(step("select", ExprStepKind::SelectExpr(items)));
        }
        return Ok(PlannedSelect {
            plan: SqlPlan {
                views: Vec::new(),
                combine: Combine::Single,
                transforms,
            },
            input,
        });
    }

    // An aggregation: the view groups, the query projects.
    let mut aggregate = AggregateSpec {
        group_by: Vec::new(),
        window: None,
        aggs: Vec::new(),
    };
    for g in &groups {
        match g {
            SqlExpr::Identifier(id) => aggregate.group_by.push(id.value.clone()),
            SqlExpr::Function(f) if is_window(f) => {
                if aggregate.window.is_some() {
                    return Err(at(g, "one window per GROUP BY".into()));
                }
                aggregate.window = Some(window(f)?);
            }
            other => {
                return Err(at(
                    other,
                    format!(
                        "GROUP BY takes columns and window(...) here; compute '{other}' in a view's selectExpr and group by its name"
                    ),
                ));
            }
        }
    }
    let mut aggs = Aggregates::default();
    let mut items = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let name = e.to_string();
                let planned = aggs.replace(e, None)?;
                let text = planned.to_string();
                // Spark names an unnamed item after its text.
                items.push(if text == name {
                    text
                } else {
                    format!("{text} AS `{}`", name.replace('`', "``"))
                });
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                let planned = aggs.replace(expr, Some(&alias.value))?;
                items.push(format!("{planned} AS {alias}"));
            }
            other => {
                return Err(at(
                    other,
                    "an aggregating SELECT lists its columns: name the group columns and aggregates".into(),
                ));
            }
        }
    }
    let having = match &select.having {
        Some(h) => Some(aggs.replace(h, None)?),
        None => None,
    };
    let mut view_steps = transforms;
    view_steps.extend(aggs.arguments.iter().map(|(name, expr)| {
        step(
            "argument",
            ExprStepKind::WithColumn {
                name: name.clone(),
                expr: expr.clone(),
            },
        )
    }));
    aggregate.aggs = aggs.specs;
    let mut query_steps = Vec::new();
    if let Some(h) = having {
        query_steps.push(step("having", ExprStepKind::Where(h.to_string())));
    }
    query_steps.push(step("select", ExprStepKind::SelectExpr(items)));
    Ok(PlannedSelect {
        plan: SqlPlan {
            views: vec![ViewSpec {
                name: SQL_VIEW.to_owned(),
                from: ViewFrom::Stream(input.clone()),
                transforms: view_steps,
                dedup: None,
                aggregate: Some(aggregate),
                processor: None,
            }],
            combine: Combine::From(SQL_VIEW.to_owned()),
            transforms: query_steps,
        },
        input,
    })
}

/// The one input `FROM` names.
fn from_input(select: &ast::Select, inputs: &[&str]) -> Planned<String> {
    let [from] = select.from.as_slice() else {
        return Err(match select.from.get(1) {
            Some(second) => at(second, "FROM reads one input here; join inputs with JOIN ... ON (not planned yet: write [query.join])".into()),
            None => whole("no FROM: name the input the query reads".into()),
        });
    };
    if let Some(join) = from.joins.first() {
        return Err(at(
            join,
            "JOIN is not planned in SQL yet; write [query.join] (or a view's join) and select from it".into(),
        ));
    }
    let TableFactor::Table { name, .. } = &from.relation else {
        return Err(at(
            &from.relation,
            "FROM takes an input's name here (a subquery: write a view)".into(),
        ));
    };
    let name = name.to_string().trim_matches('`').to_owned();
    if inputs.contains(&name.as_str()) {
        Ok(name)
    } else {
        let close = crate::config::reader::closest(&name, inputs.iter().copied())
            .map(|c| format!(" (did you mean '{c}'?)"))
            .unwrap_or_default();
        Err(at(
            &from.relation,
            format!(
                "'{name}' is not an input of the query{close}; the inputs are: {}",
                inputs.join(", ")
            ),
        ))
    }
}

/// The names a column may be qualified with: the input's, and its alias.
fn qualifiers(select: &ast::Select, input: &str) -> Vec<String> {
    let mut names = vec![input.to_owned()];
    if let Some(TableFactor::Table {
        alias: Some(alias), ..
    }) = select.from.first().map(|f| &f.relation)
    {
        names.push(alias.name.value.clone());
    }
    names
}

/// `o.amount` as `amount` wherever `o` is one of `qualifiers`.
fn unqualify(select: &mut ast::Select, qualifiers: &[String]) {
    let mut fix = |e: &mut SqlExpr| {
        if let SqlExpr::CompoundIdentifier(ids) = e
            && ids.len() >= 2
            && qualifiers.contains(&ids[0].value)
        {
            let rest: Vec<ast::Ident> = ids[1..].to_vec();
            *e = match rest.as_slice() {
                [one] => SqlExpr::Identifier(one.clone()),
                _ => SqlExpr::CompoundIdentifier(rest),
            };
        }
        ControlFlow::<()>::Continue(())
    };
    for item in &mut select.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let _ = visit_expressions_mut(e, &mut fix);
            }
            _ => {}
        }
    }
    for e in select.selection.iter_mut().chain(select.having.iter_mut()) {
        let _ = visit_expressions_mut(e, &mut fix);
    }
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        for e in exprs {
            let _ = visit_expressions_mut(e, &mut fix);
        }
    }
}

/// Whether `f` is `window(...)` or `session_window(...)`.
fn is_window(f: &ast::Function) -> bool {
    let name = f.name.to_string().to_ascii_lowercase();
    name == "window" || name == "session_window"
}

/// The plain arguments of `f`.
fn arguments(f: &ast::Function) -> Planned<Vec<&SqlExpr>> {
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
fn duration(e: &SqlExpr) -> Planned<std::time::Duration> {
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

/// `window(ts, duration[, slide[, start]])` or `session_window(ts, gap)`.
fn window(f: &ast::Function) -> Planned<WindowSpec> {
    let args = arguments(f)?;
    let column = |e: &SqlExpr| match e {
        SqlExpr::Identifier(id) => Ok(id.value.clone()),
        other => Err(at(
            other,
            "the window's first argument is the event-time column".into(),
        )),
    };
    let session = f.name.to_string().eq_ignore_ascii_case("session_window");
    let spec = match (session, args.as_slice()) {
        (true, [ts, gap]) => WindowSpec::Session {
            column: column(ts)?,
            gap: duration(gap)?,
        },
        (false, [ts, d, rest @ ..]) if rest.len() <= 2 => {
            let length = duration(d)?;
            WindowSpec::Fixed {
                column: column(ts)?,
                duration: length,
                slide: match rest.first() {
                    Some(s) => duration(s)?,
                    None => length,
                },
                start: match rest.get(1) {
                    Some(s) => duration(s)?,
                    None => std::time::Duration::ZERO,
                },
            }
        }
        _ => {
            return Err(at(
                f,
                "write window(ts, '5 minutes'[, slide[, start]]) or session_window(ts, '5 minutes')"
                    .into(),
            ));
        }
    };
    if let Some((_, why)) = super::stateful::window_problem(&spec) {
        return Err(at(f, why));
    }
    Ok(spec)
}

/// The aggregate `name(...)` is, if it is one (`count` with `DISTINCT` is `count_distinct`).
fn aggregate_of(f: &ast::Function) -> Option<AggFunc> {
    let name = f.name.to_string();
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

fn contains_aggregate(e: &SqlExpr) -> bool {
    let mut e = e.clone();
    let found = visit_expressions_mut(&mut e, |x| match x {
        SqlExpr::Function(f) if aggregate_of(f).is_some() => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    found.is_break()
}

/// The aggregates a SELECT calls, each computed once by the aggregation.
#[derive(Default)]
struct Aggregates {
    specs: Vec<AggSpec>,
    /// Each aggregate's text, to reuse its column when it appears twice.
    texts: Vec<String>,
    /// Columns computed before the aggregation for arguments that are expressions.
    arguments: Vec<(String, String)>,
}

impl Aggregates {
    /// `e` with each aggregate call replaced by the column the aggregation gives it; `alias`:
    /// the item's name, for an item that is one aggregate.
    fn replace(&mut self, e: &SqlExpr, alias: Option<&str>) -> Planned<SqlExpr> {
        let mut e = e.clone();
        let whole_item = matches!(&e, SqlExpr::Function(f) if aggregate_of(f).is_some());
        let mut failure = None;
        let _ = visit_expressions_mut(&mut e, |x| {
            let SqlExpr::Function(f) = x else {
                return ControlFlow::Continue(());
            };
            let Some(func) = aggregate_of(f) else {
                return ControlFlow::Continue(());
            };
            match self.column_of(f, func, if whole_item { alias } else { None }) {
                Ok(name) => {
                    *x = SqlExpr::Identifier(ast::Ident::with_quote('`', name));
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(e),
        }
    }

    /// The output column of the aggregate call `f`, added if new.
    fn column_of(
        &mut self,
        f: &ast::Function,
        func: AggFunc,
        alias: Option<&str>,
    ) -> Planned<String> {
        let text = f.to_string();
        if let Some(i) = self.texts.iter().position(|t| *t == text) {
            return Ok(self.specs[i].alias.clone());
        }
        let star = matches!(&f.args, FunctionArguments::List(l)
            if matches!(l.args.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]));
        let args = if star { Vec::new() } else { arguments(f)? };
        let column = match (args.as_slice(), star) {
            (_, true) | ([], false) if func == AggFunc::Count => None,
            ([SqlExpr::Identifier(id)], false) => Some(id.value.clone()),
            ([SqlExpr::Value(_)], false) if func == AggFunc::Count => None,
            ([arg], false) => {
                let name = format!("__sql_arg{}", self.arguments.len());
                self.arguments.push((name.clone(), arg.to_string()));
                Some(name)
            }
            _ => {
                return Err(at(f, format!("{} takes one column or expression", f.name)));
            }
        };
        let alias = alias
            .map(str::to_owned)
            .unwrap_or_else(|| format!("__sql_agg{}", self.specs.len()));
        self.specs.push(AggSpec {
            func,
            column,
            alias: alias.clone(),
            udaf: None,
        });
        self.texts.push(text);
        Ok(alias)
    }
}

/// `(line, column)` from sqlparser's "... at Line: 3, Column: 14".
fn parse_position(message: &str) -> Option<(u64, u64)> {
    let rest = message.split("Line: ").nth(1)?;
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// The query's `sql` (a string, or `{ file = "q.sql" }` beside the pipeline), planned over its
/// inputs: `None` when the query has no `sql`; `Some(None)` when it does and a problem was
/// reported (at the TOML line of the SQL's line, with the SQL's line and column).
pub(super) fn parse_sql(
    ctx: &Ctx,
    q: &mut TableReader,
    base: &Path,
    inputs: Option<&[InputSpec]>,
) -> Option<Option<SqlPlan>> {
    let node = q.get("sql")?;
    // What the SQL says may not be said again in TOML.
    for key in [
        "transform",
        "views",
        "from",
        "union",
        "join",
        "aggregate",
        "dropDuplicates",
        "processor",
    ] {
        if let Some(n) = q.get(key) {
            q.error_at(
                n.span().start,
                key,
                format!("the query is written in `sql`: say this in the SQL, or drop `sql` (`{key}` and `sql` are two ways of writing one query)"),
            );
        }
    }
    let start = node.span().start;
    let (text, file, first_line_at) = match node.get_ref() {
        Node::Str(s) => {
            // A multi-line string whose quotes end the line begins on the next line.
            let raw = &ctx.text()[start.min(ctx.text().len())..];
            let skip = ["\"\"\"\n", "'''\n", "\"\"\"\r\n", "'''\r\n"]
                .iter()
                .find(|p| raw.starts_with(*p))
                .map_or(0, |p| p.len());
            (s.clone(), None, start + skip)
        }
        Node::Table(_) => {
            let mut t = TableReader::new(ctx, None, "sql", node)?;
            let file =
                t.required_string("file", "give the SQL file: sql = { file = \"query.sql\" }");
            t.finish(&["file"]);
            let path = resolve(base, &file?);
            match std::fs::read_to_string(&path) {
                Ok(text) => (text, Some(path), start),
                Err(e) => {
                    q.error_at(
                        start,
                        "sql.file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    return Some(None);
                }
            }
        }
        other => {
            q.error_at(
                start,
                "sql",
                format!(
                    "expected the query's SQL as a string (or {{ file = \"query.sql\" }}), found {}",
                    other.kind()
                ),
            );
            return Some(None);
        }
    };
    let inputs = inputs?;
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    match plan(&text, &names) {
        Ok(p) => Some(Some(p)),
        Err(e) => {
            let position = match (&file, e.line) {
                (_, 0) => String::new(),
                (Some(f), l) => format!(" ({}:{l}:{})", f.display(), e.column),
                (None, l) => format!(" (SQL line {l}, column {})", e.column),
            };
            // The TOML line of the SQL's line, for a string written in the pipeline.
            let offset = match (&file, e.line) {
                (None, l) if l > 1 => ctx.text()[first_line_at..]
                    .match_indices('\n')
                    .nth(l as usize - 2)
                    .map_or(first_line_at, |(i, _)| first_line_at + i + 1),
                _ => first_line_at,
            };
            q.error_at(offset, "sql", format!("{}{position}", e.message));
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(steps: &[StepSpec]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                StepSpec::Expr(e) => format!("{:?}", e.kind),
                StepSpec::Wasm(_) => "wasm".into(),
            })
            .collect()
    }

    #[test]
    fn a_filter_and_projection_are_expression_steps() {
        let p = plan(
            "SELECT o.id, lower(o.city) AS city FROM orders o WHERE o.amount > 500",
            &["orders"],
        )
        .unwrap();
        assert!(p.views.is_empty());
        assert_eq!(
            kinds(&p.transforms),
            [
                "Where(\"amount > 500\")",
                "SelectExpr([\"id\", \"lower(city) AS city\"])"
            ]
        );
    }

    #[test]
    fn a_windowed_aggregation_is_a_view_and_a_projection() {
        let p = plan(
            "SELECT window.start AS window_start, category, sum(amount) AS revenue, \
             sum(amount) / count(*) AS mean FROM orders WHERE amount > 0 \
             GROUP BY window(order_time, '5 minutes'), category HAVING count(*) > 1",
            &["orders"],
        )
        .unwrap();
        let view = &p.views[0];
        let agg = view.aggregate.as_ref().unwrap();
        assert_eq!(agg.group_by, ["category"]);
        assert!(matches!(agg.window, Some(WindowSpec::Fixed { .. })));
        let aggs: Vec<(AggFunc, Option<String>, String)> = agg
            .aggs
            .iter()
            .map(|a| (a.func, a.column.clone(), a.alias.clone()))
            .collect();
        assert_eq!(
            aggs,
            [
                (AggFunc::Sum, Some("amount".into()), "revenue".into()),
                (AggFunc::Count, None, "__sql_agg1".into()),
            ]
        );
        assert_eq!(
            kinds(&p.transforms),
            [
                "Where(\"`__sql_agg1` > 1\")",
                "SelectExpr([\"window.start AS window_start\", \"category\", \"`revenue` AS revenue\", \"`revenue` / `__sql_agg1` AS mean\"])"
            ]
        );
    }

    #[test]
    fn what_is_not_planned_is_refused_at_its_position() {
        let e = plan("SELECT * FROM ordrs", &["orders"]).unwrap_err();
        assert_eq!((e.line, e.column), (1, 15));
        assert!(e.message.contains("did you mean 'orders'"), "{}", e.message);
        let e = plan(
            "SELECT *\nFROM orders o\nJOIN users u ON o.uid = u.id",
            &["orders", "users"],
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("JOIN"), "{}", e.message);
        let e = plan("SELECT id FROM orders WHERE sum(x) > 1", &["orders"]).unwrap_err();
        assert!(e.message.contains("HAVING"), "{}", e.message);
        let e = plan("SELEC id FROM orders", &["orders"]).unwrap_err();
        assert_eq!(e.line, 1, "{e:?}");
    }
}
