//! One SELECT: `WHERE` and the projection as expression steps; `GROUP BY` (columns,
//! expressions, `window(...)`, `session_window(...)`) with the built-in aggregates anywhere in
//! its items, and `HAVING`, as an aggregation view and the projection that reads it.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    self, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    SelectItem, visit_expressions_mut,
};

use super::calls::{aggregate_of, arguments, contains_aggregate, duration};
use super::from::Relation;
use super::*;
use crate::operators::aggregate::{AggFunc, AggSpec, AggregateSpec};
use crate::operators::window::WindowSpec;
use crate::wasm::aggregate::UdafSpec;

impl Planner<'_> {
    /// `select` as a stage of `scope`: the views it needs, and the steps over the last.
    pub(super) fn plan_select(&mut self, select: &ast::Select, scope: &str) -> Planned<Stage> {
        let distinct = match &select.distinct {
            None => false,
            Some(ast::Distinct::Distinct) => true,
            Some(other) => {
                return Err(at(
                    &select.select_token.0,
                    format!("SELECT {other} is not planned; write SELECT DISTINCT or GROUP BY"),
                ));
            }
        };
        refuse_expression_subqueries(select)?;
        let mut select = select.clone();
        // Conditions on one side of a join filter that side before it (as Spark's optimizer
        // pushes them down): fewer rows in the join's state.
        let joins = select.from.iter().any(|f| !f.joins.is_empty());
        let columns = if joins {
            super::from::columns_read(&select)
        } else {
            None
        };
        let conditions = match &select.selection {
            Some(w) if joins => {
                let tables = self.catalog.tables;
                let (pushed, kept) = super::from::push_down(
                    w,
                    &select.from[0],
                    |name| tables.iter().any(|(t, _)| t == name),
                    self.catalog.aggregates,
                );
                select.selection = kept;
                pushed
            }
            _ => Vec::new(),
        };
        let relation = self.plan_from(
            &select,
            scope,
            super::from::Pushdown {
                conditions,
                columns,
            },
        )?;
        if !relation.joined {
            // Over one relation, a qualified column is its own: drop the qualifier.
            unqualify(&mut select, &relation.qualifiers);
        }
        let mut transforms = Vec::new();
        if let Some(predicate) = &select.selection {
            if contains_aggregate(predicate, self.catalog.aggregates) {
                return Err(at(
                    predicate,
                    "an aggregate cannot be in WHERE; filter groups with HAVING".into(),
                ));
            }
            transforms.push(step(
                scope,
                "where",
                ExprStepKind::Where(predicate.to_string()),
            ));
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
                contains_aggregate(e, self.catalog.aggregates)
            }
            _ => false,
        }) || select.having.is_some();
        if groups.is_empty() && !aggregates {
            let items: Vec<String> = select.projection.iter().map(named_item).collect();
            if items != ["*"] {
                transforms.push(step(scope, "select", ExprStepKind::SelectExpr(items)));
            }
            if distinct {
                // Each distinct row once, when first seen: Dataset.distinct(), which is
                // dropDuplicates() on every column (state kept per distinct row).
                let view = if scope == SQL_VIEW {
                    SQL_VIEW.to_owned()
                } else {
                    self.fresh(&format!("{scope}_distinct"))
                };
                self.views.push(ViewSpec {
                    name: view.clone(),
                    from: ViewFrom::Stream(relation.stream),
                    transforms,
                    dedup: Some(crate::operators::dedup::DedupSpec {
                        columns: Vec::new(),
                        within_watermark: false,
                    }),
                    aggregate: None,
                    processor: None,
                });
                return Ok(Stage {
                    from: view,
                    transforms: Vec::new(),
                });
            }
            return Ok(Stage {
                from: relation.stream,
                transforms,
            });
        }
        if distinct {
            return Err(at(
                &select.select_token.0,
                "SELECT DISTINCT with GROUP BY or aggregates is not planned; the groups are distinct already".into(),
            ));
        }
        self.plan_aggregation(&select, &relation, &groups, transforms, scope)
    }

    fn plan_aggregation(
        &mut self,
        select: &ast::Select,
        relation: &Relation,
        groups: &[SqlExpr],
        mut view_steps: Vec<StepSpec>,
        scope: &str,
    ) -> Planned<Stage> {
        let mut aggregate = AggregateSpec {
            group_by: Vec::new(),
            window: None,
            aggs: Vec::new(),
        };
        let mut aggs = Aggregates {
            udafs: self.catalog.aggregates,
            specs: Vec::new(),
            texts: Vec::new(),
            arguments: Vec::new(),
            keys: Vec::new(),
        };
        for g in groups {
            match g {
                SqlExpr::Function(f) if is_window(f) => {
                    if aggregate.window.is_some() {
                        return Err(at(g, "one window per GROUP BY".into()));
                    }
                    aggregate.window = Some(window(f, relation)?);
                }
                // A column of one relation groups as itself (the output keeps its name).
                SqlExpr::Identifier(id) if !relation.joined => {
                    aggregate.group_by.push(id.value.clone())
                }
                // So does one of a join's first side, whose columns keep their names.
                SqlExpr::CompoundIdentifier(ids)
                    if ids.len() == 2 && ids[0].value == relation.leftmost =>
                {
                    aggs.keys.push((g.to_string(), ids[1].value.clone(), false));
                    aggregate.group_by.push(ids[1].value.clone());
                }
                other => {
                    if contains_aggregate(other, aggs.udafs) {
                        return Err(at(other, "GROUP BY cannot hold an aggregate".into()));
                    }
                    let name = format!("__sql_key{}", aggs.keys.len());
                    aggs.keys.push((other.to_string(), name.clone(), true));
                    aggregate.group_by.push(name);
                }
            }
        }
        let mut items = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let name = item_name(e);
                    let planned = aggs.replace(e, None)?;
                    let text = planned.to_string();
                    // Spark names an unnamed item after its text (a column after itself).
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
        let computed: Vec<String> = aggs
            .keys
            .iter()
            .filter(|(_, _, computed)| *computed)
            .map(|(expr, name, _)| (expr, name))
            .chain(aggs.arguments.iter().map(|(name, expr)| (expr, name)))
            .map(|(expr, name)| format!("{expr} AS `{name}`"))
            .collect();
        if !computed.is_empty() {
            let mut items = vec!["*".to_owned()];
            items.extend(computed);
            view_steps.push(step(scope, "arguments", ExprStepKind::SelectExpr(items)));
        }
        aggregate.aggs = aggs.specs;
        // The top level's aggregation is the view `sql`; a WITH or subquery's, `<name>_agg`.
        let view = if scope == SQL_VIEW {
            SQL_VIEW.to_owned()
        } else {
            self.fresh(&format!("{scope}_agg"))
        };
        self.views.push(ViewSpec {
            name: view.clone(),
            from: ViewFrom::Stream(relation.stream.clone()),
            transforms: view_steps,
            dedup: None,
            aggregate: Some(aggregate),
            processor: None,
        });
        let mut transforms = Vec::new();
        if let Some(h) = having {
            transforms.push(step(scope, "having", ExprStepKind::Where(h.to_string())));
        }
        transforms.push(step(scope, "select", ExprStepKind::SelectExpr(items)));
        Ok(Stage {
            from: view,
            transforms,
        })
    }
}

