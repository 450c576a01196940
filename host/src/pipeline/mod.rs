//! Pipeline files: what a user writes to describe queries, and its validation.
//!
//! A pipeline is a TOML file with one `[[query]]` table per streaming query. Option names
//! follow Spark's `DataStreamReader` / `DataStreamWriter` options so that a Spark query
//! translates line by line:
//!
//! ```toml
//! [[query]]
//! name = "events"
//! checkpointLocation = "checkpoints/events"   # relative paths are relative to this file
//! outputMode = "append"
//! trigger = { processingTime = "10 seconds" } # or "once", "availableNow"; omit for Spark's default
//!
//! [query.source]
//! format = "json"                  # json | csv | parquet | text | kafka | rate | rate-micro-batch | socket | nexmark
//! path = "input/*.json"
//! schema = "city STRING, domain STRING, event STRING"
//! maxFilesPerTrigger = 10
//!
//! [query.sink]
//! format = "parquet"               # console | memory | json | csv | parquet
//! path = "output/events"
//! partitionBy = ["city"]
//! ```
//!
//! [`Pipeline::parse`] reports every problem at once, each with the query, key path and line
//! ([`Diagnostics`]); nothing runs unless the file is clean.

mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_schema::SchemaRef;
use toml::Spanned;

use tree::{Ctx, Node, TableReader, offset_of};
pub use tree::{Diagnostic, Diagnostics, parse_bytes, parse_duration};

use crate::error::{Error, Result};
use crate::operators::SpecProblem;
use crate::operators::aggregate::{AggFunc, AggSpec, AggregateSpec};
use crate::operators::dedup::DedupSpec;
use crate::operators::join::{JoinRight, JoinSpec, JoinType, TableSpec, TimeRange};
use crate::operators::window::WindowSpec;
use crate::registry::Registry;
use crate::schema::parse_ddl;
use crate::sink::kafka::{KafkaSinkSpec, REFUSED_SINK_OPTIONS};
use crate::source::kafka::{
    KafkaSourceSpec, OffsetSpec, REFUSED_OPTIONS, Subscription, TimestampStrategy,
};
use crate::source::nexmark::{NexmarkSpec, NexmarkTable};
use crate::trigger::Trigger;
use crate::wasm::aggregate::UdafSpec;
use crate::watermark::{WatermarkPolicy, WatermarkSpec};

/// A parsed, validated pipeline file.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Where the file was read from; relative paths inside it were resolved against its folder.
    pub file: PathBuf,
    /// The queries, in file order.
    pub queries: Vec<QuerySpec>,
    /// What the other queries do when one fails.
    pub on_query_failure: OnQueryFailure,
}

/// What happens to the other queries of a process when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnQueryFailure {
    /// The failed query stops with its error; the others go on (Spark's behaviour).
    #[default]
    Continue,
    /// Every query is stopped gracefully.
    StopAll,
}

/// One streaming query: inputs (each with its own steps) → combine → steps → stateful
/// operators → sink.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    /// Unique name within the pipeline; shown in logs and progress, names the memory table.
    pub name: String,
    /// Where the data comes from: one input (`[query.source]`, named "source") or several
    /// (`[query.inputs.NAME]`), in file order.
    pub inputs: Vec<InputSpec>,
    /// How several inputs become one stream.
    pub combine: Combine,
    /// Where the results go.
    pub sink: SinkSpec,
    /// When batches run.
    pub trigger: Trigger,
    /// Append, update or complete.
    pub output_mode: OutputMode,
    /// Checkpoint directory; `None` means a temporary one (console and memory sinks only).
    pub checkpoint_location: Option<PathBuf>,
    /// How many batches of offsets/commits the checkpoint keeps (Spark's `minBatchesToRetain`).
    pub min_batches_to_retain: u64,
    /// Wasm transform steps applied after the inputs are combined, in order.
    pub transforms: Vec<TransformSpec>,
    /// Named extra sinks for the foreachBatch handler and dead letters.
    pub outputs: Vec<(String, SinkSpec)>,
    /// How several inputs' watermarks combine (`watermarkPolicy`).
    pub watermark_policy: WatermarkPolicy,
    /// `[query.dropDuplicates]`.
    pub dedup: Option<DedupSpec>,
    /// `[query.aggregate]`.
    pub aggregate: Option<AggregateSpec>,
}

impl QuerySpec {
    /// Whether the query keeps state between batches.
    pub fn is_stateful(&self) -> bool {
        self.dedup.is_some() || self.aggregate.is_some()
    }

    /// The event-time column and delay the stateful operators go by: the first input's
    /// watermark (every input that declares one names the same column; checked at validation).
    pub fn watermark(&self) -> Option<&WatermarkSpec> {
        self.inputs.iter().find_map(|i| i.watermark.as_ref())
    }

    /// Every transform step with where it runs, in the order a batch meets them.
    pub fn steps(&self) -> impl Iterator<Item = (StepPlace, &TransformSpec)> {
        self.inputs
            .iter()
            .enumerate()
            .flat_map(|(i, input)| {
                input
                    .transforms
                    .iter()
                    .map(move |t| (StepPlace::Input(i), t))
            })
            .chain(self.transforms.iter().map(|t| (StepPlace::Combined, t)))
    }
}

/// One named input of a query: a source, its watermark, and the steps that shape its rows
/// before they meet the other inputs.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The input's name (`source` for the one-input form).
    pub name: String,
    /// Where its rows come from.
    pub source: SourceSpec,
    /// Its `watermark = { column, delay }`.
    pub watermark: Option<WatermarkSpec>,
    /// Wasm steps applied to this input only (`[[query.inputs.NAME.transform]]`).
    pub transforms: Vec<TransformSpec>,
}

/// How a query's inputs become one stream.
#[derive(Debug, Clone)]
pub enum Combine {
    /// One input: nothing to combine.
    Single,
    /// `[query.union]`: the rows of every input, whose schemas must match after their steps.
    Union,
    /// `[query.join]` with a `[query.join.table]`: the one input joined with files.
    StaticJoin(JoinSpec),
    /// `[query.join]` of two inputs.
    StreamJoin(JoinSpec),
}

/// Where a transform step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPlace {
    /// On input `i`'s rows, before the inputs are combined.
    Input(usize),
    /// On the combined stream.
    Combined,
}

