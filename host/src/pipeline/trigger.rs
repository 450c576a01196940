//! `trigger = ...`: when batches run, and what a continuous query may contain.

use super::*;

pub(super) fn parse_trigger(q: &TableReader, node: &Spanned<Node>) -> Option<Trigger> {
    let bad = |msg: String| {
        q.error_at(node.span().start, "trigger", msg);
        None
    };
    const HINT: &str = "use \"once\", \"availableNow\", { processingTime = \"10 seconds\" } or { continuous = \"1 second\" }";
    let duration = |value: &Spanned<Node>| match value.get_ref() {
        Node::Str(s) => parse_duration(s),
        Node::Int(ms) if *ms >= 0 => Ok(Duration::from_millis(*ms as u64)),
        other => Err(format!("expected a duration, found {}", other.kind())),
    };
    match node.get_ref() {
        Node::Str(s) => match s.as_str() {
            "once" | "Once" => Some(Trigger::Once),
            "availableNow" | "AvailableNow" => Some(Trigger::AvailableNow),
            other => bad(format!("'{other}' is not a trigger; {HINT}")),
        },
        Node::Table(entries) if entries.len() == 1 => {
            let (key, value) = &entries[0];
            match key.get_ref().as_str() {
                "processingTime" => match duration(value) {
                    Ok(d) if d.is_zero() => Some(Trigger::Unspecified),
                    Ok(d) => Some(Trigger::ProcessingTime(d)),
                    Err(e) => bad(e),
                },
                "continuous" => match duration(value) {
                    // Spark's continuous trigger takes a checkpoint interval; an epoch of
                    // zero would write the checkpoint for every record.
                    Ok(d) if d < Duration::from_millis(10) => bad(format!(
                        "the continuous trigger's checkpoint interval must be at least 10 ms, not {d:?}; records are processed as they arrive whatever the interval (e.g. {{ continuous = \"1 second\" }})"
                    )),
                    Ok(d) => Some(Trigger::Continuous(d)),
                    Err(e) => bad(e),
                },
                other => bad(format!("'{other}' is not a trigger; {HINT}")),
            }
        }
        other => bad(format!(
            "expected a trigger, found {}; {HINT}",
            other.kind()
        )),
    }
}

/// What a continuous query may contain, as Spark's continuous processing allows it: one
/// Kafka or rate input, stateless Wasm steps, and a Kafka, console or memory sink. Each
/// problem is `(key, message)`.
///
/// Stateful operators and joins need a batch's rows all at once (an aggregate's state of
/// the next epoch is built on the last one's), file sinks and foreachBatch handlers take a
/// whole batch, and file sources are planned in batches of files.
pub(super) fn continuous_problems(
    inputs: &[InputSpec],
    combine: &Combine,
    stateful: &[(&str, bool)],
    outputs: &[(String, SinkSpec)],
    sink: &SinkSpec,
) -> Vec<(String, String)> {
    const WHY: &str = "a continuous query processes records one by one as they arrive";
    let mut problems = Vec::new();
    let refuse = |problems: &mut Vec<(String, String)>, key: &str, what: String| {
        problems.push((
            key.to_owned(),
            format!(
                "{what} cannot run under trigger = {{ continuous = ... }} ({WHY}); use a micro-batch trigger (omit trigger, or {{ processingTime = ... }})"
            ),
        ));
    };
    if inputs.len() > 1 || !matches!(combine, Combine::Single) {
        refuse(
            &mut problems,
            "inputs",
            "a query with several inputs (union or join)".to_owned(),
        );
    }
    for input in inputs {
        let supported = matches!(input.source, SourceSpec::Kafka(_) | SourceSpec::Rate(_));
        if !supported {
            let key = if inputs.len() > 1 {
                format!("inputs.{}.source", input.name)
            } else {
                "source".to_owned()
            };
            refuse(
                &mut problems,
                &key,
                format!(
                    "the source {} (continuous queries read kafka or rate)",
                    input.source.description()
                ),
            );
        }
    }
    for (key, present) in stateful {
        if *present {
            refuse(
                &mut problems,
                key,
                format!("'{key}' (stateful operators need whole batches)"),
            );
        }
    }
    if !outputs.is_empty() {
        refuse(
            &mut problems,
            "outputs",
            "named outputs (they are staged and committed per batch)".to_owned(),
        );
    }
    if !matches!(
        sink,
        SinkSpec::Kafka(_) | SinkSpec::Console(_) | SinkSpec::Memory { .. }
    ) {
        refuse(
            &mut problems,
            "sink",
            format!(
                "the sink {} (continuous queries write to kafka, console or memory)",
                sink.description()
            ),
        );
    }
    problems
}