/// A subquery inside an expression (`x IN (SELECT ...)`, `EXISTS`, a scalar subquery) would
/// need the whole other stream at once: refused, with the join to write instead.
fn refuse_expression_subqueries(select: &ast::Select) -> Planned<()> {
    let mut select = select.clone();
    let mut found = None;
    let mut look = |e: &mut SqlExpr| match e {
        SqlExpr::Subquery(_) | SqlExpr::InSubquery { .. } | SqlExpr::Exists { .. } => {
            found = Some(at(
                &*e,
                "a subquery inside an expression is not supported on a stream (as in Spark); join with it instead (LEFT SEMI JOIN for IN/EXISTS)".into(),
            ));
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    };
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            let _ = visit_expressions_mut(e, &mut look);
        }
    }
    for e in select.selection.iter_mut().chain(select.having.iter_mut()) {
        let _ = visit_expressions_mut(e, &mut look);
    }
    found.map_or(Ok(()), Err)
}

/// The name Spark gives an unnamed item: a column's own name (`o.amount` is `amount`), else
/// its text.
fn item_name(e: &SqlExpr) -> String {
    match e {
        SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 => {
            ids.last().map(|i| i.value.clone()).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

/// A stateless item as a `selectExpr` item, named as Spark names it.
fn named_item(item: &SelectItem) -> String {
    match item {
        SelectItem::UnnamedExpr(e @ SqlExpr::CompoundIdentifier(ids)) if ids.len() == 2 => {
            format!("{e} AS `{}`", item_name(e).replace('`', "``"))
        }
        other => other.to_string(),
    }
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

/// `window(ts, duration[, slide[, start]])` or `session_window(ts, gap)` over `relation`.
fn window(f: &ast::Function, relation: &Relation) -> Planned<WindowSpec> {
    let args = arguments(f)?;
    let column = |e: &SqlExpr| match e {
        SqlExpr::Identifier(id) => Ok(id.value.clone()),
        // Over a join, the leftmost side's columns keep their names.
        SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 && ids[0].value == relation.leftmost => {
            Ok(ids[1].value.clone())
        }
        SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 => Err(at(
            e,
            format!(
                "a window over a join reads the event time of its first side ('{}'); window '{}' in a subquery or WITH before the join",
                relation.leftmost, e
            ),
        )),
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
    if let Some((_, why)) = super::super::stateful::window_problem(&spec) {
        return Err(at(f, why));
    }
    Ok(spec)
}

/// The aggregates and computed group keys of a SELECT, each computed once.
struct Aggregates<'u> {
    /// The Wasm aggregates the SQL may call.
    udafs: &'u [(String, UdafSpec)],
    specs: Vec<AggSpec>,
    /// Each aggregate's text, to reuse its column when it appears twice.
    texts: Vec<String>,
    /// Columns computed before the aggregation for arguments that are expressions.
    arguments: Vec<(String, String)>,
    /// Group keys: (expression text, column, whether computed before the aggregation).
    keys: Vec<(String, String, bool)>,
}

impl Aggregates<'_> {
    /// `e` with each aggregate call and each group key replaced by the column the
    /// aggregation gives it; `alias`: the item's name, for an item that is one aggregate.
    fn replace(&mut self, e: &SqlExpr, alias: Option<&str>) -> Planned<SqlExpr> {
        let mut e = e.clone();
        let udafs = self.udafs;
        let whole_item = matches!(&e, SqlExpr::Function(f) if aggregate_of(f, udafs).is_some());
        let mut failure = None;
        let _ = visit_expressions_mut(&mut e, |x| {
            // Spark names a session window's column `session_window`; the aggregation's
            // window column is `window` either way.
            if let SqlExpr::CompoundIdentifier(ids) = x
                && ids.len() == 2
                && ids[0].value.eq_ignore_ascii_case("session_window")
            {
                ids[0] = ast::Ident::new("window");
            }
            let text = x.to_string();
            if let Some((_, key, _)) = self.keys.iter().find(|(k, _, _)| *k == text) {
                *x = SqlExpr::Identifier(ast::Ident::with_quote('`', key.clone()));
                return ControlFlow::Continue(());
            }
            let SqlExpr::Function(f) = x else {
                return ControlFlow::Continue(());
            };
            let Some(func) = aggregate_of(f, udafs) else {
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
        let name = f.name.to_string();
        let udaf = (func == AggFunc::Udaf)
            .then(|| {
                self.udafs
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                    .map(|(_, u)| u.clone())
            })
            .flatten();
        if func == AggFunc::Udaf && column.is_none() {
            return Err(at(f, format!("{name} takes one column or expression")));
        }
        self.specs.push(AggSpec {
            func,
            column,
            alias: alias.clone(),
            udaf,
        });
        self.texts.push(text);
        Ok(alias)
    }
}
