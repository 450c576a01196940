//! The Kafka sink: rows with a `value` column (and optional `key`, `topic`, `headers`) become
//! Kafka records. Kafka's partitioner picks each record's partition (by key) unless
//! `partitionColumn` names the INT column that does: unlike Spark, a `partition` column alone
//! does not route, because it is most often the partition a Kafka source read the row from,
//! and carrying that into another topic silently (or failing on a topic with fewer
//! partitions) is not what a pass-through means.
//!
//! **Dead letters** (rows with the `_error` column a failed step's `onError = "deadLetter"`
//! adds): the record's value is the row's `value` (the original message, when the failed step
//! read a Kafka source directly) or else the row as a JSON object; headers carry the error
//! (`sluice.error`) and, when the rows have them, the source position (`sluice.source.topic`,
//! `sluice.source.partition`, `sluice.source.offset`), as Kafka Connect's dead-letter queue
//! context headers do. They go to the sink's `topic`, never to the `topic`/`partition` they
//! came from.
//!
//! - **At-least-once** (default): an idempotent producer; the batch commits only after every
//!   record was acknowledged, so a crash can repeat a batch but never lose one (as in Spark).
//! - **Exactly-once** (`exactlyOnce = true`), a step beyond Spark: each batch is one Kafka
//!   transaction with a transactional id derived from the query id, so a restarted query
//!   fences its previous incarnation and aborts whatever transaction it left open. The batch
//!   id is written *inside* the same transaction, as a small record keyed by the query id in
//!   the topic `<topic>.sluice-batches`; on a re-run the sink reads the last committed one back
//!   and skips a batch Kafka already has. Consumers with `isolation.level=read_committed` then
//!   see every row exactly once. (A record rather than a transactional consumer-group offset,
//!   because a record works on every Kafka-protocol broker, librdkafka's mock included.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset as KafkaOffset, TopicPartitionList};
use tracing::info;

use crate::error::{Error, Result};
use crate::schema::JsonRows;
use crate::sink::Sink;

/// `format = "kafka"` sink options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkSpec {
    /// `kafka.bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `topic`: overrides a `topic` column.
    pub topic: Option<String>,
    /// `exactlyOnce`: one transaction per batch.
    pub exactly_once: bool,
    /// `valueFormat = "json"`: each row's columns (but `key`, `topic`, `partition`,
    /// `headers`) as a JSON object is the record's value.
    pub json_rows: bool,
    /// Other `kafka.*` options for the producer.
    pub client_options: Vec<(String, super::client::ClientValue)>,
    /// `connectTimeout`: how long the query waits at start for a bootstrap broker to answer.
    pub connect_timeout: Duration,
    /// `partitionColumn`: the INT column whose value is each record's partition. `None`:
    /// Kafka's partitioner picks (by key), even when the rows have a `partition` column —
    /// which is most often the partition a Kafka source read them from, not a destination.
    pub partition_column: Option<String>,
}

/// Producer options the sink refuses, and why.
pub const REFUSED_SINK_OPTIONS: &[(&str, &str)] = &[
    (
        "key.serializer",
        "keys are written as the `key` column's bytes or string",
    ),
    (
        "value.serializer",
        "values are written as the `value` column's bytes or string",
    ),
    (
        "transactional.id",
        "with exactlyOnce the sink derives it from the query id, so restarts fence the old producer",
    ),
];

/// Counts failed deliveries (the producer reports them on its own thread) and wakes
/// whoever waits for the last acknowledgement.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Notified on a delivery report while someone waits (`waiting`); paired with
    /// `delivered_lock`.
    delivered: Condvar,
    delivered_lock: Mutex<()>,
    /// Whether `await_deliveries` is waiting: reports arrive once per record, and only then
    /// need to take the lock and wake it.
    waiting: AtomicBool,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        if self.waiting.load(Ordering::Acquire) {
            let _guard = self
                .delivered_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.delivered.notify_all();
        }
    }
}

