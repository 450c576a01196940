//! The Kafka source, with Spark's options and row schema.
//!
//! Offsets are Spark's JSON, `{"topic": {"0": 42, "1": 7}}`: for each partition the next
//! offset to read. They live in the checkpoint, never in Kafka consumer-group commits, so a
//! query reads every record exactly once however it is restarted. The starting offsets of
//! the first batch are written to the source log (`sources/0/initial.json`) before that
//! batch is planned, so a replay of batch 0 reads the same records.
//!
//! Reading uses a plain assigned consumer (no group). A partition stays assigned from the
//! first batch that reads it on, and is read through its own queue: the batch takes exactly
//! its records from each partition's queue, and what librdkafka fetched beyond the batch's
//! end waits in that queue for the next batch, so fetching never restarts between batches.
//! A partition whose queue is not where a batch starts (a re-run after a crash, a gap) is
//! moved with a seek. Records are appended straight into Arrow builders.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    StructBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};
use serde_json::json;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::schema::{UTC, timestamp_type};
use crate::source::{Offset, ReadLimit, Source, SourceContext, SourceMetrics};

/// Which topics and partitions to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// `subscribe`: these topics, all their partitions.
    Topics(Vec<String>),
    /// `subscribePattern`: every topic whose name matches, including ones created later.
    Pattern(String),
    /// `assign`: exactly these partitions.
    Assign(BTreeMap<String, Vec<i32>>),
}

/// Where a new query starts (`startingOffsets`) or a bounded one ends (`endingOffsets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The earliest offset still in the log.
    Earliest,
    /// The end of the log when the query starts.
    Latest,
    /// Per partition; `-2` earliest, `-1` latest.
    Json(BTreeMap<String, BTreeMap<i32, i64>>),
    /// `startingTimestamp`: in every partition, the first record whose timestamp is at or
    /// after this many milliseconds since the epoch (the broker's ListOffsets lookup).
    Timestamp(i64, TimestampStrategy),
    /// `startingOffsetsByTimestamp`: the same lookup with a timestamp per partition; every
    /// partition the query reads must be listed.
    TimestampJson(BTreeMap<String, BTreeMap<i32, i64>>, TimestampStrategy),
}

/// `startingOffsetsByTimestampStrategy`: what to do when no record is at or after the
/// timestamp (the broker answers "no offset").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStrategy {
    /// Stop the query with an error naming the partition (Spark's default).
    Error,
    /// Start at the end of the partition.
    Latest,
}

/// `format = "kafka"` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceSpec {
    /// `valueFormat = "json"` with `schema`: the value's fields, parsed into columns by the
    /// input's first steps (`None`: the `value` column as bytes, as in Spark).
    pub value_schema: Option<JsonValue>,
    /// `kafka.bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `subscribe`, `subscribePattern` or `assign`.
    pub subscription: Subscription,
    /// `startingOffsets` (default latest, as in Spark).
    pub starting_offsets: OffsetSpec,
    /// `endingOffsets` (for `once` and `availableNow`).
    pub ending_offsets: Option<OffsetSpec>,
    /// `maxOffsetsPerTrigger`: split over partitions in proportion to their backlog.
    pub max_offsets_per_trigger: Option<u64>,
    /// `minOffsetsPerTrigger`: wait for this many new records ...
    pub min_offsets_per_trigger: Option<u64>,
    /// ... but no longer than `maxTriggerDelay` (default 15 minutes) after the last batch.
    pub max_trigger_delay: Duration,
    /// `failOnDataLoss` (default true).
    pub fail_on_data_loss: bool,
    /// `includeHeaders`.
    pub include_headers: bool,
    /// Every other `kafka.*` option, without the prefix, for the client.
    pub client_options: Vec<(String, super::client::ClientValue)>,
    /// `connectTimeout`: how long the query waits at start for a bootstrap broker to answer.
    pub connect_timeout: Duration,
}

/// The JSON values a source parses (`valueFormat = "json"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonValue {
    /// The `schema` as written (a Spark DDL string).
    pub ddl: String,
    /// Its fields, all nullable (a missing field is a null).
    pub schema: SchemaRef,
}

/// Client options a Kafka source refuses, and why.
pub const REFUSED_OPTIONS: &[(&str, &str)] = &[
    (
        "group.id",
        "the source reads assigned partitions; offsets live in the checkpoint, not in a consumer group",
    ),
    (
        "auto.offset.reset",
        "use startingOffsets; a restarted query continues from its checkpoint",
    ),
    (
        "enable.auto.commit",
        "offsets live in the checkpoint, not in Kafka commits",
    ),
    (
        "key.deserializer",
        "keys are delivered as binary; cast or parse them in a transform step",
    ),
    (
        "value.deserializer",
        "values are delivered as binary; cast or parse them in a transform step",
    ),
];

