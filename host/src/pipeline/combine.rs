//! How a query's inputs are written and combined: `[query.source]` or `[query.inputs.NAME]`
//! (each with its own steps), `[query.union]`, and `[query.join]` with Spark's rules for joins.

use super::*;

/// `[query.source]` (one input, named "source") or `[query.inputs.NAME]` tables, each with
/// its watermark and (named inputs only) its own `[[query.inputs.NAME.transform]]` steps.
pub(super) fn parse_inputs(
    ctx: &Ctx,
    label: &str,
    q: &mut TableReader,
    base: &Path,
    outputs: &[(String, SinkSpec)],
) -> Option<Vec<InputSpec>> {
    match (q.get("source"), q.get("inputs")) {
        (Some(s), None) => {
            let source = parse_source(ctx, label, s, base, "source", &[])?;
            Some(vec![InputSpec {
                name: "source".to_owned(),
                watermark: parse_watermark(ctx, label, s, "source"),
                transforms: implied_steps(&source),
                source,
            }])
        }
        (None, Some(node)) => match node.get_ref() {
            Node::Table(entries) if !entries.is_empty() => {
                // File order (the TOML reader hands tables over sorted by key): it numbers
                // the inputs in the checkpoint and the offsets log.
                let mut entries: Vec<_> = entries.iter().collect();
                entries.sort_by_key(|(key, _)| key.span().start);
                let mut inputs = Vec::new();
                for (key, value) in entries.iter().copied() {
                    let prefix = format!("inputs.{}", key.get_ref());
                    let watermark = parse_watermark(ctx, label, value, &prefix);
                    let source = parse_source(ctx, label, value, base, &prefix, &["transform"]);
                    let transforms = match TableReader::new(ctx, Some(label), &prefix, value) {
                        Some(mut r) => parse_transforms(
                            ctx,
                            label,
                            &mut r,
                            base,
                            &format!("{prefix}."),
                            outputs,
                        ),
                        None => Vec::new(),
                    };
                    if let Some(source) = source {
                        let mut steps = implied_steps(&source);
                        steps.extend(transforms);
                        let transforms = steps;
                        inputs.push(InputSpec {
                            name: key.get_ref().clone(),
                            source,
                            watermark,
                            transforms,
                        });
                    }
                }
                (inputs.len() == entries.len()).then_some(inputs)
            }
            other => {
                q.error_at(
                    node.span().start,
                    "inputs",
                    format!(
                        "expected one [query.inputs.NAME] table per input, found {}",
                        if matches!(other, Node::Table(_)) {
                            "none"
                        } else {
                            other.kind()
                        }
                    ),
                );
                None
            }
        },
        (Some(_), Some(node)) => {
            q.error_at(
                node.span().start,
                "inputs",
                "give either one [query.source] or named [query.inputs.NAME] tables, not both"
                    .to_owned(),
            );
            None
        }
        (None, None) => {
            q.error_here(
                "source",
                "missing [query.source] table (or [query.inputs.NAME] tables for several inputs)"
                    .to_owned(),
            );
            None
        }
    }
}

/// `[[PREFIX.transform]]` steps of the table `r` reads.
pub(super) fn parse_transforms(
    ctx: &Ctx,
    label: &str,
    r: &mut TableReader,
    base: &Path,
    prefix: &str,
    outputs: &[(String, SinkSpec)],
) -> Vec<StepSpec> {
    let mut transforms = Vec::new();
    let Some(node) = r.get("transform") else {
        return transforms;
    };
    match node.get_ref() {
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(t) = parse_transform(ctx, label, item, base, prefix, i, outputs) {
                    transforms.push(t);
                }
            }
        }
        other => r.error_at(
            node.span().start,
            "transform",
            format!(
                "expected [[query.{prefix}transform]] tables, found {}",
                other.kind()
            ),
        ),
    }
    transforms
}