/// Waits until `producer` has no record left without its acknowledgement, or `timeout`.
///
/// Instead of `Producer::flush`: with a `ThreadedProducer`, whose own thread serves the
/// delivery reports, rust-rdkafka's flush sleeps in 100 ms polls that never see an event, so
/// every flush took at least 100 ms (most of the end-to-end latency of a batch).
fn await_deliveries(producer: &ThreadedProducer<Deliveries>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let ctx = producer.context();
    let mut guard = ctx.delivered_lock.lock().unwrap_or_else(|p| p.into_inner());
    // Set under the lock: a report that comes after it sees it and wakes us.
    ctx.waiting.store(true, Ordering::Release);
    let mut delivered = true;
    while producer.in_flight_count() > 0 {
        let now = Instant::now();
        if now >= deadline {
            delivered = false;
            break;
        }
        // A report may count the record as in flight still while it runs: look again soon.
        let wait = (deadline - now).min(Duration::from_millis(1));
        guard = ctx
            .delivered
            .wait_timeout(guard, wait)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    ctx.waiting.store(false, Ordering::Release);
    delivered
}

/// Where a row's fields are in a batch (resolved per record batch: a named output receives
/// batches of schemas only known when they arrive).
struct Columns {
    /// The `value` column; `None`: each row as a JSON object (dead letters only).
    value: Option<usize>,
    key: Option<usize>,
    topic: Option<usize>,
    partition: Option<usize>,
    headers: Option<usize>,
    /// Dead letters: the `_error` column, and the source position's columns.
    dead_letter: Option<DeadLetterColumns>,
}

/// The columns of a dead-letter row that become headers.
struct DeadLetterColumns {
    error: usize,
    /// `(header, column)` for the source topic, partition and offset present in the rows.
    source: Vec<(&'static str, usize)>,
}

use crate::sink::outputs::ERROR_COLUMN;

impl Columns {
    /// The columns of `schema`, or what is missing. `topic` is the sink's `topic` option.
    fn resolve(
        schema: &SchemaRef,
        topic: Option<&str>,
        json_rows: bool,
        partition_column: Option<&str>,
    ) -> std::result::Result<Columns, String> {
        let dead_letter = schema
            .index_of(ERROR_COLUMN)
            .ok()
            .filter(|&i| schema.field(i).data_type() == &DataType::Utf8)
            .map(|error| DeadLetterColumns {
                error,
                source: [
                    ("sluice.source.topic", "topic"),
                    ("sluice.source.partition", "partition"),
                    ("sluice.source.offset", "offset"),
                ]
                .into_iter()
                .filter_map(|(h, c)| Some((h, schema.index_of(c).ok()?)))
                .collect(),
            });
        let value = if json_rows {
            None
        } else {
            bytes_column(schema, "value")?
        };
        if value.is_none() && dead_letter.is_none() && !json_rows {
            return Err(format!(
                "the batches have no `value` column (they have: {}); produce one, e.g. with to_json in a transform step, or set valueFormat = \"json\"",
                crate::schema::column_names(schema)
            ));
        }
        if dead_letter.is_some() {
            if topic.is_none() {
                return Err("a dead-letter Kafka output needs the `topic` option (its rows keep the topic they were read from in a header, not as their destination)".into());
            }
            return Ok(Columns {
                value,
                key: bytes_column(schema, "key")?,
                topic: None,
                partition: None,
                headers: schema.index_of("headers").ok(),
                dead_letter,
            });
        }
        let topic_col = match schema.index_of("topic") {
            Ok(i) if schema.field(i).data_type() == &DataType::Utf8 => Some(i),
            _ => None,
        };
        if topic_col.is_none() && topic.is_none() {
            return Err(
                "no `topic` option and no string `topic` column: say where the records go".into(),
            );
        }
        Ok(Columns {
            value,
            key: bytes_column(schema, "key")?,
            topic: topic_col,
            partition: match partition_column {
                None => None,
                Some(name) => match schema.index_of(name) {
                    Ok(i) if schema.field(i).data_type() == &DataType::Int32 => Some(i),
                    Ok(i) => {
                        return Err(format!(
                            "partitionColumn '{name}' is a {}, not an INT; cast it: CAST({name} AS INT)",
                            schema.field(i).data_type()
                        ));
                    }
                    Err(_) => {
                        return Err(format!(
                            "partitionColumn '{name}' is not a column (the rows have: {})",
                            crate::schema::column_names(schema)
                        ));
                    }
                },
            },
            headers: schema.index_of("headers").ok(),
            dead_letter: None,
        })
    }
}

/// Writes batches to Kafka.
pub struct KafkaSink {
    spec: KafkaSinkSpec,
    producer: ThreadedProducer<Deliveries>,
    /// Exactly-once: the topic of batch markers and this query's key in it.
    progress: Option<(String, String)>,
    last_committed: Option<u64>,
    /// Whether batches are made durable in `finish_batch` (the engine reads the next batch
    /// while this one's acknowledgements arrive).
    deferred: bool,
    /// Continuous processing: the epoch whose rows are being produced (its transaction
    /// open, for exactly-once).
    open_epoch: Option<u64>,
}

const TIMEOUT: Duration = Duration::from_secs(60);

fn bytes_column(schema: &SchemaRef, name: &str) -> std::result::Result<Option<usize>, String> {
    match schema.index_of(name) {
        Err(_) => Ok(None),
        Ok(i) => match schema.field(i).data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary => {
                Ok(Some(i))
            }
            other => Err(format!(
                "column '{name}' is {other}; it must be a string or binary (serialise it in a transform step, e.g. to_json)"
            )),
        },
    }
}

/// The bytes of row `i` of a string or binary column.
fn bytes(col: &ArrayRef, i: usize) -> Option<&[u8]> {
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(i).as_bytes(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(i).as_bytes(),
        DataType::Binary => col.as_binary::<i32>().value(i),
        _ => col.as_binary::<i64>().value(i),
    })
}

