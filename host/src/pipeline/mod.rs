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
//! trigger = { processingTime = "10 seconds" } # or "once", "availableNow", { continuous = "1 second" }; omit for Spark's default
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

mod cluster;
mod combine;
mod explain;
mod functions;
mod sinks;
mod sources;
mod sql;
mod stateful;
mod steps;
mod trigger;
mod views;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_schema::SchemaRef;
use toml::Spanned;

use crate::config::reader::{Ctx, Node, TableReader, offset_of};
pub use crate::config::{
    Diagnostic, Diagnostics, GuestWorld, ModuleRef, OutputMode, parse_bytes, parse_duration,
    resolve,
};
pub use crate::expr::{ExprStepKind, ExprStepSpec};
pub use crate::wasm::spec::{GuestLimits, HandlerSpec, OnError, TransformSpec};

// The connectors' option types, as a pipeline names them.
pub use crate::connectors::file::{
    CleanSource, FileFormat, FileSinkSpec, FileSourceSpec, ParseMode, glob_root,
};
pub use crate::connectors::rate::{RateMicroBatchSpec, RateSpec};
pub use crate::connectors::socket::SocketSpec;

pub use cluster::ClusterSpec;
use combine::*;
use sinks::*;
use sources::*;
pub use stateful::MAX_WINDOWS_PER_ROW;
use stateful::*;
use steps::*;
use trigger::*;
use views::parse_views;
pub use views::{ViewFrom, ViewSpec};

use crate::connectors::kafka::sink::KafkaSinkSpec;
use crate::connectors::kafka::source::KafkaSourceSpec;
use crate::connectors::nexmark::source::NexmarkSpec;
use crate::error::{Error, Result};
use crate::operators::SpecProblem;
use crate::operators::aggregate::{AggFunc, AggSpec, AggregateSpec};
use crate::operators::dedup::DedupSpec;
use crate::operators::join::{JoinRight, JoinSpec, JoinType, TableSource, TableSpec, TimeRange};
pub use crate::operators::processor::ProcessorSpec;
use crate::operators::window::WindowSpec;
use crate::registry::Registry;
use crate::trigger::Trigger;
use crate::wasm::aggregate::UdafSpec;
use crate::wasm::function::FunctionSpec;
use crate::wasm::processor::TimeMode;
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
    /// Every component the queries name, in file order, for [`Pipeline::check_modules`].
    pub modules: Vec<ModuleRef>,
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
    /// The query's SQL as written (`sql = ...`), which its views and steps were planned from.
    pub sql: Option<String>,
    /// Append, update or complete.
    pub output_mode: OutputMode,
    /// Checkpoint directory; `None` means a temporary one (console and memory sinks only).
    pub checkpoint_location: Option<PathBuf>,
    /// How many batches of offsets/commits the checkpoint keeps (Spark's `minBatchesToRetain`).
    pub min_batches_to_retain: u64,
    /// Whether a stateless query may read batch N+1 while its sink makes N durable
    /// (`pipelineBatches`, default true; see ARCHITECTURE.md, "Pipelined batches").
    pub pipeline_batches: bool,
    /// Steps (Wasm or expressions) applied after the inputs are combined, in order.
    pub transforms: Vec<StepSpec>,
    /// Named extra sinks for the foreachBatch handler and dead letters.
    pub outputs: Vec<(String, SinkSpec)>,
    /// How several inputs' watermarks combine (`watermarkPolicy`).
    pub watermark_policy: WatermarkPolicy,
    /// `[query.dropDuplicates]`.
    pub dedup: Option<DedupSpec>,
    /// `[query.aggregate]`.
    pub aggregate: Option<AggregateSpec>,
    /// `[query.processor]`: per-key state in Wasm.
    pub processor: Option<ProcessorSpec>,
    /// How many of a batch's partitions (files, record batches through a Wasm step) run at
    /// once (`parallelism`; default: the cores).
    pub parallelism: usize,
    /// State partitions of the stateful operators (`shufflePartitions`); `None`: the
    /// checkpoint's, or `parallelism` for a new one.
    pub shuffle_partitions: Option<usize>,
    /// `[query.cluster]`: run as one member of a consumer group sharing the input partitions.
    pub cluster: Option<ClusterSpec>,
    /// `[query.views.NAME]`: named intermediate results, in file order.
    pub views: Vec<ViewSpec>,
    /// The pipeline's own scalar functions (`[functions]`), callable in this query's
    /// expressions.
    pub functions: Vec<FunctionSpec>,
    /// `ansiEnabled` (Spark's `spark.sql.ansi.enabled`, default true): whether a cast that
    /// cannot convert or a division by zero fails (true) or is null (false).
    pub ansi: bool,
}

