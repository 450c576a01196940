//! `sql = "SELECT ..."`: a query written as Spark SQL over its named inputs and tables,
//! planned onto the same operators a TOML query uses (expression steps, views, joins, the
//! windowed aggregation), so it runs, checkpoints, explains and validates exactly as the TOML
//! form would.
//!
//! The planner reads sqlparser's AST (Spark's syntax through the Databricks dialect) and
//! writes views: each join a view (its keys and event-time range taken from `ON`), each
//! aggregation a view read by its projection, each `WITH` name and subquery a view, each
//! `UNION ALL` a view of its branches. What the plan cannot run — ORDER BY on a stream, a
//! cross join, an outer join between streams without a time range — is refused with its
//! position and Spark's reason, never approximated.
//!
//! Column names a join could make ambiguous stay qualified (`o.amount`) in the steps after
//! it and resolve when the schema is known (see [`crate::qualifier`]).

mod calls;
mod from;
mod select;

use datafusion_sql::sqlparser::ast::{self, SetExpr, Statement};
use datafusion_sql::sqlparser::dialect::DatabricksDialect;
use datafusion_sql::sqlparser::parser::ParserError;

use crate::expr::parse_guard::Refused;

use super::*;
use crate::operators::join::TableSpec;

/// The name of the view an aggregation in SQL becomes.
pub const SQL_VIEW: &str = "sql";

/// What a SQL query becomes: the pieces a TOML query would have written.
#[derive(Debug)]
pub(super) struct SqlPlan {
    /// The views it builds on, each reading inputs and the views before it.
    pub views: Vec<ViewSpec>,
    /// What the query reads.
    pub combine: Combine,
    /// The query's own steps.
    pub transforms: Vec<StepSpec>,
    /// The SQL it was planned from.
    pub text: String,
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

/// An expression step of `scope` (a view, or `sql` for the query's own), named after what it
/// does in the SQL.
fn step(scope: &str, what: &str, kind: ExprStepKind) -> StepSpec {
    StepSpec::Expr(ExprStepSpec {
        name: format!("{scope}.{what}"),
        kind,
        on_error: crate::wasm::spec::OnError::Fail,
    })
}

/// What the SQL may name: the query's inputs (with the column their watermark is on) and
/// its static tables.
pub(super) struct Catalog<'a> {
    /// Each input's name and watermarked column.
    pub inputs: Vec<(&'a str, Option<&'a str>)>,
    /// `[query.tables.NAME]`.
    pub tables: &'a [(String, TableSpec)],
    /// Wasm aggregates `[functions]` declares, by name.
    pub aggregates: &'a [(String, UdafSpec)],
    /// Keyed processors `[functions]` declares, by name: table functions.
    pub processors: &'a [(String, ProcessorSpec)],
}

/// Rows on their way: the stream they are read from and the steps over it.
struct Stage {
    from: String,
    transforms: Vec<StepSpec>,
}

/// Plans one statement into views.
struct Planner<'a> {
    catalog: &'a Catalog<'a>,
    views: Vec<ViewSpec>,
    /// `WITH` names in scope and their views.
    ctes: Vec<(String, String)>,
    /// The event-time column the query's watermark is on (views carry it).
    query_watermark: Option<String>,
}

impl<'a> Planner<'a> {
    /// `base`, or `base_2`, ... : a view name no input, table or view has.
    fn fresh(&self, base: &str) -> String {
        let taken = |n: &str| {
            self.catalog.inputs.iter().any(|(i, _)| *i == n)
                || self.catalog.tables.iter().any(|(t, _)| t == n)
                || self.views.iter().any(|v| v.name == n)
                || n == SQL_VIEW
        };
        if !taken(base) && base != SQL_VIEW {
            return base.to_owned();
        }
        (2..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !taken(n))
            .unwrap_or_else(|| base.to_owned())
    }