impl KafkaSink {
    /// Connects the producer (and, for exactly-once, fences earlier incarnations of this
    /// query's producer and reads back the last batch it committed).
    /// `schema`: the rows' schema when known at start (the main sink), `None` for a named
    /// output.
    pub fn open(spec: KafkaSinkSpec, query_id: &str, schema: Option<&SchemaRef>) -> Result<Self> {
        // Secrets first: a missing one is a configuration error, whatever else is wrong.
        let client_options = super::client::resolve(&spec.client_options)?;
        let name = format!("KafkaSink[{}]", spec.bootstrap_servers);
        let sink_err = |message: String| Error::Sink {
            sink: name.clone(),
            message,
        };
        // The main sink's rows have the query's schema: check it now, before any batch. A
        // named output's arrive with theirs (dead letters carry `_error`).
        if let Some(schema) = schema {
            Columns::resolve(
                schema,
                spec.topic.as_deref(),
                spec.json_rows,
                spec.partition_column.as_deref(),
            )
            .map_err(&sink_err)?;
            if spec.partition_column.is_none() && schema.index_of("partition").is_ok() {
                info!(
                    sink = %name,
                    "the rows' `partition` column does not choose the output partition (Kafka's partitioner does, by key); set partitionColumn = \"partition\" to route by it"
                );
            }
        }
        crate::connectors::kafka::client::check_reachable(
            &spec.bootstrap_servers,
            &client_options,
            spec.connect_timeout,
        )
        .map_err(&sink_err)?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &spec.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // A batch is handed to the producer at once: room for a large one in its local
            // queue (librdkafka's default, 100,000, made the sink wait for acknowledgements
            // half-way through every batch). `kafka.queue.buffering.max.messages` overrides it.
            .set("queue.buffering.max.messages", "1000000")
            // A batch (or a continuous read) is handed over all at once: waiting for more
            // records to fill a request only delays the last ones (librdkafka's 5 ms default
            // was most of the latency at 10,000 records/s). `kafka.linger.ms` overrides it.
            .set("linger.ms", "0");
        if spec.exactly_once {
            config.set("transactional.id", format!("sluice-{query_id}"));
        }
        for (k, v) in &client_options {
            config.set(k, v);
        }
        let producer: ThreadedProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| sink_err(format!("creating the producer: {e}")))?;
        let mut sink = KafkaSink {
            spec,
            producer,
            progress: None,
            last_committed: None,
            deferred: false,
            open_epoch: None,
        };
        if sink.spec.exactly_once {
            let topic = sink.spec.topic.clone().ok_or_else(|| {
                sink_err("exactlyOnce needs the `topic` option: the sink records its last committed batch in that topic's offsets".into())
            })?;
            sink.producer.init_transactions(TIMEOUT).map_err(|e| {
                sink_err(format!(
                    "initialising transactions (is the broker 0.11 or later?): {e}"
                ))
            })?;
            let marker_topic = format!("{topic}.sluice-batches");
            sink.last_committed =
                last_committed_batch(&sink.spec.bootstrap_servers, &marker_topic, query_id)
                    .map_err(|e| {
                        sink_err(format!(
                            "reading the last committed batch from {marker_topic}: {e}"
                        ))
                    })?;
            info!(last_committed = ?sink.last_committed, transactional_id = %format!("sluice-{query_id}"), "Kafka sink ready for exactly-once");
            sink.progress = Some((marker_topic, query_id.to_owned()));
        }
        Ok(sink)
    }

    fn err(&self, message: String) -> Error {
        Error::Sink {
            sink: self.description(),
            message,
        }
    }

    fn produce_all(&self, batch_id: u64, batches: &[RecordBatch]) -> Result<u64> {
        let mut rows = 0;
        for batch in batches {
            let columns = Columns::resolve(
                batch.schema_ref(),
                self.spec.topic.as_deref(),
                self.spec.json_rows,
                self.spec.partition_column.as_deref(),
            )
            .map_err(|e| self.err(format!("batch {batch_id}: {e}")))?;
            let value = columns.value.map(|i| batch.column(i));
            let json_values =
                match (&columns.value, &columns.dead_letter) {
                    (None, Some(dl)) => Some(JsonRows::of(batch, &[dl.error]).map_err(|e| {
                        self.err(format!("batch {batch_id}: dead letters as JSON: {e}"))
                    })?),
                    (None, None) => {
                        let record_columns: Vec<usize> = [
                            columns.key,
                            columns.topic,
                            columns.partition,
                            columns.headers,
                        ]
                        .into_iter()
                        .flatten()
                        .collect();
                        Some(JsonRows::of(batch, &record_columns).map_err(|e| {
                            self.err(format!("batch {batch_id}: rows as JSON: {e}"))
                        })?)
                    }
                    _ => None,
                };
            let key = columns.key.map(|i| batch.column(i));
            let topic_col = columns.topic.map(|i| batch.column(i).as_string::<i32>());
            let partition = columns.partition.map(|i| {
                batch
                    .column(i)
                    .as_primitive::<arrow_array::types::Int32Type>()
            });
            let headers = columns.headers.map(|i| batch.column(i));
            // Dead letters' context headers, as text (`sluice.error` and the source position).
            let dead_letter: Vec<(&str, arrow_cast::display::ArrayFormatter<'_>)> =
                match &columns.dead_letter {
                    Some(dl) => std::iter::once(("sluice.error", dl.error))
                        .chain(dl.source.iter().copied())
                        .map(|(h, i)| {
                            arrow_cast::display::ArrayFormatter::try_new(
                                batch.column(i).as_ref(),
                                &arrow_cast::display::FormatOptions::default(),
                            )
                            .map(|f| (h, f))
                        })
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| self.err(format!("batch {batch_id}: {e}")))?,
                    None => Vec::new(),
                };
            let mut header_text = String::new();
            for i in 0..batch.num_rows() {
                let topic = match (&self.spec.topic, &topic_col) {
                    (Some(t), _) => t.as_str(),
                    (None, Some(c)) if c.is_valid(i) => c.value(i),
                    _ => return Err(self.err(format!("row {i} of batch {batch_id} has no topic (null `topic` column and no `topic` option)"))),
                };
                let mut record: BaseRecord<'_, [u8], [u8], ()> =
                    BaseRecord::with_opaque_to(topic, ());
                if let Some(v) = value.and_then(|v| bytes(v, i)) {
                    record = record.payload(v);
                }
                if let Some(json) = &json_values {
                    record = record.payload(json.row(i));
                }
                if let Some(k) = key.and_then(|k| bytes(k, i)) {
                    record = record.key(k);
                }
                if let Some(p) = partition.filter(|p| p.is_valid(i)) {
                    record = record.partition(p.value(i));
                }
                // Built only for a row that has headers: an `OwnedHeaders` is a C allocation.
                let mut owned: Option<OwnedHeaders> = None;
                if let Some(h) = headers.filter(|h| h.is_valid(i))
                    && let Some(list) = h.as_list_opt::<i32>()
                {
                    let items = list.value(i);
                    if let Some(items) = items.as_struct_opt()
                        && let Some(keys) = items.column(0).as_string_opt::<i32>()
                    {
                        for j in 0..items.len() {
                            owned = Some(owned.take().unwrap_or_default().insert(Header {
                                key: keys.value(j),
                                value: bytes(items.column(1), j),
                            }));
                        }
                    }
                }
                for (name, f) in &dead_letter {
                    use std::fmt::Write as _;
                    header_text.clear();
                    let _ = write!(header_text, "{}", f.value(i));
                    owned = Some(owned.take().unwrap_or_default().insert(Header {
                        key: name,
                        value: Some(header_text.as_bytes()),
                    }));
                }
                if let Some(owned) = owned {
                    record = record.headers(owned);
                }
                send(&self.producer, record).map_err(|e| {
                    self.err(format!(
                        "producing row {i} of batch {batch_id} to {topic}: {e}"
                    ))
                })?;
                rows += 1;
            }
        }
        Ok(rows)
    }
}

