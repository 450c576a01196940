//! The micro-batch loop of one query (Spark's `MicroBatchExecution`), on the query's own
//! thread: recovery of an uncommitted batch, the triggers, each batch's phases in the order
//! that makes a crash at any point recoverable (see `query`), pipelined batches, and the
//! progress record of each. A continuous query runs epochs on the same state: see
//! [`continuous`].

mod continuous;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tracing::{info, warn};

use super::plan::{Plan, PlanRun};
use super::shared::{ProgressLog, StepsShared, StopSignal, step_info};
use crate::checkpoint::{Checkpoint, CommitEntry, OffsetEntry};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::pipeline::{QuerySpec, TransformSpec};
use crate::progress::{QueryMonitor, QueryProgress, SinkProgress, SourceProgress};
use crate::sink::Sink;
use crate::sink::outputs::SharedOutputs;
use crate::source::{Offset, ReadLimit, Source};
use crate::trigger::{POLLING_DELAY, Trigger, next_boundary};
use crate::wasm::transform::WasmTransform;
use crate::watermark::{EventTimeStats, WatermarkTracker};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

pub(super) struct MicroBatchExecution {
    pub(super) spec: QuerySpec,
    pub(super) id: String,
    pub(super) run_id: String,
    /// Schema of what reaches the sink (the last step's output).
    pub(super) schema: SchemaRef,
    /// Every transform step: each input's, each view's, then the query's (the plan's step
    /// nodes run them by index; swaps replace them between batches).
    pub(super) steps: Vec<WasmTransform>,
    /// The DAG of operators from the sources' rows to the sink's.
    pub(super) plan: Plan,
    pub(super) outputs: SharedOutputs,
    pub(super) watermark: WatermarkTracker,
    /// The watermark the last batch ran with (a higher one can call for a no-data batch).
    pub(super) last_batch_watermark_ms: i64,
    pub(super) event_stats: EventTimeStats,
    pub(super) checkpoint: Checkpoint,
    /// One source per input, in input order.
    pub(super) sources: Vec<Box<dyn Source>>,
    pub(super) sink: Box<dyn Sink>,
    pub(super) stop: Arc<StopSignal>,
    pub(super) monitor: Arc<QueryMonitor>,
    pub(super) progress_log: Option<ProgressLog>,
    /// What the handle sees of the steps, and swaps it asked for.
    pub(super) shared_steps: Arc<StepsShared>,
    pub(super) next_batch_id: u64,
    /// Per input, the end offset of the last committed batch (`None`: no data yet).
    pub(super) committed: Vec<Option<Offset>>,
    pub(super) last_trigger_start: Option<Instant>,
    /// The last batch's work: tasks on the pool, their CPU ms, this thread's CPU ms.
    pub(super) batch_work: (u64, f64, f64),
    /// Whether a batch is made durable by the sink after the next batch is read (see
    /// `Sink::defer_finish`).
    pub(super) pipelined: bool,
    /// The batch handed to the sink whose durability and commit are still to come.
    pub(super) pending: Option<PendingBatch>,
}

/// Per input: where a batch started, where it ended, and the latest offset the source had.
type BatchOffsets = (
    Vec<Option<Offset>>,
    Vec<Option<Offset>>,
    Vec<Option<Offset>>,
);

/// A batch the sink has but has not made durable yet (pipelined batches): what its commit
/// entry and progress record need, kept until `finish_pending`.
pub(super) struct PendingBatch {
    batch_id: u64,
    /// The offsets the batch started at, ended at, and the latest the sources had.
    offsets: BatchOffsets,
    rows: (u64, Vec<u64>),
    output_rows: u64,
    commit: CommitEntry,
    phases: Phases,
    trigger_start: Instant,
    batch_work: (u64, f64, f64),
    event_stats: EventTimeStats,
    batch_watermark_ms: i64,
}

/// Timings of the phases of one batch, reported in progress.
#[derive(Default)]
struct Phases(BTreeMap<String, u64>);

