//! Sink options (`[query.sink]` and named `[query.outputs.NAME]`).

use super::*;

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
    let format = s.required_string(
        "format",
        "say which sink: console, memory, json, csv, parquet, foreachBatch or blackhole",
    )?;
    match format.to_ascii_lowercase().as_str() {
        "foreachbatch" if main => {
            let module = s.required_string(
                "module",
                "the handler component, e.g. module = \"handlers/two_sinks.wasm\"",
            );
            let config = s
                .get("config")
                .map(|c| c.get_ref().to_json())
                .unwrap_or(serde_json::Value::Null);
            let limits = parse_limits(&mut s);
            let directory = s.string("directory").map(|d| resolve(base, &d));
            let allow_hosts = s.string_list("allowHosts").unwrap_or_default();
            let path = module
                .as_deref()
                .and_then(|m| module_path(&mut s, "module", base, m));
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
        "console" => {
            let num_rows = s.positive("numRows").unwrap_or(20) as usize;
            let truncate = s.bool("truncate").unwrap_or(true);
            s.finish(&["format", "numRows", "truncate"]);
            Some(SinkSpec::Console { num_rows, truncate })
        }
        "kafka" => {
            let (bootstrap, client_options, connect_timeout) =
                kafka_client_options(&mut s, REFUSED_SINK_OPTIONS);
            let topic = s.string("topic");
            let exactly_once = s.bool("exactlyOnce").unwrap_or(false);
            if exactly_once && topic.is_none() {
                s.error_here(
                    "exactlyOnce",
                    "needs the `topic` option: the sink records its last committed batch in that topic's offsets".to_owned(),
                );
            }
            s.finish(&["format", "topic", "exactlyOnce", "connectTimeout"]);
            Some(SinkSpec::Kafka(KafkaSinkSpec {
                bootstrap_servers: bootstrap?,
                topic,
                exactly_once,
                client_options,
                connect_timeout,
            }))
        }
        "blackhole" | "noop" => {
            s.finish(&["format"]);
            Some(SinkSpec::Blackhole)
        }
        "memory" => {
            s.finish(&["format"]);
            // The main sink's table is named after the query, an output's after the output.
            let table = prefix.strip_prefix("outputs.").unwrap_or(query).to_owned();
            Some(SinkSpec::Memory { table })
        }
        "json" | "csv" | "parquet" => {
            let format = match format.to_ascii_lowercase().as_str() {
                "json" => FileFormat::Json,
                "csv" => FileFormat::Csv,
                _ => FileFormat::Parquet,
            };
            let path = s.required_string(
                "path",
                "the output directory, e.g. path = \"output/events\"",
            );
            let partition_by = s.string_list("partitionBy").unwrap_or_default();
            let header = s.bool("header").unwrap_or(false);
            if format != FileFormat::Csv
                && let Some(node) = s.get("header")
            {
                s.error_at(
                    node.span().start,
                    "header",
                    "only applies to csv".to_owned(),
                );
            }
            s.finish(&["format", "path", "partitionBy", "header"]);
            Some(SinkSpec::File(FileSinkSpec {
                format,
                path: resolve(base, &path?),
                partition_by,
                header,
            }))
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
                format!("unknown sink format '{other}'; use console, memory, json, csv, parquet, foreachBatch or blackhole"),
            );
            None
        }
    }
}