type PartitionOffsets = BTreeMap<(String, i32), i64>;

fn to_json(offsets: &PartitionOffsets) -> Offset {
    let mut topics: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        topics.entry(t).or_default().insert(p.to_string(), *o);
    }
    json!(topics)
}

fn from_json(offset: &Offset) -> Option<PartitionOffsets> {
    let mut out = PartitionOffsets::new();
    for (topic, parts) in offset.as_object()? {
        for (p, o) in parts.as_object()? {
            out.insert((topic.clone(), p.parse().ok()?), o.as_i64()?);
        }
    }
    Some(out)
}

/// A partition kept assigned between batches.
struct AssignedPartition {
    queue: PartitionQueue<DefaultConsumerContext>,
    /// The offset its queue delivers next; `None` when unknown (seek before reading).
    next: Option<i64>,
}

/// What reading one partition's range of a batch needs, shared by the partitions read at
/// once.
struct Reading<'a> {
    consumer: &'a BaseConsumer,
    schema: &'a SchemaRef,
    include_headers: bool,
    source_name: String,
    deadline: Instant,
}

impl Reading<'_> {
    fn err(&self, message: String) -> Error {
        Error::Source {
            source_name: self.source_name.clone(),
            message,
        }
    }

    /// The records of partition `t`-`p` from its queue's position up to offset `e`
    /// (exclusive), as one record batch.
    fn partition(
        &self,
        t: &str,
        p: i32,
        e: i64,
        assigned: &mut AssignedPartition,
    ) -> Result<RecordBatch> {
        let rows = assigned.next.map_or(0, |n| (e - n).max(0) as usize);
        let mut columns = RecordColumns::with_capacity(rows, self.include_headers);
        let mut idle = 0;
        while assigned.next.is_some_and(|n| n < e) {
            let Some(msg) = assigned.queue.poll(Duration::from_millis(100)) else {
                // Nothing yet: serve the consumer's own events, and see whether the rest of
                // the range holds no records (transaction markers, compaction).
                match self.consumer.poll(Duration::ZERO) {
                    Some(Err(err)) => {
                        return Err(self.err(format!("reading {t}-{p}: {err}")));
                    }
                    // Every partition's records go to its own queue; one here would be lost,
                    // so stop rather than drop it.
                    Some(Ok(m)) => {
                        return Err(self.err(format!(
                            "record {}-{} offset {} arrived outside its partition queue",
                            m.topic(),
                            m.partition(),
                            m.offset()
                        )));
                    }
                    None => {}
                }
                idle += 1;
                if idle % 5 == 0 {
                    let position = self
                        .consumer
                        .position()
                        .ok()
                        .and_then(|l| l.find_partition(t, p).map(|e| e.offset()));
                    if let Some(KafkaOffset::Offset(o)) = position
                        && o >= e
                    {
                        assigned.next = Some(o);
                        break;
                    }
                }
                if Instant::now() > self.deadline {
                    return Err(self.err(format!(
                        "could not read {t}-{p} offsets {}..{e} within 120 s",
                        assigned.next.unwrap_or(0)
                    )));
                }
                continue;
            };
            let msg = msg.map_err(|err| self.err(format!("reading {t}-{p}: {err}")))?;
            let o = msg.offset();
            if assigned.next.is_some_and(|n| o < n) {
                continue;
            }
            if o >= e {
                // A gap ran up to the end and this record belongs to the next batch: it is
                // consumed now, so the next batch re-positions the partition.
                assigned.next = None;
                break;
            }
            // Compacted topics and transaction markers leave gaps: move past what was seen.
            assigned.next = Some(o + 1);
            columns.append(&msg);
        }
        columns.finish(self.schema)
    }
}

/// Arrow builders for the columns of [`kafka_schema`], filled one record at a time.
struct RecordColumns {
    key: BinaryBuilder,
    value: BinaryBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    timestamp_type: Int32Builder,
    headers: Option<ListBuilder<StructBuilder>>,
}