impl Phases {
    fn add(&mut self, phase: &str, took: Duration) {
        *self.0.entry(phase.to_owned()).or_default() += ms(took);
    }

    fn time<T>(&mut self, phase: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let r = f();
        *self.0.entry(phase.to_owned()).or_default() += ms(t.elapsed());
        r
    }
}

impl MicroBatchExecution {
    pub(super) fn run(&mut self) -> Result<()> {
        self.recover()?;
        self.run_triggers()?;
        // A graceful stop (or the end of `once`/`availableNow`) commits what the sink holds.
        self.finish_pending()
    }

    fn run_triggers(&mut self) -> Result<()> {
        match self.spec.trigger {
            Trigger::Once => {
                self.run_next(ReadLimit::All)?;
            }
            Trigger::AvailableNow => {
                for source in &mut self.sources {
                    source.prepare_for_available_now()?;
                }
                while !self.stop.is_requested() && self.run_next(ReadLimit::Configured)? {}
            }
            Trigger::Unspecified => {
                while !self.stop.is_requested() {
                    if !self.run_next(ReadLimit::Configured)? && self.stop.wait(POLLING_DELAY) {
                        break;
                    }
                }
            }
            Trigger::Continuous(interval) => self.run_continuous(interval)?,
            Trigger::ProcessingTime(interval) => {
                while !self.stop.is_requested() {
                    let started = SystemTime::now();
                    let ran = self.run_next(ReadLimit::Configured)?;
                    let now = SystemTime::now();
                    let (next, overran) = next_boundary(started, now, interval);
                    if overran && ran {
                        warn!(
                            query = %self.spec.name,
                            interval_ms = ms(interval),
                            took_ms = now.duration_since(started).map(ms).unwrap_or(0),
                            "current batch is falling behind: the trigger interval is shorter than the batch; starting the next batch now"
                        );
                    }
                    if !ran {
                        self.monitor
                            .set_status("Waiting for next trigger", false, false);
                    }
                    let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
                    if !wait.is_zero() {
                        // The next batch is not read now: make this one durable before waiting.
                        self.finish_pending()?;
                    }
                    if !wait.is_zero() && self.stop.wait(wait) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Restores the position from the checkpoint and re-runs a batch that was planned but not
    /// committed, with the same id and offsets.
    fn recover(&mut self) -> Result<()> {
        let Some(latest) = self.checkpoint.latest_offsets()? else {
            return Ok(());
        };
        let last_commit = self.checkpoint.latest_commit()?;
        let committed_id = last_commit.as_ref().map(|(id, _)| *id);
        // State and watermark as of the last committed batch.
        let restoring = Instant::now();
        self.plan.restore(committed_id)?;
        if self.plan.is_stateful() {
            info!(query = %self.spec.name, version = ?committed_id, ms = restoring.elapsed().as_millis() as u64, "state restored from the checkpoint");
        }
        if let Some((_, c)) = &last_commit {
            self.watermark
                .restore(c.next_batch_watermark_ms, &c.max_event_time_us);
            self.last_batch_watermark_ms = c.batch_watermark_ms;
        }
        let end = self.input_offsets(&latest)?;
        if committed_id == Some(latest.batch_id) {
            self.next_batch_id = latest.batch_id + 1;
            // Catch up on source cleanup a previous run may not have finished.
            self.commit_sources(&end)
                .map_err(|e| self.batch_error(latest.batch_id, e))?;
            self.committed = end;
            info!(query = %self.spec.name, next_batch = self.next_batch_id, "resuming from checkpoint");
            return Ok(());
        }
        // Pipelined batches can leave two batches planned and not committed: re-run each,
        // in order, with its own offsets.
        let first = committed_id.map_or(0, |c| c + 1);
        for id in first..latest.batch_id {
            let entry = self
                .checkpoint
                .offsets(id)?
                .ok_or_else(|| Error::Checkpoint {
                    path: self.checkpoint.dir().to_path_buf(),
                    message: format!(
                        "offsets of batch {id} are missing, but it was never committed; it cannot be re-run"
                    ),
                })?;
            self.rerun(entry)?;
        }
        self.rerun(latest)
    }

    /// Runs batch `latest` (planned, not committed) again with its recorded offsets, id and
    /// modules.
    fn rerun(&mut self, latest: OffsetEntry) -> Result<()> {
        let end = self.input_offsets(&latest)?;
        let start = match latest.batch_id.checked_sub(1) {
            None => None,
            Some(prev) => {
                let entry = self
                    .checkpoint
                    .offsets(prev)?
                    .ok_or_else(|| Error::Checkpoint {
                        path: self.checkpoint.dir().to_path_buf(),
                        message: format!(
                            "offsets of batch {prev} are missing, so batch {} cannot be re-run",
                            latest.batch_id
                        ),
                    })?;
                Some(self.input_offsets(&entry)?)
            }
        };
        info!(query = %self.spec.name, batch_id = latest.batch_id, "re-running the last batch, which was not committed");
        for (table, recorded) in &latest.tables {
            let now = self.plan.table_versions();
            if now.get(table) != Some(recorded) {
                warn!(query = %self.spec.name, batch_id = latest.batch_id, table = %table, recorded = %recorded, now = ?now.get(table), "the join table changed since this batch was planned (its earlier files are gone); the re-run joins with the table as it is now");
            }
        }
        self.committed = start.unwrap_or_else(|| vec![None; self.sources.len()]);
        self.next_batch_id = latest.batch_id;
        self.watermark.set_current_ms(latest.batch_watermark_ms);
        // The re-run runs the code the batch was planned with: a step whose module changed
        // since (a swap, a tag moved) runs the recorded digest's blob for this batch only.
        let mut restore = Vec::new();
        for (i, step) in self.steps.iter_mut().enumerate() {
            let Some(recorded) = latest.modules.get(step.name()) else {
                continue;
            };
            if recorded == step.digest() || recorded.is_empty() {
                continue;
            }
            let hex = recorded.trim_start_matches("sha256:");
            let blob = step.spec().module.with_file_name(format!("{hex}.wasm"));
            if !blob.exists() {
                warn!(query = %self.spec.name, step = %step.name(), recorded = %recorded, "the module batch {} ran with is gone; re-running it with the current one", latest.batch_id);
                continue;
            }
            let spec = TransformSpec {
                module: blob,
                ..step.spec().clone()
            };
            let input = self
                .shared_steps
                .info
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(i)
                .map(|s| s.input_schema.clone());
            if let Some(input) = input {
                let old =
                    WasmTransform::new(spec, &self.spec.name, input).map_err(|e| Error::Batch {
                        query: self.spec.name.clone(),
                        batch_id: latest.batch_id,
                        cause: Box::new(e),
                    })?;
                info!(query = %self.spec.name, step = %step.name(), module = %recorded, "re-running with the module the batch was planned with");
                restore.push((i, std::mem::replace(step, old)));
            }
        }
        let mut phases = Phases::default();
        let trigger_start = Instant::now();
        let result = self.execute(
            (latest.batch_id, latest.batch_timestamp_ms),
            end.clone(),
            end,
            &mut phases,
            trigger_start,
        );
        for (i, current) in restore {
            self.steps[i] = current;
        }
        result
    }

    /// Each input's end offset in a batch's offsets entry (`null`: that input had no data
    /// yet).
    fn input_offsets(&self, entry: &OffsetEntry) -> Result<Vec<Option<Offset>>> {
        if entry.sources.len() != self.sources.len() {
            return Err(Error::Checkpoint {
                path: self.checkpoint.dir().to_path_buf(),
                message: format!(
                    "offsets of batch {} hold {} input offsets, but the query has {} inputs",
                    entry.batch_id,
                    entry.sources.len(),
                    self.sources.len()
                ),
            });
        }
        Ok(entry
            .sources
            .iter()
            .map(|o| (!o.is_null()).then(|| o.clone()))
            .collect())
    }

    /// Tells every input that has data that everything up to its `end` is committed.
    fn commit_sources(&mut self, end: &[Option<Offset>]) -> Result<()> {
        for (source, end) in self.sources.iter_mut().zip(end) {
            if let Some(end) = end {
                source.commit(end)?;
            }
        }
        Ok(())
    }

    fn batch_error(&self, batch_id: u64, e: Error) -> Error {
        // An error of another batch (the pending one, finished during this batch) keeps its
        // own batch id.
        if matches!(e, Error::Batch { .. }) {
            return e;
        }
        Error::Batch {
            query: self.spec.name.clone(),
            batch_id,
            cause: Box::new(e),
        }
    }

    /// Installs the modules swapped in since the last batch (a batch boundary: the previous
    /// batch committed, the next is not planned yet).
    fn apply_swaps(&mut self) {
        let swaps: Vec<(usize, WasmTransform)> = std::mem::take(
            &mut *self
                .shared_steps
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for (index, step) in swaps {
            let mut infos = self
                .shared_steps
                .info
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let (Some(slot), Some(info)) = (self.steps.get_mut(index), infos.get_mut(index)) {
                info!(query = %self.spec.name, step = %step.name(), from = %slot.digest(), to = %step.digest(), batch_id = self.next_batch_id, "module swapped at the batch boundary");
                *info = step_info(&step, info.input_schema.clone());
                *slot = step;
            }
        }
    }

    /// The digest of each step's module, as the offsets log records it.
    fn module_digests(&self) -> BTreeMap<String, String> {
        self.steps
            .iter()
            .map(|s| (s.name().to_owned(), s.digest().to_owned()))
            .collect()
    }

    /// Plans and runs the next batch if the source has new data. Returns whether one ran.
    fn run_next(&mut self, limit: ReadLimit) -> Result<bool> {
        self.apply_swaps();
        let trigger_start = Instant::now();
        let batch_id = self.next_batch_id;
        let mut phases = Phases::default();
        let latest = phases
            .time("latestOffset", || {
                let mut latest = Vec::with_capacity(self.sources.len());
                for (source, committed) in self.sources.iter_mut().zip(&self.committed) {
                    // An input with no data yet stays where it is.
                    latest.push(
                        source
                            .latest_offset(committed.as_ref(), limit)?
                            .or(committed.clone()),
                    );
                }
                Ok(latest)
            })
            .map_err(|e| self.batch_error(batch_id, e))?;
        let has_new_data = latest != self.committed;
        let end = if has_new_data {
            latest
        } else if self.needs_no_data_batch() && self.committed.iter().any(Option::is_some) {
            // No new data, but the watermark moved: a no-data batch lets stateful operators
            // emit what became final and evict what expired.
            self.committed.clone()
        } else {
            // Nothing to read meanwhile: the batch the sink holds is made durable now.
            self.finish_pending()?;
            self.monitor
                .set_status("Waiting for data to arrive", false, false);
            return Ok(false);
        };
        self.monitor.set_status("Processing new data", true, true);
        // A static table is looked at between batches; the batch joins with what it finds.
        phases
            .time("latestOffset", || self.plan.refresh())
            .map_err(|e| self.batch_error(batch_id, e))?;
        failpoint::hit("before-offsets", batch_id);
        let entry = OffsetEntry {
            batch_id,
            batch_timestamp_ms: now_ms(),
            batch_watermark_ms: self.watermark.current_ms(),
            sources: end
                .iter()
                .map(|o| o.clone().unwrap_or(serde_json::Value::Null))
                .collect(),
            modules: self.module_digests(),
            tables: self.plan.table_versions(),
        };
        phases
            .time("walCommit", || self.checkpoint.write_offsets(&entry))
            .map_err(|e| self.batch_error(batch_id, e))?;
        failpoint::hit("after-offsets", batch_id);
        self.execute(
            (batch_id, entry.batch_timestamp_ms),
            end.clone(),
            end,
            &mut phases,
            trigger_start,
        )?;
        Ok(true)
    }

    fn needs_no_data_batch(&self) -> bool {
        let watermark_moved = self.watermark.is_enabled()
            && self.plan.wants_no_data_batches()
            && self.watermark.current_ms() > self.last_batch_watermark_ms;
        // A processing-time timer or TTL falls due with time alone.
        watermark_moved || self.plan.due_by_processing_time(now_ms())
    }

    /// Reads, writes and commits batch `batch_id` (planned at `batch_timestamp_ms`) ending at
    /// `end`.
    fn execute(
        &mut self,
        (batch_id, batch_timestamp_ms): (u64, i64),
        end: Vec<Option<Offset>>,
        latest: Vec<Option<Offset>>,
        phases: &mut Phases,
        trigger_start: Instant,
    ) -> Result<()> {
        self.monitor.set_status("Processing new data", true, true);
        let start = self.committed.clone();
        let mut input_rows = vec![0u64; self.sources.len()];
        // How busy the batch keeps the workers (tasks on the pool) and this thread.
        let meter = Arc::new(crate::parallel::Meter::default());
        let thread_cpu = crate::parallel::thread_cpu_ns();
        let result = crate::parallel::metered(&meter.clone(), || {
            // An input whose end did not move (nothing new on it, or a no-data batch run
            // because the watermark moved) is not read: sources never see an empty range.
            let mut inputs = Vec::with_capacity(self.sources.len());
            for (i, source) in self.sources.iter_mut().enumerate() {
                let data = match (&start[i], &end[i]) {
                    (_, None) => Vec::new(),
                    (Some(s), Some(e)) if s == e => Vec::new(),
                    (s, Some(e)) => phases.time("getBatch", || source.get_batch(s.as_ref(), e))?,
                };
                input_rows[i] = data.iter().map(|b| b.num_rows() as u64).sum();
                inputs.push(data);
            }
            let batch_watermark = self.watermark.current_ms();
            let run = PlanRun {
                batch_id,
                processing_time_ms: batch_timestamp_ms,
                previous_ms: self.last_batch_watermark_ms,
                current_ms: batch_watermark,
                steps: &mut self.steps,
                outputs: &self.outputs,
                parallelism: self.spec.parallelism,
            };
            // Each input's event time is read where its rows are its own (see `Plan`).
            let mut stats = EventTimeStats::default();
            let watermark = &mut self.watermark;
            let mut observe = |input: usize, rows: &[RecordBatch]| {
                stats.merge(&watermark.observe(input, rows)?);
                Ok(())
            };
            let (mut transform, mut stateful) = (Duration::ZERO, Duration::ZERO);
            let mut timing = |is_stateful: bool, took: Duration| match is_stateful {
                true => stateful += took,
                false => transform += took,
            };
            let data = self.plan.run(run, inputs, &mut observe, &mut timing)?;
            self.event_stats = stats;
            phases.add("transform", transform);
            phases.add("stateful", stateful);
            let input_rows: u64 = input_rows.iter().sum();
            // The previous batch, if the sink still holds it, is made durable and committed
            // first: commit N is written before batch N+1 reaches the sink.
            self.finish_pending()?;
            let output_rows = phases.time("addBatch", || {
                let rows = self.sink.add_batch(batch_id, &self.schema, &data)?;
                self.outputs.flush(batch_id)?;
                Ok(rows)
            })?;
            let commit = CommitEntry {
                batch_watermark_ms: batch_watermark,
                next_batch_watermark_ms: self.watermark.next_ms(),
                max_event_time_us: self.watermark.max_seen_us().to_vec(),
            };
            if !self.pipelined {
                self.complete(batch_id, &commit, &end, phases)?;
            }
            Ok((input_rows, output_rows, commit))
        });
        self.batch_work = (
            meter.tasks(),
            meter.cpu_ms(),
            crate::parallel::thread_cpu_ns().saturating_sub(thread_cpu) as f64 / 1e6,
        );
        let (total_rows, output_rows, commit) = result.map_err(|e| {
            self.outputs.discard_staged();
            self.batch_error(batch_id, e)
        })?;
        // The next batch starts where this one ends, whether or not the sink has made this
        // one durable yet.
        self.committed = end.clone();
        self.next_batch_id = batch_id + 1;
        let batch_watermark_ms = self.watermark.current_ms();
        self.last_batch_watermark_ms = batch_watermark_ms;
        self.watermark.set_current_ms(self.watermark.next_ms());
        if self.pipelined {
            let phases = std::mem::take(phases);
            self.pending = Some(PendingBatch {
                batch_id,
                offsets: (start, end, latest),
                rows: (total_rows, input_rows),
                output_rows,
                commit,
                phases,
                trigger_start,
                batch_work: self.batch_work,
                event_stats: self.event_stats,
                batch_watermark_ms,
            });
            return Ok(());
        }
        self.report(
            batch_id,
            (start, end, latest),
            (total_rows, &input_rows),
            output_rows,
            phases,
            trigger_start,
        );
        Ok(())
    }

    /// Records batch `batch_id` as committed once the sink has it durably: the commit entry,
    /// the sources' cleanup, and what the checkpoint no longer needs.
    fn complete(
        &mut self,
        batch_id: u64,
        commit: &CommitEntry,
        end: &[Option<Offset>],
        phases: &mut Phases,
    ) -> Result<()> {
        failpoint::hit("after-sink", batch_id);
        phases.time("commitOffsets", || {
            self.checkpoint.write_commit(batch_id, commit)?;
            self.commit_sources(end)
        })?;
        failpoint::hit("after-commit", batch_id);
        self.checkpoint
            .purge(batch_id, self.spec.min_batches_to_retain)?;
        let keep_from = batch_id.saturating_sub(self.spec.min_batches_to_retain.saturating_sub(1));
        self.plan.purge(keep_from)?;
        Ok(())
    }

    /// Pipelined batches: waits until the sink has the batch it holds durably, commits it
    /// and reports its progress. Nothing to do when no batch is pending.
    fn finish_pending(&mut self) -> Result<()> {
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        let batch_id = p.batch_id;
        let finished = p
            .phases
            .time("sinkFinish", || self.sink.finish_batch(batch_id))
            .and_then(|()| {
                let end = p.offsets.1.clone();
                self.complete(batch_id, &p.commit, &end, &mut p.phases)
            });
        finished.map_err(|e| self.batch_error(batch_id, e))?;
        // Its progress record, with its own work and event-time figures.
        let (work, stats, watermark) = (
            std::mem::replace(&mut self.batch_work, p.batch_work),
            std::mem::replace(&mut self.event_stats, p.event_stats),
            std::mem::replace(&mut self.last_batch_watermark_ms, p.batch_watermark_ms),
        );
        self.report(
            batch_id,
            p.offsets,
            (p.rows.0, &p.rows.1),
            p.output_rows,
            &mut p.phases,
            p.trigger_start,
        );
        self.batch_work = work;
        self.event_stats = stats;
        self.last_batch_watermark_ms = watermark;
        Ok(())
    }

    /// Spark's `eventTime` progress: the batch's watermark and its event-time range.
    fn event_time_progress(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if !self.watermark.is_enabled() {
            return m;
        }
        let iso = |us: i64| {
            chrono::DateTime::from_timestamp_micros(us)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        m.insert("watermark".into(), iso(self.last_batch_watermark_ms * 1000));
        // With several inputs, each one's own watermark as of the batch's end as well (the
        // next batch's global one is their minimum, or maximum with watermarkPolicy = "max").
        if self.spec.inputs.len() > 1 {
            for (input, w) in self
                .spec
                .inputs
                .iter()
                .zip(self.watermark.input_watermarks_ms())
            {
                if let Some(w) = w {
                    m.insert(format!("watermark.{}", input.name), iso(w * 1000));
                }
            }
        }
        let s = &self.event_stats;
        if let (Some(min), Some(max)) = (s.min, s.max) {
            m.insert("min".into(), iso(min));
            m.insert("max".into(), iso(max));
            m.insert("avg".into(), iso((s.sum / s.count.max(1) as i128) as i64));
        }
        m
    }

    /// `offsets` are each input's (start, end, latest); `rows` the batch's input rows in all
    /// and per input.
    #[allow(clippy::type_complexity)]
    fn report(
        &mut self,
        batch_id: u64,
        offsets: (
            Vec<Option<Offset>>,
            Vec<Option<Offset>>,
            Vec<Option<Offset>>,
        ),
        rows: (u64, &[u64]),
        output_rows: u64,
        phases: &mut Phases,
        trigger_start: Instant,
    ) {
        let (input_rows, rows_per_input) = rows;
        let (start, end, latest) = offsets;
        let total = trigger_start.elapsed();
        phases.0.insert("triggerExecution".into(), ms(total));
        let since_last = self
            .last_trigger_start
            .map(|t| trigger_start.duration_since(t))
            .unwrap_or(total);
        self.last_trigger_start = Some(trigger_start);
        let rate = |rows: u64, d: Duration| {
            if d.is_zero() {
                0.0
            } else {
                rows as f64 / d.as_secs_f64()
            }
        };
        let per_sec = |d: Duration| rate(input_rows, d);
        let started_at = chrono::Utc::now() - chrono::Duration::from_std(total).unwrap_or_default();
        let progress = QueryProgress {
            id: self.id.clone(),
            run_id: self.run_id.clone(),
            name: self.spec.name.clone(),
            timestamp: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            batch_id,
            batch_duration: ms(total),
            num_input_rows: input_rows,
            input_rows_per_second: per_sec(since_last),
            processed_rows_per_second: per_sec(total),
            duration_ms: std::mem::take(&mut phases.0),
            event_time: self.event_time_progress(),
            observed_metrics: [
                ("parallel.tasks".to_owned(), self.batch_work.0.into()),
                ("parallel.taskCpuMs".to_owned(), self.batch_work.1.into()),
                (
                    "parallel.queryThreadCpuMs".to_owned(),
                    self.batch_work.2.into(),
                ),
            ]
            .into_iter()
            .chain(self.steps.iter_mut().flat_map(|s| {
                let stats = s.take_stats();
                let step = s.name().to_owned();
                [
                    (format!("transform.{step}.failedCalls"), stats.failed.into()),
                    (format!("transform.{step}.calls"), stats.calls.into()),
                    (
                        format!("transform.{step}.callSeconds"),
                        stats.seconds.into(),
                    ),
                    (format!("transform.{step}.module"), s.digest().into()),
                ]
            }))
            .collect(),
            state_operators: self
                .plan
                .progress()
                .into_iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect(),
            sources: self
                .sources
                .iter_mut()
                .enumerate()
                .map(|(i, source)| {
                    let rows = rows_per_input.get(i).copied().unwrap_or(0);
                    let null = || serde_json::Value::Null;
                    SourceProgress {
                        description: source.description(),
                        start_offset: start.get(i).cloned().flatten(),
                        end_offset: end.get(i).cloned().flatten().unwrap_or_else(null),
                        latest_offset: latest.get(i).cloned().flatten().unwrap_or_else(null),
                        num_input_rows: rows,
                        input_rows_per_second: rate(rows, since_last),
                        processed_rows_per_second: rate(rows, total),
                        metrics: source.take_metrics(),
                    }
                })
                .collect(),
            sink: SinkProgress {
                description: self.sink.description(),
                num_output_rows: output_rows,
            },
        };
        info!(
            query = %self.spec.name,
            batch_id,
            input_rows,
            output_rows,
            duration_ms = ms(total),
            "batch committed"
        );
        if let Some(log) = &self.progress_log
            && let Ok(line) = serde_json::to_string(&progress)
        {
            let mut w = log.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = writeln!(w, "{line}").and_then(|_| w.flush()) {
                warn!(error = %e, "could not write the progress log");
            }
        }
        self.monitor.push(progress);
        self.monitor
            .set_status("Waiting for next trigger", false, false);
    }
}
