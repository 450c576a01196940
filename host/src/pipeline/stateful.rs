//! Event time and the stateful operators' options: watermarks, `[query.dropDuplicates]`,
//! `[query.aggregate]` with windows, and Spark's output-mode rules.

use super::*;

/// The fields of a query's event-time and stateful options that do not fit the schema
/// reaching them (the same checks the operators make when they start).
pub(super) fn schema_problems(
    schema: &arrow_schema::Schema,
    watermark: &Option<WatermarkSpec>,
    dedup: &Option<DedupSpec>,
    aggregate: &Option<AggregateSpec>,
) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    if let Some(w) = watermark
        && let Err(e) = crate::watermark::check_event_time_column(schema, &w.column, "watermark")
    {
        problems.push(SpecProblem {
            key: "source.watermark.column".into(),
            message: e.to_string(),
        });
    }
    if let Some(d) = dedup
        && let Err(p) = d.check_input(schema)
    {
        problems.push(p);
    }
    if let Some(a) = aggregate
        && let Err(p) = a.check_input(schema)
    {
        problems.push(p);
    }
    problems
}

/// Spark's rules for which output modes a query may use, checked before anything runs.
pub(super) fn output_mode_problems(
    mode: OutputMode,
    aggregate: &Option<AggregateSpec>,
    dedup: &Option<DedupSpec>,
    watermark: &Option<WatermarkSpec>,
    sink: Option<&SinkSpec>,
) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    match (mode, aggregate) {
        (OutputMode::Complete, None) => problems.push((
            "outputMode",
            "complete mode needs a streaming aggregation (it re-emits the whole result table every batch); this query has none, use \"append\"".to_owned(),
        )),
        (OutputMode::Append, Some(agg)) => {
            let event_time = agg.window.as_ref().map(|w| w.column().to_owned());
            let grouped_by_watermark = watermark.as_ref().is_some_and(|w| {
                event_time.as_deref() == Some(w.column.as_str()) || agg.group_by.contains(&w.column)
            });
            if !grouped_by_watermark {
                problems.push((
                    "outputMode",
                    format!(
                        "append mode with an aggregation needs a watermark on the grouped event time, so a group can be emitted once it is final: add watermark = {{ column = \"{}\", delay = \"10 minutes\" }} to [query.source], or use outputMode = \"update\" or \"complete\"",
                        event_time.unwrap_or_else(|| "<event-time column>".into())
                    ),
                ));
            }
        }
        (OutputMode::Update, Some(AggregateSpec { window: Some(WindowSpec::Session { .. }), .. })) => problems.push((
            "outputMode",
            "session windows do not support update mode (a session can merge into another after it was emitted); use \"append\" with a watermark, or \"complete\"".to_owned(),
        )),
        _ => {}
    }
    if let Some(d) = dedup
        && d.within_watermark
        && watermark.is_none()
    {
        problems.push((
            "dropDuplicates.withinWatermark",
            "needs a watermark: add watermark = { column = ..., delay = ... } to [query.source]"
                .to_owned(),
        ));
    }
    if let Some(SinkSpec::File(f)) = sink
        && mode != OutputMode::Append
    {
        problems.push((
            "outputMode",
            format!(
                "a {} file sink only supports append (files cannot be updated in place); use a console, memory or foreachBatch sink for {} mode",
                f.format.name(),
                if mode == OutputMode::Update { "update" } else { "complete" }
            ),
        ));
    }
    problems
}

