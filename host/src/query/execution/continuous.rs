//! Continuous processing (`trigger = { continuous = "1 second" }`, Spark's continuous
//! trigger): records go from the source through the query's Wasm steps to the sink as they
//! arrive, and once per interval the epoch they belong to is committed.
//!
//! An epoch is a micro-batch whose end is found when it ends instead of planned when it
//! starts:
//!
//! 1. take what has arrived ([`Source::read_available`]), run the steps, hand the rows to
//!    the sink ([`Sink::add_continuous`]); again and again until the interval has passed;
//! 2. **write `offsets/N`** with the position reached;
//! 3. make the epoch durable in the sink ([`Sink::finish_batch`]: the acknowledgements, or
//!    the commit of the Kafka transaction that holds the epoch's rows and its marker);
//! 4. **write `commits/N`**.
//!
//! Recovery is the micro-batch loop's: an epoch with offsets and no commit is re-run as a
//! batch over exactly those offsets (the exactly-once Kafka sink skips it if its transaction
//! committed). Records taken after the last offsets entry belong to an epoch that never
//! reached step 2 and are read again from the last commit: an at-least-once sink may then
//! write them twice (Spark's continuous mode is at-least-once too); for an exactly-once
//! sink they were in a transaction that never committed, which the broker aborts when the
//! restarted query's producer takes the transactional id over.
//!
//! What a continuous query may contain is checked when the pipeline is read
//! (`pipeline/trigger.rs`): one Kafka or rate input, stateless Wasm steps, a Kafka, console
//! or memory sink.
//!
//! [`Source::read_available`]: crate::source::Source::read_available
//! [`Sink::add_continuous`]: crate::sink::Sink::add_continuous
//! [`Sink::finish_batch`]: crate::sink::Sink::finish_batch

use std::time::{Duration, Instant};

use super::*;

/// The longest a continuous query waits for records in one call, so that a stop request
/// or the end of an epoch is noticed promptly.
const POLL: Duration = Duration::from_millis(100);

impl MicroBatchExecution {
    /// Runs epochs of `interval` until a stop is requested (the epoch in flight is then
    /// committed).
    pub(super) fn run_continuous(&mut self, interval: Duration) -> Result<()> {
        while !self.stop.is_requested() {
            self.run_epoch(interval)?;
        }
        Ok(())
    }

    /// One epoch: records as they arrive for `interval`, then its offsets, the sink's
    /// durability and its commit. An epoch in which nothing arrived leaves no trace, and
    /// the next one takes its id.
    fn run_epoch(&mut self, interval: Duration) -> Result<()> {
        self.apply_swaps();
        let epoch = self.next_batch_id;
        let trigger_start = Instant::now();
        let deadline = trigger_start + interval;
        let mut phases = Phases::default();
        let start = self.committed.clone();
        let mut position = start.clone();
        let (mut input_rows, mut output_rows) = (0u64, 0u64);
        let mut stats = EventTimeStats::default();
        self.monitor
            .set_status("Processing records as they arrive", true, true);
        let meter = Arc::new(crate::parallel::Meter::default());
        let thread_cpu = crate::parallel::thread_cpu_ns();
        let result = crate::parallel::metered(&meter.clone(), || {
            loop {
                let now = Instant::now();
                if now >= deadline || self.stop.is_requested() {
                    return Ok(());
                }
                let wait = (deadline - now).min(POLL);
                let read = phases.time("getBatch", || {
                    self.sources[0].read_available(position[0].as_ref(), wait)
                })?;
                let Some((end, rows)) = read else {
                    continue;
                };
                position[0] = Some(end);
                input_rows += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                let data = phases.time("transform", || {
                    // One input: its own steps, then the query's, in order.
                    let mut data = rows;
                    for step in &mut self.steps {
                        data = step.process(epoch, data, &self.outputs, self.spec.parallelism)?;
                    }
                    Ok(data)
                })?;
                stats.merge(&self.watermark.observe(0, &data)?);
                if data.iter().any(|b| b.num_rows() > 0) {
                    output_rows += phases.time("addBatch", || {
                        self.sink.add_continuous(epoch, &self.schema, &data)
                    })?;
                }
            }
        });
        self.batch_work = (
            meter.tasks(),
            meter.cpu_ms(),
            crate::parallel::thread_cpu_ns().saturating_sub(thread_cpu) as f64 / 1e6,
        );
        self.event_stats = stats;
        result.map_err(|e| self.batch_error(epoch, e))?;
        if position == start {
            self.monitor
                .set_status("Waiting for data to arrive", false, false);
            return Ok(());
        }
        let batch_watermark = self.watermark.current_ms();
        let entry = OffsetEntry {
            batch_id: epoch,
            batch_timestamp_ms: now_ms(),
            batch_watermark_ms: batch_watermark,
            sources: position
                .iter()
                .map(|o| o.clone().unwrap_or(serde_json::Value::Null))
                .collect(),
            modules: self.module_digests(),
            tables: BTreeMap::new(),
        };
        failpoint::hit("before-offsets", epoch);
        phases
            .time("walCommit", || self.checkpoint.write_offsets(&entry))
            .map_err(|e| self.batch_error(epoch, e))?;
        failpoint::hit("after-offsets", epoch);
        let commit = CommitEntry {
            batch_watermark_ms: batch_watermark,
            next_batch_watermark_ms: self.watermark.next_ms(),
            max_event_time_us: self.watermark.max_seen_us().to_vec(),
        };
        phases
            .time("sinkFinish", || self.sink.finish_batch(epoch))
            .and_then(|()| self.complete(epoch, &commit, &position, &mut phases))
            .map_err(|e| self.batch_error(epoch, e))?;
        self.committed = position.clone();
        self.next_batch_id = epoch + 1;
        self.last_batch_watermark_ms = batch_watermark;
        self.watermark.set_current_ms(self.watermark.next_ms());
        self.report(
            epoch,
            (start, position.clone(), position),
            (input_rows, &[input_rows]),
            output_rows,
            &mut phases,
            trigger_start,
        );
        Ok(())
    }
}