    /// The view a `WITH` name stands for.
    fn cte(&self, name: &str) -> Option<String> {
        self.ctes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// A query (`WITH ... SELECT ...`) as a stage of `scope`.
    fn plan_query(&mut self, query: &ast::Query, scope: &str) -> Planned<Stage> {
        if let Some(order) = &query.order_by {
            return Err(at(
                order,
                "ORDER BY is not supported on a stream (as in Spark, outside complete mode); sort where you read the output".into(),
            ));
        }
        if let Some(limit) = &query.limit_clause {
            return Err(at(limit, "LIMIT is not supported on a stream".into()));
        }
        let scoped = self.ctes.len();
        if let Some(with) = &query.with {
            if with.recursive {
                return Err(at(
                    with,
                    "WITH RECURSIVE is not supported on a stream".into(),
                ));
            }
            for cte in &with.cte_tables {
                let name = cte.alias.name.value.clone();
                let view = self.fresh(&name);
                self.plan_query_as_view(&cte.query, &view)?;
                self.ctes.push((name, view));
            }
        }
        let stage = self.plan_set_expr(&query.body, scope);
        self.ctes.truncate(scoped);
        stage
    }

    /// A query as the view `name`.
    fn plan_query_as_view(&mut self, query: &ast::Query, name: &str) -> Planned<()> {
        let stage = self.plan_query(query, name)?;
        if stage.from == name && stage.transforms.is_empty() {
            return Ok(());
        }
        self.views.push(ViewSpec {
            name: name.to_owned(),
            from: ViewFrom::Stream(stage.from),
            transforms: stage.transforms,
            dedup: None,
            aggregate: None,
            processor: None,
        });
        Ok(())
    }

    fn plan_set_expr(&mut self, body: &SetExpr, scope: &str) -> Planned<Stage> {
        match body {
            SetExpr::Select(s) => self.plan_select(s, scope),
            SetExpr::Query(q) => self.plan_query(q, scope),
            SetExpr::SetOperation {
                op: ast::SetOperator::Union,
                set_quantifier: ast::SetQuantifier::All,
                ..
            } => self.plan_union(body, scope),
            SetExpr::SetOperation {
                op: ast::SetOperator::Union,
                ..
            } => Err(at(
                body,
                "UNION removes duplicates, which a stream cannot know it has seen all of; write UNION ALL (then GROUP BY with a window to count each once)".into(),
            )),
            other => Err(at(
                other,
                "only SELECT and UNION ALL are planned (INTERSECT and EXCEPT need the whole input)".into(),
            )),
        }
    }

    /// `a UNION ALL b [UNION ALL ...]`: each branch a view (`<scope>_0`, `<scope>_1`, ...)
    /// and the view `<scope>` their union; the branches' columns must match when they run.
    fn plan_union(&mut self, body: &SetExpr, scope: &str) -> Planned<Stage> {
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
        let mut names = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let name = self.fresh(&format!("{scope}_{i}"));
            let stage = self.plan_set_expr(part, &name)?;
            self.views.push(ViewSpec {
                name: name.clone(),
                from: ViewFrom::Stream(stage.from),
                transforms: stage.transforms,
                dedup: None,
                aggregate: None,
                processor: None,
            });
            names.push(name);
        }
        let union = if scope == SQL_VIEW {
            SQL_VIEW.to_owned()
        } else {
            scope.to_owned()
        };
        self.views.push(ViewSpec {
            name: union.clone(),
            from: ViewFrom::Union(names),
            transforms: Vec::new(),
            dedup: None,
            aggregate: None,
            processor: None,
        });
        Ok(Stage {
            from: union,
            transforms: Vec::new(),
        })
    }
}

/// sqlparser's error, placed where it says (line 0 when it does not).
fn parse_failure(e: ParserError) -> SqlError {
    let failure = crate::expr::parse_guard::parse_failure(&e);
    let (line, column) = failure.position.unwrap_or((0, 0));
    SqlError {
        line,
        column,
        message: failure.message,
    }
}

/// Plans `text` over what `catalog` names.
pub(super) fn plan(text: &str, catalog: &Catalog<'_>) -> Planned<SqlPlan> {
    let dialect = DatabricksDialect {};
    let statements = match crate::expr::parse_guard::checked_parser(&dialect, text) {
        Ok(mut parser) => parser.parse_statements().map_err(parse_failure)?,
        Err(Refused::Parse(e)) => return Err(parse_failure(e)),
        Err(Refused::Shape(u)) => {
            return Err(SqlError {
                line: u.line,
                column: u.column,
                message: u.message,
            });
        }
    };
    let query = match statements.as_slice() {
        [Statement::Query(q)] => q,
        [] => return Err(whole("no statement: write one SELECT".into())),
        [other] => return Err(at(other, "a query is one SELECT statement".into())),
        [_, second, ..] => return Err(at(second, "one statement per query".into())),
    };
    let mut planner = Planner {
        catalog,
        views: Vec::new(),
        ctes: Vec::new(),
        query_watermark: catalog
            .inputs
            .iter()
            .find_map(|(_, w)| w.map(str::to_owned)),
    };
    let stage = planner.plan_query(query, SQL_VIEW)?;
    let views = planner.views;
    let only_input = matches!(catalog.inputs.as_slice(), [(name, _)] if *name == stage.from);
    let combine = if views.is_empty() && only_input {
        Combine::Single
    } else {
        Combine::From(stage.from)
    };
    Ok(SqlPlan {
        views,
        combine,
        transforms: stage.transforms,
        text: text.trim().to_owned(),
    })
}