impl QuerySpec {
    /// Whether the query keeps state between batches.
    pub fn is_stateful(&self) -> bool {
        self.dedup.is_some() || self.aggregate.is_some() || self.processor.is_some()
    }

    /// The event-time column and delay the stateful operators go by: the first input's
    /// watermark (every input that declares one names the same column; checked at validation).
    pub fn watermark(&self) -> Option<&WatermarkSpec> {
        self.inputs.iter().find_map(|i| i.watermark.as_ref())
    }

    /// Every transform step, each input's first, for changing them in place (a swap).
    pub fn steps_mut(&mut self) -> impl Iterator<Item = &mut TransformSpec> {
        self.inputs
            .iter_mut()
            .flat_map(|i| i.transforms.iter_mut())
            .chain(self.views.iter_mut().flat_map(|v| v.transforms.iter_mut()))
            .chain(self.transforms.iter_mut())
            .filter_map(StepSpec::wasm_mut)
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
            .chain(
                self.views.iter().enumerate().flat_map(|(i, view)| {
                    view.transforms.iter().map(move |t| (StepPlace::View(i), t))
                }),
            )
            .chain(self.transforms.iter().map(|t| (StepPlace::Combined, t)))
            .filter_map(|(place, t)| Some((place, t.wasm()?)))
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
    /// Steps applied to this input only (`[[query.inputs.NAME.transform]]`).
    pub transforms: Vec<StepSpec>,
}

/// How a query's inputs become one stream.
#[derive(Debug, Clone)]
pub enum Combine {
    /// One input: nothing to combine.
    Single,
    /// `[query.union]`: the rows of the named inputs (every input, in file order, without
    /// views), whose schemas must match after their steps.
    Union(Vec<String>),
    /// With views: the query reads this input or view (`from`; default: the last view).
    From(String),
    /// `[query.join]` with a `[query.join.table]`: the one input joined with files.
    StaticJoin(JoinSpec),
    /// `[query.join]` of two inputs.
    StreamJoin(JoinSpec),
}

/// One step of a query: a Wasm module, or an expression step (`selectExpr`, `where`, ...).
#[derive(Debug, Clone)]
pub enum StepSpec {
    /// A Wasm transform.
    Wasm(TransformSpec),
    /// Spark SQL expressions, planned by `crate::expr`.
    Expr(ExprStepSpec),
}

impl StepSpec {
    /// The step's name.
    pub fn name(&self) -> &str {
        match self {
            StepSpec::Wasm(t) => &t.name,
            StepSpec::Expr(e) => &e.name,
        }
    }

    /// Its Wasm transform, if it is one.
    pub fn wasm(&self) -> Option<&TransformSpec> {
        match self {
            StepSpec::Wasm(t) => Some(t),
            StepSpec::Expr(_) => None,
        }
    }