/// Hands a record to the producer, waiting while its local queue is full (the producer
/// drains it as the broker acknowledges).
fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &ThreadedProducer<Deliveries>,
    mut record: BaseRecord<'_, K, P, ()>,
) -> std::result::Result<(), rdkafka::error::KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, r))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                std::thread::sleep(Duration::from_millis(1));
                record = r;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Markers read at a time, newest window first.
const MARKER_WINDOW: i64 = 1000;

/// The highest batch id committed for `key` in the marker topic, read with `read_committed`
/// (an aborted transaction's marker is invisible).
///
/// Several writers share a marker topic (the partitions of a clustered query, each with its
/// own key, or several queries writing one topic), so `key`'s last marker may lie far back:
/// the log is read in windows of [`MARKER_WINDOW`] records from the end backwards, and the
/// newest window holding the key has its highest id (ids only grow).
fn last_committed_batch(
    bootstrap: &str,
    topic: &str,
    key: &str,
) -> std::result::Result<Option<u64>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("sluice-sink-reader-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        // Each window ends at a known offset: no reason to let the broker wait for more.
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| e.to_string())?;
    let (low, high) = match consumer.fetch_watermarks(topic, 0, TIMEOUT) {
        Ok(w) => w,
        // No marker topic yet: nothing was ever committed.
        Err(_) => return Ok(None),
    };
    let mut end = high;
    while end > low {
        let start = low.max(end - MARKER_WINDOW);
        if let Some(id) = markers_between(&consumer, topic, start, end, key)? {
            return Ok(Some(id));
        }
        end = start;
    }
    Ok(None)
}

