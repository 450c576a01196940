//! `FROM`: inputs, static tables, CTEs and subqueries by name, and joins between them — each
//! join a view whose keys and event-time range come from its `ON` clause, checked against
//! Spark's rules for streaming joins.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    self, BinaryOperator, Expr as SqlExpr, JoinConstraint, JoinOperator, TableFactor,
    visit_expressions_mut,
};

use super::*;
use crate::operators::join::{JoinQualifiers, JoinRight, JoinSpec, JoinType, TimeRange};

/// A relation `FROM` reads, planned: the stream that carries its rows.
#[derive(Debug, Clone)]
pub(super) struct Relation {
    /// The input or view the rows are in.
    pub stream: String,
    /// The names its columns may be qualified by (a join's: every side's).
    pub qualifiers: Vec<String>,
    /// Whether it is a join's output, whose qualified columns resolve when it runs.
    pub joined: bool,
    /// The qualifier whose columns keep their names through every join (the leftmost side).
    pub leftmost: String,
    /// The event-time column its rows carry a watermark on.
    pub watermark: Option<String>,
}

/// One side of a join as `FROM` names it.
enum Side {
    Stream(Relation),
    Table {
        name: String,
        alias: String,
        spec: TableSpec,
    },
}

impl Planner<'_> {
    /// The relation of a SELECT's `FROM`, its joins planned as views of `scope`.
    /// `pushed`: conditions on one relation (by its qualifier) and the columns the SELECT
    /// reads of each, applied to it before the joins.
    pub(super) fn plan_from(
        &mut self,
        select: &ast::Select,
        scope: &str,
        pushed: Pushdown,
    ) -> Planned<Relation> {
        let [from] = select.from.as_slice() else {
            return Err(match select.from.get(1) {
                Some(second) => at(
                    second,
                    "FROM lists one relation; combine several with JOIN ... ON".into(),
                ),
                None => whole("no FROM: name the input the query reads".into()),
            });
        };
        let mut left = self.plan_factor(&from.relation)?;
        left = self.filtered(left, &pushed, scope)?;
        for (i, join) in from.joins.iter().enumerate() {
            let right = self.plan_factor(&join.relation)?;
            let right = self.filtered(right, &pushed, scope)?;
            let name = self.fresh(&format!("{scope}_join{i}"));
            left = Side::Stream(self.plan_join(left, right, join, &name)?);
        }
        match left {
            Side::Stream(r) => Ok(r),
            Side::Table { name, .. } => Err(at(
                &from.relation,
                format!(
                    "'{name}' is a static table; a query reads a stream (an input) and joins tables to it"
                ),
            )),
        }
    }

    /// `side` with the conditions pushed to it applied first, as a view.
    fn filtered(&mut self, side: Side, pushed: &Pushdown, scope: &str) -> Planned<Side> {
        let Side::Stream(mut relation) = side else {
            return Ok(side);
        };
        let alias = relation.leftmost.clone();
        let conditions: Vec<String> = pushed
            .conditions
            .iter()
            .filter(|(q, _)| *q == alias)
            .map(|(_, e)| {
                let mut e = e.clone();
                let _ = visit_expressions_mut(&mut e, |x| {
                    if let SqlExpr::CompoundIdentifier(ids) = x
                        && ids.len() == 2
                        && ids[0].value == alias
                    {
                        *x = SqlExpr::Identifier(ids[1].clone());
                    }
                    ControlFlow::<()>::Continue(())
                });
                e.to_string()
            })
            .collect();
        let columns = pushed.columns.as_ref().and_then(|c| c.get(&alias));
        if conditions.is_empty() && columns.is_none() {
            return Ok(Side::Stream(relation));
        }
        let name = self.fresh(&format!("{scope}_{alias}"));
        let mut transforms = Vec::new();
        if !conditions.is_empty() {
            transforms.push(step(
                &name,
                "where",
                ExprStepKind::Where(conditions.join(" AND ")),
            ));
        }
        if let Some(columns) = columns {
            // Only what the SELECT reads goes into the join's state.
            let items = columns
                .iter()
                .map(|c| format!("`{}`", c.replace('`', "``")))
                .collect();
            transforms.push(step(&name, "columns", ExprStepKind::SelectExpr(items)));
        }
        self.views.push(ViewSpec {
            name: name.clone(),
            from: ViewFrom::Stream(relation.stream.clone()),
            transforms,
            dedup: None,
            aggregate: None,
            processor: None,
        });
        relation.stream = name;
        Ok(Side::Stream(relation))
    }

    /// An input, table, CTE or subquery in `FROM`.
    fn plan_factor(&mut self, factor: &TableFactor) -> Planned<Side> {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let name = name.to_string().trim_matches('`').to_owned();
                if let Some(args) = args {
                    return self.plan_processor(factor, &name, &args.args, alias.as_ref());
                }
                let alias = alias
                    .as_ref()
                    .map_or_else(|| name.clone(), |a| a.name.value.clone());
                if let Some(view) = self.cte(&name) {
                    return Ok(Side::Stream(self.view_relation(view, alias)));
                }
                if let Some((_, watermark)) = self.catalog.inputs.iter().find(|(n, _)| *n == name)
                {
                    return Ok(Side::Stream(Relation {
                        stream: name.clone(),
                        qualifiers: vec![alias.clone()],
                        joined: false,
                        leftmost: alias,
                        watermark: watermark.map(str::to_owned),
                    }));
                }
                if let Some((_, spec)) = self.catalog.tables.iter().find(|(n, _)| *n == name) {
                    return Ok(Side::Table {
                        name,
                        alias,
                        spec: spec.clone(),
                    });
                }
                let known: Vec<&str> = self
                    .catalog
                    .inputs
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(self.catalog.tables.iter().map(|(n, _)| n.as_str()))
                    .chain(self.ctes.iter().map(|(n, _)| n.as_str()))
                    .collect();
                let close = crate::config::reader::closest(&name, known.iter().copied())
                    .map(|c| format!(" (did you mean '{c}'?)"))
                    .unwrap_or_default();
                Err(at(
                    factor,
                    format!(
                        "'{name}' is not an input, table or WITH name of the query{close}; it knows: {}",
                        known.join(", ")
                    ),
                ))
            }
            TableFactor::Derived {
                lateral: false,
                subquery,
                alias,
                ..
            } => {
                // Spark lets a subquery go unnamed; its columns are then unqualified.
                let alias = alias
                    .as_ref()
                    .map_or_else(|| "sql_subquery".to_owned(), |a| a.name.value.clone());
                let view = self.fresh(&alias);
                self.plan_query_as_view(subquery, &view)?;
                Ok(Side::Stream(self.view_relation(view, alias)))
            }
            TableFactor::NestedJoin { .. } => Err(at(
                factor,
                "a parenthesised join is not planned; write the joins one after another (a JOIN b ON ... JOIN c ON ...) or name the inner join in WITH".into(),
            )),
            other => Err(at(
                other,
                "FROM takes inputs, tables, WITH names and subqueries".into(),
            )),
        }
    }

    /// `name(stream, key, ...)`: a keyed processor `[functions]` declares, run over `stream`
    /// (an input or `WITH` name) grouped by the key columns, as a view.
    fn plan_processor(
        &mut self,
        factor: &TableFactor,
        name: &str,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> Planned<Side> {
        let Some((_, spec)) = self.catalog.processors.iter().find(|(n, _)| n == name) else {
            let known: Vec<&str> = self
                .catalog
                .processors
                .iter()
                .map(|(n, _)| n.as_str())
                .collect();
            return Err(at(
                factor,
                format!(
                    "'{name}' is not a processor; a table function is a keyed processor [functions] declares ({name} = {{ processor = \"{name}.wasm\" }}){}",
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!("; declared: {}", known.join(", "))
                    }
                ),
            ));
        };
        let names: Vec<String> = args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(SqlExpr::Identifier(id))) => {
                    Ok(id.value.clone())
                }
                other => Err(at(
                    other,
                    format!("{name}(stream, key, ...) takes the stream's name, then key columns"),
                )),
            })
            .collect::<Planned<_>>()?;
        let [stream, key @ ..] = names.as_slice() else {
            return Err(at(
                factor,
                format!("{name}(stream, key, ...) needs a stream"),
            ));
        };
        if key.is_empty() {
            return Err(at(
                factor,
                format!(
                    "{name}({stream}, ...) needs the key columns that group the rows: {name}({stream}, user_id)"
                ),
            ));
        }
        let source = match self.cte(stream) {
            Some(view) => view,
            None if self.catalog.inputs.iter().any(|(n, _)| n == stream) => stream.clone(),
            None => {
                return Err(at(
                    factor,
                    format!("'{stream}' is not an input or WITH name of the query"),
                ));
            }
        };
        let alias = alias.map_or_else(|| name.to_owned(), |a| a.name.value.clone());
        let view = self.fresh(&alias);
        let mut spec = spec.clone();
        spec.key = key.to_vec();
        self.views.push(ViewSpec {
            name: view.clone(),
            from: ViewFrom::Stream(source),
            transforms: Vec::new(),
            dedup: None,
            aggregate: None,
            processor: Some(spec),
        });
        Ok(Side::Stream(self.view_relation(view, alias)))
    }

    /// A view's rows as a relation qualified by `alias`.
    fn view_relation(&self, view: String, alias: String) -> Relation {
        Relation {
            stream: view,
            qualifiers: vec![alias.clone()],
            joined: false,
            leftmost: alias,
            watermark: self.query_watermark.clone(),
        }
    }

    /// `left JOIN right ON ...` as the view `name`.
    fn plan_join(
        &mut self,
        left: Side,
        right: Side,
        join: &ast::Join,
        name: &str,
    ) -> Planned<Relation> {
        let (join_type, constraint) = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinType::Inner, c),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinType::LeftOuter, c),
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinType::RightOuter, c),
            JoinOperator::FullOuter(c) => (JoinType::FullOuter, c),
            JoinOperator::LeftSemi(c) | JoinOperator::Semi(c) => (JoinType::LeftSemi, c),
            JoinOperator::LeftAnti(c) | JoinOperator::Anti(c) => (JoinType::LeftAnti, c),
            JoinOperator::CrossJoin(_) => {
                return Err(at(
                    join,
                    "a CROSS JOIN of streams is not supported (as in Spark); join on keys with JOIN ... ON".into(),
                ));
            }
            _ => {
                return Err(at(
                    join,
                    "this kind of join is not planned; write [INNER | LEFT | RIGHT | FULL] [OUTER] JOIN, LEFT SEMI JOIN or LEFT ANTI JOIN ... ON".into(),
                ));
            }
        };
        let on = match constraint {
            JoinConstraint::On(e) => e,
            JoinConstraint::Using(_) | JoinConstraint::Natural => {
                return Err(at(
                    join,
                    "USING and NATURAL are not planned; name the keys: ON a.id = b.id".into(),
                ));
            }
            JoinConstraint::None => {
                return Err(at(
                    join,
                    "a join needs ON with equal keys (a.id = b.id)".into(),
                ));
            }
        };
        // The stream is the left side of a stream–static join: an inner or right join with
        // the table first reads the same rows with the sides swapped.
        let (left, right, join_type) = match (left, right) {
            (Side::Table { name, .. }, Side::Table { .. }) => {
                return Err(at(
                    join,
                    format!(
                        "'{name}' and the table it joins are both static; a join reads a stream"
                    ),
                ));
            }
            (table @ Side::Table { .. }, Side::Stream(s)) => match join_type {
                JoinType::Inner => (s, table, JoinType::Inner),
                JoinType::RightOuter => (s, table, JoinType::LeftOuter),
                other => {
                    return Err(at(
                        join,
                        format!(
                            "a {} join with the static table on the left is not supported (Spark's rule: the stream is the side that is kept); put the stream first",
                            join_type_name(other)
                        ),
                    ));
                }
            },
            (Side::Stream(l), r) => (l, r, join_type),
        };
        let (right_qualifiers, right_stream) = match &right {
            Side::Stream(r) => (r.qualifiers.clone(), Some(r)),
            Side::Table { alias, .. } => (vec![alias.clone()], None),
        };
        let condition = Condition::of(on, &left, &right_qualifiers, right_stream)?;
        let right_alias = right_qualifiers[0].clone();
        let (right, within) = match right {
            Side::Table { spec, .. } => {
                if !matches!(
                    join_type,
                    JoinType::Inner | JoinType::LeftOuter | JoinType::LeftSemi | JoinType::LeftAnti
                ) {
                    return Err(at(
                        join,
                        format!(
                            "a {} join with a static table is not supported (Spark's rule: the stream must be the side that is kept); use JOIN, LEFT JOIN, LEFT SEMI JOIN or LEFT ANTI JOIN",
                            join_type_name(join_type)
                        ),
                    ));
                }
                (JoinRight::Table(spec), None)
            }
            Side::Stream(r) => {
                let within = condition.within(&left, &r)?;
                stream_join_rules(join, join_type, &left, &r, &within)?;
                (JoinRight::Input(r.stream.clone()), within)
            }
        };
        if join_type != JoinType::Inner && !condition.rest.is_empty() {
            return Err(at(
                &condition.rest[0],
                format!(
                    "a {} join's ON takes equal keys and an event-time range; filter other conditions in a subquery before the join",
                    join_type_name(join_type)
                ),
            ));
        }
        let transforms = condition
            .rest
            .iter()
            .map(|e| step(name, "on", ExprStepKind::Where(e.to_string())))
            .collect();
        let mut qualifiers = left.qualifiers.clone();
        if !join_type.is_left_only() {
            qualifiers.extend(right_qualifiers);
        }
        self.views.push(ViewSpec {
            name: name.to_owned(),
            from: ViewFrom::Join(Box::new(JoinSpec {
                left: left.stream.clone(),
                right,
                join_type,
                on: condition.keys,
                within,
                qualifiers: Some(JoinQualifiers {
                    left: left.leftmost.clone(),
                    right: right_alias,
                }),
            })),
            transforms,
            dedup: None,
            aggregate: None,
            processor: None,
        });
        Ok(Relation {
            stream: name.to_owned(),
            qualifiers,
            joined: true,
            leftmost: left.leftmost,
            watermark: self.query_watermark.clone(),
        })
    }
}