    fn wasm_mut(&mut self) -> Option<&mut TransformSpec> {
        match self {
            StepSpec::Wasm(t) => Some(t),
            StepSpec::Expr(_) => None,
        }
    }
}

/// Where a transform step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPlace {
    /// On input `i`'s rows, before the inputs are combined.
    Input(usize),
    /// In view `i` (`[query.views.NAME]`), on what it reads.
    View(usize),
    /// On the combined stream.
    Combined,
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

/// A sink and its options.
#[derive(Debug, Clone)]
pub enum SinkSpec {
    /// Print each batch as a table, like Spark's console sink.
    Console(crate::connectors::console::ConsoleSpec),
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
    /// Documents of an Elasticsearch or OpenSearch index, `_bulk` requests per batch.
    Elasticsearch(crate::connectors::elasticsearch::ElasticsearchSpec),
    /// Rows of a PostgreSQL table (append or upsert), a transaction per batch.
    Postgres(crate::connectors::postgres::sink::PostgresSinkSpec),
    /// Rows of a Cassandra (or ScyllaDB) table, written by primary key.
    Cassandra(crate::connectors::cassandra::CassandraSinkSpec),
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
        use crate::connectors::{file, kafka, nexmark, rate, socket};
        Some(match self {
            SourceSpec::File(f) => {
                let data = match (&f.schema, f.format) {
                    (_, FileFormat::Text) => file::source::text_schema(),
                    (Some(s), _) => s.clone(),
                    (None, _) => return None,
                };
                file::source::row_schema(f, &data)
            }
            SourceSpec::Rate(_) | SourceSpec::RateMicroBatch(_) => rate::source::rate_schema(),
            SourceSpec::Socket(s) => socket::source::socket_schema(s),
            SourceSpec::Kafka(k) => kafka::source::kafka_schema(k.include_headers),
            SourceSpec::Nexmark(n) => nexmark::source::nexmark_schema(n.table),
        })
    }
}

impl SinkSpec {
    /// A short description for logs and progress.
    pub fn description(&self) -> String {
        match self {
            SinkSpec::Console(_) => "ConsoleSink".to_owned(),
            SinkSpec::Memory { table } => format!("MemorySink[{table}]"),
            SinkSpec::File(f) => format!("FileSink[{}]", f.path.display()),
            SinkSpec::ForeachBatch(h) => format!("ForeachBatchSink[{}]", h.module.display()),
            SinkSpec::Blackhole => "BlackholeSink".to_owned(),
            SinkSpec::Postgres(p) => p.description(),
            SinkSpec::Elasticsearch(e) => format!("ElasticsearchSink[{}]", e.url),
            SinkSpec::Cassandra(c) => format!("CassandraSink[{}.{}]", c.keyspace, c.table),
            SinkSpec::Kafka(k) => format!(
                "KafkaSink[{}]",
                k.topic.as_deref().unwrap_or("<topic column>")
            ),
        }
    }

    /// Whether the sink keeps a log that makes re-runs idempotent (and so needs a real
    /// checkpoint directory to pair it with).
    pub fn is_durable(&self) -> bool {
        matches!(self, SinkSpec::File(_) | SinkSpec::Postgres(_))
    }
}

