//! Kafka: a source reading assigned partitions with offsets in the checkpoint, and a sink (at-least-once, or exactly-once through transactions), with what both share to reach a cluster.

pub mod client;
pub mod sink;
pub mod source;

use std::collections::BTreeMap;
use std::time::Duration;

use self::client::{ClientValue, is_secret_option};
use self::sink::{KafkaSinkSpec, REFUSED_SINK_OPTIONS};
use self::source::{KafkaSourceSpec, OffsetSpec, REFUSED_OPTIONS, Subscription, TimestampStrategy};
use crate::config::reader::{Node, TableReader};
use crate::secret::SecretSource;

/// `format = "kafka"` source options.
pub(crate) fn parse_source(mut s: TableReader, base: &std::path::Path) -> Option<KafkaSourceSpec> {
    let spec = parse_source_options(&mut s, base);
    s.finish(&[
        "format",
        "subscribe",
        "subscribePattern",
        "assign",
        "startingOffsets",
        "startingTimestamp",
        "startingOffsetsByTimestamp",
        "startingOffsetsByTimestampStrategy",
        "endingOffsets",
        "maxOffsetsPerTrigger",
        "minOffsetsPerTrigger",
        "maxTriggerDelay",
        "failOnDataLoss",
        "includeHeaders",
        "connectTimeout",
        "valueFormat",
        "schema",
    ]);
    spec
}

/// `format = "kafka"` sink options.
pub(crate) fn parse_sink(mut s: TableReader, base: &std::path::Path) -> Option<KafkaSinkSpec> {
    let (bootstrap, client_options, connect_timeout) =
        client_options(&mut s, REFUSED_SINK_OPTIONS, base);
    let topic = s.string("topic");
    let exactly_once = s.bool("exactlyOnce").unwrap_or(false);
    if exactly_once && topic.is_none() {
        s.error_here(
                "exactlyOnce",
                "needs the `topic` option: the sink records its last committed batch in that topic's offsets".to_owned(),
            );
    }
    // Rows without a `value` column become JSON objects (Arroyo's `format = "json"`, Flink's
    // `value.format`): what a stateful query's output needs, since no step follows an
    // aggregate to serialise it.
    let json_rows = match s.string("valueFormat").as_deref() {
        None | Some("column") => false,
        Some("json") => true,
        Some(other) => {
            s.error_here(
                "valueFormat",
                format!("'{other}' is not a value format; use \"column\" (the `value` column, the default) or \"json\" (each row as a JSON object)"),
            );
            false
        }
    };
    let partition_column = s.string("partitionColumn");
    s.finish(&[
        "format",
        "topic",
        "exactlyOnce",
        "connectTimeout",
        "valueFormat",
        "partitionColumn",
    ]);
    Some(KafkaSinkSpec {
        partition_column,
        bootstrap_servers: bootstrap?,
        topic,
        exactly_once,
        json_rows,
        client_options,
        connect_timeout,
    })
}

/// The source's `valueFormat` (`"binary"`, the default: the `value` column as bytes; or
/// `"json"`: each value parsed with `schema`, its fields becoming columns) and `schema`.
fn parse_value_format(s: &mut TableReader) -> Option<source::JsonValue> {
    let schema = s.string("schema");
    match (s.string("valueFormat").as_deref(), schema) {
        (None | Some("binary"), None) => None,
        (None | Some("binary"), Some(_)) => {
            s.error_here(
                "schema",
                "a schema describes the value's fields: set valueFormat = \"json\" with it"
                    .to_owned(),
            );
            None
        }
        (Some("json"), Some(ddl)) => match crate::schema::parse_ddl(&ddl) {
            Ok(schema) => Some(source::JsonValue {
                schema: crate::schema::all_nullable(&schema),
                ddl,
            }),
            Err(e) => {
                s.error_here("schema", e);
                None
            }
        },
        (Some("json"), None) => {
            s.error_here(
                "schema",
                "valueFormat = \"json\" needs the value's fields, e.g. schema = \"order_id BIGINT, amount DOUBLE\"".to_owned(),
            );
            None
        }
        (Some(other), _) => {
            s.error_here(
                "valueFormat",
                format!("'{other}' is not a value format; use \"binary\" (the default) or \"json\" (with a schema)"),
            );
            None
        }
    }
}