impl RecordColumns {
    fn with_capacity(rows: usize, include_headers: bool) -> Self {
        RecordColumns {
            key: BinaryBuilder::with_capacity(rows, rows * 8),
            value: BinaryBuilder::with_capacity(rows, rows * 100),
            topic: StringBuilder::with_capacity(rows, rows * 8),
            partition: Int32Builder::with_capacity(rows),
            offset: Int64Builder::with_capacity(rows),
            timestamp: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC),
            timestamp_type: Int32Builder::with_capacity(rows),
            headers: include_headers
                .then(|| ListBuilder::new(StructBuilder::from_fields(header_fields(), 0))),
        }
    }

    fn len(&self) -> usize {
        self.offset.len()
    }

    fn append(&mut self, msg: &impl Message) {
        self.key.append_option(msg.key());
        self.value.append_option(msg.payload());
        self.topic.append_value(msg.topic());
        self.partition.append_value(msg.partition());
        self.offset.append_value(msg.offset());
        let (ts, kind) = match msg.timestamp() {
            rdkafka::Timestamp::NotAvailable => (None, -1),
            rdkafka::Timestamp::CreateTime(t) => (Some(t * 1000), 0),
            rdkafka::Timestamp::LogAppendTime(t) => (Some(t * 1000), 1),
        };
        self.timestamp.append_option(ts);
        self.timestamp_type.append_value(kind);
        if let Some(headers) = &mut self.headers {
            match msg.headers() {
                Some(hs) => {
                    for h in hs.iter() {
                        let item = headers.values();
                        if let Some(b) = item.field_builder::<StringBuilder>(0) {
                            b.append_value(h.key);
                        }
                        if let Some(b) = item.field_builder::<BinaryBuilder>(1) {
                            b.append_option(h.value);
                        }
                        item.append(true);
                    }
                    headers.append(true);
                }
                None => headers.append(false),
            }
        }
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.key.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.timestamp_type.finish()),
        ];
        if let Some(mut headers) = self.headers {
            columns.push(Arc::new(headers.finish()));
        }
        RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::data("building a Kafka batch", e))
    }
}

/// Reads Kafka topics batch by batch.
pub struct KafkaSource {
    spec: KafkaSourceSpec,
    ctx: SourceContext,
    schema: SchemaRef,
    consumer: Arc<BaseConsumer>,
    /// Partitions assigned so far, each with its own queue.
    assigned: BTreeMap<(String, i32), AssignedPartition>,
    /// Offsets the first batch starts from (kept in the source log).
    initial: Option<PartitionOffsets>,
    /// For `availableNow`: the end offsets when the query started.
    bound: Option<PartitionOffsets>,
    lost_records: u64,
    /// Per partition, how far the planned batch ends behind the latest offset (Spark's
    /// `offsetsBehindLatest` metrics).
    behind: BTreeMap<(String, i32), i64>,
    /// When the last batch was planned (for `minOffsetsPerTrigger`).
    last_planned: Instant,
    /// The client settings, for the continuous reader's consumer.
    config: ClientConfig,
    /// A continuous query's reader, made by its first `read_available`.
    continuous: Option<ContinuousReader>,
}

/// At most this many records are taken per `read_available`, so that a backlog (a restart
/// after downtime) moves through the query in pieces rather than as one huge batch.
const MAX_CONTINUOUS_RECORDS: usize = 16_384;

/// How a continuous query reads: a consumer of its own with every partition assigned, its
/// records taken from the consumer's one queue in arrival order as they come. (The batch
/// reader's per-partition queues serve reading exact ranges; here there are no ranges.)
struct ContinuousReader {
    consumer: BaseConsumer,
    /// Per partition, the next offset to read (what `read_available` returns), sorted by
    /// partition so that a record finds its entry without building a key for it.
    next: Vec<((String, i32), i64)>,
    /// Where the engine's position is: the offset last returned, or the one the reader was
    /// made for (`None`: the query's start).
    position: Option<Offset>,
}

