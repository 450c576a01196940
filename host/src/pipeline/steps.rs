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
) -> Option<TransformSpec> {
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
    let module = t.required_string(
        "module",
        "the component file, e.g. module = \"transforms/parse.wasm\"",
    );
    let config = t.guest_config("config", base);
    let limits = parse_limits(&mut t);
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
    let path = module
        .as_deref()
        .and_then(|m| module_path(&mut t, "module", base, m, GuestWorld::Transformer));
    let mut known = vec!["name", "module", "config", "onError", "deadLetter"];
    known.extend(LIMIT_KEYS);
    t.finish(&known);
    let module = module?;
    Some(TransformSpec {
        name,
        module_ref: crate::registry::is_reference(&module).then(|| module.clone()),
        module: path?,
        config,
        limits,
        on_error,
    })
}