/// Limits on a guest, per call.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestLimits {
    /// Wall-clock deadline of one call (`timeout`).
    pub timeout: Duration,
    /// Cap on the guest's linear memory (`maxMemory`).
    pub max_memory: u64,
    /// Fuel per call (`fuel`), when set.
    pub fuel: Option<u64>,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            timeout: Duration::from_secs(30),
            max_memory: 512 << 20,
            fuel: None,
        }
    }
}

/// What a failed transform call does to its rows (`onError`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OnError {
    /// The query stops; the batch is not committed and re-runs on restart.
    #[default]
    Fail,
    /// The rows of the failed call are dropped, logged and counted.
    Skip,
    /// The rows go, with an `_error` column, to this named output.
    DeadLetter(String),
}

/// A Wasm transform step (`[[query.transform]]`).
#[derive(Debug, Clone)]
pub struct TransformSpec {
    /// The step's name in logs and errors.
    pub name: String,
    /// The component file (for a registry module, its blob, named by its digest).
    pub module: PathBuf,
    /// The registry reference the pipeline wrote (`name@^1.2`), when it named one.
    pub module_ref: Option<String>,
    /// The step's `config` table, handed to the guest's `init` as JSON.
    pub config: serde_json::Value,
    /// Per-call limits.
    pub limits: GuestLimits,
    /// What a failed call does.
    pub on_error: OnError,
}

/// A foreachBatch handler sink.
#[derive(Debug, Clone)]
pub struct HandlerSpec {
    /// The component file.
    pub module: PathBuf,
    /// The sink's `config` table, handed to the guest's `init` as JSON.
    pub config: serde_json::Value,
    /// Per-call limits.
    pub limits: GuestLimits,
    /// The one directory the handler may read and write (`directory`).
    pub directory: Option<PathBuf>,
    /// Hosts (`host` or `host:port`) the handler may send HTTP requests to (`allowHosts`).
    pub allow_hosts: Vec<String>,
}

/// Spark's output modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Only new rows reach the sink.
    #[default]
    Append,
    /// Rows that changed since the last batch reach the sink.
    Update,
    /// The whole result table reaches the sink every batch.
    Complete,
}

/// A source and its options.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// Files in a directory (json lines, csv, parquet, text).
    File(FileSourceSpec),
    /// Spark's `rate` source: rows per second of wall-clock time.
    Rate(RateSpec),
    /// Spark's `rate-micro-batch` source: a fixed number of rows per batch.
    RateMicroBatch(RateMicroBatchSpec),
    /// Lines from a TCP socket (testing only; not replayable).
    Socket(SocketSpec),
    /// Kafka topics.
    Kafka(KafkaSourceSpec),
    /// The Nexmark benchmark's generator.
    Nexmark(NexmarkSpec),
}

/// File formats read and written by the file source and sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// JSON lines: one object per line.
    Json,
    /// Comma (or `sep`) separated values.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// One row per line, in a `value` column.
    Text,
}

impl FileFormat {
    /// The format's name as written in a pipeline and used as a file extension.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Json => "json",
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
            FileFormat::Text => "text",
        }
    }
}

/// What to do with a row that does not parse (Spark's `mode` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// Keep the row: all columns null, the raw text in the corrupt-record column.
    #[default]
    Permissive,
    /// Drop the row and count it (`numMalformedRows` in the source's progress metrics).
    DropMalformed,
    /// Stop the query with an error naming the file and line.
    FailFast,
}

/// What happens to a source file once its batch is committed (Spark's `cleanSource`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CleanSource {
    /// Leave it where it is.
    #[default]
    Off,
    /// Move it under this directory, keeping its full path.
    Archive(PathBuf),
    /// Delete it.
    Delete,
}

/// Options of the file source.
#[derive(Debug, Clone)]
pub struct FileSourceSpec {
    /// The format of the files.
    pub format: FileFormat,
    /// A glob (`dir/*.json`) or a directory (all its visible files).
    pub path: PathBuf,
    /// The declared schema, if any.
    pub schema: Option<SchemaRef>,
    /// Infer the schema from the first file when none is declared.
    pub infer_schema: bool,
    /// At most this many new files per batch.
    pub max_files_per_trigger: Option<u64>,
    /// Process the newest files first.
    pub latest_first: bool,
    /// What to do with files once committed.
    pub clean_source: CleanSource,
    /// What to do with malformed rows.
    pub mode: ParseMode,
    /// Name of the column that holds malformed rows' text in PERMISSIVE mode.
    pub column_name_of_corrupt_record: String,
    /// CSV: the first line of each file is a header.
    pub header: bool,
    /// CSV: the field separator.
    pub sep: u8,
}

/// Options of the `rate` source.
#[derive(Debug, Clone, Copy)]
pub struct RateSpec {
    /// Rows generated per second once ramped up.
    pub rows_per_second: u64,
    /// Time to ramp up linearly to `rows_per_second`.
    pub ramp_up_time: Duration,
    /// Accepted for compatibility; rows are generated in one partition.
    pub num_partitions: u64,
}

/// Options of the `rate-micro-batch` source.
#[derive(Debug, Clone, Copy)]
pub struct RateMicroBatchSpec {
    /// Rows in every batch.
    pub rows_per_batch: u64,
    /// Accepted for compatibility; rows are generated in one partition.
    pub num_partitions: u64,
    /// Event time of batch 0's rows, in ms since the epoch.
    pub start_timestamp_ms: i64,
    /// How far the event time moves per batch, in ms.
    pub advance_millis_per_batch: i64,
}

/// Options of the `socket` source.
#[derive(Debug, Clone)]
pub struct SocketSpec {
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Add a `timestamp` column with the time each line arrived.
    pub include_timestamp: bool,
}

/// A sink and its options.
#[derive(Debug, Clone)]
pub enum SinkSpec {
    /// Print each batch as a table, like Spark's console sink.
    Console {
        /// Rows shown per batch.
        num_rows: usize,
        /// Cut cells to 20 characters.
        truncate: bool,
    },
    /// Keep the rows in an in-process table named after the query.
    Memory {
        /// The table's name.
        table: String,
    },
    /// Files with a commit log that makes them exactly-once.
    File(FileSinkSpec),
    /// A Wasm foreachBatch handler.
    ForeachBatch(HandlerSpec),
    /// Counts rows and writes nothing (for benchmarks).
    Blackhole,
    /// Kafka records.
    Kafka(KafkaSinkSpec),
}

