//! Source options: files, rate, socket, Kafka and Nexmark, each checked against what the
//! format accepts.

use super::*;

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
    let spec = match format.to_ascii_lowercase().as_str() {
        "json" | "csv" | "parquet" | "text" => {
            let format = match format.to_ascii_lowercase().as_str() {
                "json" => FileFormat::Json,
                "csv" => FileFormat::Csv,
                "parquet" => FileFormat::Parquet,
                _ => FileFormat::Text,
            };
            parse_file_source(&mut s, format, base).map(SourceSpec::File)
        }
        "rate" => {
            let spec = RateSpec {
                rows_per_second: s.positive("rowsPerSecond").unwrap_or(1),
                ramp_up_time: s.duration("rampUpTime").unwrap_or_default(),
                num_partitions: s.positive("numPartitions").unwrap_or(1),
            };
            s.finish(&["format", "rowsPerSecond", "rampUpTime", "numPartitions"]);
            return Some(SourceSpec::Rate(spec));
        }
        "nexmark" => {
            let first_event_time_ms = match s.string("firstEventTime") {
                None => Some(1_436_918_400_000), // 2015-07-15T00:00:00Z, as the reference
                Some(t) => match chrono::DateTime::parse_from_rfc3339(&t) {
                    Ok(d) => Some(d.timestamp_millis()),
                    Err(e) => {
                        s.error_here(
                            "firstEventTime",
                            format!("'{t}' is not an RFC 3339 time like 2015-07-15T00:00:00Z: {e}"),
                        );
                        None
                    }
                },
            };
            let table = match s.string("table").map(|t| t.to_ascii_lowercase()).as_deref() {
                None | Some("all") => NexmarkTable::All,
                Some("bid") => NexmarkTable::Bid,
                Some("auction") => NexmarkTable::Auction,
                Some("person") => NexmarkTable::Person,
                Some(other) => {
                    s.error_here(
                        "table",
                        format!("'{other}' is not a Nexmark table; use \"all\", \"bid\", \"auction\" or \"person\""),
                    );
                    NexmarkTable::All
                }
            };
            let spec = NexmarkSpec {
                table,
                events: s.positive("events"),
                events_per_second: s.positive("eventsPerSecond").unwrap_or(10_000),
                throttle: s.bool("throttle").unwrap_or(false),
                first_event_time_ms: first_event_time_ms.unwrap_or(0),
                max_events_per_trigger: s.positive("maxEventsPerTrigger").unwrap_or(200_000),
            };
            s.finish(&[
                "format",
                "table",
                "events",
                "eventsPerSecond",
                "throttle",
                "firstEventTime",
                "maxEventsPerTrigger",
            ]);
            return first_event_time_ms.map(|_| SourceSpec::Nexmark(spec));
        }
        "rate-micro-batch" => {
            let rows = s.positive("rowsPerBatch");
            if s.get("rowsPerBatch").is_none() {
                s.error_here(
                    "rowsPerBatch",
                    "missing required option; e.g. rowsPerBatch = 1000".to_owned(),
                );
            }
            let spec = RateMicroBatchSpec {
                rows_per_batch: rows.unwrap_or(0),
                num_partitions: s.positive("numPartitions").unwrap_or(1),
                start_timestamp_ms: s.i64("startTimestamp").unwrap_or(0),
                advance_millis_per_batch: s.i64("advanceMillisPerBatch").unwrap_or(1000),
            };
            s.finish(&[
                "format",
                "rowsPerBatch",
                "numPartitions",
                "startTimestamp",
                "advanceMillisPerBatch",
            ]);
            return rows.map(|_| SourceSpec::RateMicroBatch(spec));
        }
        "kafka" => {
            let spec = parse_kafka_source(&mut s);
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
            ]);
            return spec.map(SourceSpec::Kafka);
        }
        "socket" => {
            let host = s.required_string("host", "e.g. host = \"localhost\"");
            let port = match s.get("port") {
                None => {
                    s.error_here(
                        "port",
                        "missing required option; e.g. port = 9999".to_owned(),
                    );
                    None
                }
                Some(node) => match s.u64("port").map(u16::try_from) {
                    Some(Ok(p)) if p > 0 => Some(p),
                    Some(_) => {
                        s.error_at(
                            node.span().start,
                            "port",
                            "must be between 1 and 65535".to_owned(),
                        );
                        None
                    }
                    None => None,
                },
            };
            let include_timestamp = s.bool("includeTimestamp").unwrap_or(false);
            s.finish(&["format", "host", "port", "includeTimestamp"]);
            return Some(SourceSpec::Socket(SocketSpec {
                host: host?,
                port: port?,
                include_timestamp,
            }));
        }
        other => {
            s.error_here(
                "format",
                format!("unknown source format '{other}'; use json, csv, parquet, text, kafka, rate, rate-micro-batch, socket or nexmark"),
            );
            None
        }
    };
    s.finish(FILE_SOURCE_KEYS);
    spec
}

