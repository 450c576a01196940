//! The keyed processor: arbitrary per-key state in Wasm, with TTL and timers — Spark's
//! `transformWithState` (`[query.processor]`).
//!
//! Each batch the operator
//! 1. drops rows behind the watermark (event-time mode),
//! 2. evicts the variables whose TTL passed and takes out the timers that fired (one pass
//!    over the keys, only when the clock passed the earliest deadline),
//! 3. groups the rows by key, in the order keys first appear,
//! 4. calls the guest **once** with those keys, their rows, their state and the fired timers
//!    (keys with only timers come after the keys with rows),
//! 5. checks every returned key's state (its declared encodings, the per-key size cap, timers
//!    after the clock) and keeps what changed for the checkpoint's delta.
//!
//! Guarantees: the guest sees exactly the state of the keys it is given, as of the previous
//! committed batch; a re-run batch (after a crash) sees the same state, clock and rows, so
//! it makes the same output. Timers are part of a key's state: checkpointed, restored, and
//! fired by the first batch whose clock passes them, after a restart too. A bad answer fails
//! the batch with the module, the batch id and the key named.

pub mod key_state;
pub mod keys;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, BooleanArray, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{Schema, SchemaRef};
use foldhash::fast::FixedState;
use hashbrown::HashMap;

use super::{BatchClock, SpecProblem, StateOperatorProgress, StatefulOperator};
use crate::error::{Error, Result};
use crate::state::StateStore;
use crate::wasm::processor::{BatchContext, ExpiredTimer, StateVariable, TimeMode, WasmProcessor};
use crate::wasm::spec::GuestLimits;
use crate::watermark::{WatermarkSpec, event_times};
use key_state::{Parsed, RowBuffers, StateBatchBuilder, StateBatchReader};
use keys::{KeyId, Keys, NEVER};

/// The state store's name for the processor (`state/processor/` in the checkpoint).
pub const STATE_NAME: &str = "processor";

/// Default cap on one key's state.
pub const DEFAULT_MAX_STATE_BYTES_PER_KEY: u64 = 1 << 20;

/// `[query.processor]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorSpec {
    /// The component file (for a registry module, its blob).
    pub module: PathBuf,
    /// The registry reference the pipeline wrote, when it named one.
    pub module_ref: Option<String>,
    /// Handed to the guest's `init` as JSON.
    pub config: crate::secret::GuestConfig,
    /// Per-call limits.
    pub limits: GuestLimits,
    /// The grouping columns (`key`).
    pub key: Vec<String>,
    /// Which clock timers and TTLs follow (`timeMode`).
    pub time_mode: TimeMode,
    /// The most one key's state may hold (`maxStateBytesPerKey`).
    pub max_state_bytes_per_key: u64,
}

impl ProcessorSpec {
    /// Checks that every key column reaches the operator.
    pub fn check_input(&self, schema: &Schema) -> std::result::Result<(), SpecProblem> {
        SpecProblem::missing_column(schema, &self.key, "processor.key")
    }

    /// The module as the pipeline named it.
    pub fn module_name(&self) -> String {
        self.module_ref
            .clone()
            .unwrap_or_else(|| self.module.display().to_string())
    }
}

/// The pipeline's name of a time mode.
pub fn time_mode_name(mode: TimeMode) -> &'static str {
    match mode {
        TimeMode::None => "none",
        TimeMode::ProcessingTime => "processingTime",
        TimeMode::EventTime => "eventTime",
    }
}

/// The operator.
pub struct KeyedProcessor {
    spec: ProcessorSpec,
    guest: WasmProcessor,
    variables: Vec<StateVariable>,
    input_schema: SchemaRef,
    key_schema: SchemaRef,
    key_indices: Vec<usize>,
    converter: RowConverter,
    /// The event-time column, for late rows (event-time mode with a watermark).
    event_time: Option<String>,
    has_watermark: bool,
    store: StateStore,
    keys: Keys,
    /// Per key id, its group in the batch being grouped (`u32::MAX`: none); reset after.
    group_of_id: Vec<u32>,
    min_expiry: i64,
    min_timer: i64,
    stats: StateOperatorProgress,
}

