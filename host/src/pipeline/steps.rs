//! Wasm transform steps (`[[query.transform]]`) and the limits every guest runs under.

use super::*;

pub(super) fn parse_limits(r: &mut TableReader) -> GuestLimits {
    let d = GuestLimits::default();
    GuestLimits {
        timeout: r
            .duration("timeout")
            .filter(|t| !t.is_zero())
            .unwrap_or(d.timeout),
        max_memory: r.bytes("maxMemory").unwrap_or(d.max_memory),
        fuel: r.positive("fuel"),
        max_emit_rows: r.positive("maxEmitRows"),
        max_emit_bytes: r.bytes("maxEmitBytes"),
    }
}

pub(super) const LIMIT_KEYS: [&str; 5] = [
    "timeout",
    "maxMemory",
    "fuel",
    "maxEmitRows",
    "maxEmitBytes",
];

pub(super) fn parse_transform(
    ctx: &Ctx,
    query: &str,
    node: &Spanned<Node>,
    base: &Path,
    prefix: &str,
    index: usize,
    outputs: &[(String, SinkSpec)],
) -> Option<StepSpec> {
    let key = format!("{prefix}transform[{index}]");
    let mut t = TableReader::new(ctx, Some(query), &key, node)?;
    // Unnamed steps of an input are named after it, so they never clash with the query's.
    let name = t.string("name").unwrap_or_else(|| {
        format!(
            "{}step-{index}",
            prefix
                .strip_prefix("inputs.")
                .map(|p| p.replace('.', "-"))
                .unwrap_or_default()
        )
    });
    if let Some(kind) = EXPR_KEYS.iter().find(|k| t.get(k).is_some()) {
        return parse_expression_step(ctx, query, t, &key, kind, name, outputs);
    }
    let module = t.required_string(
        "module",
        "the component file, e.g. module = \"transforms/parse.wasm\" (or an expression step: selectExpr, where, withColumn, withColumnRenamed or drop)",
    );
    let config = t.guest_config("config", base);
    let limits = parse_limits(&mut t);
    let on_error = parse_on_error(&mut t, outputs);
    let path = module
        .as_deref()
        .and_then(|m| module_path(&mut t, "module", base, m, GuestWorld::Transformer));
    let mut known = vec!["name", "module", "config", "onError", "deadLetter"];
    known.extend(LIMIT_KEYS);
    t.finish(&known);
    let module = module?;
    Some(StepSpec::Wasm(TransformSpec {
        name,
        module_ref: crate::registry::is_reference(&module).then(|| module.clone()),
        module: path?,
        config,
        limits,
        on_error,
    }))
}

/// A step's `onError` (and `deadLetter`): what a batch the step fails on becomes.
fn parse_on_error(t: &mut TableReader, outputs: &[(String, SinkSpec)]) -> OnError {
    let dead_letter = t.string("deadLetter");
    let on_error = match t.string("onError").as_deref() {
        None | Some("fail") => OnError::Fail,
        Some("skip") => OnError::Skip,
        Some("deadLetter" | "dead_letter") => match &dead_letter {
            Some(name) if outputs.iter().any(|(n, _)| n == name) => {
                OnError::DeadLetter(name.clone())
            }
            Some(name) => {
                t.error_here(
                    "deadLetter",
                    format!("no output named '{name}'; declare it as [query.outputs.{name}]"),
                );
                OnError::Fail
            }
            None => {
                t.error_here(
                    "deadLetter",
                    "onError = \"deadLetter\" needs deadLetter = \"<output name>\"".to_owned(),
                );
                OnError::Fail
            }
        },
        Some(other) => {
            t.error_here(
                "onError",
                format!("'{other}' is not a policy; use \"fail\", \"skip\" or \"deadLetter\""),
            );
            OnError::Fail
        }
    };
    if dead_letter.is_some()
        && !matches!(on_error, OnError::DeadLetter(_))
        && t.get("onError").is_some()
    {
        t.error_here(
            "deadLetter",
            "only used with onError = \"deadLetter\"".to_owned(),
        );
    }
    on_error
}

/// The keys of an expression step, one per step (`filter` is Spark's other name for `where`).
const EXPR_KEYS: [&str; 6] = [
    "selectExpr",
    "where",
    "filter",
    "withColumn",
    "withColumnRenamed",
    "drop",
];