fn parse_offsets(s: &TableReader, key: &str, text: &str) -> Option<OffsetSpec> {
    match text.trim() {
        "earliest" => Some(OffsetSpec::Earliest),
        "latest" => Some(OffsetSpec::Latest),
        json => partition_map(
            s,
            key,
            json,
            "\"earliest\", \"latest\" or JSON like {\"topic\":{\"0\":23,\"1\":-2}}",
        )
        .map(OffsetSpec::Json),
    }
}

/// Per-partition numbers as Spark writes them: `{"topic": {"0": 23, "1": -2}}`; `expected`
/// says in the error what the option takes.
fn partition_map(
    s: &TableReader,
    key: &str,
    json: &str,
    expected: &str,
) -> Option<BTreeMap<String, BTreeMap<i32, i64>>> {
    let m = match serde_json::from_str::<BTreeMap<String, BTreeMap<String, i64>>>(json) {
        Ok(m) => m,
        Err(e) => {
            s.error_here(key, format!("'{json}' is not {expected} ({e})"));
            return None;
        }
    };
    let mut out = BTreeMap::new();
    for (topic, parts) in m {
        let mut ps = BTreeMap::new();
        for (p, o) in parts {
            match p.parse::<i32>() {
                Ok(p) => {
                    ps.insert(p, o);
                }
                Err(_) => {
                    s.error_here(
                        key,
                        format!("partition '{p}' of topic '{topic}' is not a number"),
                    );
                    return None;
                }
            }
        }
        out.insert(topic, ps);
    }
    Some(out)
}

/// The `"kafka.*"` options of a Kafka source or sink: the bootstrap servers and the rest for
/// the client, refusing the `refused` ones with their reason.
fn client_options(
    s: &mut TableReader,
    refused: &[(&str, &str)],
    base: &std::path::Path,
) -> (Option<String>, Vec<(String, ClientValue)>, Duration) {
    let mut bootstrap = None;
    let mut client_options = Vec::new();
    for (key, node) in s.with_prefix("kafka.") {
        let option = key["kafka.".len()..].to_owned();
        // `"kafka.sasl.password" = { env = "NAME" }` arrives flattened, as
        // `kafka.sasl.password.env`: any option may come from the environment or a file.
        let secret = option
            .strip_suffix(".env")
            .map(|o| (o, true))
            .or_else(|| option.strip_suffix(".file").map(|o| (o, false)));
        if let (Some((parent, env)), Node::Str(v)) = (secret, node.get_ref()) {
            let source = if env {
                SecretSource::Env(v.clone())
            } else {
                SecretSource::File(base.join(v))
            };
            client_options.push((parent.to_owned(), ClientValue::Secret(source)));
            continue;
        }
        if is_secret_option(&option) {
            s.error_at(
                node.span().start,
                &key,
                format!(
                    "a secret written into the pipeline is refused; {}",
                    crate::secret::HOW_TO_WRITE
                ),
            );
            continue;
        }
        let value = match node.get_ref() {
            Node::Str(v) => v.clone(),
            Node::Int(i) => i.to_string(),
            Node::Bool(b) => b.to_string(),
            other => {
                s.error_at(
                    node.span().start,
                    &key,
                    format!("expected a string, found {}", other.kind()),
                );
                continue;
            }
        };
        if let Some((_, why)) = refused
            .iter()
            .find(|(o, _)| o.eq_ignore_ascii_case(&option))
        {
            s.error_at(node.span().start, &key, format!("is not supported: {why}"));
        } else if option == "bootstrap.servers" {
            bootstrap = Some(value);
        } else {
            client_options.push((option, ClientValue::Text(value)));
        }
    }
    if bootstrap.is_none() {
        s.error_here(
            "kafka.bootstrap.servers",
            "missing required option; e.g. \"kafka.bootstrap.servers\" = \"localhost:9092\""
                .to_owned(),
        );
    }
    let connect_timeout = s
        .duration("connectTimeout")
        .unwrap_or(crate::connectors::kafka::client::DEFAULT_CONNECT_TIMEOUT);
    if connect_timeout.is_zero() {
        s.error_here("connectTimeout", "must be greater than 0".to_owned());
    }
    (bootstrap, client_options, connect_timeout)
}