impl KeyedProcessor {
    /// Loads the module (its `init` declares the output and the state) and opens state
    /// partition `partition` under `checkpoint`, refusing a checkpoint whose state another
    /// declaration wrote.
    pub fn new(
        spec: ProcessorSpec,
        input_schema: SchemaRef,
        watermark: Option<&WatermarkSpec>,
        checkpoint: &crate::storage::Location,
        operator: &str,
        partition: usize,
        query: &str,
    ) -> Result<Self> {
        spec.check_input(&input_schema)?;
        let key_indices: Vec<usize> = spec
            .key
            .iter()
            .filter_map(|c| input_schema.index_of(c).ok())
            .collect();
        let key_schema = Arc::new(
            input_schema
                .project(&key_indices)
                .map_err(|e| Error::data("processor.key", e))?,
        );
        if spec.time_mode == TimeMode::EventTime && watermark.is_none() {
            return Err(Error::Data {
                context: "processor.timeMode".into(),
                message: "event-time timers need a watermark: add watermark = { column = ..., delay = ... } to the source".into(),
            });
        }
        let label = format!("query '{query}' processor (module {})", spec.module_name());
        let guest = WasmProcessor::new(
            spec.module.clone(),
            &spec.config,
            spec.limits.clone(),
            label,
            &key_schema,
            &input_schema,
            spec.time_mode,
        )?;
        let variables = guest.variables().to_vec();
        let converter = RowConverter::new(
            key_schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .map_err(|e| Error::data("processor.key", e))?;
        let store = StateStore::open_partition(checkpoint, operator, partition, 10)?;
        layout::check_or_write(
            checkpoint,
            operator,
            &key_schema,
            &variables,
            spec.time_mode,
        )?;
        Ok(KeyedProcessor {
            event_time: (spec.time_mode == TimeMode::EventTime)
                .then(|| watermark.map(|w| w.column.clone()))
                .flatten(),
            has_watermark: watermark.is_some(),
            spec,
            guest,
            variables,
            input_schema,
            key_schema,
            key_indices,
            converter,
            store,
            keys: Keys::default(),
            group_of_id: Vec::new(),
            min_expiry: NEVER,
            min_timer: NEVER,
            stats: StateOperatorProgress {
                operator_name: "transformWithState".into(),
                ..Default::default()
            },
        })
    }

    fn fail(&self, batch_id: u64, message: String) -> Error {
        Error::Wasm {
            module: format!("{} in batch {batch_id}", self.guest.label()),
            message,
        }
    }

    /// The clock timers compare with, and the one TTLs do.
    fn clocks(&self, clock: &BatchClock) -> (i64, i64) {
        let event = clock.watermarks.eviction_ms;
        match self.spec.time_mode {
            TimeMode::EventTime => (event, event),
            TimeMode::ProcessingTime => (clock.processing_time_ms, clock.processing_time_ms),
            TimeMode::None => (i64::MIN, clock.processing_time_ms),
        }
    }

    /// Stores a key's new state (`deadlines`: its earliest expiry and first timer).
    fn put_key(&mut self, id: Option<KeyId>, key: &[u8], blob: &[u8], deadlines: (i64, i64)) {
        self.min_expiry = self.min_expiry.min(deadlines.0);
        self.min_timer = self.min_timer.min(deadlines.1);
        match id {
            Some(id) => self.keys.update(id, blob, deadlines),
            None => {
                self.keys.insert(key, blob, deadlines, true);
            }
        }
    }

    /// Evicts what expired and takes out the timers that fired; returns those, in time
    /// then key order. One pass over the keys, only when a deadline passed.
    fn expire(&mut self, timer_clock: i64, ttl_clock: i64) -> Vec<(i64, Box<[u8]>)> {
        let mut fired = Vec::new();
        if timer_clock < self.min_timer && ttl_clock < self.min_expiry {
            return fired;
        }
        let (mut min_expiry, mut min_timer) = (NEVER, NEVER);
        let (mut evicted_values, mut removed_keys) = (0u64, 0u64);
        let mut scratch = Vec::new();
        let mut parsed = Parsed::default();
        let ids: Vec<KeyId> = self.keys.ids().collect();
        for id in ids {
            let (expiry, timer) = self.keys.deadlines(id);
            if (expiry > ttl_clock && timer > timer_clock)
                || !parsed.parse_into(&self.variables, self.keys.blob(id))
            {
                // Nothing due (or unreadable: checked when stored, kept rather than guessed).
                min_expiry = min_expiry.min(expiry);
                min_timer = min_timer.min(timer);
                continue;
            }
            let blob = self.keys.blob(id);
            let vars: Vec<Option<(i64, &[u8])>> = parsed
                .vars
                .iter()
                .map(|v| {
                    v.and_then(|v| {
                        if v.expiry <= ttl_clock {
                            evicted_values += 1;
                            None
                        } else {
                            Some((v.expiry, v.contents(blob)))
                        }
                    })
                })
                .collect();
            let split = parsed.timers.partition_point(|&t| t <= timer_clock);
            for &t in &parsed.timers[..split] {
                fired.push((t, self.keys.key(id).into()));
            }
            let keep = key_state::write(
                &self.variables,
                &vars,
                &parsed.timers[split..],
                &mut scratch,
            );
            if !keep {
                removed_keys += 1;
                self.keys.remove(id);
                continue;
            }
            let expiry = vars.iter().flatten().map(|v| v.0).min().unwrap_or(NEVER);
            let timer = parsed.timers.get(split).copied().unwrap_or(NEVER);
            self.keys.update(id, &scratch, (expiry, timer));
            min_expiry = min_expiry.min(expiry);
            min_timer = min_timer.min(timer);
        }
        self.min_expiry = min_expiry;
        self.min_timer = min_timer;
        self.stats.num_rows_removed += removed_keys;
        *self
            .stats
            .custom_metrics
            .entry("numValuesRemovedByTtl".into())
            .or_default() += evicted_values;
        fired.sort_unstable();
        fired
    }

    /// Rows behind the watermark are late (event-time mode): dropped and counted.
    fn drop_late(&mut self, rows: RecordBatch, late_ms: i64) -> Result<RecordBatch> {
        let Some(column) = &self.event_time else {
            return Ok(rows);
        };
        let times = event_times(&rows, column)?;
        let late_us = late_ms.saturating_mul(1000);
        let keep: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_none_or(|t| t > late_us)))
            .collect();
        let dropped = keep.false_count();
        if dropped == 0 {
            return Ok(rows);
        }
        self.stats.num_rows_dropped_by_watermark += dropped as u64;
        arrow_select::filter::filter_record_batch(&rows, &keep)
            .map_err(|e| Error::data("dropping late rows", e))
    }

    /// A key's values for messages: `user_id=u7`.
    fn key_label(&self, keys: &RecordBatch, row: usize) -> String {
        let options = arrow_cast::display::FormatOptions::default();
        keys.columns()
            .iter()
            .zip(self.key_schema.fields())
            .map(|(c, f)| {
                let v = arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options)
                    .map(|fmt| fmt.value(row).to_string())
                    .unwrap_or_default();
                format!("{}={v}", f.name())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Keys as grouping finds them, with their row counts and newest event times.
#[derive(Default)]
struct Groups<'a> {
    keys: Vec<&'a [u8]>,
    ids: Vec<Option<KeyId>>,
    counts: Vec<u32>,
    newest_ms: Vec<i64>,
}

impl<'a> Groups<'a> {
    fn add(&mut self, key: &'a [u8], id: Option<KeyId>) -> u32 {
        self.keys.push(key);
        self.ids.push(id);
        self.counts.push(0);
        self.newest_ms.push(i64::MIN);
        (self.keys.len() - 1) as u32
    }
}

/// The touched keys, and where each key's rows are.
struct Grouped<'a> {
    /// Key bytes (row format), in call order, borrowed from the batch's key rows and the
    /// fired timers.
    keys: Vec<&'a [u8]>,
    /// Each key's state, when it has some.
    ids: Vec<Option<KeyId>>,
    /// The rows, grouped.
    rows: RecordBatch,
    /// End of each key's rows in `rows`.
    ends: Vec<u32>,
    /// Each key's newest event time (ms) in the batch, in event-time mode (`i64::MIN` for
    /// none): an event-time TTL counts from it.
    newest_ms: Vec<i64>,
}