/// The highest batch id of `key` among the marker topic's records `start .. end`.
fn markers_between(
    consumer: &BaseConsumer,
    topic: &str,
    start: i64,
    end: i64,
    key: &str,
) -> std::result::Result<Option<u64>, String> {
    use rdkafka::Message;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, KafkaOffset::Offset(start))
        .map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut last = None;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let position = consumer
            .position()
            .ok()
            .and_then(|p| p.find_partition(topic, 0).map(|e| e.offset()));
        if matches!(position, Some(KafkaOffset::Offset(o)) if o >= end) {
            return Ok(last);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "could not read offsets {start}..{end} within {TIMEOUT:?}"
            ));
        }
        if let Some(msg) = consumer.poll(Duration::from_millis(50)) {
            let msg = msg.map_err(|e| e.to_string())?;
            if msg.offset() >= end {
                return Ok(last);
            }
            if msg.key() == Some(key.as_bytes())
                && let Some(id) = msg
                    .payload()
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|s| s.parse::<u64>().ok())
            {
                last = Some(last.map_or(id, |l: u64| l.max(id)));
            }
        }
    }
}

impl Sink for KafkaSink {
    fn description(&self) -> String {
        format!(
            "KafkaSink[{}{}]",
            self.spec.topic.as_deref().unwrap_or("<topic column>"),
            if self.spec.exactly_once {
                ", exactly-once"
            } else {
                ""
            }
        )
    }

