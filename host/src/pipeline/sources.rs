//! `[query.source]` (and each `[query.inputs.NAME]`): the format picks the connector, whose
//! folder parses and checks its own options (`crate::connectors::<name>`).

use super::*;
use crate::connectors;

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
    let format = s.required_string(
        "format",
        "say which source: json, csv, parquet, text, kafka, rate, rate-micro-batch or socket",
    )?;
    match format.to_ascii_lowercase().as_str() {
        "json" | "csv" | "parquet" | "text" => {
            connectors::file::parse_source(s, &format, base).map(SourceSpec::File)
        }
        "rate" => connectors::rate::parse_rate(s).map(SourceSpec::Rate),
        "rate-micro-batch" => {
            connectors::rate::parse_micro_batch(s).map(SourceSpec::RateMicroBatch)
        }
        "nexmark" => connectors::nexmark::parse_source(s).map(SourceSpec::Nexmark),
        "kafka" => connectors::kafka::parse_source(s, base).map(SourceSpec::Kafka),
        "socket" => connectors::socket::parse_source(s).map(SourceSpec::Socket),
        other => {
            s.error_here(
                "format",
                format!("unknown source format '{other}'; use json, csv, parquet, text, kafka, rate, rate-micro-batch, socket or nexmark"),
            );
            None
        }
    }
}
