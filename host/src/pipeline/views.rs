//! `[query.views.NAME]`: named intermediate results a query builds on, so one query can say
//! any plan the engine runs — a join of a union, two joins, a join after an aggregation, an
//! aggregation of an aggregation.
//!
//! A view reads one stream (`from`), a union of several (`union`) or a join (`join`, as
//! `[query.join]`), each an input or an earlier view; then its own steps and at most one
//! stateful operator. The query itself reads its `[query.join]`, `[query.union]` or `from`
//! over the same names (default: the last view), then its steps and operators as always. A
//! SQL front-end compiles onto the same shape: each subquery a view.
//!
//! Spark's rules for the composed plan are checked here, each at its line: chained stateful
//! operators run in append mode only; a join between streams emits in append mode only; an
//! aggregation in append mode needs a watermark on its event time.

use super::combine::{Stream, j_error, parse_join};
use super::*;

/// One `[query.views.NAME]`.
#[derive(Debug, Clone)]
pub struct ViewSpec {
    /// Its name, which later views and the query refer to.
    pub name: String,
    /// What it reads.
    pub from: ViewFrom,
    /// Its steps, in order.
    pub transforms: Vec<StepSpec>,
    /// Its `dropDuplicates`.
    pub dedup: Option<DedupSpec>,
    /// Its `aggregate`.
    pub aggregate: Option<AggregateSpec>,
    /// Its `processor`.
    pub processor: Option<ProcessorSpec>,
}

impl ViewSpec {
    /// Whether it keeps state: a stateful operator, or a join between streams.
    pub fn is_stateful(&self) -> bool {
        self.dedup.is_some()
            || self.aggregate.is_some()
            || self.processor.is_some()
            || matches!(&self.from, ViewFrom::Join(j) if matches!(j.right, JoinRight::Input(_)))
    }

    /// The stateful operator's state id: `<view>.<kind>` (the query's own are named by kind).
    pub fn operator_id(&self, kind: &str) -> String {
        format!("{}.{kind}", self.name)
    }
}

/// What a view (or, with views, the query) reads.
#[derive(Debug, Clone)]
pub enum ViewFrom {
    /// One input or view.
    Stream(String),
    /// The rows of several, whose columns must match.
    Union(Vec<String>),
    /// A join: `left` and `right` name inputs or views, or `right` is a table.
    Join(Box<JoinSpec>),
}

impl ViewFrom {
    /// The streams it reads.
    pub fn reads(&self) -> Vec<&str> {
        match self {
            ViewFrom::Stream(s) => vec![s.as_str()],
            ViewFrom::Union(names) => names.iter().map(String::as_str).collect(),
            ViewFrom::Join(j) => {
                let mut names = vec![j.left.as_str()];
                if let JoinRight::Input(r) = &j.right {
                    names.push(r.as_str());
                }
                names
            }
        }
    }
}

/// The keys of a `[query.views.NAME]` table.
const VIEW_KEYS: &[&str] = &[
    "from",
    "union",
    "join",
    "transform",
    "dropDuplicates",
    "aggregate",
    "processor",
];

/// `[query.views.NAME]` tables, in file order; each may read the inputs and the views before it.
pub(super) fn parse_views(
    ctx: &Ctx,
    label: &str,
    node: &Spanned<Node>,
    base: &Path,
    inputs: &[InputSpec],
    outputs: &[(String, SinkSpec)],
) -> Option<Vec<ViewSpec>> {
    let Node::Table(entries) = node.get_ref() else {
        ctx.report(
            node.span().start,
            Some(label),
            "views",
            format!(
                "expected one [query.views.NAME] table per view, found {}",
                node.get_ref().kind()
            ),
        );
        return None;
    };
    let mut entries: Vec<_> = entries.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    // The query's watermark travels with the rows through every view.
    let watermark = inputs.iter().find_map(|i| i.watermark.clone());
    let mut streams: Vec<Stream> = inputs.iter().map(Stream::of_input).collect();
    let mut views = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let name = key.get_ref().clone();
        let prefix = format!("views.{name}");
        if streams.iter().any(|s| s.name == name) {
            ctx.report(
                key.span().start,
                Some(label),
                &prefix,
                format!("'{name}' is already the name of an input or a view; give each its own"),
            );
            ok = false;
            continue;
        }
        match parse_view(ctx, label, value, base, &streams, &prefix, outputs) {
            Some(mut view) => {
                view.name = name.clone();
                views.push(view);
            }
            None => ok = false,
        }
        streams.push(Stream {
            name,
            watermark: watermark.clone(),
        });
    }
    ok.then_some(views)
}