pub(super) fn parse_offsets(s: &TableReader, key: &str, text: &str) -> Option<OffsetSpec> {
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
pub(super) fn partition_map(
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
pub(super) fn kafka_client_options(
    s: &mut TableReader,
    refused: &[(&str, &str)],
) -> (Option<String>, Vec<(String, String)>, Duration) {
    let mut bootstrap = None;
    let mut client_options = Vec::new();
    for (key, node) in s.with_prefix("kafka.") {
        let option = key["kafka.".len()..].to_owned();
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
            client_options.push((option, value));
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

pub(super) fn parse_kafka_source(s: &mut TableReader) -> Option<KafkaSourceSpec> {
    let (bootstrap, client_options, connect_timeout) = kafka_client_options(s, REFUSED_OPTIONS);
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
    Some(KafkaSourceSpec {
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

pub(super) fn parse_file_source(
    s: &mut TableReader,
    format: FileFormat,
    base: &Path,
) -> Option<FileSourceSpec> {
    let path = s.required_string("path", "a directory or glob, e.g. path = \"input/*.json\"");
    let schema = s.get("schema").and_then(|node| {
        let text = s.string("schema")?;
        match parse_ddl(&text) {
            Ok(schema) => Some(schema),
            Err(e) => {
                s.error_at(node.span().start, "schema", e);
                None
            }
        }
    });
    let infer_schema = s.bool("inferSchema").unwrap_or(false);
    if format != FileFormat::Text && schema.is_none() && !infer_schema && s.get("schema").is_none()
    {
        s.error_here(
            "schema",
            "a streaming file source needs a schema: declare one (schema = \"city STRING, n BIGINT\") or set inferSchema = true to take it from the first file".to_owned(),
        );
    }
    if format == FileFormat::Text && s.get("schema").is_some() {
        s.error_here(
            "schema",
            "a text source always has one column, `value`; remove the schema".to_owned(),
        );
    }
    let max_files_per_trigger = s.positive("maxFilesPerTrigger");
    let latest_first = s.bool("latestFirst").unwrap_or(false);
    let archive_dir = s.string("sourceArchiveDir");
    let clean_source = match s
        .string("cleanSource")
        .map(|c| c.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("off") => CleanSource::Off,
        Some("delete") => CleanSource::Delete,
        Some("archive") => match &archive_dir {
            Some(dir) => CleanSource::Archive(resolve(base, dir)),
            None => {
                s.error_here(
                    "sourceArchiveDir",
                    "cleanSource = \"archive\" needs sourceArchiveDir = \"...\"".to_owned(),
                );
                CleanSource::Off
            }
        },
        Some(other) => {
            s.error_here(
                "cleanSource",
                format!("'{other}' is not an option; use \"off\", \"archive\" or \"delete\""),
            );
            CleanSource::Off
        }
    };
    let mode = match s.string("mode").map(|m| m.to_ascii_uppercase()).as_deref() {
        None | Some("PERMISSIVE") => ParseMode::Permissive,
        Some("DROPMALFORMED") => ParseMode::DropMalformed,
        Some("FAILFAST") => ParseMode::FailFast,
        Some(other) => {
            s.error_here(
                "mode",
                format!(
                    "'{other}' is not a mode; use \"PERMISSIVE\", \"DROPMALFORMED\" or \"FAILFAST\""
                ),
            );
            ParseMode::Permissive
        }
    };
    let column_name_of_corrupt_record = s
        .string("columnNameOfCorruptRecord")
        .unwrap_or_else(|| "_corrupt_record".to_owned());
    let header = s.bool("header").unwrap_or(false);
    let sep = match s.string("sep") {
        None => b',',
        Some(sep) if sep.len() == 1 => sep.as_bytes()[0],
        Some(sep) if sep == "\\t" => b'\t',
        Some(sep) => {
            s.error_here("sep", format!("'{sep}' must be a single character"));
            b','
        }
    };
    if format != FileFormat::Csv {
        for key in ["header", "sep"] {
            if let Some(node) = s.get(key) {
                s.error_at(
                    node.span().start,
                    key,
                    format!("only applies to csv, not {}", format.name()),
                );
            }
        }
    }
    let path = resolve(base, &path?);
    if let CleanSource::Archive(dir) = &clean_source {
        let root = glob_root(&path);
        if dir.starts_with(&root) {
            s.error_here(
                "sourceArchiveDir",
                format!(
                    "{} is inside the source path {}; archived files would be read again",
                    dir.display(),
                    root.display()
                ),
            );
        }
    }
    Some(FileSourceSpec {
        format,
        path,
        schema,
        infer_schema,
        max_files_per_trigger,
        latest_first,
        clean_source,
        mode,
        column_name_of_corrupt_record,
        header,
        sep,
    })
}

/// The directory part of a glob: the longest prefix without wildcard characters.
pub fn glob_root(path: &Path) -> PathBuf {
    let mut root = PathBuf::new();
    for c in path.components() {
        if c.as_os_str()
            .to_string_lossy()
            .contains(['*', '?', '[', '{'])
        {
            break;
        }
        root.push(c);
    }
    root
}
