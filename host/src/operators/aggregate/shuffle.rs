//! How an aggregation's rows reach its state partitions: the aggregation's [`Shuffle`] for
//! the [`Exchange`], in one of two ways.
//!
//! **Two phases** (Spark's partial and final `HashAggregateExec` around an `Exchange`,
//! DataFusion's `AggregateMode::Partial` / `FinalPartitioned`), for every aggregation whose
//! partial results merge ([`super::AggregateSpec::merges_partials`]): the batch's rows are cut
//! into chunks of a fixed number of rows, each chunk is folded into groups of its own on a
//! worker, and each state partition merges the chunks' groups that hash to it. The rows are
//! read once, on all workers at once, and only the (usually far fewer) partial groups cross
//! the exchange — which is what lets an aggregation over a few groups, or by a window alone,
//! use every core.
//!
//! **Rows routed by key** otherwise (session windows; Wasm aggregates by `groupBy`): each row
//! goes to the partition of its group columns ([`RouteRows`]) and is folded there.
//!
//! Guarantees: chunk boundaries depend only on the rows' order, not on `parallelism` or on
//! how the input was cut into record batches, and partials are merged in chunk order; so the
//! same batch gives the same groups, bit for bit (floating-point sums included), whatever the
//! parallelism, and each state partition keeps exactly the groups it would keep if it were fed
//! rows. In append and complete mode the output is in the order one partition gives (by
//! window start, then group), whatever the number of partitions. State files and partitions
//! are [`Aggregate`]'s: a checkpoint written one way is read the other.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_row::Rows;
use rayon::prelude::*;

use super::grouping::{Grouping, Skipped};
use super::{Aggregate, OutputOrder};
use crate::error::{Error, Result};
use crate::operators::BatchClock;
use crate::operators::exchange::{Exchange, RouteKeys, RouteRows, Shuffle};
use crate::parallel;
use crate::wasm::aggregate::WasmAggregate;

/// Rows per chunk of the partial phase: big enough that a chunk's groups are few against its
/// rows, small enough that a batch of a few hundred thousand rows keeps every worker busy.
pub const CHUNK_ROWS: usize = 32 * 1024;

/// The aggregation `parts` (its state partitions, in order) as a node of the plan, run on up
/// to `parallelism` workers.
pub fn exchange(parts: Vec<Aggregate>, parallelism: usize) -> Result<Exchange<Aggregate>> {
    let first = parts
        .first()
        .ok_or_else(|| Error::data("aggregate", "an aggregation needs a state partition"))?;
    let grouping = first.grouping();
    let shuffle = AggregateShuffle {
        two_phase: grouping.spec.merges_partials(),
        order: first.readable_order()?,
        rows: RouteRows::new(Box::new(GroupKeys(grouping.clone()))),
        grouping: grouping.clone(),
        parallelism,
        workers: Vec::new(),
    };
    Exchange::new(
        "Aggregate",
        parts,
        grouping.spec.group_by.clone(),
        Box::new(shuffle),
        true,
    )
}

/// The group columns as routing keys.
struct GroupKeys(Arc<Grouping>);

impl RouteKeys for GroupKeys {
    fn keys(&self, _child: usize, batch: &RecordBatch) -> Result<Option<Rows>> {
        self.0.group_rows(batch)
    }
}

/// Partial groups per chunk when they merge, else rows routed by key.
struct AggregateShuffle {
    grouping: Arc<Grouping>,
    two_phase: bool,
    /// How to put several partitions' output in one partition's order (append, complete).
    order: Option<OutputOrder>,
    rows: RouteRows,
    parallelism: usize,
    /// Per worker of the partial phase: its instances of the Wasm aggregates (by aggregate
    /// position), made when a batch first needs that many workers.
    workers: Vec<Vec<Option<WasmAggregate>>>,
}