fn parse_source_options(s: &mut TableReader, base: &std::path::Path) -> Option<KafkaSourceSpec> {
    let (bootstrap, client_options, connect_timeout) = client_options(s, REFUSED_OPTIONS, base);
    let subscribe = s.string("subscribe");
    let pattern = s.string("subscribePattern");
    let assign = s.string("assign");
    let subscription = match (subscribe, pattern, assign) {
        (Some(t), None, None) => Some(Subscription::Topics(
            t.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
        )),
        (None, Some(p), None) => match regex::Regex::new(&p) {
            Ok(_) => Some(Subscription::Pattern(p)),
            Err(e) => {
                s.error_here(
                    "subscribePattern",
                    format!("not a valid regular expression: {e}"),
                );
                None
            }
        },
        (None, None, Some(a)) => match serde_json::from_str::<BTreeMap<String, Vec<i32>>>(&a) {
            Ok(m) => Some(Subscription::Assign(m)),
            Err(e) => {
                s.error_here(
                    "assign",
                    format!("expected JSON like {{\"topicA\":[0,1]}}: {e}"),
                );
                None
            }
        },
        _ => {
            s.error_here(
                "subscribe",
                "give exactly one of subscribe, subscribePattern or assign".to_owned(),
            );
            None
        }
    };
    // Spark's precedence: startingTimestamp, then startingOffsetsByTimestamp, then
    // startingOffsets.
    let strategy = match s
        .string("startingOffsetsByTimestampStrategy")
        .map(|t| t.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("error") => TimestampStrategy::Error,
        Some("latest") => TimestampStrategy::Latest,
        Some(other) => {
            s.error_here(
                "startingOffsetsByTimestampStrategy",
                format!("'{other}' is not a strategy; use \"error\" or \"latest\""),
            );
            TimestampStrategy::Error
        }
    };
    let by_timestamp = s.get("startingOffsetsByTimestamp").is_some();
    // Read (and check) startingOffsets even when a timestamp option overrides it.
    let plain_starting_offsets = match s.string("startingOffsets") {
        None => Some(OffsetSpec::Latest),
        Some(t) => parse_offsets(s, "startingOffsets", &t),
    };
    let starting_offsets = if s.get("startingTimestamp").is_some() {
        match s.i64("startingTimestamp") {
            Some(ts) if ts >= 0 => Some(OffsetSpec::Timestamp(ts, strategy)),
            Some(ts) => {
                s.error_here(
                    "startingTimestamp",
                    format!("{ts} is negative; give milliseconds since the epoch"),
                );
                None
            }
            None => None,
        }
    } else if by_timestamp {
        s.string("startingOffsetsByTimestamp")
            .and_then(|t| {
                partition_map(
                    s,
                    "startingOffsetsByTimestamp",
                    &t,
                    "JSON like {\"topic\":{\"0\":1700000000000}} (milliseconds since the epoch)",
                )
            })
            .map(|m| OffsetSpec::TimestampJson(m, strategy))
    } else {
        plain_starting_offsets
    };
    let ending_offsets = match s.string("endingOffsets") {
        None => None,
        Some(t) => match parse_offsets(s, "endingOffsets", &t) {
            Some(OffsetSpec::Earliest) => {
                s.error_here(
                    "endingOffsets",
                    "cannot be \"earliest\"; use \"latest\" or per-partition JSON".to_owned(),
                );
                None
            }
            other => other,
        },
    };
    let max_offsets_per_trigger = s.positive("maxOffsetsPerTrigger");
    let fail_on_data_loss = s.bool("failOnDataLoss").unwrap_or(true);
    let include_headers = s.bool("includeHeaders").unwrap_or(false);
    let min_offsets_per_trigger = s.positive("minOffsetsPerTrigger");
    let max_trigger_delay = s
        .duration("maxTriggerDelay")
        .unwrap_or(Duration::from_secs(15 * 60));
    if let (Some(min), Some(max)) = (min_offsets_per_trigger, max_offsets_per_trigger)
        && min > max
    {
        s.error_here(
            "minOffsetsPerTrigger",
            format!("{min} is more than maxOffsetsPerTrigger ({max})"),
        );
    }
    let value_schema = parse_value_format(s);
    Some(KafkaSourceSpec {
        value_schema,
        bootstrap_servers: bootstrap?,
        subscription: subscription?,
        starting_offsets: starting_offsets?,
        ending_offsets,
        max_offsets_per_trigger,
        min_offsets_per_trigger,
        max_trigger_delay,
        fail_on_data_loss,
        include_headers,
        client_options,
        connect_timeout,
    })
}