/// One view's table (its name is set by the caller).
fn parse_view(
    ctx: &Ctx,
    label: &str,
    node: &Spanned<Node>,
    base: &Path,
    streams: &[Stream],
    prefix: &str,
    outputs: &[(String, SinkSpec)],
) -> Option<ViewSpec> {
    let mut v = TableReader::new(ctx, Some(label), prefix, node)?;
    let from = parse_from(ctx, label, &mut v, node, base, streams, prefix);
    let transforms = parse_transforms(ctx, label, &mut v, base, &format!("{prefix}."), outputs);
    let dedup = v
        .get("dropDuplicates")
        .and_then(|d| parse_dedup(ctx, label, d));
    let aggregate = v
        .get("aggregate")
        .and_then(|a| parse_aggregate(ctx, label, a, base));
    let processor = v
        .get("processor")
        .and_then(|p| parse_processor(ctx, label, p, base));
    let operators = [dedup.is_some(), aggregate.is_some(), processor.is_some()];
    if operators.iter().filter(|o| **o).count() > 1 {
        v.error_here(
            "aggregate",
            "a view has at most one stateful operator (dropDuplicates, aggregate or processor); chain them through another view".to_owned(),
        );
    }
    v.finish(VIEW_KEYS);
    Some(ViewSpec {
        name: String::new(),
        from: from?,
        transforms,
        dedup,
        aggregate,
        processor,
    })
}

/// A view's (or, with views, the query's) `from`, `union` or `join`: exactly one of them,
/// naming streams declared before it. `default` is what the query reads without any.
pub(super) fn parse_from(
    ctx: &Ctx,
    label: &str,
    r: &mut TableReader,
    node: &Spanned<Node>,
    base: &Path,
    streams: &[Stream],
    prefix: &str,
) -> Option<ViewFrom> {
    // The query's own keys have no prefix (`join`), a view's do (`views.v.join`).
    let sub = |key: &str| match prefix {
        "" => key.to_owned(),
        p => format!("{p}.{key}"),
    };
    let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    let known = |r: &TableReader, key: &str, name: &str| {
        let ok = names.contains(&name);
        if !ok {
            r.error_at(
                offset_of(node, key),
                key,
                format!(
                    "'{name}' is not an input or an earlier view (there are: {})",
                    names.join(", ")
                ),
            );
        }
        ok
    };
    let (from, union, join) = (r.get("from"), r.get("union"), r.get("join"));
    let given = [from.is_some(), union.is_some(), join.is_some()];
    match given.iter().filter(|g| **g).count() {
        0 => {
            r.error_here(
                "from",
                format!(
                    "say what it reads: from = \"<one of {}>\", union = [...] or a join table",
                    names.join(", ")
                ),
            );
            return None;
        }
        1 => {}
        _ => {
            r.error_here(
                "from",
                "give one of from, union or join, not several".to_owned(),
            );
            return None;
        }
    }
    if from.is_some() {
        let name = r.string("from")?;
        return known(r, "from", &name).then_some(ViewFrom::Stream(name));
    }
    if let Some(u) = union {
        // `union = ["a", "b"]`, or the `[query.union] inputs = [...]` table form.
        let list = match u.get_ref() {
            Node::Table(_) => {
                let mut t = TableReader::new(ctx, Some(label), &sub("union"), u)?;
                let list = t.string_list("inputs");
                t.finish(&["inputs"]);
                list
            }
            _ => r.string_list("union"),
        }?;
        if list.len() < 2 {
            r.error_here("union", "a union needs at least two streams".to_owned());
            return None;
        }
        if !list.iter().all(|n| known(r, "union", n)) {
            return None;
        }
        let columns: Vec<&str> = list
            .iter()
            .filter_map(|n| streams.iter().find(|s| &s.name == n))
            .filter_map(|s| s.watermark.as_ref().map(|w| w.column.as_str()))
            .collect();
        if columns.windows(2).any(|w| w[0] != w[1]) {
            r.error_here(
                "union",
                format!(
                    "the inputs' watermarks name different event-time columns ({}); after a union the rows share one, so name the same column in each",
                    columns.join(", ")
                ),
            );
        }
        return Some(ViewFrom::Union(list));
    }
    let j = join?;
    let spec = parse_join(ctx, label, j, base, streams, &sub("join"), None)?;
    if let JoinRight::Input(right) = &spec.right
        && right == &spec.left
    {
        j_error(
            ctx,
            label,
            node,
            &sub("join.right"),
            "a stream cannot be joined with itself here; read it twice as two inputs".to_owned(),
        );
        return None;
    }
    Some(ViewFrom::Join(Box::new(spec)))
}