    fn add_batch(
        &mut self,
        batch_id: u64,
        _schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        if let Some(last) = self.last_committed
            && batch_id <= last
        {
            info!(
                batch_id,
                last_committed = last,
                "batch already committed to Kafka; skipping"
            );
            return Ok(0);
        }
        let deliveries = self.producer.context();
        deliveries.failed.store(0, Ordering::Relaxed);
        if self.spec.exactly_once {
            self.producer.begin_transaction().map_err(|e| {
                self.err(format!(
                    "beginning the transaction of batch {batch_id}: {e}"
                ))
            })?;
        }
        let produced = self.produce_all(batch_id, batches);
        let rows = match produced {
            Ok(rows) => rows,
            Err(e) => {
                if self.spec.exactly_once {
                    let _ = self.producer.abort_transaction(TIMEOUT);
                }
                return Err(e);
            }
        };
        if self.deferred {
            // Durable in `finish_batch`, while the engine reads the next batch.
            return Ok(rows);
        }
        self.finish(batch_id)?;
        Ok(rows)
    }

    fn defer_finish(&mut self) -> bool {
        // At-least-once only. An exactly-once batch left open by a crash while the next one
        // is read relies on the broker aborting the fenced producer's transaction when the
        // restarted query takes its transactional id over (KIP-98); librdkafka's mock cluster,
        // the only broker the tests can run here, leaves those records visible to
        // read_committed readers, so that path could not be shown to hold. Exactly-once
        // batches stay strictly sequential.
        self.deferred = !self.spec.exactly_once;
        self.deferred
    }

    fn finish_batch(&mut self, batch_id: u64) -> Result<()> {
        if self.last_committed.is_some_and(|last| batch_id <= last) {
            // `add_batch` skipped it: Kafka already had it.
            return Ok(());
        }
        if self.spec.exactly_once && self.open_epoch != Some(batch_id) {
            // A continuous epoch whose rows the steps all dropped: its transaction still
            // records the epoch, so a re-run after a crash knows it is done.
            self.producer.begin_transaction().map_err(|e| {
                self.err(format!(
                    "beginning the transaction of epoch {batch_id}: {e}"
                ))
            })?;
        }
        self.open_epoch = None;
        self.finish(batch_id)
    }

    fn add_continuous(
        &mut self,
        epoch: u64,
        _schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        if self.open_epoch != Some(epoch) {
            // The epoch's first rows: its transaction (exactly-once) and its delivery count
            // start here, and end in `finish_batch`.
            self.producer.context().failed.store(0, Ordering::Relaxed);
            if self.spec.exactly_once {
                self.producer.begin_transaction().map_err(|e| {
                    self.err(format!("beginning the transaction of epoch {epoch}: {e}"))
                })?;
            }
            self.open_epoch = Some(epoch);
        }
        let produced = self.produce_all(epoch, batches);
        if produced.is_err() {
            if self.spec.exactly_once {
                let _ = self.producer.abort_transaction(TIMEOUT);
            }
            self.open_epoch = None;
        }
        produced
    }
}

impl KafkaSink {
    /// Waits for batch `batch_id`'s acknowledgements (and commits its transaction with the
    /// batch marker, for exactly-once).
    fn finish(&mut self, batch_id: u64) -> Result<()> {
        let deliveries = self.producer.context();
        if let Some((marker_topic, key)) = &self.progress {
            // The batch id travels in the same transaction as the rows.
            let id = batch_id.to_string();
            let marker: BaseRecord<'_, str, str, ()> = BaseRecord::with_opaque_to(marker_topic, ())
                .key(key.as_str())
                .payload(id.as_str())
                .partition(0);
            send(&self.producer, marker).map_err(|e| {
                self.err(format!(
                    "recording batch {batch_id} in its transaction: {e}"
                ))
            })?;
            // The rows' acknowledgements first (the commit would flush them in 100 ms polls).
            await_deliveries(&self.producer, TIMEOUT);
            self.producer.commit_transaction(TIMEOUT).map_err(|e| {
                self.err(format!(
                    "committing the transaction of batch {batch_id}: {e}"
                ))
            })?;
        } else {
            if !await_deliveries(&self.producer, TIMEOUT) {
                return Err(self.err(format!(
                    "waiting for acknowledgements of batch {batch_id}: {} records not acknowledged within {} s",
                    self.producer.in_flight_count(),
                    TIMEOUT.as_secs()
                )));
            }
        }
        let failed = deliveries.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let last = deliveries
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(self.err(format!(
                "{failed} records of batch {batch_id} were not delivered: {last}"
            )));
        }
        self.last_committed = Some(batch_id);
        Ok(())
    }
}