impl KeyedProcessor {
    /// The batch's key columns in row format (what [`KeyedProcessor::group`] borrows).
    fn key_rows(&self, rows: &RecordBatch) -> Result<arrow_row::Rows> {
        let columns: Vec<_> = self
            .key_indices
            .iter()
            .map(|&i| rows.column(i).clone())
            .collect();
        self.converter
            .convert_columns(&columns)
            .map_err(|e| Error::data("grouping rows by processor.key", e))
    }

    /// Groups the rows by key, in the order keys first appear, then the keys with only
    /// timers; finds each key's state once (its id) on the way. Keys with state are told
    /// apart by id through `group_of_id` (indexed, no hashing); only new keys need a map.
    fn group<'a>(
        &mut self,
        rows: &RecordBatch,
        key_rows: &'a arrow_row::Rows,
        fired: &'a [(i64, Box<[u8]>)],
    ) -> Result<(Grouped<'a>, Vec<ExpiredTimer>)> {
        const NONE: u32 = u32::MAX;
        let mut group_of_id = std::mem::take(&mut self.group_of_id);
        group_of_id.resize(self.keys.id_bound(), NONE);
        let mut new_keys: HashMap<&[u8], u32, FixedState> = HashMap::default();
        let mut groups = Groups::default();
        let mut group_of_row = Vec::with_capacity(rows.num_rows());
        let times = match &self.event_time {
            Some(c) => Some(event_times(rows, c)?),
            None => None,
        };
        for r in 0..rows.num_rows() {
            let k: &'a [u8] = key_rows.row(r).data();
            let g = match self.keys.find(k) {
                Some(id) => match group_of_id[id as usize] {
                    NONE => {
                        let g = groups.add(k, Some(id));
                        group_of_id[id as usize] = g;
                        g
                    }
                    g => g,
                },
                None => *new_keys.entry(k).or_insert_with(|| groups.add(k, None)),
            };
            groups.counts[g as usize] += 1;
            if let Some(t) = times.as_ref().filter(|t| t.is_valid(r)) {
                let ms = t.value(r).div_euclid(1000);
                let newest = &mut groups.newest_ms[g as usize];
                *newest = (*newest).max(ms);
            }
            group_of_row.push(g);
        }
        let Groups {
            mut keys,
            mut ids,
            counts,
            mut newest_ms,
        } = groups;
        let with_rows = keys.len();
        let mut ends = Vec::with_capacity(with_rows + fired.len());
        let mut next = Vec::with_capacity(with_rows);
        let mut acc = 0u32;
        for c in &counts {
            next.push(acc);
            acc += c;
            ends.push(acc);
        }
        let grouped = if with_rows == rows.num_rows() {
            // Every key once: the rows are already grouped.
            rows.clone()
        } else {
            let mut order = vec![0u32; rows.num_rows()];
            for (r, g) in group_of_row.iter().enumerate() {
                let slot = &mut next[*g as usize];
                order[*slot as usize] = r as u32;
                *slot += 1;
            }
            arrow_select::take::take_record_batch(rows, &UInt32Array::from(order))
                .map_err(|e| Error::data("grouping rows by processor.key", e))?
        };
        // Keys with only timers come after, in the order their first timer fired. A fired
        // timer's key has state, so it has an id.
        let mut expired = Vec::with_capacity(fired.len());
        for (t, key) in fired {
            let Some(id) = self.keys.find(key) else {
                continue;
            };
            let g = match group_of_id[id as usize] {
                NONE => {
                    keys.push(key);
                    ids.push(Some(id));
                    ends.push(acc);
                    newest_ms.push(i64::MIN);
                    let g = (keys.len() - 1) as u32;
                    group_of_id[id as usize] = g;
                    g
                }
                g => g,
            };
            expired.push(ExpiredTimer { key: g, at_ms: *t });
        }
        for id in ids.iter().flatten() {
            group_of_id[*id as usize] = NONE;
        }
        self.group_of_id = group_of_id;
        Ok((
            Grouped {
                keys,
                ids,
                rows: grouped,
                ends,
                newest_ms,
            },
            expired,
        ))
    }

    /// The key columns of `keys` (row format back to Arrow).
    fn key_batch(&self, keys: &[&[u8]]) -> Result<RecordBatch> {
        let columns = crate::state::row_keys::decode(&self.converter, keys.iter().copied())
            .map_err(|e| Error::data("processor keys", e))?;
        RecordBatch::try_new_with_options(
            self.key_schema.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(keys.len())),
        )
        .map_err(|e| Error::data("processor keys", e))
    }
}