/// Options of the file sink.
#[derive(Debug, Clone)]
pub struct FileSinkSpec {
    /// json, csv or parquet.
    pub format: FileFormat,
    /// Output directory.
    pub path: PathBuf,
    /// Columns whose values name sub-directories (`city=Seoul/`).
    pub partition_by: Vec<String>,
    /// CSV: write a header line.
    pub header: bool,
}

impl SourceSpec {
    /// A short description for logs and progress (`FileSource[/data/*.json]`).
    pub fn description(&self) -> String {
        match self {
            SourceSpec::File(f) => format!("FileSource[{}]", f.path.display()),
            SourceSpec::Rate(r) => format!("RateSource[rowsPerSecond={}]", r.rows_per_second),
            SourceSpec::RateMicroBatch(r) => {
                format!("RatePerMicroBatchSource[rowsPerBatch={}]", r.rows_per_batch)
            }
            SourceSpec::Socket(s) => format!("TextSocketSource[{}:{}]", s.host, s.port),
            SourceSpec::Kafka(k) => format!("KafkaV2[{}]", k.bootstrap_servers),
            SourceSpec::Nexmark(n) => format!(
                "Nexmark[events={}]",
                n.events.map_or("unbounded".to_owned(), |e| e.to_string())
            ),
        }
    }
}

impl SourceSpec {
    /// The schema of the rows this source produces, when it is known without reading any
    /// data (a declared schema, or a source whose columns are fixed); `None` for a file
    /// source that infers its schema.
    pub fn known_schema(&self) -> Option<SchemaRef> {
        use crate::source;
        Some(match self {
            SourceSpec::File(f) => {
                let data = match (&f.schema, f.format) {
                    (_, FileFormat::Text) => source::file::text_schema(),
                    (Some(s), _) => s.clone(),
                    (None, _) => return None,
                };
                source::file::row_schema(f, &data)
            }
            SourceSpec::Rate(_) | SourceSpec::RateMicroBatch(_) => source::rate::rate_schema(),
            SourceSpec::Socket(s) => source::socket::socket_schema(s),
            SourceSpec::Kafka(k) => source::kafka::kafka_schema(k.include_headers),
            SourceSpec::Nexmark(n) => source::nexmark::nexmark_schema(n.table),
        })
    }
}

impl SinkSpec {
    /// A short description for logs and progress.
    pub fn description(&self) -> String {
        match self {
            SinkSpec::Console { .. } => "ConsoleSink".to_owned(),
            SinkSpec::Memory { table } => format!("MemorySink[{table}]"),
            SinkSpec::File(f) => format!("FileSink[{}]", f.path.display()),
            SinkSpec::ForeachBatch(h) => format!("ForeachBatchSink[{}]", h.module.display()),
            SinkSpec::Blackhole => "BlackholeSink".to_owned(),
            SinkSpec::Kafka(k) => format!(
                "KafkaSink[{}]",
                k.topic.as_deref().unwrap_or("<topic column>")
            ),
        }
    }

    /// Whether the sink keeps a log that makes re-runs idempotent (and so needs a real
    /// checkpoint directory to pair it with).
    pub fn is_durable(&self) -> bool {
        matches!(self, SinkSpec::File(_))
    }
}

const QUERY_KEYS: &[&str] = &[
    "name",
    "source",
    "inputs",
    "union",
    "join",
    "sink",
    "trigger",
    "outputMode",
    "checkpointLocation",
    "minBatchesToRetain",
    "transform",
    "outputs",
    "watermarkPolicy",
    "aggregate",
    "dropDuplicates",
];
const FILE_SOURCE_KEYS: &[&str] = &[
    "format",
    "path",
    "schema",
    "inferSchema",
    "maxFilesPerTrigger",
    "latestFirst",
    "cleanSource",
    "sourceArchiveDir",
    "mode",
    "columnNameOfCorruptRecord",
    "header",
    "sep",
];

impl Pipeline {
    /// Reads and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("reading pipeline", path, e))?;
        Pipeline::parse(&text, path)
    }

    /// Reads and validates a pipeline file whose `module = "name@version"` references are
    /// looked up in `registry`.
    pub fn load_with_registry(path: &Path, registry: Option<&Registry>) -> Result<Pipeline> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("reading pipeline", path, e))?;
        Pipeline::parse_with_registry(&text, path, registry)
    }

    /// Parses and validates pipeline text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Pipeline> {
        Pipeline::parse_with_registry(text, path, None)
    }

    /// [`Pipeline::parse`], resolving registry module references in `registry`.
    pub fn parse_with_registry(
        text: &str,
        path: &Path,
        registry: Option<&Registry>,
    ) -> Result<Pipeline> {
        let file_label = path.display().to_string();
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let root: Node = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            Error::Pipeline(Diagnostics {
                file: file_label.clone(),
                items: vec![Diagnostic {
                    line,
                    query: None,
                    key: String::new(),
                    message: format!("not valid TOML: {}", e.message()),
                }],
            })
        })?;
        let ctx = Ctx::new(text, registry);
        let root = Spanned::new(0..0, root);
        let mut pipeline = Pipeline {
            file: path.to_path_buf(),
            queries: Vec::new(),
            on_query_failure: OnQueryFailure::Continue,
        };
        if let Some(mut top) = TableReader::new(&ctx, None, "", &root) {
            match top.string("onQueryFailure").as_deref() {
                None | Some("continue") => {}
                Some("stopAll") => pipeline.on_query_failure = OnQueryFailure::StopAll,
                Some(other) => top.error_here(
                    "onQueryFailure",
                    format!("'{other}' is not a policy; use \"continue\" or \"stopAll\""),
                ),
            }
            match top.get("query") {
                None => top.error_here(
                    "query",
                    "no queries: add at least one [[query]] table".to_owned(),
                ),
                Some(node) => match node.get_ref() {
                    Node::Array(items) => {
                        for item in items {
                            if let Some(q) = parse_query(&ctx, item, &base) {
                                pipeline.queries.push(q);
                            }
                        }
                    }
                    other => top.error_at(
                        node.span().start,
                        "query",
                        format!("expected [[query]] tables, found {}", other.kind()),
                    ),
                },
            }
            top.finish(&["query", "onQueryFailure"]);
        }
        check_across_queries(&ctx, text, &pipeline.queries);
        if ctx.has_errors() {
            return Err(Error::Pipeline(Diagnostics {
                file: file_label,
                items: ctx.into_diagnostics(),
            }));
        }
        Ok(pipeline)
    }

    /// Keeps only the named query (for `sluice run --query NAME`).
    pub fn select(&mut self, name: &str) -> Result<()> {
        if !self.queries.iter().any(|q| q.name == name) {
            let names: Vec<_> = self.queries.iter().map(|q| q.name.as_str()).collect();
            return Err(Error::Pipeline(Diagnostics {
                file: self.file.display().to_string(),
                items: vec![Diagnostic {
                    line: 0,
                    query: None,
                    key: "--query".to_owned(),
                    message: format!(
                        "no query named '{name}'; the file has: {}",
                        names.join(", ")
                    ),
                }],
            }));
        }
        self.queries.retain(|q| q.name == name);
        Ok(())
    }
}

