//! Two-phase aggregation (Spark's partial and final `HashAggregateExec`, DataFusion's
//! `AggregateMode::Partial` / `FinalPartitioned`): the batch's rows are cut into chunks of a
//! fixed number of rows, each chunk is folded into groups of its own on a worker, and each
//! state partition merges the chunks' groups that hash to it.
//!
//! Against routing every row to its state partition first, the rows are read once, on all
//! workers at once, and only the (usually far fewer) partial groups cross between workers —
//! which is what lets an aggregation over a few groups, or by a window alone, use every core.
//!
//! Guarantees: chunk boundaries depend only on the rows' order, not on `parallelism` or on
//! how the input was cut into record batches, and partials are merged in chunk order; so the
//! same batch gives the same groups, bit for bit (floating-point sums included), whatever the
//! parallelism, and each state partition keeps exactly the groups it would keep if it were fed
//! rows. State files and their partitions are those of [`Aggregate`]: a checkpoint written
//! either way is read either way.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use rayon::prelude::*;

use super::Aggregate;
use super::grouping::{Grouping, Skipped};
use crate::error::{Error, Result};
use crate::operators::partitioned::{commit_all, merged_progress, restore_all};
use crate::operators::{BatchClock, StateOperatorProgress, StatefulOperator};
use crate::parallel;
use crate::wasm::aggregate::WasmAggregate;

/// Rows per chunk of the partial phase: big enough that a chunk's groups are few against its
/// rows, small enough that a batch of a few hundred thousand rows keeps every worker busy.
pub const CHUNK_ROWS: usize = 32 * 1024;

/// An aggregation whose rows are pre-aggregated per chunk on the workers, then merged into
/// its state partitions.
pub struct TwoPhaseAggregate {
    parts: Vec<Aggregate>,
    grouping: std::sync::Arc<Grouping>,
    parallelism: usize,
    /// Per worker of the partial phase: its instances of the Wasm aggregates (by aggregate
    /// position), made when a batch first needs that many workers.
    workers: Vec<Vec<Option<WasmAggregate>>>,
    name: String,
}

impl TwoPhaseAggregate {
    /// The aggregation in state partitions `parts` (in order), its partial phase on up to
    /// `parallelism` workers. Refused for aggregations whose partial results cannot be merged
    /// ([`AggregateSpec::merges_partials`]): route their rows instead.
    pub fn new(parts: Vec<Aggregate>, parallelism: usize) -> Result<TwoPhaseAggregate> {
        let grouping = match parts.first() {
            Some(p) if p.grouping().spec.merges_partials() => p.grouping(),
            _ => {
                return Err(Error::data(
                    "aggregate",
                    "a two-phase aggregation needs fixed windows or none, Wasm aggregates \
                     only without groupBy, and at least one state partition",
                ));
            }
        };
        let name = parts[0].progress().operator_name;
        Ok(TwoPhaseAggregate {
            parts,
            grouping,
            parallelism,
            workers: Vec::new(),
            name,
        })
    }
}