pub(super) fn parse_watermark(
    ctx: &Ctx,
    query: &str,
    source: &Spanned<Node>,
    prefix: &str,
) -> Option<WatermarkSpec> {
    let Node::Table(entries) = source.get_ref() else {
        return None;
    };
    let (_, node) = entries
        .iter()
        .find(|(k, _)| k.get_ref().eq_ignore_ascii_case("watermark"))?;
    let mut w = TableReader::new(ctx, Some(query), &format!("{prefix}.watermark"), node)?;
    let column = w.required_string(
        "column",
        "the event-time column, e.g. column = \"order_time\"",
    );
    let delay = w.duration("delay");
    if w.get("delay").is_none() {
        w.error_here(
            "delay",
            "missing required option; how late a row may be, e.g. delay = \"10 minutes\""
                .to_owned(),
        );
    }
    w.finish(&["column", "delay"]);
    Some(WatermarkSpec {
        column: column?,
        delay: delay?,
    })
}

pub(super) fn parse_dedup(ctx: &Ctx, query: &str, node: &Spanned<Node>) -> Option<DedupSpec> {
    let mut d = TableReader::new(ctx, Some(query), "dropDuplicates", node)?;
    let columns = d.string_list("columns").unwrap_or_default();
    let within_watermark = d.bool("withinWatermark").unwrap_or(false);
    d.finish(&["columns", "withinWatermark"]);
    Some(DedupSpec {
        columns,
        within_watermark,
    })
}

pub(super) fn parse_aggregate(
    ctx: &Ctx,
    query: &str,
    node: &Spanned<Node>,
    base: &Path,
) -> Option<AggregateSpec> {
    let mut a = TableReader::new(ctx, Some(query), "aggregate", node)?;
    let group_by = a.string_list("groupBy").unwrap_or_default();
    let window = a.get("window").and_then(|w| parse_window(ctx, query, w));
    let mut aggs = Vec::new();
    match a.get("aggs") {
        None => a.error_here(
            "aggs",
            "missing required option; e.g. aggs = [{ fn = \"sum\", column = \"amount\", as = \"revenue\" }]".to_owned(),
        ),
        Some(node) => match node.get_ref() {
            Node::Array(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(agg) = parse_agg(ctx, query, item, i, base) {
                        if aggs.iter().any(|x: &AggSpec| x.alias == agg.alias) || group_by.contains(&agg.alias) {
                            a.error_at(item.span().start, "aggs", format!("output column '{}' appears twice; give one an `as` name", agg.alias));
                        }
                        aggs.push(agg);
                    }
                }
            }
            other => a.error_at(node.span().start, "aggs", format!("expected a non-empty array of {{ fn, column, as }} tables, found {}", other.kind())),
        },
    }
    a.finish(&["groupBy", "window", "aggs"]);
    Some(AggregateSpec {
        group_by,
        window,
        aggs,
    })
}

/// The most sliding windows one row may fall into (`duration / slide`).
pub const MAX_WINDOWS_PER_ROW: u128 = 1000;

pub(super) fn parse_window(ctx: &Ctx, query: &str, node: &Spanned<Node>) -> Option<WindowSpec> {
    let mut w = TableReader::new(ctx, Some(query), "aggregate.window", node)?;
    let column = w.required_string(
        "column",
        "the event-time column, e.g. column = \"order_time\"",
    );
    let spec = if let Some(gap) = w.duration("gap") {
        for key in ["duration", "slide", "startTime"] {
            if let Some(n) = w.get(key) {
                w.error_at(
                    n.span().start,
                    key,
                    "a session window has only `gap`".to_owned(),
                );
            }
        }
        WindowSpec::Session {
            column: column?,
            gap,
        }
    } else {
        let Some(duration) = w.duration("duration") else {
            if w.get("duration").is_none() {
                w.error_here("duration", "missing: give duration = \"5 minutes\" (tumbling/sliding) or gap = \"5 minutes\" (session)".to_owned());
            }
            return None;
        };
        WindowSpec::Fixed {
            column: column?,
            duration,
            slide: w.duration("slide").unwrap_or(duration),
            start: w.duration("startTime").unwrap_or_default(),
        }
    };
    if let Some((key, why)) = window_problem(&spec) {
        w.error_here(key, why);
        if key == "gap" {
            return None;
        }
    }
    w.finish(&["column", "duration", "slide", "startTime", "gap"]);
    Some(spec)
}