/// Checks that need every query: unique names and checkpoint locations.
fn check_across_queries(ctx: &Ctx, text: &str, queries: &[QuerySpec]) {
    let line_of_name = |name: &str| {
        let needle = format!("\"{name}\"");
        text.find(&needle).unwrap_or(0)
    };
    for (i, q) in queries.iter().enumerate() {
        if queries[..i].iter().any(|p| p.name == q.name) {
            ctx.report(
                line_of_name(&q.name),
                Some(&q.name),
                "name",
                "another query already has this name; names must be unique".to_owned(),
            );
        }
        if let Some(loc) = &q.checkpoint_location
            && let Some(other) = queries[..i]
                .iter()
                .find(|p| p.checkpoint_location.as_ref() == Some(loc))
        {
            ctx.report(
                line_of_name(&q.name),
                Some(&q.name),
                "checkpointLocation",
                format!(
                    "query '{}' already uses {}; each query needs its own checkpoint",
                    other.name,
                    loc.display()
                ),
            );
        }
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The component a `module = "..."` option names: a file (relative to the pipeline) or a
/// registry reference (`name@1.2.0`, `name@^1.2`, `sha256:<hex>`) resolved to its blob.
fn module_path(r: &mut TableReader, key: &str, base: &Path, text: &str) -> Option<PathBuf> {
    if !crate::registry::is_reference(text) {
        return Some(resolve(base, text));
    }
    // Problems are reported at the value's line.
    let at = r.get(key).map(|n| n.span().start);
    let report = |r: &TableReader, message: String| match at {
        Some(offset) => r.error_at(offset, key, message),
        None => r.error_here(key, message),
    };
    let Some(registry) = r.registry() else {
        report(
            r,
            format!(
                "'{text}' names a registry module, but no registry is open: run with --registry DIR, or start the query through `sluice serve`"
            ),
        );
        return None;
    };
    match registry.resolve(text) {
        Ok(m) => Some(m.path),
        Err(e) => {
            report(r, e.to_string());
            None
        }
    }
}

fn parse_query(ctx: &Ctx, node: &Spanned<Node>, base: &Path) -> Option<QuerySpec> {
    // Read the name first so every later diagnostic can carry it.
    let name = match node.get_ref() {
        Node::Table(entries) => entries
            .iter()
            .find(|(k, _)| k.get_ref() == "name")
            .and_then(|(_, v)| match v.get_ref() {
                Node::Str(s) => Some(s.clone()),
                _ => None,
            }),
        _ => None,
    };
    let label = name.clone().unwrap_or_else(|| "<unnamed>".to_owned());
    let mut q = TableReader::new(ctx, Some(&label), "", node)?;
    let name = q.required_string("name", "give the query a name = \"...\"");
    if let Some(n) = &name
        && n.trim().is_empty()
    {
        q.error_here("name", "must not be empty".to_owned());
    }

    let sink = match q.get("sink") {
        Some(s) => parse_sink(ctx, &label, s, base),
        None => {
            q.error_here("sink", "missing [query.sink] table".to_owned());
            None
        }
    };
    let mut outputs = Vec::new();
    if let Some(node) = q.get("outputs") {
        match node.get_ref() {
            Node::Table(entries) => {
                for (key, value) in entries {
                    let prefix = format!("outputs.{}", key.get_ref());
                    if let Some(spec) = parse_sink_at(ctx, &label, value, base, &prefix, false) {
                        outputs.push((key.get_ref().clone(), spec));
                    }
                }
            }
            other => q.error_at(
                node.span().start,
                "outputs",
                format!(
                    "expected [query.outputs.NAME] tables, found {}",
                    other.kind()
                ),
            ),
        }
    }
    let transforms = parse_transforms(ctx, &label, &mut q, base, "", &outputs);
    let inputs = parse_inputs(ctx, &label, &mut q, base, &outputs);
    let combine = parse_combine(ctx, &label, &mut q, base, inputs.as_deref());
    check_step_names(&q, inputs.as_deref().unwrap_or_default(), &transforms);
    let watermark_policy = match q
        .string("watermarkPolicy")
        .map(|p| p.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("min") => WatermarkPolicy::Min,
        Some("max") => WatermarkPolicy::Max,
        Some(other) => {
            q.error_here(
                "watermarkPolicy",
                format!("'{other}' is not a policy; use \"min\" or \"max\""),
            );
            WatermarkPolicy::Min
        }
    };
    let dedup = q
        .get("dropDuplicates")
        .and_then(|d| parse_dedup(ctx, &label, d));
    let aggregate = q
        .get("aggregate")
        .and_then(|a| parse_aggregate(ctx, &label, a, base));
    let trigger = q.get("trigger").and_then(|t| parse_trigger(&q, t));
    let output_mode = match q
        .string("outputMode")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("append") => Some(OutputMode::Append),
        Some("update") => Some(OutputMode::Update),
        Some("complete") => Some(OutputMode::Complete),
        Some(other) => {
            q.error_here(
                "outputMode",
                format!(
                    "'{other}' is not an output mode; use \"append\", \"update\" or \"complete\""
                ),
            );
            None
        }
    };
    let checkpoint_location = q.string("checkpointLocation").map(|p| resolve(base, &p));
    let min_batches_to_retain = q.positive("minBatchesToRetain").unwrap_or(100);

    if let Some(sink) = &sink
        && sink.is_durable()
        && checkpoint_location.is_none()
    {
        q.error_here(
            "checkpointLocation",
            format!(
                "a {} sink needs a checkpointLocation so that a restart neither loses nor repeats output",
                sink.description()
            ),
        );
    }
    let watermark = inputs.iter().flatten().find_map(|i| i.watermark.clone());
    if let Some(mode) = output_mode {
        for (key, message) in
            output_mode_problems(mode, &aggregate, &dedup, &watermark, sink.as_ref())
        {
            q.error_here(key, message);
        }
    }
    if let (Some(Combine::StreamJoin(_)), Some(mode)) = (&combine, output_mode)
        && mode != OutputMode::Append
    {
        q.error_here(
            "outputMode",
            "a stream–stream join emits each joined row once and never updates it: use outputMode = \"append\"".to_owned(),
        );
    }
    if let (Some(Combine::StaticJoin(spec) | Combine::StreamJoin(spec)), Some(inputs)) =
        (&combine, inputs.as_deref())
    {
        join_key_problems(&q, spec, inputs);
    }
    // The one input, when there is only one (what the schema checks below can know).
    let single = match (inputs.as_deref(), &combine) {
        (Some([only]), Some(Combine::Single)) => Some(only),
        _ => None,
    };
    if let (Some(SourceSpec::File(src)), Some(SinkSpec::File(snk))) =
        (single.map(|i| &i.source), &sink)
        && let Some(schema) = &src.schema
    {
        for col in &snk.partition_by {
            if schema.field_with_name(col).is_err() {
                q.error_here(
                    "sink.partitionBy",
                    format!("column '{col}' is not in the source schema"),
                );
            }
        }
    }
    // What a declared schema already tells: only when no Wasm step sits between the source
    // and the operators (a step may emit any schema, known only once it is loaded).
    if transforms.is_empty()
        && let Some(input) = single
        && input.transforms.is_empty()
        && let Some(schema) = input.source.known_schema()
    {
        for p in schema_problems(&schema, &watermark, &dedup, &aggregate) {
            q.error_at(offset_of(node, &p.key), &p.key, p.message);
        }
    }
    q.finish(QUERY_KEYS);
    Some(QuerySpec {
        name: name?,
        inputs: inputs?,
        combine: combine?,
        sink: sink?,
        trigger: trigger.unwrap_or_default(),
        output_mode: output_mode?,
        checkpoint_location,
        min_batches_to_retain,
        transforms,
        outputs,
        watermark_policy,
        dedup,
        aggregate,
    })
}

/// `[query.source]` (one input, named "source") or `[query.inputs.NAME]` tables, each with
/// its watermark and (named inputs only) its own `[[query.inputs.NAME.transform]]` steps.
fn parse_inputs(
    ctx: &Ctx,
    label: &str,
    q: &mut TableReader,
    base: &Path,
    outputs: &[(String, SinkSpec)],
) -> Option<Vec<InputSpec>> {
    match (q.get("source"), q.get("inputs")) {
        (Some(s), None) => Some(vec![InputSpec {
            name: "source".to_owned(),
            watermark: parse_watermark(ctx, label, s, "source"),
            source: parse_source(ctx, label, s, base, "source", &[])?,
            transforms: Vec::new(),
        }]),
        (None, Some(node)) => match node.get_ref() {
            Node::Table(entries) if !entries.is_empty() => {
                // File order (the TOML reader hands tables over sorted by key): it numbers
                // the inputs in the checkpoint and the offsets log.
                let mut entries: Vec<_> = entries.iter().collect();
                entries.sort_by_key(|(key, _)| key.span().start);
                let mut inputs = Vec::new();
                for (key, value) in entries.iter().copied() {
                    let prefix = format!("inputs.{}", key.get_ref());
                    let watermark = parse_watermark(ctx, label, value, &prefix);
                    let source = parse_source(ctx, label, value, base, &prefix, &["transform"]);
                    let transforms = match TableReader::new(ctx, Some(label), &prefix, value) {
                        Some(mut r) => parse_transforms(
                            ctx,
                            label,
                            &mut r,
                            base,
                            &format!("{prefix}."),
                            outputs,
                        ),
                        None => Vec::new(),
                    };
                    if let Some(source) = source {
                        inputs.push(InputSpec {
                            name: key.get_ref().clone(),
                            source,
                            watermark,
                            transforms,
                        });
                    }
                }
                (inputs.len() == entries.len()).then_some(inputs)
            }
            other => {
                q.error_at(
                    node.span().start,
                    "inputs",
                    format!(
                        "expected one [query.inputs.NAME] table per input, found {}",
                        if matches!(other, Node::Table(_)) {
                            "none"
                        } else {
                            other.kind()
                        }
                    ),
                );
                None
            }
        },
        (Some(_), Some(node)) => {
            q.error_at(
                node.span().start,
                "inputs",
                "give either one [query.source] or named [query.inputs.NAME] tables, not both"
                    .to_owned(),
            );
            None
        }
        (None, None) => {
            q.error_here(
                "source",
                "missing [query.source] table (or [query.inputs.NAME] tables for several inputs)"
                    .to_owned(),
            );
            None
        }
    }
}

/// `[[PREFIX.transform]]` steps of the table `r` reads.
fn parse_transforms(
    ctx: &Ctx,
    label: &str,
    r: &mut TableReader,
    base: &Path,
    prefix: &str,
    outputs: &[(String, SinkSpec)],
) -> Vec<TransformSpec> {
    let mut transforms = Vec::new();
    let Some(node) = r.get("transform") else {
        return transforms;
    };
    match node.get_ref() {
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(t) = parse_transform(ctx, label, item, base, prefix, i, outputs) {
                    transforms.push(t);
                }
            }
        }
        other => r.error_at(
            node.span().start,
            "transform",
            format!(
                "expected [[query.{prefix}transform]] tables, found {}",
                other.kind()
            ),
        ),
    }
    transforms
}