/// Largest SQL file a pipeline may name: a query is text a person wrote, and a path to
/// something endless (`/dev/zero`, a FIFO fed forever) must not exhaust memory.
const MAX_SQL_FILE_BYTES: u64 = 1 << 20;

/// Reads a `sql = { file = ... }` file, refusing one past [`MAX_SQL_FILE_BYTES`].
fn read_sql_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_SQL_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SQL_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "it is larger than {MAX_SQL_FILE_BYTES} bytes; is it the right file?"
        )));
    }
    Ok(text)
}

/// The query's `sql` (a string, or `{ file = "q.sql" }` beside the pipeline), planned over its
/// inputs: `None` when the query has no `sql`; `Some(None)` when it does and a problem was
/// reported (at the TOML line of the SQL's line, with the SQL's line and column).
pub(super) fn parse_sql(
    ctx: &Ctx,
    q: &mut TableReader,
    base: &Path,
    inputs: Option<&[InputSpec]>,
    tables: Option<&[(String, TableSpec)]>,
    functions: &super::functions::Declared,
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
            match read_sql_file(&path) {
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
    let catalog = Catalog {
        inputs: inputs?
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    i.watermark.as_ref().map(|w| w.column.as_str()),
                )
            })
            .collect(),
        tables: tables?,
        aggregates: &functions.aggregate,
        processors: &functions.processor,
    };
    match plan(&text, &catalog) {
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
    use crate::operators::join::{JoinRight, JoinType};
    use crate::operators::window::WindowSpec;

    /// Plans `text` over inputs (`name` or `name@watermark_column`) and no tables.
    fn plan_over(text: &str, inputs: &[&str]) -> Planned<SqlPlan> {
        let tables = [("users".to_owned(), users_table())];
        let catalog = Catalog {
            inputs: inputs
                .iter()
                .map(|i| match i.split_once('@') {
                    Some((n, w)) => (n, Some(w)),
                    None => (*i, None),
                })
                .collect(),
            tables: &tables,
            aggregates: &[],
            processors: &[],
        };
        plan(text, &catalog)
    }

    /// A files table, as `[query.tables.users]` gives it.
    fn users_table() -> TableSpec {
        let text = r#"[[query]]
name = "q"
sql = "SELECT o.id, u.name FROM orders o JOIN users u ON o.uid = u.id"
[query.inputs.orders]
format = "json"
path = "in"
schema = "id BIGINT, uid BIGINT"
[query.tables.users]
format = "json"
path = "users"
schema = "id BIGINT, name STRING"
[query.sink]
format = "console"
"#;
        let pipeline = crate::pipeline::Pipeline::parse(text, Path::new("p.toml")).unwrap();
        let views = &pipeline.queries[0].views;
        let Some(j) = views.iter().find_map(|v| match &v.from {
            ViewFrom::Join(j) => Some(j),
            _ => None,
        }) else {
            panic!("{views:?}")
        };
        let JoinRight::Table(t) = &j.right else {
            panic!("{j:?}")
        };
        t.clone()
    }

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
        let p = plan_over(
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
        let p = plan_over(
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
        let e = plan_over("SELECT * FROM ordrs", &["orders"]).unwrap_err();
        assert_eq!((e.line, e.column), (1, 15));
        assert!(e.message.contains("did you mean 'orders'"), "{}", e.message);
        let e = plan_over(
            "SELECT *\nFROM orders o\nCROSS JOIN clicks c",
            &["orders", "clicks"],
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("CROSS JOIN"), "{}", e.message);
        let e = plan_over(
            "SELECT *\nFROM impressions i\nLEFT JOIN clicks c ON c.ad = i.ad",
            &["impressions@it", "clicks@ct"],
        )
        .unwrap_err();
        assert!(e.message.contains("time range"), "{}", e.message);
        let e = plan_over(
            "SELECT * FROM orders o JOIN users u ON uid = u.id",
            &["orders"],
        )
        .unwrap_err();
        assert!(e.message.contains("o.uid"), "{}", e.message);
        let e = plan_over(
            "SELECT * FROM users u RIGHT JOIN orders o ON o.uid = u.id",
            &["orders"],
        );
        assert!(
            e.is_ok(),
            "a right join with the table first reads as a left join: {e:?}"
        );
        let e = plan_over(
            "SELECT * FROM users u LEFT JOIN orders o ON o.uid = u.id",
            &["orders"],
        )
        .unwrap_err();
        assert!(e.message.contains("put the stream first"), "{}", e.message);
        let e = plan_over("SELECT id FROM orders WHERE sum(x) > 1", &["orders"]).unwrap_err();
        assert!(e.message.contains("HAVING"), "{}", e.message);
        let e = plan_over("SELEC id FROM orders", &["orders"]).unwrap_err();
        assert_eq!(e.line, 1, "{e:?}");
    }

    #[test]
    fn a_join_is_a_view_with_keys_and_the_time_range_from_on() {
        let p = plan_over(
            "SELECT i.ad, i.it, c.ct FROM impressions i LEFT OUTER JOIN clicks c \
             ON c.ad = i.ad AND c.ct BETWEEN i.it AND i.it + INTERVAL 1 HOUR",
            &["impressions@it", "clicks@ct"],
        )
        .unwrap();
        let join = |p: &SqlPlan| {
            p.views
                .iter()
                .find(|v| matches!(v.from, ViewFrom::Join(_)))
                .cloned()
                .unwrap()
        };
        // Each side keeps only the columns the SELECT reads, before the join.
        let names: Vec<&str> = p.views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["sql_i", "sql_c", "sql_join0"]);
        assert_eq!(
            kinds(&p.views[1].transforms),
            ["SelectExpr([\"`ad`\", \"`ct`\"])"]
        );
        let view = join(&p);
        let ViewFrom::Join(j) = &view.from else {
            panic!("{view:?}")
        };
        assert_eq!(j.on, [("ad".to_owned(), "ad".to_owned())]);
        assert_eq!(j.join_type, JoinType::LeftOuter);
        let w = j.within.as_ref().unwrap();
        assert_eq!(
            (w.left.as_str(), w.right.as_str(), w.lower_us, w.upper_us),
            ("it", "ct", 0, 3_600_000_000)
        );
        // `>=`/`<` pairs written the other way round give the same kind of range.
        let p = plan_over(
            "SELECT * FROM impressions i JOIN clicks c ON i.ad = c.ad \
             AND i.it <= c.ct AND c.ct < i.it + INTERVAL '30' MINUTE AND c.ok",
            &["impressions@it", "clicks@ct"],
        )
        .unwrap();
        let view = join(&p);
        let ViewFrom::Join(j) = &view.from else {
            panic!()
        };
        let w = j.within.as_ref().unwrap();
        assert_eq!((w.lower_us, w.upper_us), (0, 30 * 60_000_000 - 1));
        // What is neither a key nor a bound filters the joined rows (an inner join).
        assert_eq!(kinds(&view.transforms), ["Where(\"c.ok\")"]);
        assert!(matches!(p.combine, Combine::From(ref v) if v == &view.name));
    }

    #[test]
    fn with_and_subqueries_are_views_and_a_join_then_aggregation_reads_them() {
        let p = plan_over(
            "WITH big AS (SELECT * FROM orders WHERE amount > 10) \
             SELECT window.start AS s, u.name, sum(b.amount) AS total \
             FROM big b JOIN users u ON b.uid = u.id \
             GROUP BY window(b.ts, '5 minutes'), u.name",
            &["orders@ts"],
        )
        .unwrap();
        let names: Vec<&str> = p.views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["big", "sql_b", "sql_join0", "sql"]);
        let agg = p.views[3].aggregate.as_ref().unwrap();
        assert_eq!(agg.group_by, ["__sql_key0"]);
        assert_eq!(agg.aggs[0].column.as_deref(), Some("__sql_arg0"));
        assert!(matches!(&agg.window, Some(WindowSpec::Fixed { column, .. }) if column == "ts"));
        assert_eq!(
            kinds(&p.views[3].transforms),
            ["SelectExpr([\"*\", \"u.name AS `__sql_key0`\", \"b.amount AS `__sql_arg0`\"])"]
        );
        assert_eq!(
            kinds(&p.transforms),
            [
                "SelectExpr([\"window.start AS s\", \"`__sql_key0` AS `name`\", \"`total` AS total\"])"
            ]
        );
        let p = plan_over(
            "SELECT s.id FROM (SELECT id, amount FROM orders WHERE amount > 1) AS s",
            &["orders"],
        )
        .unwrap();
        assert_eq!(p.views[0].name, "s");
        assert!(matches!(p.combine, Combine::From(ref v) if v == "s"));
    }
}