impl AggregateShuffle {
    /// The two-phase batch: partial groups per chunk, merged per partition.
    fn merge_chunks(
        &mut self,
        parts: &mut [Aggregate],
        clock: BatchClock,
        input: Vec<RecordBatch>,
    ) -> Result<Vec<Vec<RecordBatch>>> {
        let n = parts.len();
        let (late_us, drop_late) = parts[0].lateness(clock.watermarks);
        let grouping = &self.grouping;
        let chunks = parallel::chunks_of_rows(&input, CHUNK_ROWS);
        drop(input);
        let workers = self.parallelism.clamp(1, chunks.len().max(1));
        while self.workers.len() < workers {
            self.workers.push(parts[0].worker_udafs()?);
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
        let mut routed: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
        let mut skipped = Skipped::default();
        for partial in partials {
            skipped.add(partial.skipped);
            for (p, groups) in partial.by_partition.into_iter().enumerate() {
                routed[p].push(groups);
            }
        }
        let merge = |(part, chunks): (&mut Aggregate, Vec<_>)| {
            part.begin_batch();
            for groups in chunks {
                part.merge_partials(clock.batch_id, groups)?;
            }
            part.finish_batch(clock.watermarks)
        };
        let outputs: Vec<Result<Vec<RecordBatch>>> = if n == 1 {
            parts.iter_mut().zip(routed).map(merge).collect()
        } else {
            parts
                .par_iter_mut()
                .zip(routed.into_par_iter())
                .map(parallel::task(merge))
                .collect()
        };
        // Rows skipped in the partial phase are counted (and warned of) once, by partition 0.
        parts[0].note_skipped(skipped, true);
        outputs.into_iter().collect()
    }
}

impl Shuffle<Aggregate> for AggregateShuffle {
    fn run(
        &mut self,
        parts: &mut [Aggregate],
        clock: BatchClock,
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        let outputs = if self.two_phase {
            self.merge_chunks(parts, clock, inputs.pop().unwrap_or_default())?
        } else {
            self.rows.run_partitions(parts, clock, inputs)?
        };
        let nonempty = outputs.iter().filter(|o| !o.is_empty()).count();
        let out: Vec<RecordBatch> = outputs.into_iter().flatten().collect();
        match &self.order {
            Some(order) if nonempty > 1 => order.sort(&parts[0].output_schema, &out),
            _ => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

    use super::*;
    use crate::config::OutputMode;
    use crate::operators::Watermarks;
    use crate::operators::aggregate::{AggFunc, AggSpec, AggregateSpec};
    use crate::operators::exchange::KeyColumns;
    use crate::operators::operator::{Operator, OperatorContext};
    use crate::operators::window::WindowSpec;

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
        parts_in(OutputMode::Update, spec, dir, n)
    }

    fn parts_in(
        mode: OutputMode,
        spec: &AggregateSpec,
        dir: &std::path::Path,
        n: usize,
    ) -> Vec<Aggregate> {
        (0..n)
            .map(|p| {
                let dir = crate::storage::Location::Local(dir.to_path_buf());
                Aggregate::new(
                    spec.clone(),
                    mode,
                    None,
                    schema(),
                    &dir,
                    crate::operators::aggregate::STATE_NAME,
                    p,
                    "q",
                )
                .unwrap()
            })
            .collect()
    }

    /// One partition folding every row it is given (the reference).
    fn folding(part: Aggregate) -> Exchange<Aggregate> {
        let keys = KeyColumns::new(&schema(), &[]).unwrap();
        Exchange::new(
            "Aggregate",
            vec![part],
            Vec::new(),
            Box::new(RouteRows::new(Box::new(keys))),
            true,
        )
        .unwrap()
    }

    /// Each batch's output rows as sorted text.
    fn run(op: &mut dyn Operator, batches: &[Vec<RecordBatch>]) -> Vec<Vec<String>> {
        let mut outputs = run_from(op, batches, 0);
        for lines in &mut outputs {
            lines.sort();
        }
        outputs
    }

    /// Runs batches `first..` of `batches` after restoring the state of the one before.
    fn run_from(
        op: &mut dyn Operator,
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
            let named = crate::sink::outputs::SharedOutputs::new(Vec::new());
            let mut ctx = OperatorContext {
                clock,
                steps: &mut [],
                outputs: &named,
                parallelism: 2,
            };
            let out = op.process(&mut ctx, vec![input.clone()]).unwrap();
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
        let mut reference = folding(parts(&exact, &dir.path().join("ref"), 1).pop().unwrap());
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
            let mut op = exchange(parts(&exact, &dir, partitions), parallelism).unwrap();
            let got = run(&mut op, &cut(&batches, rows_per_batch));
            assert_eq!(
                got, want,
                "{partitions} partitions, parallelism {parallelism}"
            );
            // Restored from its files after batch 1, it runs batch 2 as the reference did.
            let mut again = exchange(parts(&exact, &dir, partitions), parallelism).unwrap();
            let mut got = run_from(&mut again, &cut(&batches, rows_per_batch), 2);
            got[0].sort();
            assert_eq!(got[..], want[2..], "batch 2 after a restore");
        }
        // Floating-point sums: the same bits whatever the parallelism and cuts.
        let float = spec(&[(AggFunc::Sum, Some("f")), (AggFunc::Avg, Some("f"))]);
        let results: Vec<_> = [(1, 1, usize::MAX), (4, 3, 999)]
            .into_iter()
            .map(|(partitions, parallelism, rows_per_batch)| {
                let dir = dir.path().join(format!("f{partitions}"));
                let mut op = exchange(parts(&float, &dir, partitions), parallelism).unwrap();
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
        let mut reference = folding(parts(&spec, &dir.path().join("ref"), 1).pop().unwrap());
        let mut op = exchange(parts(&spec, &dir.path().join("two"), 4), 2).unwrap();
        // Batch 1 repeats batch 0's rows at watermark 5 s: windows ending by then are late.
        assert_eq!(run(&mut reference, &batches), run(&mut op, &batches));
        let dropped = op.progress().unwrap().num_rows_dropped_by_watermark;
        assert!(dropped > 0);
        assert_eq!(
            dropped,
            reference.progress().unwrap().num_rows_dropped_by_watermark
        );
    }

    #[test]
    fn sessions_route_rows_and_give_what_one_partition_gives() {
        let dir = tempfile::tempdir().unwrap();
        let mut sessions = spec(&[(AggFunc::Count, None), (AggFunc::Sum, Some("v"))]);
        sessions.window = Some(WindowSpec::Session {
            column: "t".into(),
            gap: Duration::from_millis(300),
        });
        assert!(!sessions.merges_partials());
        let batches = cut(&[rows(1, 4000), rows(2, 4000), rows(3, 4000)], 1500);
        // Append: sessions in update mode are refused (pipeline/stateful.rs).
        let append =
            |name: &str, n| parts_in(OutputMode::Append, &sessions, &dir.path().join(name), n);
        let mut one = folding(append("one", 1).pop().unwrap());
        let mut four = exchange(append("four", 4), 2).unwrap();
        let want = run_from(&mut one, &batches, 0);
        assert!(want.iter().map(Vec::len).sum::<usize>() > 10);
        let got = run_from(&mut four, &batches, 0);
        assert!(got == want, "4 partitions: {got:.200?}");
        assert!(exchange(Vec::new(), 1).is_err());
    }

    #[test]
    fn append_output_is_in_one_partitions_order_whatever_the_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(&[(AggFunc::Count, None)]);
        let batches = cut(&[rows(1, 20_000), rows(2, 20_000), rows(3, 20_000)], 5000);
        let mut one = folding(
            parts_in(OutputMode::Append, &spec, &dir.path().join("one"), 1)
                .pop()
                .unwrap(),
        );
        let mut five = exchange(
            parts_in(OutputMode::Append, &spec, &dir.path().join("five"), 5),
            2,
        )
        .unwrap();
        // Not sorted here: the order itself is compared.
        let want = run_from(&mut one, &batches, 0);
        assert!(want.iter().map(Vec::len).sum::<usize>() > 10, "{want:?}");
        assert_eq!(run_from(&mut five, &batches, 0), want);
    }
}