impl StatefulOperator for TwoPhaseAggregate {
    fn output_schema(&self) -> SchemaRef {
        self.parts[0].output_schema()
    }

    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        restore_all(&mut self.parts, version)
    }

    fn process(&mut self, clock: BatchClock, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let n = self.parts.len();
        let (late_us, drop_late) = self.parts[0].lateness(clock.watermarks);
        let grouping = &self.grouping;
        let chunks = parallel::chunks_of_rows(&input, CHUNK_ROWS);
        drop(input);
        let workers = self.parallelism.clamp(1, chunks.len().max(1));
        while self.workers.len() < workers {
            self.workers.push(self.parts[0].worker_udafs()?);
        }
        let partials = parallel::on_workers(&mut self.workers[..workers], chunks, |udafs, run| {
            run.iter()
                .map(|chunk| grouping.partial(chunk, late_us, drop_late, n as u32, udafs))
                .collect::<Result<Vec<_>>>()
        })
        .into_iter()
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten();
        // Per partition: each chunk's groups for it, in chunk order.
        let mut routed: Vec<(Vec<_>, Skipped)> =
            (0..n).map(|_| (Vec::new(), Skipped::default())).collect();
        let mut skipped = Skipped::default();
        for partial in partials {
            skipped.add(partial.skipped);
            for (p, groups) in partial.by_partition.into_iter().enumerate() {
                routed[p].0.push(groups);
            }
        }
        // The skipped rows are counted once, by the first partition.
        routed[0].1 = skipped;
        if skipped.null_times > 0 {
            tracing::warn!(
                rows = skipped.null_times,
                "rows with a null event time have no window and were not aggregated"
            );
        }
        let merge = |(part, (chunks, skipped)): (&mut Aggregate, (Vec<_>, Skipped))| {
            part.begin_batch();
            let mut skipped = Some(skipped);
            for groups in chunks {
                part.merge_partials(clock.batch_id, groups, skipped.take().unwrap_or_default())?;
            }
            part.finish_batch(clock.watermarks)
        };
        let outputs: Vec<Result<Vec<RecordBatch>>> = if n == 1 {
            self.parts.iter_mut().zip(routed).map(merge).collect()
        } else {
            self.parts
                .par_iter_mut()
                .zip(routed.into_par_iter())
                .map(parallel::task(merge))
                .collect()
        };
        let mut out = Vec::new();
        for o in outputs {
            out.extend(o?);
        }
        Ok(out)
    }

    fn commit(&mut self, batch_id: u64) -> Result<()> {
        commit_all(&mut self.parts, batch_id)
    }

    fn purge(&mut self, keep_from: u64) -> Result<()> {
        for p in &mut self.parts {
            p.purge(keep_from)?;
        }
        Ok(())
    }

    /// The partitions' figures added up.
    fn progress(&self) -> StateOperatorProgress {
        merged_progress(&self.name, self.parts.iter().map(|p| p.progress()))
    }

    fn wants_no_data_batches(&self) -> bool {
        self.parts.iter().any(|p| p.wants_no_data_batches())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    use super::*;
    use crate::operators::Watermarks;
    use crate::operators::aggregate::{AggFunc, AggSpec, AggregateSpec};
    use crate::operators::window::WindowSpec;
    use crate::pipeline::OutputMode;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("v", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
        ]))
    }

    /// `rows` rows from a fixed pseudo-random sequence starting at `seed`.
    fn rows(seed: u64, rows: usize) -> RecordBatch {
        let mut x = seed;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let (mut k, mut t, mut v, mut f) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rows {
            let r = next();
            k.push((r % 7 != 0).then(|| format!("k{}", r % 13)));
            t.push((r % 101 != 0).then(|| (seed as i64 * 1_000 + (r % 30_000) as i64) * 1_000));
            v.push((r % 5 != 0).then_some((r % 1000) as i64 - 300));
            f.push(Some((r % 977) as f64 / 7.0));
        }
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(k)) as ArrayRef,
                Arc::new(TimestampMicrosecondArray::from(t).with_timezone("UTC")),
                Arc::new(Int64Array::from(v)),
                Arc::new(Float64Array::from(f)),
            ],
        )
        .unwrap()
    }

    fn spec(aggs: &[(AggFunc, Option<&str>)]) -> AggregateSpec {
        AggregateSpec {
            group_by: vec!["k".into()],
            window: Some(WindowSpec::Fixed {
                column: "t".into(),
                duration: Duration::from_secs(10),
                slide: Duration::from_secs(5),
                start: Duration::ZERO,
            }),
            aggs: aggs
                .iter()
                .enumerate()
                .map(|(i, (func, column))| AggSpec {
                    func: *func,
                    column: column.map(str::to_owned),
                    alias: format!("a{i}"),
                    udaf: None,
                })
                .collect(),
        }
    }

    fn parts(spec: &AggregateSpec, dir: &std::path::Path, n: usize) -> Vec<Aggregate> {
        (0..n)
            .map(|p| {
                Aggregate::new(spec.clone(), OutputMode::Update, schema(), dir, p, "q").unwrap()
            })
            .collect()
    }

    /// Each batch's output rows as sorted text.
    fn run(op: &mut dyn StatefulOperator, batches: &[Vec<RecordBatch>]) -> Vec<Vec<String>> {
        run_from(op, batches, 0)
    }

    /// Runs batches `first..` of `batches` after restoring the state of the one before.
    fn run_from(
        op: &mut dyn StatefulOperator,
        batches: &[Vec<RecordBatch>],
        first: usize,
    ) -> Vec<Vec<String>> {
        op.restore(first.checked_sub(1).map(|v| v as u64)).unwrap();
        let mut outputs = Vec::new();
        for (id, input) in batches.iter().enumerate().skip(first) {
            let wm = id as i64 * 5_000;
            let clock = BatchClock {
                batch_id: id as u64,
                processing_time_ms: 0,
                watermarks: Watermarks::single(wm),
            };
            let out = op.process(clock, input.clone()).unwrap();
            op.commit(id as u64).unwrap();
            let options = arrow_cast::display::FormatOptions::default();
            let mut lines: Vec<String> = Vec::new();
            for b in &out {
                let columns: Vec<_> = b
                    .columns()
                    .iter()
                    .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<std::result::Result<_, _>>()
                    .unwrap();
                for r in 0..b.num_rows() {
                    let line: Vec<String> =
                        columns.iter().map(|c| c.value(r).to_string()).collect();
                    lines.push(line.join("|"));
                }
            }
            lines.sort();
            outputs.push(lines);
        }
        outputs
    }

    /// The batches, each cut into record batches of `cut` rows (a source or a Wasm step may
    /// hand over the same rows cut anywhere).
    fn cut(batches: &[RecordBatch], cut: usize) -> Vec<Vec<RecordBatch>> {
        batches
            .iter()
            .map(|b| {
                (0..b.num_rows())
                    .step_by(cut)
                    .map(|at| b.slice(at, cut.min(b.num_rows() - at)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn two_phases_give_what_folding_every_row_gives_in_any_partitions_and_cuts() {
        let batches: Vec<RecordBatch> = (1..=3).map(|s| rows(s, 3 * CHUNK_ROWS / 2)).collect();
        let exact = spec(&[
            (AggFunc::Count, None),
            (AggFunc::Count, Some("v")),
            (AggFunc::Sum, Some("v")),
            (AggFunc::Min, Some("k")),
            (AggFunc::Max, Some("v")),
            (AggFunc::First, Some("v")),
            (AggFunc::Last, Some("v")),
            (AggFunc::CountDistinct, Some("v")),
        ]);
        let whole = cut(&batches, usize::MAX);
        let dir = tempfile::tempdir().unwrap();
        let mut reference = parts(&exact, &dir.path().join("ref"), 1).pop().unwrap();
        let want = run(&mut reference, &whole);
        assert!(
            want.iter().all(|b| !b.is_empty()),
            "every batch updates groups"
        );
        for (partitions, parallelism, rows_per_batch) in
            [(1, 1, usize::MAX), (3, 4, 1000), (8, 2, 7777)]
        {
            let dir = dir
                .path()
                .join(format!("{partitions}-{parallelism}-{rows_per_batch}"));
            let mut op =
                TwoPhaseAggregate::new(parts(&exact, &dir, partitions), parallelism).unwrap();
            let got = run(&mut op, &cut(&batches, rows_per_batch));
            assert_eq!(
                got, want,
                "{partitions} partitions, parallelism {parallelism}"
            );
            // Restored from its files after batch 1, it runs batch 2 as the reference did.
            let mut again =
                TwoPhaseAggregate::new(parts(&exact, &dir, partitions), parallelism).unwrap();
            let got = run_from(&mut again, &cut(&batches, rows_per_batch), 2);
            assert_eq!(got[..], want[2..], "batch 2 after a restore");
        }
        // Floating-point sums: the same bits whatever the parallelism and cuts.
        let float = spec(&[(AggFunc::Sum, Some("f")), (AggFunc::Avg, Some("f"))]);
        let results: Vec<_> = [(1, 1, usize::MAX), (4, 3, 999)]
            .into_iter()
            .map(|(partitions, parallelism, rows_per_batch)| {
                let dir = dir.path().join(format!("f{partitions}"));
                let mut op =
                    TwoPhaseAggregate::new(parts(&float, &dir, partitions), parallelism).unwrap();
                run(&mut op, &cut(&batches, rows_per_batch))
            })
            .collect();
        assert_eq!(results[0], results[1]);
    }

    #[test]
    fn late_rows_are_dropped_and_counted_once() {
        let batches = cut(&[rows(1, 5000), rows(1, 5000)], usize::MAX);
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(&[(AggFunc::Count, None)]);
        let mut reference = parts(&spec, &dir.path().join("ref"), 1).pop().unwrap();
        let mut op = TwoPhaseAggregate::new(parts(&spec, &dir.path().join("two"), 4), 2).unwrap();
        // Batch 1 repeats batch 0's rows at watermark 5 s: windows ending by then are late.
        assert_eq!(run(&mut reference, &batches), run(&mut op, &batches));
        let dropped = op.progress().num_rows_dropped_by_watermark;
        assert!(dropped > 0);
        assert_eq!(dropped, reference.progress().num_rows_dropped_by_watermark);
    }

    #[test]
    fn wasm_aggregates_and_sessions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut sessions = spec(&[(AggFunc::Count, None)]);
        sessions.window = Some(WindowSpec::Session {
            column: "t".into(),
            gap: Duration::from_secs(5),
        });
        assert!(!sessions.merges_partials());
        assert!(TwoPhaseAggregate::new(parts(&sessions, dir.path(), 1), 1).is_err());
        assert!(TwoPhaseAggregate::new(Vec::new(), 1).is_err());
    }
}