/// What is wrong with a window's sizes, if anything: the option it is about, and why.
pub(super) fn window_problem(spec: &WindowSpec) -> Option<(&'static str, String)> {
    match *spec {
        WindowSpec::Session { gap, .. } if gap.is_zero() => {
            Some(("gap", "must be greater than 0".to_owned()))
        }
        WindowSpec::Session { .. } => None,
        WindowSpec::Fixed {
            duration,
            slide,
            start,
            ..
        } => {
            if duration.is_zero() || slide.is_zero() {
                Some((
                    "duration",
                    "window duration and slide must be greater than 0".to_owned(),
                ))
            } else if slide > duration {
                Some((
                    "slide",
                    format!("slide ({slide:?}) must not exceed the duration ({duration:?})"),
                ))
            } else if start >= slide {
                Some((
                    "startTime",
                    format!("startTime ({start:?}) must be less than the slide ({slide:?})"),
                ))
            } else {
                // Each row is copied into every window it falls in; an extreme ratio turns
                // one row into hundreds of thousands of groups and the host into a memory
                // sink.
                let per_row = duration.as_micros().div_ceil(slide.as_micros());
                (per_row > MAX_WINDOWS_PER_ROW).then(|| {
                    (
                        "slide",
                        format!(
                            "a {duration:?} window sliding every {slide:?} puts each row into {per_row} windows; at most {MAX_WINDOWS_PER_ROW} are allowed (make the slide at least {:?})",
                            Duration::from_micros(
                                duration.as_micros().div_ceil(MAX_WINDOWS_PER_ROW) as u64
                            )
                        ),
                    )
                })
            }
        }
    }
}

pub(super) fn parse_agg(
    ctx: &Ctx,
    query: &str,
    node: &Spanned<Node>,
    i: usize,
    base: &Path,
) -> Option<AggSpec> {
    let mut a = TableReader::new(ctx, Some(query), &format!("aggregate.aggs[{i}]"), node)?;
    // A `module` makes it a user-defined aggregate in Wasm; otherwise `fn` names a built-in.
    let module = a.string("module");
    let (func, name) = match (&module, a.string("fn")) {
        (Some(_), None) => (AggFunc::Udaf, "udaf".to_owned()),
        (Some(_), Some(_)) => {
            a.error_here(
                "fn",
                "give either `fn` (a built-in) or `module` (a Wasm aggregate), not both".to_owned(),
            );
            return None;
        }
        (None, Some(name)) => match AggFunc::parse(&name) {
            Some(f) if f != AggFunc::Udaf => (f, name),
            _ => {
                a.error_here("fn", format!("unknown aggregate '{name}'; use count, sum, min, max, avg, first, last, count_distinct, collect_list, collect_set, or a Wasm `module`"));
                return None;
            }
        },
        (None, None) => {
            a.error_here("fn", "missing: give fn = \"sum\" (count, sum, min, max, avg, first, last, count_distinct) or module = \"my_aggregate.wasm\"".to_owned());
            return None;
        }
    };
    let column = a.string("column");
    if column.is_none() && func != AggFunc::Count {
        a.error_here("column", format!("{name} needs a column"));
    }
    let alias = a.string("as").unwrap_or_else(|| match &column {
        Some(c) => format!("{}({c})", name.to_ascii_lowercase()),
        None => "count".to_owned(),
    });
    let udaf_module = match &module {
        Some(m) => Some(module_path(
            &mut a,
            "module",
            base,
            m,
            GuestWorld::Aggregator,
        )?),
        None => None,
    };
    let udaf = udaf_module.map(|module| UdafSpec {
        module,
        config: a.guest_config("config", base),
        limits: parse_limits(&mut a),
    });
    let mut known = vec!["fn", "module", "config", "column", "as"];
    known.extend(LIMIT_KEYS);
    a.finish(&known);
    Some(AggSpec {
        func,
        column,
        alias,
        udaf,
    })
}

