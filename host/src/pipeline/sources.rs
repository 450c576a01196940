//! `[query.source]` (and each `[query.inputs.NAME]`): the format picks the connector, whose
//! folder parses and checks its own options (`crate::connectors::<name>`).

use super::*;
use crate::connectors::{self, Role};

pub(super) fn parse_source(
    ctx: &Ctx,
    query: &str,
    node: &Spanned<Node>,
    base: &Path,
    prefix: &str,
    read_elsewhere: &[&str],
) -> Option<SourceSpec> {
    let mut s = TableReader::new(ctx, Some(query), prefix, node)?;
    // Read by parse_watermark; every source format accepts it.
    let _ = s.get("watermark");
    // Keys of the table that are not the source's (a named input's steps, a join table's
    // refresh), read by their own parsers.
    for key in read_elsewhere {
        let _ = s.get(key);
    }
    let advice = connectors::one_of(&connectors::formats(Role::Source));
    let format = s.required_string("format", &format!("say which source: {advice}"))?;
    let Some((connector, format)) = connectors::find(&format, Role::Source) else {
        s.error_here(
            "format",
            format!("unknown source format '{format}'; use {advice}"),
        );
        return None;
    };
    match (connector.name, format) {
        ("file", _) => connectors::file::parse_source(s, format, base).map(SourceSpec::File),
        ("rate", "rate") => connectors::rate::parse_rate(s).map(SourceSpec::Rate),
        ("rate", _) => connectors::rate::parse_micro_batch(s).map(SourceSpec::RateMicroBatch),
        ("nexmark", _) => connectors::nexmark::parse_source(s).map(SourceSpec::Nexmark),
        ("kafka", _) => connectors::kafka::parse_source(s, base).map(SourceSpec::Kafka),
        ("socket", _) => connectors::socket::parse_source(s).map(SourceSpec::Socket),
        (other, _) => unreachable_connector(&mut s, other),
    }
}

/// The steps an input's source implies before the user's: a Kafka source with
/// `valueFormat = "json"` parses each value with its schema (Spark's PERMISSIVE `from_json`:
/// a value that is not JSON of that shape gives nulls, never a lost row) into columns, then
/// the Kafka columns the value's fields do not name (`key`, `topic`, `partition`, `offset`,
/// `timestamp`, `timestampType`, `headers`) — the mirror of the sink's `valueFormat`.
pub(super) fn implied_steps(source: &SourceSpec) -> Vec<StepSpec> {
    let SourceSpec::Kafka(k) = source else {
        return Vec::new();
    };
    let Some(value) = &k.value_schema else {
        return Vec::new();
    };
    let ddl = value.ddl.replace('\'', "''");
    let value = &value.schema;
    const PARSED: &str = "__sluice_value";
    let kafka = connectors::kafka::source::kafka_schema(k.include_headers);
    let mut select = vec![format!("{PARSED}.*")];
    select.extend(
        kafka
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|n| *n != "value" && value.index_of(n).is_err())
            .map(|n| format!("`{n}`")),
    );
    let step = |name: &str, kind| {
        StepSpec::Expr(ExprStepSpec {
            name: format!("valueFormat.{name}"),
            kind,
            on_error: crate::wasm::spec::OnError::Fail,
        })
    };
    vec![
        step(
            "parse",
            ExprStepKind::WithColumn {
                name: PARSED.to_owned(),
                expr: format!("from_json(CAST(value AS STRING), '{ddl}')"),
            },
        ),
        step("columns", ExprStepKind::SelectExpr(select)),
    ]
}

/// A listed connector whose parser is not called above: a programming error, reported as a
/// problem of the pipeline's `format` rather than a panic.
pub(super) fn unreachable_connector<T>(s: &mut TableReader, connector: &str) -> Option<T> {
    s.error_here(
        "format",
        format!("the {connector} connector cannot serve here (a missing arm in sluice itself)"),
    );
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::connectors::{CONNECTORS, Role};
    use crate::pipeline::Pipeline;

    /// What `sluice validate` says of a query reading `source` and writing `sink`.
    fn problems(source: &str, sink: &str) -> String {
        let text = format!(
            "[[query]]\nname = \"q\"\n[query.source]\nformat = \"{source}\"\n\
             [query.sink]\nformat = \"{sink}\"\n"
        );
        match Pipeline::parse(&text, Path::new("/nonexistent/p.toml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_listed_format_reaches_its_connector() {
        for c in CONNECTORS {
            for f in c.sources {
                let p = problems(f, "console");
                assert!(
                    !p.contains("unknown source format") && !p.contains("missing arm"),
                    "{f}: {p}"
                );
            }
            for f in c.sinks.iter().chain(c.aliases.iter().map(|(a, _)| a)) {
                let p = problems("rate", f);
                assert!(
                    !p.contains("unknown sink format") && !p.contains("missing arm"),
                    "{f}: {p}"
                );
            }
        }
        assert!(problems("kafak", "console").contains("unknown source format 'kafak'"));
        assert!(problems("rate", "jsn").contains("unknown sink format 'jsn'"));
        assert!(crate::connectors::find("PostgreSQL", Role::Table).is_some());
    }
}