/// What a SELECT over joins lets each side do before the joins: filter its rows, and keep
/// only the columns the SELECT reads of it (Spark's predicate pushdown and column pruning).
#[derive(Debug, Default)]
pub(super) struct Pushdown {
    /// Conditions on one side, by its qualifier.
    pub conditions: Vec<(String, SqlExpr)>,
    /// The columns read of each side, by qualifier; `None` when that cannot be told (a `*`,
    /// an unqualified column).
    pub columns: Option<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>>,
}

/// The columns `select` (with its joins' `ON`) reads of each relation, by qualifier, when
/// every column it names is qualified by one of `FROM`'s relations and nothing is `*`.
pub(super) fn columns_read(
    select: &ast::Select,
) -> Option<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>> {
    let from = select.from.first()?;
    let mut read: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for f in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)) {
        read.insert(factor_alias(f)?, Default::default());
    }
    let mut exprs: Vec<SqlExpr> = Vec::new();
    for item in &select.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                exprs.push(e.clone())
            }
            _ => return None,
        }
    }
    exprs.extend(select.selection.clone());
    exprs.extend(select.having.clone());
    if let ast::GroupByExpr::Expressions(g, _) = &select.group_by {
        exprs.extend(g.iter().cloned());
    }
    for j in &from.joins {
        if let JoinOperator::Join(JoinConstraint::On(e))
        | JoinOperator::Inner(JoinConstraint::On(e))
        | JoinOperator::Left(JoinConstraint::On(e))
        | JoinOperator::LeftOuter(JoinConstraint::On(e))
        | JoinOperator::Right(JoinConstraint::On(e))
        | JoinOperator::RightOuter(JoinConstraint::On(e))
        | JoinOperator::FullOuter(JoinConstraint::On(e))
        | JoinOperator::LeftSemi(JoinConstraint::On(e))
        | JoinOperator::Semi(JoinConstraint::On(e))
        | JoinOperator::LeftAnti(JoinConstraint::On(e))
        | JoinOperator::Anti(JoinConstraint::On(e)) = &j.join_operator
        {
            exprs.push(e.clone());
        }
    }
    let mut known = true;
    for e in &mut exprs {
        let _ = visit_expressions_mut(e, |x| {
            match x {
                SqlExpr::CompoundIdentifier(ids) if ids.len() >= 2 => {
                    match read.get_mut(&ids[0].value) {
                        Some(columns) => {
                            columns.insert(ids[1].value.clone());
                        }
                        // `window.start`: the aggregation's window, no relation's column.
                        None if ["window", "session_window"]
                            .contains(&ids[0].value.to_ascii_lowercase().as_str()) => {}
                        None => known = false,
                    }
                }
                SqlExpr::Identifier(_) | SqlExpr::QualifiedWildcard(..) | SqlExpr::Wildcard(_) => {
                    known = false
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
    }
    known.then_some(read)
}

/// The name a relation of `FROM` qualifies its columns with: its alias, else its name.
fn factor_alias(f: &TableFactor) -> Option<String> {
    match f {
        TableFactor::Table { name, alias, .. } => Some(alias.as_ref().map_or_else(
            || name.to_string().trim_matches('`').to_owned(),
            |a| a.name.value.clone(),
        )),
        TableFactor::Derived { alias: Some(a), .. } => Some(a.name.value.clone()),
        _ => None,
    }
}

/// Splits a join's `WHERE` into conditions that read one side only and may filter it before
/// the join — every join inner, or the side the joins keep whole (the first, with left
/// joins) — and the rest.
/// A static table's rows are not filtered before the join (`is_table` names them).
pub(super) fn push_down(
    predicate: &SqlExpr,
    from: &ast::TableWithJoins,
    is_table: impl Fn(&str) -> bool,
    udafs: &[(String, crate::wasm::aggregate::UdafSpec)],
) -> (Vec<(String, SqlExpr)>, Option<SqlExpr>) {
    let alias_of = |f: &TableFactor| match f {
        TableFactor::Table { name, .. } if is_table(name.to_string().trim_matches('`')) => None,
        other => factor_alias(other),
    };
    let inner = |op: &JoinOperator| matches!(op, JoinOperator::Join(_) | JoinOperator::Inner(_));
    let keeps_left = |op: &JoinOperator| {
        inner(op)
            || matches!(
                op,
                JoinOperator::Left(_)
                    | JoinOperator::LeftOuter(_)
                    | JoinOperator::LeftSemi(_)
                    | JoinOperator::Semi(_)
                    | JoinOperator::LeftAnti(_)
                    | JoinOperator::Anti(_)
            )
    };
    let all_inner = from.joins.iter().all(|j| inner(&j.join_operator));
    let mut may: Vec<String> = Vec::new();
    if let Some(first) = alias_of(&from.relation)
        && from.joins.iter().all(|j| keeps_left(&j.join_operator))
    {
        may.push(first);
    }
    if all_inner {
        may.extend(from.joins.iter().filter_map(|j| alias_of(&j.relation)));
    }
    let mut parts = Vec::new();
    conjuncts(predicate, &mut parts);
    let mut pushed = Vec::new();
    let mut kept: Option<SqlExpr> = None;
    for part in parts {
        match only_qualifier(part, udafs) {
            Some(q) if may.contains(&q) => pushed.push((q, part.clone())),
            _ => {
                kept = Some(match kept {
                    None => part.clone(),
                    Some(k) => SqlExpr::BinaryOp {
                        left: Box::new(k),
                        op: BinaryOperator::And,
                        right: Box::new(part.clone()),
                    },
                })
            }
        }
    }
    (pushed, kept)
}

/// The one qualifier every column of `e` is named with, if there is one and no column is
/// unqualified and no subquery or aggregate is in it.
fn only_qualifier(
    e: &SqlExpr,
    udafs: &[(String, crate::wasm::aggregate::UdafSpec)],
) -> Option<String> {
    let mut e = e.clone();
    let mut found: Option<String> = None;
    let mut mixed = false;
    let _ = visit_expressions_mut(&mut e, |x| {
        match x {
            SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 => match &found {
                Some(q) if *q != ids[0].value => mixed = true,
                Some(_) => {}
                None => found = Some(ids[0].value.clone()),
            },
            SqlExpr::Identifier(_)
            | SqlExpr::CompoundIdentifier(_)
            | SqlExpr::Subquery(_)
            | SqlExpr::Exists { .. }
            | SqlExpr::InSubquery { .. } => mixed = true,
            SqlExpr::Function(f) if super::calls::is_aggregate_call(f, udafs) => mixed = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    if mixed { None } else { found }
}

/// Spark's words for a join type.
fn join_type_name(t: JoinType) -> &'static str {
    match t {
        JoinType::Inner => "inner",
        JoinType::LeftOuter => "LEFT OUTER",
        JoinType::RightOuter => "RIGHT OUTER",
        JoinType::FullOuter => "FULL OUTER",
        JoinType::LeftSemi => "LEFT SEMI",
        JoinType::LeftAnti => "LEFT ANTI",
    }
}

/// Spark's rules for a join between two streams: no anti join; an outer or semi join needs
/// an event-time range and watermarks on both sides' event times, so unmatched rows can be
/// given up on.
fn stream_join_rules(
    join: &ast::Join,
    join_type: JoinType,
    left: &Relation,
    right: &Relation,
    within: &Option<TimeRange>,
) -> Planned<()> {
    if join_type == JoinType::LeftAnti {
        return Err(at(
            join,
            "LEFT ANTI JOIN between two streams is not supported (as in Spark); LEFT JOIN and keep the rows whose right side is null".into(),
        ));
    }
    if join_type == JoinType::Inner {
        return Ok(());
    }
    let Some(range) = within else {
        return Err(at(
            join,
            format!(
                "a {} join between streams needs an event-time range in ON, so unmatched rows can be emitted once no match can come: add e.g. AND {r}.time BETWEEN {l}.time AND {l}.time + INTERVAL 1 HOUR",
                join_type_name(join_type),
                l = left.leftmost,
                r = right.leftmost
            ),
        ));
    };
    for (side, column) in [(left, &range.left), (right, &range.right)] {
        let bare = column.rsplit('.').next().unwrap_or(column);
        match &side.watermark {
            None => {
                return Err(at(
                    join,
                    format!(
                        "a {} join between streams needs a watermark on both sides: add watermark = {{ column = \"{bare}\", delay = \"10 minutes\" }} to [query.inputs.{}]",
                        join_type_name(join_type),
                        side.stream
                    ),
                ));
            }
            Some(w) if w != bare => {
                return Err(at(
                    join,
                    format!(
                        "'{column}' is not the watermarked event time of '{}' ('{w}'); the join's time range must use the columns the watermarks are on",
                        side.stream
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A column of one side, with a constant added (`i.t + INTERVAL 1 HOUR`): (side is left,
/// column as that side names it, µs added).
type TimeTerm = (bool, String, i64);

/// What an `ON` clause says: equal keys, bounds on the sides' event times, and the rest.
struct Condition {
    keys: Vec<(String, String)>,
    /// `right - left >= lower` and `<= upper` bounds, µs, each with its columns.
    lower: Vec<(String, String, i64)>,
    upper: Vec<(String, String, i64)>,
    rest: Vec<SqlExpr>,
}

impl Condition {
    fn of(
        on: &SqlExpr,
        left: &Relation,
        right_qualifiers: &[String],
        right: Option<&Relation>,
    ) -> Planned<Condition> {
        let mut c = Condition {
            keys: Vec::new(),
            lower: Vec::new(),
            upper: Vec::new(),
            rest: Vec::new(),
        };
        let mut parts = Vec::new();
        conjuncts(on, &mut parts);
        // Which side a column is of, and its name there.
        let side_of = |e: &SqlExpr| -> Option<(bool, String)> {
            let SqlExpr::CompoundIdentifier(ids) = e else {
                return None;
            };
            let [q, column] = ids.as_slice() else {
                return None;
            };
            let named = |relation: Option<&Relation>| match relation {
                // A join's side that is itself a join names its columns qualified.
                Some(r) if r.joined => format!("{}.{}", q.value, column.value),
                _ => column.value.clone(),
            };
            if left.qualifiers.contains(&q.value) {
                Some((true, named(Some(left))))
            } else if right_qualifiers.contains(&q.value) {
                Some((false, named(right)))
            } else {
                None
            }
        };
        for part in parts {
            match part {
                SqlExpr::BinaryOp {
                    left: a,
                    op: BinaryOperator::Eq,
                    right: b,
                } => match (side_of(a), side_of(b)) {
                    (Some((true, l)), Some((false, r))) | (Some((false, r)), Some((true, l))) => {
                        c.keys.push((l, r));
                    }
                    _ => {
                        unqualified_check(part, left, right_qualifiers)?;
                        c.rest.push(part.clone());
                    }
                },
                SqlExpr::BinaryOp {
                    left: a,
                    op,
                    right: b,
                } if matches!(
                    op,
                    BinaryOperator::Lt
                        | BinaryOperator::LtEq
                        | BinaryOperator::Gt
                        | BinaryOperator::GtEq
                ) =>
                {
                    match (time_term(a, &side_of)?, time_term(b, &side_of)?) {
                        (Some(x), Some(y)) if x.0 != y.0 => c.bound(x, op.clone(), y),
                        _ => c.rest.push(part.clone()),
                    }
                }
                SqlExpr::Between {
                    expr,
                    negated: false,
                    low,
                    high,
                } => {
                    let (t, lo, hi) = (
                        time_term(expr, &side_of)?,
                        time_term(low, &side_of)?,
                        time_term(high, &side_of)?,
                    );
                    match (t, lo, hi) {
                        (Some(t), Some(lo), Some(hi)) if t.0 != lo.0 && t.0 != hi.0 => {
                            c.bound(t.clone(), BinaryOperator::GtEq, lo);
                            c.bound(t, BinaryOperator::LtEq, hi);
                        }
                        _ => c.rest.push(part.clone()),
                    }
                }
                other => c.rest.push(other.clone()),
            }
        }
        if c.keys.is_empty() {
            return Err(at(
                on,
                format!(
                    "a join needs at least one pair of equal keys, one column of each side (e.g. {}.id = {}.id); a join on a range alone would keep every row",
                    left.leftmost, right_qualifiers[0]
                ),
            ));
        }
        Ok(c)
    }

    /// Records `x op y` as a bound on `right - left`.
    fn bound(&mut self, x: TimeTerm, op: BinaryOperator, y: TimeTerm) {
        // Put the right side's term first: `r + a op l + b`, i.e. `r - l op b - a`.
        let (r, l, op) = if x.0 { (y, x, flip(op)) } else { (x, y, op) };
        let k = l.2 - r.2;
        let columns = (l.1.clone(), r.1.clone());
        match op {
            BinaryOperator::GtEq => self.lower.push((columns.0, columns.1, k)),
            BinaryOperator::Gt => self.lower.push((columns.0, columns.1, k + 1)),
            BinaryOperator::LtEq => self.upper.push((columns.0, columns.1, k)),
            _ => self.upper.push((columns.0, columns.1, k - 1)),
        }
    }

    /// The event-time range the bounds make, if any: both a lower and an upper one, over one
    /// column per side.
    fn within(&self, left: &Relation, right: &Relation) -> Planned<Option<TimeRange>> {
        if self.lower.is_empty() && self.upper.is_empty() {
            return Ok(None);
        }
        let all: Vec<&(String, String, i64)> = self.lower.iter().chain(&self.upper).collect();
        if all.iter().any(|(l, r, _)| (l, r) != (&all[0].0, &all[0].1)) {
            return Err(whole(format!(
                "the join of '{}' and '{}' bounds different event-time columns; bound one column of each side",
                left.stream, right.stream
            )));
        }
        let (Some(lower), Some(upper)) = (
            self.lower.iter().map(|b| b.2).max(),
            self.upper.iter().map(|b| b.2).min(),
        ) else {
            return Err(whole(format!(
                "the event-time range between '{}' and '{}' is open on one end; bound it on both (BETWEEN a AND b, or >= and <=)",
                left.stream, right.stream
            )));
        };
        if lower > upper {
            return Err(whole(format!(
                "the event-time range between '{}' and '{}' is empty (its lower bound is above its upper bound)",
                left.stream, right.stream
            )));
        }
        Ok(Some(TimeRange {
            left: all[0].0.clone(),
            right: all[0].1.clone(),
            lower_us: lower,
            upper_us: upper,
        }))
    }
}

/// An unqualified column in an `ON` equality is refused: which side it is cannot be told
/// before the rows arrive.
fn unqualified_check(e: &SqlExpr, left: &Relation, right: &[String]) -> Planned<()> {
    if let SqlExpr::BinaryOp {
        left: a, right: b, ..
    } = e
    {
        for side in [a, b] {
            if let SqlExpr::Identifier(id) = side.as_ref() {
                return Err(at(
                    side.as_ref(),
                    format!(
                        "name the side of '{}' in ON: {}.{} or {}.{}",
                        id.value, left.leftmost, id.value, right[0], id.value
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn flip(op: BinaryOperator) -> BinaryOperator {
    match op {
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        _ => BinaryOperator::LtEq,
    }
}

/// `AND`-ed parts of `e`.
fn conjuncts<'e>(e: &'e SqlExpr, out: &mut Vec<&'e SqlExpr>) {
    match e {
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        SqlExpr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// `side.column`, `side.column + INTERVAL ...` or `side.column - INTERVAL ...`.
fn time_term(
    e: &SqlExpr,
    side_of: &impl Fn(&SqlExpr) -> Option<(bool, String)>,
) -> Planned<Option<TimeTerm>> {
    if let Some((left, column)) = side_of(e) {
        return Ok(Some((left, column, 0)));
    }
    let SqlExpr::BinaryOp { left, op, right } = e else {
        return Ok(None);
    };
    let sign = match op {
        BinaryOperator::Plus => 1,
        BinaryOperator::Minus => -1,
        _ => return Ok(None),
    };
    let Some((side, column)) = side_of(left) else {
        return Ok(None);
    };
    if !matches!(right.as_ref(), SqlExpr::Interval(_) | SqlExpr::Value(_)) {
        return Ok(None);
    }
    let d = super::calls::duration(right)?;
    let us = d.as_micros().min(i64::MAX as u128) as i64;
    Ok(Some((side, column, sign * us)))
}