impl ContinuousReader {
    /// Waits up to `wait` for a record, then takes what else has arrived (up to
    /// [`MAX_CONTINUOUS_RECORDS`]) without waiting; the record batch and the offsets after it.
    fn read(
        &mut self,
        wait: Duration,
        schema: &SchemaRef,
        include_headers: bool,
    ) -> std::result::Result<Option<RecordBatch>, String> {
        let mut columns: Option<RecordColumns> = None;
        let mut timeout = wait;
        while columns.as_ref().map_or(0, RecordColumns::len) < MAX_CONTINUOUS_RECORDS {
            let Some(msg) = self.consumer.poll(timeout) else {
                break;
            };
            let msg = msg.map_err(|e| e.to_string())?;
            let wanted = (msg.topic(), msg.partition());
            let found = self
                .next
                .binary_search_by(|((t, p), _)| (t.as_str(), *p).cmp(&wanted));
            let slot = match found {
                Ok(i) => i,
                Err(i) => {
                    // Only assigned partitions deliver; keep the order if one ever did not.
                    self.next.insert(i, ((wanted.0.to_owned(), wanted.1), 0));
                    i
                }
            };
            if msg.offset() < self.next[slot].1 {
                // Delivered again after a reconnect: already taken.
                continue;
            }
            // Transaction markers and compaction leave gaps: the next offset follows the
            // record seen.
            self.next[slot].1 = msg.offset() + 1;
            columns
                .get_or_insert_with(|| RecordColumns::with_capacity(1024, include_headers))
                .append(&msg);
            timeout = Duration::ZERO;
        }
        match columns {
            Some(c) => c.finish(schema).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// The next offset of every partition, as the offsets log stores them.
    fn offsets(&self) -> Offset {
        to_json(&self.next.iter().cloned().collect())
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl KafkaSource {
    /// Connects the client; offsets are looked up when the first batch is planned.
    pub fn open(spec: KafkaSourceSpec, ctx: SourceContext) -> Result<Self> {
        ctx.log_dir.create_dir_all()?;
        let client_options = super::client::resolve(&spec.client_options)?;
        crate::connectors::kafka::client::check_reachable(
            &spec.bootstrap_servers,
            &client_options,
            spec.connect_timeout,
        )
        .map_err(|message| Error::Source {
            source_name: format!("KafkaSource[{}]", describe(&spec.subscription)),
            message,
        })?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &spec.bootstrap_servers)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // A fetch with no data waits at the broker this long, and the metadata and offset
            // requests that plan the next batch queue behind it: librdkafka's 500 ms default
            // added half a second to each batch. (`kafka.fetch.wait.max.ms` overrides it.)
            .set("fetch.wait.max.ms", "10")
            // Each partition has its own queue, and librdkafka's prefetch limits apply per
            // queue: its defaults (64 MiB, 100,000 records) would let a consumer of many
            // partitions hold gigabytes. (`kafka.queued.max.messages.kbytes` overrides it.)
            .set("queued.max.messages.kbytes", "4096")
            .set("queued.min.messages", "20000")
            // With prefetch limits this low, a queue at its limit postpones the partition's
            // next fetch by librdkafka's 1 s default, and a failed fetch by 500 ms: each was
            // seen as a stall of that length in end-to-end latency (docs/BENCHMARKS.md).
            .set("fetch.queue.backoff.ms", "10")
            .set("fetch.error.backoff.ms", "10")
            // librdkafka's consumer needs a group to assign partitions; like Spark's
            // `spark-kafka-source-<uuid>` it is private and nothing is ever committed to it.
            .set(
                "group.id",
                format!("sluice-source-{}", uuid::Uuid::new_v4()),
            );
        for (k, v) in &client_options {
            config.set(k, v);
        }
        let name = format!("KafkaSource[{}]", describe(&spec.subscription));
        let consumer: BaseConsumer = config.create().map_err(|e| Error::Source {
            source_name: name.clone(),
            message: format!("creating the Kafka client: {e}"),
        })?;
        let initial = match ctx.log_dir.join("initial.json").read()? {
            Some(bytes) => Some(
                serde_json::from_slice::<Offset>(&bytes)
                    .ok()
                    .as_ref()
                    .and_then(from_json)
                    .ok_or_else(|| Error::Checkpoint {
                        path: ctx.log_dir.join("initial.json").to_path_buf(),
                        message: "the Kafka source's initial offsets are corrupt".into(),
                    })?,
            ),
            None => None,
        };
        Ok(KafkaSource {
            schema: kafka_schema(spec.include_headers),
            spec,
            ctx,
            consumer: Arc::new(consumer),
            assigned: BTreeMap::new(),
            initial,
            bound: None,
            lost_records: 0,
            behind: BTreeMap::new(),
            last_planned: Instant::now(),
            config,
            continuous: None,
        })
    }

    /// The continuous reader, positioned where `start` says (or where the query starts, as
    /// a first batch would: the source log's initial offsets, the data-loss checks).
    fn continuous_reader(&mut self, start: Option<&Offset>) -> Result<ContinuousReader> {
        self.latest_offset(start, ReadLimit::All)?;
        let starts = match start {
            Some(s) => {
                from_json(s).ok_or_else(|| self.err(format!("offset {s} is not a Kafka offset")))?
            }
            None => self.initial.clone().unwrap_or_default(),
        };
        let partitions = self.partitions()?;
        let marks = self.all_watermarks(&partitions)?;
        let mut next = PartitionOffsets::new();
        let mut tpl = TopicPartitionList::new();
        for (t, p) in partitions {
            let (low, high) = marks.get(&(t.clone(), p)).copied().unwrap_or((0, 0));
            // Below the log's start only when failOnDataLoss = false let the plan skip ahead.
            let s = starts
                .get(&(t.clone(), p))
                .copied()
                .unwrap_or(low)
                .clamp(low, high.max(low));
            tpl.add_partition_offset(&t, p, KafkaOffset::Offset(s))
                .map_err(|e| self.err(format!("assigning {t}-{p}: {e}")))?;
            next.insert((t, p), s);
        }
        let consumer: BaseConsumer = self
            .config
            .create()
            .map_err(|e| self.err(format!("creating the Kafka client: {e}")))?;
        consumer
            .assign(&tpl)
            .map_err(|e| self.err(format!("assigning partitions: {e}")))?;
        info!(offsets = %to_json(&next), "Kafka source reading continuously");
        Ok(ContinuousReader {
            consumer,
            next: next.into_iter().collect(),
            position: start.cloned(),
        })
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Source {
            source_name: self.description(),
            message: message.into(),
        }
    }

    /// The partitions the subscription covers now.
    fn partitions(&self) -> Result<Vec<(String, i32)>> {
        if let Subscription::Assign(assign) = &self.spec.subscription {
            return Ok(assign
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect());
        }
        let metadata = self.consumer.fetch_metadata(None, TIMEOUT).map_err(|e| {
            self.err(format!(
                "fetching topic metadata from {}: {e}",
                self.spec.bootstrap_servers
            ))
        })?;
        let pattern = match &self.spec.subscription {
            Subscription::Pattern(p) => Some(
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| self.err(format!("subscribePattern: {e}")))?,
            ),
            _ => None,
        };
        let mut out = Vec::new();
        for topic in metadata.topics() {
            let wanted = match (&self.spec.subscription, &pattern) {
                (Subscription::Topics(ts), _) => ts.iter().any(|t| t == topic.name()),
                (_, Some(re)) => re.is_match(topic.name()) && !topic.name().starts_with("__"),
                _ => false,
            };
            if wanted && topic.error().is_none() {
                out.extend(
                    topic
                        .partitions()
                        .iter()
                        .map(|p| (topic.name().to_owned(), p.id())),
                );
            }
        }
        if let Subscription::Topics(ts) = &self.spec.subscription {
            for t in ts {
                if !out.iter().any(|(name, _)| name == t) {
                    warn!(topic = %t, "subscribed topic does not exist (yet)");
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The low and high watermarks of every partition in `partitions`, in two ListOffsets
    /// requests per broker (earliest, then latest) rather than two per partition: planning a
    /// batch over many partitions costs a few milliseconds, not a round trip per partition.
    fn all_watermarks(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), (i64, i64)>> {
        let mut out: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
        if partitions.is_empty() {
            return Ok(out);
        }
        for (which, spec) in [(0, KafkaOffset::Beginning), (1, KafkaOffset::End)] {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in partitions {
                tpl.add_partition_offset(t, *p, spec)
                    .map_err(|e| self.err(format!("{t}-{p}: {e}")))?;
            }
            let found = self.consumer.offsets_for_times(tpl, TIMEOUT).map_err(|e| {
                self.err(format!(
                    "reading partition offsets from {}: {e}",
                    self.spec.bootstrap_servers
                ))
            })?;
            for e in found.elements() {
                let key = (e.topic().to_owned(), e.partition());
                let offset = match (e.error(), e.offset()) {
                    (Ok(()), KafkaOffset::Offset(o)) => o,
                    // Older brokers answer per partition only: ask for this one alone.
                    _ => {
                        let (low, high) = self.watermarks(&key.0, key.1)?;
                        if which == 0 { low } else { high }
                    }
                };
                let entry = out.entry(key).or_default();
                if which == 0 {
                    entry.0 = offset;
                } else {
                    entry.1 = offset;
                }
            }
        }
        Ok(out)
    }

    fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| self.err(format!("reading the offsets of {topic}-{partition}: {e}")))
    }

    /// Makes every partition of `wanted` deliver from its range's start: partitions seen for
    /// the first time are assigned there (and get their own queue); assigned ones whose queue
    /// is elsewhere (a re-run, a gap) are moved with a seek. Assigned partitions already at
    /// the start keep what they prefetched.
    fn position(&mut self, wanted: &[((String, i32), i64, i64)]) -> Result<()> {
        let mut new = TopicPartitionList::new();
        for ((t, p), s, _) in wanted {
            match self.assigned.get_mut(&(t.clone(), *p)) {
                None => {
                    new.add_partition_offset(t, *p, KafkaOffset::Offset(*s))
                        .map_err(|e| self.err(format!("assigning {t}-{p}: {e}")))?;
                }
                Some(a) if a.next == Some(*s) => {}
                Some(a) => {
                    self.consumer
                        .seek(t, *p, KafkaOffset::Offset(*s), TIMEOUT)
                        .map_err(|e| Error::Source {
                            source_name: format!("KafkaV2[{}]", describe(&self.spec.subscription)),
                            message: format!("moving {t}-{p} to offset {s}: {e}"),
                        })?;
                    a.next = Some(*s);
                }
            }
        }
        if new.count() == 0 {
            return Ok(());
        }
        // Queues first: a partition whose queue the application split off before it is
        // assigned keeps its records there from the first fetch on (split afterwards, the
        // first fetches would land in the consumer's shared queue).
        for e in new.elements() {
            let queue = self
                .consumer
                .split_partition_queue(e.topic(), e.partition())
                .ok_or_else(|| self.err(format!("no queue for {}-{}", e.topic(), e.partition())))?;
            let next = match e.offset() {
                KafkaOffset::Offset(o) => Some(o),
                _ => None,
            };
            self.assigned.insert(
                (e.topic().to_owned(), e.partition()),
                AssignedPartition { queue, next },
            );
        }
        self.consumer
            .incremental_assign(&new)
            .map_err(|e| self.err(format!("assigning partitions: {e}")))?;
        Ok(())
    }

    /// The offset `spec` names in `topic`-`partition`, whose log spans `low..high`.
    fn resolve(
        &self,
        spec: &OffsetSpec,
        topic: &str,
        partition: i32,
        low: i64,
        high: i64,
    ) -> Result<i64> {
        let pick = |o: i64| match o {
            -2 => low,
            -1 => high,
            o => o,
        };
        let (ts, strategy) = match spec {
            OffsetSpec::Earliest => return Ok(low),
            OffsetSpec::Latest => return Ok(high),
            OffsetSpec::Json(m) => {
                return Ok(m
                    .get(topic)
                    .and_then(|ps| ps.get(&partition))
                    .map_or(low, |o| pick(*o)));
            }
            OffsetSpec::Timestamp(ts, strategy) => (*ts, *strategy),
            OffsetSpec::TimestampJson(m, strategy) => {
                match m.get(topic).and_then(|ps| ps.get(&partition)) {
                    Some(ts) => (*ts, *strategy),
                    None => {
                        return Err(self.err(format!(
                            "startingOffsetsByTimestamp has no timestamp for {topic}-{partition}; list every partition the query reads"
                        )));
                    }
                }
            }
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, KafkaOffset::Offset(ts))
            .map_err(|e| self.err(format!("{topic}-{partition}: {e}")))?;
        let found = self
            .consumer
            .offsets_for_times(tpl, TIMEOUT)
            .map_err(|e| {
                self.err(format!(
                    "looking up the offset of timestamp {ts} in {topic}-{partition}: {e}"
                ))
            })?
            .find_partition(topic, partition)
            .map(|e| e.offset());
        match (found, strategy) {
            (Some(KafkaOffset::Offset(o)), _) => Ok(o.clamp(low, high)),
            (_, TimestampStrategy::Latest) => Ok(high),
            (_, TimestampStrategy::Error) => Err(self.err(format!(
                "no record of {topic}-{partition} has a timestamp at or after {ts}; set startingOffsetsByTimestampStrategy = \"latest\" to start at its end instead"
            ))),
        }
    }
}

fn describe(s: &Subscription) -> String {
    match s {
        Subscription::Topics(t) => format!("Subscribe[{}]", t.join(",")),
        Subscription::Pattern(p) => format!("SubscribePattern[{p}]"),
        Subscription::Assign(a) => format!(
            "Assign[{}]",
            a.keys().cloned().collect::<Vec<_>>().join(",")
        ),
    }
}

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// Spark's Kafka row: key, value, topic, partition, offset, timestamp, timestampType, and
/// headers with `includeHeaders`.
pub fn kafka_schema(include_headers: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", timestamp_type(), true),
        Field::new("timestampType", DataType::Int32, false),
    ];
    if include_headers {
        fields.push(Field::new(
            "headers",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(header_fields()),
                true,
            ))),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

impl Source for KafkaSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn description(&self) -> String {
        format!("KafkaV2[{}]", describe(&self.spec.subscription))
    }

    fn prepare_for_available_now(&mut self) -> Result<()> {
        let mut bound = PartitionOffsets::new();
        let partitions = self.partitions()?;
        let marks = self.all_watermarks(&partitions)?;
        for (t, p) in partitions {
            let (low, high) = match marks.get(&(t.clone(), p)) {
                Some(m) => *m,
                None => self.watermarks(&t, p)?,
            };
            let end = match &self.spec.ending_offsets {
                Some(spec) => self.resolve(spec, &t, p, low, high)?,
                None => high,
            };
            bound.insert((t, p), end);
        }
        self.bound = Some(bound);
        Ok(())
    }

    fn latest_offset(
        &mut self,
        start: Option<&Offset>,
        limit: ReadLimit,
    ) -> Result<Option<Offset>> {
        let partitions = self.partitions()?;
        let mut from = match start {
            Some(s) => {
                from_json(s).ok_or_else(|| self.err(format!("offset {s} is not a Kafka offset")))?
            }
            None => match &self.initial {
                Some(i) => i.clone(),
                None => PartitionOffsets::new(),
            },
        };
        let first = start.is_none() && self.initial.is_none();
        let mut ends = PartitionOffsets::new();
        let mut backlog = Vec::new();
        let mut highs = BTreeMap::new();
        let marks = self.all_watermarks(&partitions)?;
        for (t, p) in &partitions {
            let (low, high) = match marks.get(&(t.clone(), *p)) {
                Some(m) => *m,
                None => self.watermarks(t, *p)?,
            };
            highs.insert((t.clone(), *p), high);
            let begin = match from.get(&(t.clone(), *p)) {
                Some(o) => *o,
                // New partitions: the query's starting offsets on its first batch, earliest after.
                None if first => self.resolve(&self.spec.starting_offsets, t, *p, low, high)?,
                None => low,
            };
            // Data loss: records the query has not read are gone (retention, deletion), or the
            // partition is behind the checkpoint (the topic was deleted and recreated).
            let lost = if begin < low {
                Some((
                    format!(
                        "offsets {begin}..{low} of {t}-{p} are gone from Kafka (retention or deletion) before the query read them"
                    ),
                    (low - begin) as u64,
                ))
            } else if begin > high {
                Some((
                    format!(
                        "{t}-{p} ends at offset {high} but the query had read up to {begin}: the topic was recreated or truncated"
                    ),
                    0,
                ))
            } else {
                None
            };
            let begin = match lost {
                None => begin,
                Some((message, _)) if self.spec.fail_on_data_loss => {
                    return Err(self.err(format!(
                        "{message}; set failOnDataLoss = false to skip ahead and go on"
                    )));
                }
                Some((message, count)) => {
                    warn!(topic = %t, partition = p, lost = count, "{message}; failOnDataLoss is false, continuing from offset {low}");
                    self.lost_records += count;
                    low
                }
            };
            from.insert((t.clone(), *p), begin);
            let mut end = high;
            if let Some(bound) = &self.bound {
                end = end.min(*bound.get(&(t.clone(), *p)).unwrap_or(&begin));
            }
            let end = end.max(begin);
            backlog.push(((t.clone(), *p), begin, end));
            ends.insert((t.clone(), *p), end);
        }
        if first {
            // Fix batch 0's start before it is planned, so a replay reads the same records.
            let json = serde_json::to_vec(&to_json(&from)).map_err(|e| self.err(e.to_string()))?;
            self.ctx.log_dir.join("initial.json").write(json)?;
            info!(offsets = %to_json(&from), "Kafka source starting offsets");
            self.initial = Some(from.clone());
        }
        // minOffsetsPerTrigger: hold small backlogs back until maxTriggerDelay has passed
        // (bounded runs — once, availableNow — read what there is).
        if limit == ReadLimit::Configured
            && self.bound.is_none()
            && let Some(min) = self.spec.min_offsets_per_trigger
        {
            let total: u64 = backlog.iter().map(|(_, b, e)| (e - b) as u64).sum();
            if total < min
                && self.last_planned.elapsed() < self.spec.max_trigger_delay
                && start.is_some()
            {
                return Ok(start.cloned());
            }
        }
        if limit == ReadLimit::Configured
            && let Some(max) = self.spec.max_offsets_per_trigger
        {
            let total: u64 = backlog.iter().map(|(_, b, e)| (e - b) as u64).sum();
            if total > max {
                // Proportional to each partition's backlog; leftovers to the largest backlogs.
                let mut shares: Vec<(usize, u64, u64)> = backlog
                    .iter()
                    .enumerate()
                    .map(|(i, (_, b, e))| {
                        let n = (e - b) as u64;
                        (i, (n as u128 * max as u128 / total as u128) as u64, n)
                    })
                    .collect();
                let mut left = max - shares.iter().map(|s| s.1).sum::<u64>();
                shares.sort_by_key(|s| std::cmp::Reverse(s.2));
                for s in &mut shares {
                    if left == 0 {
                        break;
                    }
                    if s.1 < s.2 {
                        s.1 += 1;
                        left -= 1;
                    }
                }
                for (i, share, _) in shares {
                    let (key, b, _) = &backlog[i];
                    ends.insert(key.clone(), b + share as i64);
                }
            }
        }
        let start_offsets = from;
        if partitions.is_empty() {
            return Ok(start.cloned());
        }
        // No new records (before the first batch: nothing to plan yet).
        if ends == start_offsets {
            return Ok(start.cloned());
        }
        self.last_planned = Instant::now();
        self.behind = ends
            .iter()
            .map(|(k, end)| {
                (
                    k.clone(),
                    (highs.get(k).copied().unwrap_or(*end) - end).max(0),
                )
            })
            .collect();
        Ok(Some(to_json(&ends)))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let ends = from_json(end)
            .ok_or_else(|| self.err(format!("offset {end} is not a Kafka offset")))?;
        let starts = match start {
            Some(s) => {
                from_json(s).ok_or_else(|| self.err(format!("offset {s} is not a Kafka offset")))?
            }
            None => self.initial.clone().unwrap_or_default(),
        };
        // The range of each partition this batch reads.
        let mut wanted: Vec<((String, i32), i64, i64)> = Vec::new();
        for ((t, p), e) in &ends {
            let mut s = match starts.get(&(t.clone(), *p)) {
                Some(s) => *s,
                // A partition discovered after the previous batch starts at its earliest offset.
                None => self.watermarks(t, *p)?.0,
            };
            if s > *e {
                // The partition was recreated behind the checkpoint (failOnDataLoss = false
                // let the plan go on): read it from its beginning.
                s = self.watermarks(t, *p)?.0;
            }
            if *e > s {
                wanted.push(((t.clone(), *p), s, *e));
            }
        }
        self.position(&wanted)?;
        let reading = Reading {
            consumer: &self.consumer,
            schema: &self.schema,
            include_headers: self.spec.include_headers,
            source_name: self.description(),
            deadline: Instant::now() + Duration::from_secs(120),
        };
        // Each partition's range is read from its own queue, the partitions at once on the
        // worker pool; one record batch per partition, in partition order.
        let mut queues: HashMap<(&str, i32), &mut AssignedPartition> = self
            .assigned
            .iter_mut()
            .map(|((t, p), a)| ((t.as_str(), *p), a))
            .collect();
        let mut ranges = Vec::with_capacity(wanted.len());
        for ((t, p), _, e) in &wanted {
            let queue = queues
                .remove(&(t.as_str(), *p))
                .ok_or_else(|| reading.err(format!("{t}-{p} is not assigned")))?;
            ranges.push((t.as_str(), *p, *e, queue));
        }
        let mut batches =
            crate::parallel::try_map(ranges, self.ctx.parallelism, |(t, p, e, q)| {
                reading.partition(t, p, e, q)
            })?;
        // A range of transaction markers alone holds no records.
        batches.retain(|b| b.num_rows() > 0);
        Ok(batches)
    }

    fn commit(&mut self, _end: &Offset) -> Result<()> {
        Ok(())
    }

    fn read_available(
        &mut self,
        start: Option<&Offset>,
        wait: Duration,
    ) -> Result<Option<(Offset, Vec<RecordBatch>)>> {
        // A reader elsewhere than `start` (the engine re-ran an epoch) is made afresh.
        let positioned = self
            .continuous
            .as_ref()
            .is_some_and(|r| r.position.as_ref() == start);
        if !positioned {
            self.continuous = None;
            let reader = self.continuous_reader(start)?;
            self.continuous = Some(reader);
        }
        let (schema, include_headers, name) = (
            self.schema.clone(),
            self.spec.include_headers,
            self.description(),
        );
        let Some(reader) = self.continuous.as_mut() else {
            return Ok(None);
        };
        if reader.next.is_empty() {
            // No partition yet (the topic does not exist): look again after the wait.
            std::thread::sleep(wait);
            self.continuous = None;
            return Ok(None);
        }
        match reader.read(wait, &schema, include_headers) {
            Ok(Some(batch)) => {
                let end = reader.offsets();
                reader.position = Some(end.clone());
                Ok(Some((end, vec![batch])))
            }
            Ok(None) => Ok(None),
            Err(message) => Err(Error::Source {
                source_name: name,
                message: format!("reading continuously: {message}"),
            }),
        }
    }

    fn take_metrics(&mut self) -> SourceMetrics {
        let mut m = SourceMetrics::new();
        m.insert(
            "numRecordsLost".into(),
            std::mem::take(&mut self.lost_records).into(),
        );
        // Spark's lag metrics, and the lag of each partition for the dashboard.
        let behind: Vec<i64> = self.behind.values().copied().collect();
        if !behind.is_empty() {
            let (min, max) = (behind.iter().min(), behind.iter().max());
            let avg = behind.iter().sum::<i64>() as f64 / behind.len() as f64;
            m.insert("minOffsetsBehindLatest".into(), min.copied().into());
            m.insert("maxOffsetsBehindLatest".into(), max.copied().into());
            m.insert("avgOffsetsBehindLatest".into(), avg.into());
            m.insert(
                "offsetsBehindLatest".into(),
                self.behind
                    .iter()
                    .map(|((t, p), n)| (format!("{t}-{p}"), serde_json::Value::from(*n)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            );
        }
        m
    }
}
