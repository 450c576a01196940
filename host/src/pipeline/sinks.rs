//! `[query.sink]` and named `[query.outputs.NAME]`: the format picks the connector, whose folder
//! parses its options; foreachBatch, memory and blackhole are read here.

use super::*;
use crate::connectors::{self, Role};

pub(super) fn parse_sink(
    ctx: &Ctx,
    query: &str,
    node: &Spanned<Node>,
    base: &Path,
) -> Option<SinkSpec> {
    parse_sink_at(ctx, query, node, base, "sink", true)
}

pub(super) fn parse_sink_at(
    ctx: &Ctx,
    query: &str,
    node: &Spanned<Node>,
    base: &Path,
    prefix: &str,
    main: bool,
) -> Option<SinkSpec> {
    let mut s = TableReader::new(ctx, Some(query), prefix, node)?;
    // Besides the connectors: a Wasm handler, and a sink that drops every row.
    let mut formats = connectors::formats(Role::Sink);
    formats.extend(["foreachBatch", "blackhole"]);
    let advice = connectors::one_of(&formats);
    let format = s.required_string("format", &format!("say which sink: {advice}"))?;
    if let Some((connector, format)) = connectors::find(&format, Role::Sink) {
        return match connector.name {
            "console" => connectors::console::parse_sink(s).map(SinkSpec::Console),
            "elasticsearch" => {
                connectors::elasticsearch::parse_sink(s, base, main).map(SinkSpec::Elasticsearch)
            }
            "kafka" => connectors::kafka::parse_sink(s, base).map(SinkSpec::Kafka),
            "postgres" => connectors::postgres::parse_sink(s, base).map(SinkSpec::Postgres),
            "cassandra" => connectors::cassandra::parse_sink(s, base).map(SinkSpec::Cassandra),
            "file" => connectors::file::parse_sink(s, format, base).map(SinkSpec::File),
            "memory" => {
                s.finish(&["format"]);
                // The main sink's table is named after the query, an output's after the output.
                let table = prefix.strip_prefix("outputs.").unwrap_or(query).to_owned();
                Some(SinkSpec::Memory { table })
            }
            other => super::sources::unreachable_connector(&mut s, other),
        };
    }
    match format.to_ascii_lowercase().as_str() {
        "foreachbatch" if main => {
            let module = s.required_string(
                "module",
                "the handler component, e.g. module = \"handlers/two_sinks.wasm\"",
            );
            let config = s.guest_config("config", base);
            let limits = parse_limits(&mut s);
            let directory = s.string("directory").map(|d| resolve(base, &d));
            let allow_hosts = s.string_list("allowHosts").unwrap_or_default();
            let path = module
                .as_deref()
                .and_then(|m| module_path(&mut s, "module", base, m, GuestWorld::Handler));
            let mut known = vec!["format", "module", "config", "directory", "allowHosts"];
            known.extend(LIMIT_KEYS);
            s.finish(&known);
            Some(SinkSpec::ForeachBatch(HandlerSpec {
                module: path?,
                config,
                limits,
                directory,
                allow_hosts,
            }))
        }
        "foreachbatch" => {
            s.error_here(
                "format",
                "an output cannot be a foreachBatch handler".to_owned(),
            );
            None
        }
        "blackhole" | "noop" => {
            s.finish(&["format"]);
            Some(SinkSpec::Blackhole)
        }
        "text" => {
            s.error_here(
                "format",
                "a text sink is not supported; use json, csv or parquet".to_owned(),
            );
            None
        }
        other => {
            s.error_here(
                "format",
                format!("unknown sink format '{other}'; use {advice}"),
            );
            None
        }
    }
}