const QUERY_KEYS: &[&str] = &[
    "name",
    "ansiEnabled",
    "sql",
    "tables",
    "source",
    "inputs",
    "union",
    "join",
    "from",
    "views",
    "sink",
    "trigger",
    "outputMode",
    "checkpointLocation",
    "minBatchesToRetain",
    "pipelineBatches",
    "transform",
    "outputs",
    "watermarkPolicy",
    "aggregate",
    "dropDuplicates",
    "processor",
    "parallelism",
    "shufflePartitions",
    "cluster",
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
        let ctx = Ctx::new(
            text,
            registry.map(|r| r as &dyn crate::config::ModuleResolver),
        );
        let root = Spanned::new(0..0, root);
        let mut pipeline = Pipeline {
            file: path.to_path_buf(),
            queries: Vec::new(),
            on_query_failure: OnQueryFailure::Continue,
            modules: Vec::new(),
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
            let functions = top
                .get("functions")
                .map(|node| functions::parse_functions(&ctx, node, &base))
                .unwrap_or_default();
            match top.get("query") {
                None => top.error_here(
                    "query",
                    "no queries: add at least one [[query]] table".to_owned(),
                ),
                Some(node) => match node.get_ref() {
                    Node::Array(items) => {
                        for item in items {
                            if let Some(q) = parse_query(&ctx, item, &base, &functions) {
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
            top.finish(&["query", "onQueryFailure", "functions"]);
        }
        check_across_queries(&ctx, text, &pipeline.queries);
        pipeline.modules = ctx.take_modules();
        if ctx.has_errors() {
            return Err(Error::Pipeline(Diagnostics {
                file: file_label,
                items: ctx.into_diagnostics(),
            }));
        }
        Ok(pipeline)
    }

    /// Checks every component the (selected) queries name with `check` (which loads it and
    /// tells whether it implements the world), reporting each problem at its field's line.
    /// A component named twice for the same world is checked once.
    pub fn check_modules(
        &self,
        check: impl Fn(&Path, GuestWorld) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let mut verdicts: HashMap<(&Path, GuestWorld), std::result::Result<(), String>> =
            HashMap::new();
        let mut items = Vec::new();
        for m in &self.modules {
            if m.query
                .as_ref()
                .is_some_and(|q| !self.queries.iter().any(|s| &s.name == q))
            {
                continue;
            }
            let verdict = verdicts
                .entry((m.path.as_path(), m.world))
                .or_insert_with(|| check(&m.path, m.world));
            if let Err(message) = verdict {
                items.push(Diagnostic {
                    line: m.line,
                    query: m.query.clone(),
                    key: m.key.clone(),
                    message: message.clone(),
                });
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        Err(Error::Pipeline(Diagnostics {
            file: self.file.display().to_string(),
            items,
        }))
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

    /// `sluice run --member NAME`: this process's name in every clustered query's group.
    /// Refused for a pipeline without `[query.cluster]` (the name would mean nothing) and for
    /// a name the group protocol or a checkpoint key could not carry.
    pub fn set_member(&mut self, member: &str) -> Result<()> {
        let refuse = |message: String| {
            Err(Error::Pipeline(Diagnostics {
                file: self.file.display().to_string(),
                items: vec![Diagnostic {
                    line: 0,
                    query: None,
                    key: "--member".to_owned(),
                    message,
                }],
            }))
        };
        if member.is_empty()
            || member.len() > 100
            || !member
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return refuse(format!(
                "'{member}' is not a member name: use 1 to 100 letters, digits, '-', '_' or '.'"
            ));
        }
        let mut any = false;
        for q in &mut self.queries {
            if let Some(c) = &mut q.cluster {
                c.member = Some(member.to_owned());
                any = true;
            }
        }
        if !any {
            return refuse(
                "no query of this pipeline has a [query.cluster] table, so there is no group to be a member of".to_owned(),
            );
        }
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

/// The component a `module = "..."` option names: a file (relative to the pipeline) or a
/// registry reference (`name@1.2.0`, `name@^1.2`, `sha256:<hex>`) resolved to its blob.
///
/// The reference is recorded (see [`ModuleRef`]) so that `validate` and `run` check the
/// component implements `world` before anything starts.
fn module_path(
    r: &mut TableReader,
    key: &str,
    base: &Path,
    text: &str,
    world: GuestWorld,
) -> Option<PathBuf> {
    // Problems are reported at the value's line.
    let at = r.get(key).map(|n| n.span().start);
    let path = module_blob(r, key, at, base, text)?;
    if let Some(offset) = at {
        r.module_named(offset, key, path.clone(), world);
    }
    Some(path)
}

fn module_blob(
    r: &mut TableReader,
    key: &str,
    at: Option<usize>,
    base: &Path,
    text: &str,
) -> Option<PathBuf> {
    if !crate::registry::is_reference(text) {
        return Some(resolve(base, text));
    }
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
    match registry.resolve_module(text) {
        Ok(path) => Some(path),
        Err(e) => {
            report(r, e);
            None
        }
    }
}

fn parse_query(
    ctx: &Ctx,
    node: &Spanned<Node>,
    base: &Path,
    declared: &functions::Declared,
) -> Option<QuerySpec> {
    let functions = declared.scalar.as_slice();
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
    if let Some(SinkSpec::Elasticsearch(e)) = &sink
        && let Some(name) = &e.dead_letter
        && !outputs.iter().any(|(n, _)| n == name)
    {
        q.error_at(
            offset_of(node, "sink.deadLetter"),
            "sink.deadLetter",
            format!("no output named '{name}'; declare it as [query.outputs.{name}]"),
        );
    }
    let inputs = parse_inputs(ctx, &label, &mut q, base, &outputs);
    // A query written in SQL: its steps, views and what it reads come from the SQL.
    let tables = match q.get("tables") {
        Some(t) if q.get("sql").is_none() => {
            q.error_at(
                t.span().start,
                "tables",
                "[query.tables.NAME] are joined by name in a query's `sql`; a TOML query joins its table in [query.join.table]".to_owned(),
            );
            None
        }
        Some(t) => parse_tables(ctx, &label, t, base),
        None => Some(Vec::new()),
    };
    let sql = sql::parse_sql(
        ctx,
        &mut q,
        base,
        inputs.as_deref(),
        tables.as_deref(),
        declared,
    );
    let sql_text = match &sql {
        Some(Some(plan)) => Some(plan.text.clone()),
        _ => None,
    };
    let (transforms, views, combine) = match sql {
        Some(Some(plan)) => (plan.transforms, Some(plan.views), Some(plan.combine)),
        Some(None) => (Vec::new(), None, None),
        None => {
            let transforms = parse_transforms(ctx, &label, &mut q, base, "", &outputs);
            let views = match (q.get("views"), inputs.as_deref()) {
                (Some(v), Some(inputs)) => parse_views(ctx, &label, v, base, inputs, &outputs),
                (Some(_), None) => None,
                (None, _) => Some(Vec::new()),
            };
            let combine = match (views.as_deref(), inputs.as_deref()) {
                (Some([]), _) | (None, None) => {
                    parse_combine(ctx, &label, &mut q, base, inputs.as_deref())
                }
                (Some(views), Some(inputs)) => {
                    views::query_combine(ctx, &label, &mut q, node, base, inputs, views)
                }
                _ => {
                    // The views did not parse (reported); what the query reads is not judged
                    // alone.
                    for key in ["from", "union", "join"] {
                        q.get(key);
                    }
                    None
                }
            };
            (transforms, views, combine)
        }
    };
    check_step_names(
        &q,
        inputs.as_deref().unwrap_or_default(),
        views.as_deref().unwrap_or_default(),
        &transforms,
    );
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
    let processor = q
        .get("processor")
        .and_then(|p| parse_processor(ctx, &label, p, base));
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
    let pipeline_batches = q.bool("pipelineBatches").unwrap_or(true);
    let parallelism = q
        .positive("parallelism")
        .map_or_else(crate::parallel::default_parallelism, |p| p as usize);
    let shuffle_partitions = q.positive("shufflePartitions").map(|p| p as usize);
    let cluster = q
        .get("cluster")
        .and_then(|c| cluster::parse_cluster(ctx, &label, c));
    if let (Some(c), Some(inputs), Some(combine), Some(sink)) =
        (&cluster, inputs.as_deref(), &combine, &sink)
    {
        let check = cluster::ClusterQuery {
            cluster: c,
            inputs,
            combine,
            trigger,
            sink,
            outputs: &outputs,
            checkpoint: checkpoint_location.is_some(),
            dedup: dedup.as_ref(),
            aggregate: aggregate.as_ref(),
            processor: processor.as_ref(),
        };
        for (key, message) in check.problems() {
            q.error_at(offset_of(node, &key), &key, message);
        }
    }

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
    // A query that reads an aggregation's view (as SQL's GROUP BY) re-emits its whole result
    // in complete mode as one with its own aggregation would.
    let read_aggregate = match (&combine, views.as_deref()) {
        (Some(Combine::From(name)), Some(views)) if output_mode == Some(OutputMode::Complete) => {
            views
                .iter()
                .find(|v| &v.name == name)
                .and_then(|v| v.aggregate.clone())
        }
        _ => None,
    };
    if let Some(mode) = output_mode {
        let aggregate = aggregate.clone().or(read_aggregate);
        for (key, message) in
            output_mode_problems(mode, &aggregate, &dedup, &watermark, sink.as_ref())
        {
            q.error_here(key, message);
        }
    }
    if let Some(p) = &processor {
        for (key, message) in processor_problems(p, output_mode, &aggregate, &watermark) {
            q.error_here(key, message);
        }
    }
    if let (Some(Trigger::Continuous(_)), Some(inputs), Some(combine), Some(sink)) =
        (trigger, inputs.as_deref(), &combine, &sink)
    {
        let stateful = [
            ("dropDuplicates", dedup.is_some()),
            ("aggregate", aggregate.is_some()),
            ("processor", processor.is_some()),
        ];
        for (key, message) in continuous_problems(inputs, combine, &stateful, &outputs, sink) {
            q.error_at(offset_of(node, &key), &key, message);
        }
        if let Some(i) = transforms
            .iter()
            .position(|t| matches!(t, StepSpec::Expr(_)))
        {
            let key = format!("transform[{i}]");
            q.error_at(
                offset_of(node, &key),
                &key,
                "expression steps run in micro-batches for now; use a micro-batch trigger, or a Wasm step".to_owned(),
            );
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
    // Expression steps are planned wherever the schema reaching them is known (a declared
    // schema, no Wasm step before them), each error at its step's line.
    let mut known_after_steps = None;
    // Whether that schema is a view's (the inputs' watermarks were checked where they are).
    let mut through_views = false;
    let declared: Vec<_> = functions
        .iter()
        .map(|f| crate::expr::declared(&f.name))
        .collect();
    let ansi = q.bool("ansiEnabled").unwrap_or(true);
    let options = crate::expr::PlanOptions {
        functions: &declared,
        ansi,
    };
    if let (Some(inputs), Some(combine)) = (inputs.as_deref(), &combine) {
        // What each input (then each view) emits, where known.
        let mut known: Vec<(String, SchemaRef)> = Vec::new();
        for input in inputs {
            let prefix = format!("inputs.{}.", input.name);
            let schema = input.source.known_schema();
            let after =
                check_expression_steps(&q, node, &prefix, schema, &input.transforms, &options);
            if matches!(combine, Combine::Single) && views.as_deref().is_some_and(|v| v.is_empty())
            {
                known_after_steps =
                    check_expression_steps(&q, node, "", after.clone(), &transforms, &options);
            }
            if let Some(schema) = after {
                known.push((input.name.clone(), schema));
            }
        }
        if let Some(views @ [_, ..]) = views.as_deref() {
            views::check_view_schemas(&q, node, &mut known, views, &options);
            if let Combine::From(name) = combine {
                let schema = known
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| s.clone());
                known_after_steps =
                    check_expression_steps(&q, node, "", schema, &transforms, &options);
                through_views = true;
            }
        }
    }
    // What a declared schema already tells: only when no Wasm step sits between the source
    // and the operators (a step may emit any schema, known only once it is loaded).
    if let Some(schema) = known_after_steps {
        let watermark = if through_views {
            None
        } else {
            watermark.clone()
        };
        for p in schema_problems(&schema, &watermark, &dedup, &aggregate) {
            q.error_at(offset_of(node, &p.key), &p.key, p.message);
        }
        if let Some(Err(p)) = processor.as_ref().map(|p| p.check_input(&schema)) {
            q.error_at(offset_of(node, &p.key), &p.key, p.message);
        }
    }
    if let (Some(views @ [_, ..]), Some(inputs), Some(combine), Some(mode)) =
        (views.as_deref(), inputs.as_deref(), &combine, output_mode)
    {
        let query_stateful = dedup.is_some()
            || aggregate.is_some()
            || processor.is_some()
            || matches!(combine, Combine::StreamJoin(_));
        for (key, message) in
            views::plan_problems(inputs, views, &combine.reads(), query_stateful, mode)
        {
            q.error_at(offset_of(node, &key), &key, message);
        }
        if cluster.is_some() {
            q.error_here(
                "cluster",
                "a query with views runs in one process for now; drop [query.cluster] or the views"
                    .to_owned(),
            );
        }
        if matches!(trigger, Some(Trigger::Continuous(_))) {
            q.error_here(
                "trigger",
                "a continuous trigger runs one stateless input; a query with views runs micro-batches".to_owned(),
            );
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
        pipeline_batches,
        transforms,
        outputs,
        watermark_policy,
        dedup,
        aggregate,
        processor,
        parallelism,
        shuffle_partitions,
        cluster,
        views: views?,
        functions: functions.to_vec(),
        ansi,
        sql: sql_text,
    })
}