/// An expression step: `selectExpr = [...]`, `where = "..."`, `withColumn = { name, expr }`,
/// `withColumnRenamed = { existing, new }` or `drop = [...]`. Its expressions are planned
/// when the schema reaching it is known (`check_expression_steps`, and at start).
fn parse_expression_step(
    ctx: &Ctx,
    query: &str,
    mut t: TableReader,
    key: &str,
    kind: &str,
    name: String,
    outputs: &[(String, SinkSpec)],
) -> Option<StepSpec> {
    let others: Vec<&str> = EXPR_KEYS
        .iter()
        .chain(&["module"])
        .filter(|k| **k != kind && t.get(k).is_some())
        .copied()
        .collect();
    if !others.is_empty() {
        t.error_here(
            kind,
            format!(
                "a step does one thing: give {kind} or {}, each in its own [[...transform]]",
                others.join(" or ")
            ),
        );
        return None;
    }
    let list = |t: &mut TableReader, k: &str| match t.get(k).map(|n| n.get_ref()) {
        Some(Node::Str(s)) => Some(vec![s.clone()]),
        _ => t.string_list(k),
    };
    let pair = |t: &mut TableReader, k: &str, a: &str, b: &str| {
        let node = t.get(k)?;
        let mut r = TableReader::new(ctx, Some(query), &format!("{key}.{k}"), node)?;
        let first = r.required_string(a, &format!("{k} = {{ {a} = \"...\", {b} = \"...\" }}"));
        let second = r.required_string(b, &format!("{k} = {{ {a} = \"...\", {b} = \"...\" }}"));
        r.finish(&[a, b]);
        Some((first?, second?))
    };
    let step = match kind {
        "selectExpr" => list(&mut t, kind).map(ExprStepKind::SelectExpr),
        "where" | "filter" => t.string(kind).map(ExprStepKind::Where),
        "withColumn" => pair(&mut t, kind, "name", "expr")
            .map(|(name, expr)| ExprStepKind::WithColumn { name, expr }),
        "withColumnRenamed" => pair(&mut t, kind, "existing", "new")
            .map(|(existing, new)| ExprStepKind::WithColumnRenamed { existing, new }),
        _ => list(&mut t, kind).map(ExprStepKind::Drop),
    };
    let on_error = parse_on_error(&mut t, outputs);
    // Keys a Wasm step would take (config, limits) are not this step's.
    t.finish(&["name", kind, "onError", "deadLetter"]);
    Some(StepSpec::Expr(ExprStepSpec {
        name,
        kind: step?,
        on_error,
    }))
}

/// Plans `steps` (of the table at `prefix`, e.g. `inputs.web.`) against `schema`, the schema
/// reaching the first, reporting each expression error at its step's line; returns the schema
/// after them, or `None` once a Wasm step makes it unknown (or an error stops the walk).
/// `options.functions` stand in for the pipeline's Wasm functions, whose result types are
/// known only once their modules load: a step whose output has one ends the walk.
pub(super) fn check_expression_steps(
    q: &TableReader,
    node: &Spanned<Node>,
    prefix: &str,
    schema: Option<SchemaRef>,
    steps: &[StepSpec],
    options: &crate::expr::PlanOptions,
) -> Option<SchemaRef> {
    let mut schema = schema?;
    for (i, step) in steps.iter().enumerate() {
        let StepSpec::Expr(e) = step else {
            return None;
        };
        match crate::expr::CompiledStep::with_options(e, &schema, options) {
            Ok(compiled) => {
                schema = compiled.schema();
                if schema
                    .fields()
                    .iter()
                    .any(|f| f.data_type() == &arrow_schema::DataType::Null)
                {
                    return None;
                }
            }
            Err(err) => {
                let key = format!("{prefix}transform[{i}].{}", err.field);
                // The value's line: the field itself, or the step's key for a list item.
                // A query written in SQL has no step keys: its `sql`.
                let at = [
                    key.clone(),
                    format!("{prefix}transform[{i}].{}", e.kind.key()),
                    format!("{prefix}transform[{i}]"),
                    "sql".to_owned(),
                ]
                .iter()
                .map(|k| offset_of(node, k))
                .find(|o| *o != node.span().start)
                .unwrap_or(node.span().start);
                let position = err
                    .position
                    .map(|p| format!(" (at character {p})"))
                    .unwrap_or_default();
                q.error_at(at, &key, format!("{}{position}", err.message));
                return None;
            }
        }
    }
    Some(schema)
}