/// Each view's steps and operators checked against the schema reaching it, where that is
/// known before anything runs (declared inputs, expression steps, joins of known sides), each
/// problem at its view's key (or a SQL query's `sql`); `known` gains what each view emits
/// when that is known too (a view without an aggregation or processor).
pub(super) fn check_view_schemas(
    q: &TableReader,
    node: &Spanned<Node>,
    known: &mut Vec<(String, SchemaRef)>,
    views: &[ViewSpec],
    options: &crate::expr::PlanOptions,
) {
    let at = |key: &str| {
        let offset = offset_of(node, key);
        if offset == node.span().start {
            offset_of(node, "sql")
        } else {
            offset
        }
    };
    for view in views {
        let find = |name: &str| {
            known
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
        };
        let key = format!("views.{}", view.name);
        let input = match &view.from {
            ViewFrom::Stream(s) => find(s),
            // The branches' columns are checked to match when they run.
            ViewFrom::Union(names) => names.first().and_then(|n| find(n)),
            ViewFrom::Join(j) => {
                let right = match &j.right {
                    JoinRight::Input(r) => find(r),
                    JoinRight::Table(t) => match &t.source {
                        TableSource::Files(files) => SourceSpec::File(files.clone()).known_schema(),
                        TableSource::Postgres(_) | TableSource::Cassandra(_) => None,
                    },
                };
                match (find(&j.left), right) {
                    (Some(l), Some(r)) => {
                        match crate::operators::join::JoinLayout::new(j, &l, &r) {
                            Ok(layout) => Some(layout.schema),
                            Err(e) => {
                                let key = format!("{key}.join.on");
                                q.error_at(at(&key), &key, e.to_string());
                                None
                            }
                        }
                    }
                    _ => None,
                }
            }
        };
        let prefix = format!("{key}.");
        let after = check_expression_steps(q, node, &prefix, input, &view.transforms, options);
        let Some(schema) = after else {
            continue;
        };
        for p in schema_problems(&schema, &None, &view.dedup, &view.aggregate) {
            let key = format!("{prefix}{}", p.key);
            q.error_at(at(&key), &key, p.message);
        }
        if let Some(Err(p)) = view.processor.as_ref().map(|p| p.check_input(&schema)) {
            let key = format!("{prefix}{}", p.key);
            q.error_at(at(&key), &key, p.message);
        }
        if view.aggregate.is_none() && view.processor.is_none() {
            known.push((view.name.clone(), schema));
        }
    }
}

impl Combine {
    /// What the query's own stage reads, as a view's `from` would say it.
    pub fn reads(&self) -> ViewFrom {
        match self {
            Combine::Single => ViewFrom::Stream("source".to_owned()),
            Combine::From(name) => ViewFrom::Stream(name.clone()),
            Combine::Union(names) => ViewFrom::Union(names.clone()),
            Combine::StaticJoin(j) | Combine::StreamJoin(j) => ViewFrom::Join(Box::new(j.clone())),
        }
    }
}