/// `[query.union]`: required with several inputs, naming each exactly once.
pub(super) fn parse_combine(
    ctx: &Ctx,
    label: &str,
    q: &mut TableReader,
    base: &Path,
    inputs: Option<&[InputSpec]>,
) -> Option<Combine> {
    let union = q.get("union");
    let join = q.get("join");
    let inputs = inputs?;
    if let (Some(_), Some(j)) = (union, join) {
        q.error_at(
            j.span().start,
            "join",
            "a query combines its inputs one way: give [query.union] or [query.join], not both"
                .to_owned(),
        );
        return None;
    }
    if let Some(node) = join {
        let streams: Vec<Stream> = inputs.iter().map(Stream::of_input).collect();
        let spec = parse_join(
            ctx,
            label,
            node,
            base,
            &streams,
            "join",
            Some(&inputs[0].name),
        )?;
        return legacy_join(ctx, label, node, inputs, spec);
    }
    let Some(node) = union else {
        if inputs.len() > 1 {
            q.error_here(
                "union",
                format!(
                    "{} inputs must be combined: add [query.union] inputs = [{}]",
                    inputs.len(),
                    inputs
                        .iter()
                        .map(|i| format!("\"{}\"", i.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
        return Some(Combine::Single);
    };
    let mut u = TableReader::new(ctx, Some(label), "union", node)?;
    let names = u.string_list("inputs");
    u.finish(&["inputs"]);
    if inputs.len() < 2 {
        q.error_at(
            node.span().start,
            "union",
            "a union needs at least two [query.inputs.NAME] tables".to_owned(),
        );
        return None;
    }
    if let Some(names) = names {
        let mut sorted = names.clone();
        sorted.sort();
        let mut declared: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        declared.sort();
        if sorted != declared {
            q.error_at(
                node.span().start,
                "union.inputs",
                format!("must name every input exactly once: {declared:?}, found {names:?}"),
            );
            return None;
        }
    }
    let columns: Vec<&str> = inputs
        .iter()
        .filter_map(|i| i.watermark.as_ref().map(|w| w.column.as_str()))
        .collect();
    if columns.windows(2).any(|w| w[0] != w[1]) {
        q.error_at(
            node.span().start,
            "union",
            format!(
                "the inputs' watermarks name different event-time columns ({}); after a union the rows share one, so name the same column in each",
                columns.join(", ")
            ),
        );
    }
    Some(Combine::Union(
        inputs.iter().map(|i| i.name.clone()).collect(),
    ))
}

/// A stream a join or union can name: an input, or (with views) an earlier view, with the
/// watermark its rows carry.
pub(super) struct Stream {
    /// Its name.
    pub(super) name: String,
    /// The watermark on its rows: an input's own; a view's, the query's (if any input has one).
    pub(super) watermark: Option<WatermarkSpec>,
}

impl Stream {
    pub(super) fn of_input(input: &InputSpec) -> Stream {
        Stream {
            name: input.name.clone(),
            watermark: input.watermark.clone(),
        }
    }
}

/// The one-join form (`[query.join]` over the query's inputs, no views): a static join reads
/// the one input, a stream–stream join both.
fn legacy_join(
    ctx: &Ctx,
    label: &str,
    node: &Spanned<Node>,
    inputs: &[InputSpec],
    spec: JoinSpec,
) -> Option<Combine> {
    let (needed, what, combine) = match &spec.right {
        JoinRight::Table(_) => (
            1,
            "a stream–static join reads one stream",
            Combine::StaticJoin as fn(JoinSpec) -> Combine,
        ),
        JoinRight::Input(_) => (
            2,
            "a stream–stream join reads exactly two inputs",
            Combine::StreamJoin as fn(JoinSpec) -> Combine,
        ),
    };
    if inputs.len() != needed {
        j_error(
            ctx,
            label,
            node,
            "join",
            format!("{what}; this query has {} inputs", inputs.len()),
        );
        return None;
    }
    Some(combine(spec))
}

/// `[query.join]` (or a view's `join`, under `prefix`): a stream–static join (with a
/// `table`) or a stream–stream join of two of `streams`, with Spark's rules for which join
/// needs what.
pub(super) fn parse_join(
    ctx: &Ctx,
    label: &str,
    node: &Spanned<Node>,
    base: &Path,
    streams: &[Stream],
    prefix: &str,
    default_left: Option<&str>,
) -> Option<JoinSpec> {
    let mut j = TableReader::new(ctx, Some(label), prefix, node)?;
    let names: Vec<&str> = streams.iter().map(|i| i.name.as_str()).collect();
    let Some(left) = j.string("left").or_else(|| default_left.map(str::to_owned)) else {
        j.error_here(
            "left",
            format!(
                "missing; name the stream to join: left = \"<one of {}>\"",
                names.join(", ")
            ),
        );
        return None;
    };
    if !names.contains(&left.as_str()) {
        j.error_here(
            "left",
            format!(
                "'{left}' is not an input of this query (inputs: {})",
                names.join(", ")
            ),
        );
        return None;
    }
    let join_type = match j.string("type") {
        None => JoinType::Inner,
        Some(t) => match JoinType::parse(&t) {
            Some(jt) => jt,
            None => {
                j.error_here(
                    "type",
                    format!("'{t}' is not a join type; use inner, leftOuter, rightOuter, fullOuter, leftSemi or leftAnti"),
                );
                return None;
            }
        },
    };
    let on = parse_join_keys(&mut j);
    let within = j.get("within").and_then(|w| parse_within(ctx, label, w));
    let table = match j.get("table") {
        Some(t) => Some(parse_table(
            ctx,
            label,
            t,
            base,
            &format!("{prefix}.table"),
        )?),
        None => None,
    };
    let right = j.string("right");
    j.finish(&["left", "right", "type", "on", "within", "table"]);
    let on = on?;
    let right = match (right, table) {
        (None, Some(table)) => JoinRight::Table(table),
        (Some(r), None) => {
            if !names.contains(&r.as_str()) || r == left {
                j_error(
                    ctx,
                    label,
                    node,
                    &format!("{prefix}.right"),
                    format!(
                        "'{r}' is not another input of this query (inputs: {})",
                        names.join(", ")
                    ),
                );
                return None;
            }
            JoinRight::Input(r)
        }
        (Some(_), Some(_)) => {
            j_error(
                ctx,
                label,
                node,
                &format!("{prefix}.right"),
                "give `right` (another input) or [query.join.table], not both".to_owned(),
            );
            return None;
        }
        (None, None) => {
            j_error(
                ctx,
                label,
                node,
                &format!("{prefix}.right"),
                "say what to join with: right = \"<input>\" or a [query.join.table]".to_owned(),
            );
            return None;
        }
    };
    let spec = JoinSpec {
        left: left.clone(),
        right,
        join_type,
        on,
        within,
        qualifiers: None,
    };
    let input = |name: &str| streams.iter().find(|i| i.name == name);
    match &spec.right {
        JoinRight::Table(_) => {
            if !matches!(
                join_type,
                JoinType::Inner | JoinType::LeftOuter | JoinType::LeftSemi | JoinType::LeftAnti
            ) {
                j_error(
                    ctx,
                    label,
                    node,
                    &format!("{prefix}.type"),
                    format!(
                        "{join_type:?} is not supported with a static table (Spark's rule: the stream must be the preserved side); use inner, leftOuter, leftSemi or leftAnti"
                    ),
                );
                return None;
            }
            if spec.within.is_some() {
                j_error(
                    ctx,
                    label,
                    node,
                    &format!("{prefix}.within"),
                    "a time range applies to stream–stream joins; a static table has no event time"
                        .to_owned(),
                );
                return None;
            }
            Some(spec)
        }
        JoinRight::Input(r) => {
            if join_type == JoinType::LeftAnti {
                j_error(ctx, label, node, &format!("{prefix}.type"), "leftAnti is not supported between two streams (as in Spark); use a leftOuter join and keep the rows whose right side is null".to_owned());
                return None;
            }
            let (l, r) = (input(&left)?, input(r)?);
            if join_type != JoinType::Inner {
                let Some(w) = &spec.within else {
                    j_error(
                        ctx,
                        label,
                        node,
                        &format!("{prefix}.within"),
                        format!(
                            "a {join_type:?} join between streams needs a time range, so rows can be given up on and unmatched ones emitted: add within = {{ left = \"<{}'s event time>\", right = \"<{}'s event time>\", lower = \"0 seconds\", upper = \"1 hour\" }}",
                            l.name, r.name
                        ),
                    );
                    return None;
                };
                for (side, column, what) in [(l, &w.left, "left"), (r, &w.right, "right")] {
                    match &side.watermark {
                        None => {
                            j_error(
                                ctx,
                                label,
                                node,
                                &format!("{prefix}.within.{what}"),
                                format!(
                                    "a {join_type:?} join between streams needs a watermark on both inputs: add watermark = {{ column = \"{column}\", delay = \"10 minutes\" }} to [query.inputs.{}]",
                                    side.name
                                ),
                            );
                            return None;
                        }
                        Some(wm) if &wm.column != column => {
                            j_error(
                                ctx,
                                label,
                                node,
                                &format!("{prefix}.within.{what}"),
                                format!(
                                    "'{column}' is not input '{}''s watermark column ('{}'); the time range must use the columns the watermarks are on",
                                    side.name, wm.column
                                ),
                            );
                            return None;
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(spec)
        }
    }
}

/// A static table (`[query.join.table]`, `[query.tables.NAME]`): files, PostgreSQL or
/// Cassandra, with its `refresh`.
pub(super) fn parse_table(
    ctx: &Ctx,
    label: &str,
    t: &Spanned<Node>,
    base: &Path,
    table_prefix: &str,
) -> Option<TableSpec> {
    let refresh =
        TableReader::new(ctx, Some(label), table_prefix, t).and_then(|mut r| r.duration("refresh"));
    let connector = TableReader::new(ctx, Some(label), table_prefix, t)
        .and_then(|mut r| r.string("format"))
        .and_then(|f| crate::connectors::find(&f, crate::connectors::Role::Table))
        .map(|(c, _)| c.name);
    let source = match connector {
        Some("postgres") => TableSource::Postgres(
            TableReader::new(ctx, Some(label), table_prefix, t)
                .and_then(|r| crate::connectors::postgres::parse_table(r, base))?,
        ),
        Some("cassandra") => TableSource::Cassandra(Box::new(
            TableReader::new(ctx, Some(label), table_prefix, t)
                .and_then(|r| crate::connectors::cassandra::parse_table(r, base))?,
        )),
        _ => match parse_source(ctx, label, t, base, table_prefix, &["refresh"])? {
            SourceSpec::File(files) => TableSource::Files(files),
            other => {
                ctx.report(
                    t.span().start,
                    Some(label),
                    &format!("{table_prefix}.format"),
                    format!(
                        "a join table is read from files or a database ({}), not {}",
                        crate::connectors::one_of(&crate::connectors::formats(
                            crate::connectors::Role::Table
                        )),
                        other.description()
                    ),
                );
                return None;
            }
        },
    };
    Some(TableSpec { source, refresh })
}

/// `[query.tables.NAME]`: the static tables a SQL query joins by name.
pub(super) fn parse_tables(
    ctx: &Ctx,
    label: &str,
    node: &Spanned<Node>,
    base: &Path,
) -> Option<Vec<(String, TableSpec)>> {
    let Node::Table(entries) = node.get_ref() else {
        ctx.report(
            node.span().start,
            Some(label),
            "tables",
            format!(
                "expected one [query.tables.NAME] table per table, found {}",
                node.get_ref().kind()
            ),
        );
        return None;
    };
    let mut tables = Vec::new();
    for (key, value) in entries {
        let prefix = format!("tables.{}", key.get_ref());
        tables.push((
            key.get_ref().clone(),
            parse_table(ctx, label, value, base, &prefix)?,
        ));
    }
    Some(tables)
}

/// With both sides' schemas known before anything runs (declared, no steps), the join keys
/// are checked by `validate` exactly as the join checks them when it starts.
pub(super) fn join_key_problems(q: &TableReader, spec: &JoinSpec, inputs: &[InputSpec]) {
    let known = |name: &str| {
        inputs
            .iter()
            .find(|i| i.name == name && i.transforms.is_empty())
            .and_then(|i| i.source.known_schema())
    };
    let right = match &spec.right {
        JoinRight::Input(r) => known(r),
        JoinRight::Table(t) => match &t.source {
            TableSource::Files(files) => SourceSpec::File(files.clone()).known_schema(),
            // Known once the database is asked, at start.
            TableSource::Postgres(_) | TableSource::Cassandra(_) => None,
        },
    };
    if let (Some(l), Some(r)) = (known(&spec.left), right)
        && let Err(e) = crate::operators::join::JoinLayout::new(spec, &l, &r)
    {
        q.error_here("join.on", e.to_string());
    }
}

pub(super) fn j_error(ctx: &Ctx, label: &str, node: &Spanned<Node>, key: &str, message: String) {
    ctx.report(node.span().start, Some(label), key, message);
}

/// `on = ["id"]`, `on = [["user_id", "id"]]` or `on = [{ left = "user_id", right = "id" }]`.
pub(super) fn parse_join_keys(j: &mut TableReader) -> Option<Vec<(String, String)>> {
    let Some(node) = j.get("on") else {
        j.error_here(
            "on",
            "missing: the equi-join keys, e.g. on = [\"user_id\"] or on = [[\"user_id\", \"id\"]]"
                .to_owned(),
        );
        return None;
    };
    let items = match node.get_ref() {
        Node::Str(s) => return Some(vec![(s.clone(), s.clone())]),
        Node::Array(items) if !items.is_empty() => items,
        other => {
            j.error_at(
                node.span().start,
                "on",
                format!("expected a non-empty array of keys, found {}", other.kind()),
            );
            return None;
        }
    };
    let mut keys = Vec::new();
    for item in items {
        let pair = match item.get_ref() {
            Node::Str(s) => Some((s.clone(), s.clone())),
            Node::Array(p) => match p.as_slice() {
                [l, r] => match (l.get_ref(), r.get_ref()) {
                    (Node::Str(l), Node::Str(r)) => Some((l.clone(), r.clone())),
                    _ => None,
                },
                _ => None,
            },
            Node::Table(entries) => {
                let get = |k: &str| {
                    entries
                        .iter()
                        .find(|(key, _)| key.get_ref() == k)
                        .and_then(|(_, v)| match v.get_ref() {
                            Node::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                };
                get("left").zip(get("right"))
            }
            _ => None,
        };
        match pair {
            Some(p) => keys.push(p),
            None => {
                j.error_at(item.span().start, "on", "each key is a column name, a [left, right] pair of names, or { left = ..., right = ... }".to_owned());
                return None;
            }
        }
    }
    Some(keys)
}

/// `within = { left = "impression_time", right = "click_time", lower = "0 seconds", upper = "1 hour" }`:
/// `right - left` between `lower` and `upper` (either may be negative: `"-10 minutes"`).
pub(super) fn parse_within(ctx: &Ctx, label: &str, node: &Spanned<Node>) -> Option<TimeRange> {
    let mut w = TableReader::new(ctx, Some(label), "join.within", node)?;
    let left = w.required_string("left", "the left input's event-time column");
    let right = w.required_string("right", "the right input's event-time column");
    let mut bound = |key: &str| -> Option<i64> {
        let text = match w.get(key).map(|n| n.get_ref().clone()) {
            Some(Node::Str(s)) => s,
            Some(Node::Int(ms)) => format!("{ms} ms"),
            Some(other) => {
                w.error_here(
                    key,
                    format!(
                        "expected a duration like \"1 hour\", found {}",
                        other.kind()
                    ),
                );
                return None;
            }
            None => {
                w.error_here(
                    key,
                    "missing: a duration such as \"0 seconds\" or \"1 hour\"".to_owned(),
                );
                return None;
            }
        };
        let (negative, magnitude) = match text.trim().strip_prefix('-') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, text.clone()),
        };
        match parse_duration(&magnitude) {
            Ok(d) => {
                let us = d.as_micros().min(i64::MAX as u128) as i64;
                Some(if negative { -us } else { us })
            }
            Err(e) => {
                w.error_here(key, e);
                None
            }
        }
    };
    let lower = bound("lower");
    let upper = bound("upper");
    if let (Some(l), Some(u)) = (lower, upper)
        && l > u
    {
        w.error_here("lower", "must not be greater than upper".to_owned());
    }
    w.finish(&["left", "right", "lower", "upper"]);
    Some(TimeRange {
        left: left?,
        right: right?,
        lower_us: lower?,
        upper_us: upper?,
    })
}

/// Step names address steps (swaps, progress, the offsets log), so they are unique per query.
pub(super) fn check_step_names(
    q: &TableReader,
    inputs: &[InputSpec],
    views: &[ViewSpec],
    transforms: &[StepSpec],
) {
    let mut seen = std::collections::BTreeSet::new();
    for t in inputs
        .iter()
        .flat_map(|i| &i.transforms)
        .chain(views.iter().flat_map(|v| &v.transforms))
        .chain(transforms)
    {
        if !seen.insert(t.name()) {
            q.error_here(
                "transform",
                format!(
                    "two steps are named '{}'; give each step a unique name",
                    t.name()
                ),
            );
        }
    }
}