impl StatefulOperator for KeyedProcessor {
    fn output_schema(&self) -> SchemaRef {
        self.guest.output_schema()
    }

    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        self.keys.clear();
        self.min_expiry = NEVER;
        self.min_timer = NEVER;
        let mut parsed = Parsed::default();
        for (key, blob) in self.store.load(version)? {
            if !parsed.parse_into(&self.variables, &blob) {
                return Err(Error::Checkpoint {
                    path: PathBuf::from(format!("state/{STATE_NAME}")),
                    message: "a key's state does not fit the processor's declared state variables (corrupt, or written by another declaration)".into(),
                });
            }
            let deadlines = parsed.deadlines();
            self.min_expiry = self.min_expiry.min(deadlines.0);
            self.min_timer = self.min_timer.min(deadlines.1);
            self.keys.insert(&key, &blob, deadlines, false);
        }
        Ok(())
    }

    fn process(&mut self, clock: BatchClock, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let batch_id = clock.batch_id;
        self.stats.num_rows_dropped_by_watermark = 0;
        self.stats.num_rows_removed = 0;
        self.stats.custom_metrics.clear();
        let (timer_clock, ttl_clock) = self.clocks(&clock);
        let rows = match input.as_slice() {
            [one] => one.clone(),
            _ => arrow_select::concat::concat_batches(&self.input_schema, &input)
                .map_err(|e| Error::data("processor input", e))?,
        };
        drop(input);
        let rows = self.drop_late(rows, clock.watermarks.late_ms)?;
        let fired = self.expire(timer_clock, ttl_clock);
        self.stats
            .custom_metrics
            .insert("numExpiredTimers".into(), fired.len() as u64);
        if rows.num_rows() == 0 && fired.is_empty() {
            self.stats.custom_metrics.insert("numWasmCalls".into(), 0);
            self.stats.num_rows_updated = 0;
            self.stats.num_rows_total = self.keys.len() as u64;
            return Ok(Vec::new());
        }
        let key_rows = self.key_rows(&rows)?;
        let (mut grouped, expired) = self.group(&rows, &key_rows, &fired)?;
        drop(rows);
        let keys = self.key_batch(&grouped.keys)?;
        let ids = std::mem::take(&mut grouped.ids);
        let mut builder = StateBatchBuilder::new(&self.variables, grouped.keys.len());
        let mut state_bytes = 0u64;
        let mut parsed = Parsed::default();
        for id in &ids {
            match id {
                Some(id) if parsed.parse_into(&self.variables, self.keys.blob(*id)) => {
                    let blob = self.keys.blob(*id);
                    state_bytes += blob.len() as u64;
                    builder.append(Some((blob, &parsed)));
                }
                _ => builder.append(None),
            }
        }
        let state = builder
            .finish()
            .map_err(|e| Error::data("building the processor's state batch", e))?;
        let ctx = BatchContext {
            batch_id,
            processing_time_ms: clock.processing_time_ms,
            watermark_ms: self.has_watermark.then_some(clock.watermarks.eviction_ms),
        };
        let budget = (
            (grouped.rows.num_rows() + grouped.keys.len()) as u64,
            grouped.rows.get_array_memory_size() as u64 + state_bytes,
        );
        let out = self
            .guest
            .process(
                ctx,
                &keys,
                &grouped.rows,
                &grouped.ends,
                &state,
                &expired,
                budget,
            )
            .map_err(|m| self.fail(batch_id, m))?;
        drop(state);
        if out.state.num_rows() != grouped.keys.len() {
            return Err(self.fail(
                batch_id,
                format!(
                    "returned state for {} keys; it was given {} (one row per key, in the order of `keys`: a processor can only change the state of the keys it is given)",
                    out.state.num_rows(),
                    grouped.keys.len()
                ),
            ));
        }
        let variables = self.variables.clone();
        let reader = StateBatchReader::new(&variables, &out.state).ok_or_else(|| {
            self.fail(
                batch_id,
                "returned a state batch without its timers column".into(),
            )
        })?;
        let mut buf = RowBuffers::default();
        let (mut updated, mut registered) = (0u64, 0u64);
        for (i, key) in grouped.keys.iter().enumerate() {
            // An event-time TTL counts from the key's newest event when it is ahead of the
            // watermark (the first batches of a query have none yet).
            let ttl_from = ttl_clock.max(grouped.newest_ms[i]);
            let id = ids[i];
            let old = id.map(|id| self.keys.blob(id));
            let had_old = old.is_some_and(|b| parsed.parse_into(&variables, b));
            let written = reader
                .write_row(
                    i,
                    old.filter(|_| had_old).map(|b| (b, &parsed)),
                    ttl_from,
                    self.spec.max_state_bytes_per_key,
                    &mut buf,
                )
                .map_err(|m| {
                    self.fail(batch_id, format!("key ({}): {m}", self.key_label(&keys, i)))
                })?;
            if let Some(&bad) = buf.timers.first().filter(|&&t| t <= timer_clock) {
                let message = match self.spec.time_mode {
                    TimeMode::None => "registered a timer, but the processor's timeMode is \"none\"; set timeMode = \"processingTime\" or \"eventTime\"".to_owned(),
                    TimeMode::EventTime => format!("registered an event-time timer at {bad} ms, not after the batch's watermark {timer_clock} ms (a timer must lie in the future)"),
                    TimeMode::ProcessingTime => format!("registered a processing-time timer at {bad} ms, not after the batch's processing time {timer_clock} ms (a timer must lie in the future)"),
                };
                return Err(self.fail(
                    batch_id,
                    format!("key ({}): {message}", self.key_label(&keys, i)),
                ));
            }
            registered += buf
                .timers
                .iter()
                .filter(|t| !had_old || parsed.timers.binary_search(t).is_err())
                .count() as u64;
            if old.is_some_and(|b| *b == *buf.blob) {
                continue;
            }
            updated += 1;
            match (written.keep, id) {
                (true, _) => {
                    let timer = buf.timers.first().copied().unwrap_or(NEVER);
                    let blob = std::mem::take(&mut buf.blob);
                    self.put_key(id, key, &blob, (written.expiry, timer));
                    buf.blob = blob;
                }
                (false, Some(id)) => {
                    self.keys.remove(id);
                    self.stats.num_rows_removed += 1;
                }
                (false, None) => {}
            }
        }
        self.stats.num_rows_updated = updated;
        self.stats.num_rows_total = self.keys.len() as u64;
        self.stats.memory_used_bytes = self.keys.memory_bytes() as u64;
        let m = &mut self.stats.custom_metrics;
        m.insert("numWasmCalls".into(), 1);
        m.insert("numTouchedKeys".into(), grouped.keys.len() as u64);
        m.insert("numRegisteredTimers".into(), registered);
        Ok(out.emitted)
    }

    fn commit(&mut self, batch_id: u64) -> Result<()> {
        let started = Instant::now();
        let keys = &self.keys;
        self.store.commit(
            batch_id,
            |w| {
                // Removals first: a key removed and then stored again in one batch ends
                // present.
                for key in keys.removed() {
                    w.remove(key)?;
                }
                for (key, blob) in keys.changed() {
                    w.put(key, |b| b.extend_from_slice(blob))?;
                }
                Ok(())
            },
            |w| {
                for (key, blob) in keys.all() {
                    w.put(key, |b| b.extend_from_slice(blob))?;
                }
                Ok(())
            },
        )?;
        self.keys.take_changes();
        self.stats.commit_time_ms = started.elapsed().as_millis() as u64;
        Ok(())
    }

    fn purge(&mut self, keep_from: u64) -> Result<()> {
        self.store.purge(keep_from)
    }

    fn progress(&self) -> StateOperatorProgress {
        self.stats.clone()
    }

    fn wants_no_data_batches(&self) -> bool {
        self.spec.time_mode == TimeMode::EventTime
            && (self.min_timer != NEVER || self.min_expiry != NEVER)
    }

    fn due_by_processing_time(&self, now_ms: i64) -> bool {
        match self.spec.time_mode {
            TimeMode::EventTime => false,
            TimeMode::ProcessingTime => self.min_timer <= now_ms || self.min_expiry <= now_ms,
            TimeMode::None => self.min_expiry <= now_ms,
        }
    }
}

pub mod layout;