/// With views, what the query reads: its `from`, `[query.union]` or `[query.join]` over the
/// inputs and views, or (none given) the last view.
pub(super) fn query_combine(
    ctx: &Ctx,
    label: &str,
    q: &mut TableReader,
    node: &Spanned<Node>,
    base: &Path,
    inputs: &[InputSpec],
    views: &[ViewSpec],
) -> Option<Combine> {
    let watermark = inputs.iter().find_map(|i| i.watermark.clone());
    let streams: Vec<Stream> = inputs
        .iter()
        .map(Stream::of_input)
        .chain(views.iter().map(|v| Stream {
            name: v.name.clone(),
            watermark: watermark.clone(),
        }))
        .collect();
    if q.get("from").is_none() && q.get("union").is_none() && q.get("join").is_none() {
        return views.last().map(|v| Combine::From(v.name.clone()));
    }
    Some(match parse_from(ctx, label, q, node, base, &streams, "")? {
        ViewFrom::Stream(name) => Combine::From(name),
        ViewFrom::Union(names) => Combine::Union(names),
        ViewFrom::Join(j) if matches!(j.right, JoinRight::Table(_)) => Combine::StaticJoin(*j),
        ViewFrom::Join(j) => Combine::StreamJoin(*j),
    })
}

/// Spark's rules for a plan with views, each reported at the query (the views' own
/// operators' checks run as they are parsed): every input and view is read by something;
/// stateful operators in a chain run in append mode; joins between streams emit in append
/// mode; an aggregation in append mode needs its event time under a watermark.
pub(super) fn plan_problems(
    inputs: &[InputSpec],
    views: &[ViewSpec],
    query_from: &ViewFrom,
    query_stateful: bool,
    mode: OutputMode,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let watermark = inputs.iter().find_map(|i| i.watermark.clone());
    // Read by something.
    let mut read: Vec<&str> = views.iter().flat_map(|v| v.from.reads()).collect();
    read.extend(query_from.reads());
    for name in inputs
        .iter()
        .map(|i| i.name.as_str())
        .chain(views.iter().map(|v| v.name.as_str()))
    {
        if !read.contains(&name) {
            let key = match views.iter().any(|v| v.name == name) {
                true => format!("views.{name}"),
                false => format!("inputs.{name}"),
            };
            problems.push((
                key,
                format!("'{name}' is never read: name it in a view's or the query's from, union or join (or remove it)"),
            ));
        }
    }
    for (i, view) in views.iter().enumerate() {
        let key = format!("views.{}", view.name);
        if let ViewFrom::Join(j) = &view.from
            && matches!(j.right, JoinRight::Input(_))
            && mode != OutputMode::Append
        {
            problems.push((
                format!("{key}.join"),
                "a stream–stream join emits each joined row once and never updates it: use outputMode = \"append\"".to_owned(),
            ));
        }
        // A stateful view feeding another stateful operator: Spark's chained stateful
        // operators, which run in append mode only (an update would have to retract).
        if view.is_stateful() && mode != OutputMode::Append {
            let downstream = views[i + 1..].iter().any(|v| v.is_stateful()) || query_stateful;
            if downstream {
                problems.push((
                    key.clone(),
                    format!(
                        "view '{}' keeps state and a stateful operator follows it; chained stateful operators run in append mode only (as in Spark 3.5+): use outputMode = \"append\" with a watermark",
                        view.name
                    ),
                ));
            }
        }
        if let Some(agg) = &view.aggregate {
            for (k, message) in
                output_mode_problems(mode, &Some(agg.clone()), &None, &watermark, None)
            {
                problems.push((format!("{key}.aggregate.{k}"), message));
            }
        }
        if let Some(d) = &view.dedup
            && d.within_watermark
            && watermark.is_none()
        {
            problems.push((
                format!("{key}.dropDuplicates.withinWatermark"),
                "needs a watermark: add watermark = { column = ..., delay = ... } to an input"
                    .to_owned(),
            ));
        }
        if let Some(p) = &view.processor {
            for (k, message) in processor_problems(p, Some(mode), &None, &watermark) {
                problems.push((format!("{key}.{k}"), message));
            }
        }
    }
    problems
}