/// `[query.union]`: required with several inputs, naming each exactly once.
fn parse_combine(
    ctx: &Ctx,
    label: &str,
    q: &mut TableReader,
    base: &Path,
    inputs: Option<&[InputSpec]>,
) -> Option<Combine> {
    let union = q.get("union");
    let join = q.get("join");
    let inputs = inputs?;
    if let (Some(_), Some(j)) = (union, join) {
        q.error_at(
            j.span().start,
            "join",
            "a query combines its inputs one way: give [query.union] or [query.join], not both"
                .to_owned(),
        );
        return None;
    }
    if let Some(node) = join {
        return parse_join(ctx, label, node, base, inputs);
    }
    let Some(node) = union else {
        if inputs.len() > 1 {
            q.error_here(
                "union",
                format!(
                    "{} inputs must be combined: add [query.union] inputs = [{}]",
                    inputs.len(),
                    inputs
                        .iter()
                        .map(|i| format!("\"{}\"", i.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
        return Some(Combine::Single);
    };
    let mut u = TableReader::new(ctx, Some(label), "union", node)?;
    let names = u.string_list("inputs");
    u.finish(&["inputs"]);
    if inputs.len() < 2 {
        q.error_at(
            node.span().start,
            "union",
            "a union needs at least two [query.inputs.NAME] tables".to_owned(),
        );
        return None;
    }
    if let Some(names) = names {
        let mut sorted = names.clone();
        sorted.sort();
        let mut declared: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        declared.sort();
        if sorted != declared {
            q.error_at(
                node.span().start,
                "union.inputs",
                format!("must name every input exactly once: {declared:?}, found {names:?}"),
            );
            return None;
        }
    }
    let columns: Vec<&str> = inputs
        .iter()
        .filter_map(|i| i.watermark.as_ref().map(|w| w.column.as_str()))
        .collect();
    if columns.windows(2).any(|w| w[0] != w[1]) {
        q.error_at(
            node.span().start,
            "union",
            format!(
                "the inputs' watermarks name different event-time columns ({}); after a union the rows share one, so name the same column in each",
                columns.join(", ")
            ),
        );
    }
    Some(Combine::Union)
}

/// `[query.join]`: a stream–static join (with `[query.join.table]`) or a stream–stream join
/// of two inputs, with Spark's rules for which join needs what.
fn parse_join(
    ctx: &Ctx,
    label: &str,
    node: &Spanned<Node>,
    base: &Path,
    inputs: &[InputSpec],
) -> Option<Combine> {
    let mut j = TableReader::new(ctx, Some(label), "join", node)?;
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let left = j.string("left").unwrap_or_else(|| inputs[0].name.clone());
    if !names.contains(&left.as_str()) {
        j.error_here(
            "left",
            format!(
                "'{left}' is not an input of this query (inputs: {})",
                names.join(", ")
            ),
        );
        return None;
    }
    let join_type = match j.string("type") {
        None => JoinType::Inner,
        Some(t) => match JoinType::parse(&t) {
            Some(jt) => jt,
            None => {
                j.error_here(
                    "type",
                    format!("'{t}' is not a join type; use inner, leftOuter, rightOuter, fullOuter, leftSemi or leftAnti"),
                );
                return None;
            }
        },
    };
    let on = parse_join_keys(&mut j);
    let within = j.get("within").and_then(|w| parse_within(ctx, label, w));
    let table = match j.get("table") {
        Some(t) => {
            let refresh = TableReader::new(ctx, Some(label), "join.table", t)
                .and_then(|mut r| r.duration("refresh"));
            match parse_source(ctx, label, t, base, "join.table", &["refresh"]) {
                Some(SourceSpec::File(files)) => Some(TableSpec { files, refresh }),
                Some(other) => {
                    j.error_at(
                        t.span().start,
                        "table.format",
                        format!(
                            "a join table is read from files (parquet, csv, json, text), not {}",
                            other.description()
                        ),
                    );
                    return None;
                }
                None => return None,
            }
        }
        None => None,
    };
    let right = j.string("right");
    j.finish(&["left", "right", "type", "on", "within", "table"]);
    let on = on?;
    let right = match (right, table) {
        (None, Some(table)) => JoinRight::Table(table),
        (Some(r), None) => {
            if !names.contains(&r.as_str()) || r == left {
                j_error(
                    ctx,
                    label,
                    node,
                    "join.right",
                    format!(
                        "'{r}' is not another input of this query (inputs: {})",
                        names.join(", ")
                    ),
                );
                return None;
            }
            JoinRight::Input(r)
        }
        (Some(_), Some(_)) => {
            j_error(
                ctx,
                label,
                node,
                "join.right",
                "give `right` (another input) or [query.join.table], not both".to_owned(),
            );
            return None;
        }
        (None, None) => {
            j_error(
                ctx,
                label,
                node,
                "join.right",
                "say what to join with: right = \"<input>\" or a [query.join.table]".to_owned(),
            );
            return None;
        }
    };
    let spec = JoinSpec {
        left: left.clone(),
        right,
        join_type,
        on,
        within,
    };
    let input = |name: &str| inputs.iter().find(|i| i.name == name);
    match &spec.right {
        JoinRight::Table(_) => {
            if inputs.len() != 1 {
                j_error(
                    ctx,
                    label,
                    node,
                    "join",
                    format!(
                        "a stream–static join reads one stream; this query has {} inputs",
                        inputs.len()
                    ),
                );
                return None;
            }
            if !matches!(
                join_type,
                JoinType::Inner | JoinType::LeftOuter | JoinType::LeftSemi | JoinType::LeftAnti
            ) {
                j_error(
                    ctx,
                    label,
                    node,
                    "join.type",
                    format!(
                        "{join_type:?} is not supported with a static table (Spark's rule: the stream must be the preserved side); use inner, leftOuter, leftSemi or leftAnti"
                    ),
                );
                return None;
            }
            if spec.within.is_some() {
                j_error(
                    ctx,
                    label,
                    node,
                    "join.within",
                    "a time range applies to stream–stream joins; a static table has no event time"
                        .to_owned(),
                );
                return None;
            }
            Some(Combine::StaticJoin(spec))
        }
        JoinRight::Input(r) => {
            if inputs.len() != 2 {
                j_error(
                    ctx,
                    label,
                    node,
                    "join",
                    format!(
                        "a stream–stream join reads exactly two inputs; this query has {}",
                        inputs.len()
                    ),
                );
                return None;
            }
            if join_type == JoinType::LeftAnti {
                j_error(ctx, label, node, "join.type", "leftAnti is not supported between two streams (as in Spark); use a leftOuter join and keep the rows whose right side is null".to_owned());
                return None;
            }
            let (l, r) = (input(&left)?, input(r)?);
            if join_type != JoinType::Inner {
                let Some(w) = &spec.within else {
                    j_error(
                        ctx,
                        label,
                        node,
                        "join.within",
                        format!(
                            "a {join_type:?} join between streams needs a time range, so rows can be given up on and unmatched ones emitted: add within = {{ left = \"<{}'s event time>\", right = \"<{}'s event time>\", lower = \"0 seconds\", upper = \"1 hour\" }}",
                            l.name, r.name
                        ),
                    );
                    return None;
                };
                for (side, column, what) in [(l, &w.left, "left"), (r, &w.right, "right")] {
                    match &side.watermark {
                        None => {
                            j_error(
                                ctx,
                                label,
                                node,
                                &format!("join.within.{what}"),
                                format!(
                                    "a {join_type:?} join between streams needs a watermark on both inputs: add watermark = {{ column = \"{column}\", delay = \"10 minutes\" }} to [query.inputs.{}]",
                                    side.name
                                ),
                            );
                            return None;
                        }
                        Some(wm) if &wm.column != column => {
                            j_error(
                                ctx,
                                label,
                                node,
                                &format!("join.within.{what}"),
                                format!(
                                    "'{column}' is not input '{}''s watermark column ('{}'); the time range must use the columns the watermarks are on",
                                    side.name, wm.column
                                ),
                            );
                            return None;
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(Combine::StreamJoin(spec))
        }
    }
}

/// With both sides' schemas known before anything runs (declared, no steps), the join keys
/// are checked by `validate` exactly as the join checks them when it starts.
fn join_key_problems(q: &TableReader, spec: &JoinSpec, inputs: &[InputSpec]) {
    let known = |name: &str| {
        inputs
            .iter()
            .find(|i| i.name == name && i.transforms.is_empty())
            .and_then(|i| i.source.known_schema())
    };
    let right = match &spec.right {
        JoinRight::Input(r) => known(r),
        JoinRight::Table(t) => SourceSpec::File(t.files.clone()).known_schema(),
    };
    if let (Some(l), Some(r)) = (known(&spec.left), right)
        && let Err(e) = crate::operators::join::JoinLayout::new(spec, &l, &r)
    {
        q.error_here("join.on", e.to_string());
    }
}

fn j_error(ctx: &Ctx, label: &str, node: &Spanned<Node>, key: &str, message: String) {
    ctx.report(node.span().start, Some(label), key, message);
}

/// `on = ["id"]`, `on = [["user_id", "id"]]` or `on = [{ left = "user_id", right = "id" }]`.
fn parse_join_keys(j: &mut TableReader) -> Option<Vec<(String, String)>> {
    let Some(node) = j.get("on") else {
        j.error_here(
            "on",
            "missing: the equi-join keys, e.g. on = [\"user_id\"] or on = [[\"user_id\", \"id\"]]"
                .to_owned(),
        );
        return None;
    };
    let items = match node.get_ref() {
        Node::Str(s) => return Some(vec![(s.clone(), s.clone())]),
        Node::Array(items) if !items.is_empty() => items,
        other => {
            j.error_at(
                node.span().start,
                "on",
                format!("expected a non-empty array of keys, found {}", other.kind()),
            );
            return None;
        }
    };
    let mut keys = Vec::new();
    for item in items {
        let pair = match item.get_ref() {
            Node::Str(s) => Some((s.clone(), s.clone())),
            Node::Array(p) => match p.as_slice() {
                [l, r] => match (l.get_ref(), r.get_ref()) {
                    (Node::Str(l), Node::Str(r)) => Some((l.clone(), r.clone())),
                    _ => None,
                },
                _ => None,
            },
            Node::Table(entries) => {
                let get = |k: &str| {
                    entries
                        .iter()
                        .find(|(key, _)| key.get_ref() == k)
                        .and_then(|(_, v)| match v.get_ref() {
                            Node::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                };
                get("left").zip(get("right"))
            }
            _ => None,
        };
        match pair {
            Some(p) => keys.push(p),
            None => {
                j.error_at(item.span().start, "on", "each key is a column name, a [left, right] pair of names, or { left = ..., right = ... }".to_owned());
                return None;
            }
        }
    }
    Some(keys)
}

/// `within = { left = "impression_time", right = "click_time", lower = "0 seconds", upper = "1 hour" }`:
/// `right - left` between `lower` and `upper` (either may be negative: `"-10 minutes"`).
fn parse_within(ctx: &Ctx, label: &str, node: &Spanned<Node>) -> Option<TimeRange> {
    let mut w = TableReader::new(ctx, Some(label), "join.within", node)?;
    let left = w.required_string("left", "the left input's event-time column");
    let right = w.required_string("right", "the right input's event-time column");
    let mut bound = |key: &str| -> Option<i64> {
        let text = match w.get(key).map(|n| n.get_ref().clone()) {
            Some(Node::Str(s)) => s,
            Some(Node::Int(ms)) => format!("{ms} ms"),
            Some(other) => {
                w.error_here(
                    key,
                    format!(
                        "expected a duration like \"1 hour\", found {}",
                        other.kind()
                    ),
                );
                return None;
            }
            None => {
                w.error_here(
                    key,
                    "missing: a duration such as \"0 seconds\" or \"1 hour\"".to_owned(),
                );
                return None;
            }
        };
        let (negative, magnitude) = match text.trim().strip_prefix('-') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, text.clone()),
        };
        match parse_duration(&magnitude) {
            Ok(d) => {
                let us = d.as_micros().min(i64::MAX as u128) as i64;
                Some(if negative { -us } else { us })
            }
            Err(e) => {
                w.error_here(key, e);
                None
            }
        }
    };
    let lower = bound("lower");
    let upper = bound("upper");
    if let (Some(l), Some(u)) = (lower, upper)
        && l > u
    {
        w.error_here("lower", "must not be greater than upper".to_owned());
    }
    w.finish(&["left", "right", "lower", "upper"]);
    Some(TimeRange {
        left: left?,
        right: right?,
        lower_us: lower?,
        upper_us: upper?,
    })
}

/// Step names address steps (swaps, progress, the offsets log), so they are unique per query.
fn check_step_names(q: &TableReader, inputs: &[InputSpec], transforms: &[TransformSpec]) {
    let mut seen = std::collections::BTreeSet::new();
    for t in inputs.iter().flat_map(|i| &i.transforms).chain(transforms) {
        if !seen.insert(t.name.as_str()) {
            q.error_here(
                "transform",
                format!(
                    "two steps are named '{}'; give each step a unique name",
                    t.name
                ),
            );
        }
    }
}

/// The fields of a query's event-time and stateful options that do not fit the schema
/// reaching them (the same checks the operators make when they start).
fn schema_problems(
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
fn output_mode_problems(
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

fn parse_watermark(
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

fn parse_dedup(ctx: &Ctx, query: &str, node: &Spanned<Node>) -> Option<DedupSpec> {
    let mut d = TableReader::new(ctx, Some(query), "dropDuplicates", node)?;
    let columns = d.string_list("columns").unwrap_or_default();
    let within_watermark = d.bool("withinWatermark").unwrap_or(false);
    d.finish(&["columns", "withinWatermark"]);
    Some(DedupSpec {
        columns,
        within_watermark,
    })
}

fn parse_aggregate(
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

fn parse_window(ctx: &Ctx, query: &str, node: &Spanned<Node>) -> Option<WindowSpec> {
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
        if gap.is_zero() {
            w.error_here("gap", "must be greater than 0".to_owned());
            return None;
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
        let slide = w.duration("slide").unwrap_or(duration);
        let start = w.duration("startTime").unwrap_or_default();
        if duration.is_zero() || slide.is_zero() {
            w.error_here(
                "duration",
                "window duration and slide must be greater than 0".to_owned(),
            );
        } else if slide > duration {
            w.error_here(
                "slide",
                format!("slide ({slide:?}) must not exceed the duration ({duration:?})"),
            );
        } else if start >= slide {
            w.error_here(
                "startTime",
                format!("startTime ({start:?}) must be less than the slide ({slide:?})"),
            );
        } else {
            // Each row is copied into every window it falls in; an extreme ratio turns one
            // row into hundreds of thousands of groups and the host into a memory sink.
            let per_row = duration.as_micros().div_ceil(slide.as_micros());
            if per_row > MAX_WINDOWS_PER_ROW {
                w.error_here(
                    "slide",
                    format!(
                        "a {duration:?} window sliding every {slide:?} puts each row into {per_row} windows; at most {MAX_WINDOWS_PER_ROW} are allowed (make the slide at least {:?})",
                        Duration::from_micros(duration.as_micros().div_ceil(MAX_WINDOWS_PER_ROW) as u64)
                    ),
                );
            }
        }
        WindowSpec::Fixed {
            column: column?,
            duration,
            slide,
            start,
        }
    };
    w.finish(&["column", "duration", "slide", "startTime", "gap"]);
    Some(spec)
}

fn parse_agg(
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
                a.error_here("fn", format!("unknown aggregate '{name}'; use count, sum, min, max, avg, first, last, count_distinct, or a Wasm `module`"));
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
        Some(m) => Some(module_path(&mut a, "module", base, m)?),
        None => None,
    };
    let udaf = udaf_module.map(|module| UdafSpec {
        module,
        config: a
            .get("config")
            .map(|c| c.get_ref().to_json())
            .unwrap_or(serde_json::Value::Null),
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

fn parse_limits(r: &mut TableReader) -> GuestLimits {
    let d = GuestLimits::default();
    GuestLimits {
        timeout: r
            .duration("timeout")
            .filter(|t| !t.is_zero())
            .unwrap_or(d.timeout),
        max_memory: r.bytes("maxMemory").unwrap_or(d.max_memory),
        fuel: r.positive("fuel"),
    }
}

const LIMIT_KEYS: [&str; 3] = ["timeout", "maxMemory", "fuel"];

fn parse_transform(
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
    let config = t
        .get("config")
        .map(|c| c.get_ref().to_json())
        .unwrap_or(serde_json::Value::Null);
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
        .and_then(|m| module_path(&mut t, "module", base, m));
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

fn parse_trigger(q: &TableReader, node: &Spanned<Node>) -> Option<Trigger> {
    let bad = |msg: String| {
        q.error_at(node.span().start, "trigger", msg);
        None
    };
    const HINT: &str = "use \"once\", \"availableNow\" or { processingTime = \"10 seconds\" }";
    match node.get_ref() {
        Node::Str(s) => match s.as_str() {
            "once" | "Once" => Some(Trigger::Once),
            "availableNow" | "AvailableNow" => Some(Trigger::AvailableNow),
            other => bad(format!("'{other}' is not a trigger; {HINT}")),
        },
        Node::Table(entries) if entries.len() == 1 => {
            let (key, value) = &entries[0];
            match key.get_ref().as_str() {
                "processingTime" => {
                    let d = match value.get_ref() {
                        Node::Str(s) => parse_duration(s),
                        Node::Int(ms) if *ms >= 0 => Ok(Duration::from_millis(*ms as u64)),
                        other => Err(format!("expected a duration, found {}", other.kind())),
                    };
                    match d {
                        Ok(d) if d.is_zero() => Some(Trigger::Unspecified),
                        Ok(d) => Some(Trigger::ProcessingTime(d)),
                        Err(e) => bad(e),
                    }
                }
                "continuous" => bad(
                    "the continuous trigger is not supported yet; use { processingTime = ... }"
                        .to_owned(),
                ),
                other => bad(format!("'{other}' is not a trigger; {HINT}")),
            }
        }
        other => bad(format!(
            "expected a trigger, found {}; {HINT}",
            other.kind()
        )),
    }
}

fn parse_source(
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
fn kafka_client_options(
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
        .unwrap_or(crate::kafka_client::DEFAULT_CONNECT_TIMEOUT);
    if connect_timeout.is_zero() {
        s.error_here("connectTimeout", "must be greater than 0".to_owned());
    }
    (bootstrap, client_options, connect_timeout)
}

fn parse_kafka_source(s: &mut TableReader) -> Option<KafkaSourceSpec> {
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

fn parse_file_source(
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

fn parse_sink(ctx: &Ctx, query: &str, node: &Spanned<Node>, base: &Path) -> Option<SinkSpec> {
    parse_sink_at(ctx, query, node, base, "sink", true)
}

fn parse_sink_at(
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