pub(super) fn parse_processor(
    ctx: &Ctx,
    query: &str,
    node: &Spanned<Node>,
    base: &Path,
) -> Option<ProcessorSpec> {
    let p = TableReader::new(ctx, Some(query), "processor", node)?;
    read_processor(p, base, "module", true)
}

/// A processor's options from `p`: its component under `module_key`, and its `key` (which a
/// processor declared in `[functions]` leaves to the SQL that calls it: `needs_key` false).
pub(super) fn read_processor(
    mut p: TableReader,
    base: &Path,
    module_key: &str,
    needs_key: bool,
) -> Option<ProcessorSpec> {
    let module = p.required_string(
        module_key,
        "the component file, e.g. module = \"processors/user_profile.wasm\"",
    );
    let key = if needs_key {
        p.string_list("key")
    } else {
        Some(Vec::new())
    };
    match &key {
        _ if !needs_key => {}
        None if p.get("key").is_none() => p.error_here(
            "key",
            "missing required option; the columns that group rows, e.g. key = [\"user_id\"]"
                .to_owned(),
        ),
        Some(k) if k.is_empty() => p.error_here(
            "key",
            "needs at least one column, e.g. key = [\"user_id\"]".to_owned(),
        ),
        _ => {}
    }
    let time_mode = match p.string("timeMode").as_deref() {
        None | Some("none" | "None") => TimeMode::None,
        Some("processingTime" | "ProcessingTime") => TimeMode::ProcessingTime,
        Some("eventTime" | "EventTime") => TimeMode::EventTime,
        Some(other) => {
            let message = format!(
                "'{other}' is not a time mode; use \"none\", \"processingTime\" or \"eventTime\""
            );
            match p.get("timeMode").map(|n| n.span().start) {
                Some(at) => p.error_at(at, "timeMode", message),
                None => p.error_here("timeMode", message),
            }
            TimeMode::None
        }
    };
    let max_state_bytes_per_key = p
        .bytes("maxStateBytesPerKey")
        .unwrap_or(crate::operators::processor::DEFAULT_MAX_STATE_BYTES_PER_KEY);
    let config = p.guest_config("config", base);
    let limits = parse_limits(&mut p);
    let path = module
        .as_deref()
        .and_then(|m| module_path(&mut p, module_key, base, m, GuestWorld::KeyedProcessor));
    let mut known = vec![module_key, "timeMode", "config", "maxStateBytesPerKey"];
    if needs_key {
        known.push("key");
    }
    known.extend(LIMIT_KEYS);
    p.finish(&known);
    let module = module?;
    Some(ProcessorSpec {
        module_ref: crate::registry::is_reference(&module).then(|| module.clone()),
        module: path?,
        config,
        limits,
        key: key?,
        time_mode,
        max_state_bytes_per_key,
    })
}

/// Spark's rules for `transformWithState`: append or update, alone with its state (no
/// aggregation in the same query), event time needs a watermark.
pub(super) fn processor_problems(
    processor: &ProcessorSpec,
    mode: Option<OutputMode>,
    aggregate: &Option<AggregateSpec>,
    watermark: &Option<WatermarkSpec>,
) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if mode == Some(OutputMode::Complete) {
        problems.push((
            "outputMode",
            "a processor emits the rows its module hands out, it has no result table to re-emit: use \"append\" or \"update\"".to_owned(),
        ));
    }
    if aggregate.is_some() {
        problems.push((
            "processor",
            "a query has either [query.aggregate] or [query.processor], not both; aggregate in the processor's module, or in a second query reading this one's output".to_owned(),
        ));
    }
    if processor.time_mode == TimeMode::EventTime && watermark.is_none() {
        problems.push((
            "processor.timeMode",
            "\"eventTime\" needs a watermark: add watermark = { column = ..., delay = ... } to [query.source]".to_owned(),
        ));
    }
    problems
}
