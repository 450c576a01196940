//! The exchange: a stateful operator split into state partitions (Spark's
//! `spark.sql.shuffle.partitions`, our `shufflePartitions`). It routes each input row by the
//! hash of the operator's key to one of N instances of the operator ([`StatePartition`]s),
//! each with its own state files (`state/<operator>/<p>/`), and runs the instances of a batch
//! at once on the worker pool. Every stateful node of the plan is one: deduplication, the
//! stream–stream join (each side routed by its join key), the aggregation, the keyed processor.
//!
//! How a batch reaches the partitions is the exchange's [`Shuffle`]: [`RouteRows`] sends each
//! row to its key's partition; the aggregation brings its own, which folds rows into partial
//! groups per chunk *before* the exchange and routes only those (Spark's partial → exchange →
//! final aggregation; see [`crate::operators::aggregate::shuffle`]).
//!
//! Guarantees: a key always goes to the same partition (the hash is fixed, written here, and
//! the number of partitions is fixed per checkpoint, see [`crate::state::shuffle`]); the same
//! key of every child goes to the same partition (a join's sides meet); the output is the
//! partitions' outputs in partition order, so a re-run batch emits the same rows in the same
//! order whatever thread ran what. With one partition no row is routed at all.

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::SchemaRef;
use rayon::prelude::*;

use super::operator::{Operator, OperatorContext, Partitioning};
use super::{BatchClock, StateOperatorProgress, StatefulOperator};
use crate::error::{Error, Result};
use crate::parallel::task;

/// FNV-1a over a key's row-format bytes. Hand-written on purpose: a key's partition is
/// persisted (its state lives in that partition's files), so the hash must never change
/// with a dependency's version, which general-purpose hashers do not promise.
pub(crate) fn partition_of(key: &[u8], partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Fold the high bits in: FNV's low bits alone are weak for a small modulus.
    ((h ^ (h >> 32)) % u64::from(partitions)) as u32
}

/// One state partition of a stateful operator: what an [`Exchange`] runs N of. Every
/// one-input [`StatefulOperator`] is one; the stream–stream join (two inputs) implements it
/// itself.
pub trait StatePartition: Send {
    /// The schema of what it emits.
    fn schema(&self) -> SchemaRef;
    /// Processes this partition's rows of a batch, per child in the order of the children.
    fn process(
        &mut self,
        clock: BatchClock,
        inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>>;
    /// Loads the state after batch `version` (`None`: empty).
    fn restore(&mut self, version: Option<u64>) -> Result<()>;
    /// Persists the state after batch `batch_id`.
    fn commit(&mut self, batch_id: u64) -> Result<()>;
    /// Removes persisted versions older than `keep_from`.
    fn purge(&mut self, keep_from: u64) -> Result<()>;
    /// Statistics of the last batch.
    fn progress(&self) -> StateOperatorProgress;
    /// Whether a watermark that moved without new data could emit or evict something.
    fn wants_no_data_batches(&self) -> bool;
    /// Whether something falls due by processing time `now_ms`.
    fn due_by_processing_time(&self, _now_ms: i64) -> bool {
        false
    }
    /// How far behind its input's watermark the rows it emits can be, ms.
    fn output_lag_ms(&self) -> i64 {
        0
    }
}

impl<T: StatefulOperator> StatePartition for T {
    fn schema(&self) -> SchemaRef {
        self.output_schema()
    }
    fn process(
        &mut self,
        clock: BatchClock,
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        StatefulOperator::process(self, clock, inputs.pop().unwrap_or_default())
    }
    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        StatefulOperator::restore(self, version)
    }
    fn commit(&mut self, batch_id: u64) -> Result<()> {
        StatefulOperator::commit(self, batch_id)
    }
    fn purge(&mut self, keep_from: u64) -> Result<()> {
        StatefulOperator::purge(self, keep_from)
    }
    fn progress(&self) -> StateOperatorProgress {
        StatefulOperator::progress(self)
    }
    fn wants_no_data_batches(&self) -> bool {
        StatefulOperator::wants_no_data_batches(self)
    }
    fn due_by_processing_time(&self, now_ms: i64) -> bool {
        StatefulOperator::due_by_processing_time(self, now_ms)
    }
}

/// A batch's routing keys: per child, each row's key in row format. Equal keys of every
/// child must encode to equal bytes.
pub trait RouteKeys: Send + Sync {
    /// The keys of `batch`, a batch of child `child`; `None`: the operator has no key (all
    /// its rows go to partition 0).
    fn keys(&self, child: usize, batch: &RecordBatch) -> Result<Option<Rows>>;
}

/// Keys made of columns of the (one) input: deduplication's columns, the processor's key.
pub struct KeyColumns {
    indices: Vec<usize>,
    converter: Option<RowConverter>,
}

impl KeyColumns {
    /// The key `columns` of `schema`, in that order (none: no key).
    pub fn new(schema: &SchemaRef, columns: &[String]) -> Result<KeyColumns> {
        let indices = columns
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| Error::Data {
                    context: format!("key column '{c}'"),
                    message: "is not among the query's columns".into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let converter = if indices.is_empty() {
            None
        } else {
            Some(
                RowConverter::new(
                    indices
                        .iter()
                        .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                        .collect(),
                )
                .map_err(|e| Error::data("routing rows to state partitions", e))?,
            )
        };
        Ok(KeyColumns { indices, converter })
    }
}

impl RouteKeys for KeyColumns {
    fn keys(&self, _child: usize, batch: &RecordBatch) -> Result<Option<Rows>> {
        let Some(converter) = &self.converter else {
            return Ok(None);
        };
        let columns: Vec<ArrayRef> = self
            .indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        converter
            .convert_columns(&columns)
            .map(Some)
            .map_err(|e| Error::data("routing rows to state partitions", e))
    }
}

/// Splits every batch of `input` among `n` partitions by the hash of its rows' keys (`keys`
/// gives them; `None`: all to partition 0), the batches at once on the worker pool; each
/// partition's rows stay in arrival order.
pub(crate) fn route_by_key(
    n: usize,
    input: Vec<RecordBatch>,
    keys: impl Fn(&RecordBatch) -> Result<Option<Rows>> + Sync,
) -> Result<Vec<Vec<RecordBatch>>> {
    if n <= 1 {
        return Ok(vec![input]);
    }
    let split_one = |batch: RecordBatch| -> Result<Vec<Option<RecordBatch>>> {
        let mut parts: Vec<Option<RecordBatch>> = vec![None; n];
        let Some(keys) = keys(&batch)? else {
            parts[0] = Some(batch);
            return Ok(parts);
        };
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (r, key) in keys.iter().enumerate() {
            rows[partition_of(key.as_ref(), n as u32) as usize].push(r as u32);
        }
        for (part, rows) in parts.iter_mut().zip(rows) {
            *part = match rows.len() {
                0 => None,
                len if len == batch.num_rows() => Some(batch.clone()),
                _ => Some(
                    arrow_select::take::take_record_batch(&batch, &UInt32Array::from(rows))
                        .map_err(|e| Error::data("routing rows to state partitions", e))?,
                ),
            };
        }
        Ok(parts)
    };
    let split: Vec<Vec<Option<RecordBatch>>> = input
        .into_par_iter()
        .map(task(split_one))
        .collect::<Result<_>>()?;
    let mut routed: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    for parts in split {
        for (p, part) in parts.into_iter().enumerate() {
            routed[p].extend(part);
        }
    }
    Ok(routed)
}

/// How a batch's rows reach an exchange's partitions and run there.
pub trait Shuffle<P>: Send {
    /// Spreads `inputs` (per child) over `parts`, runs each partition, and returns the
    /// output: the partitions' in partition order (or an order the operator promises).
    fn run(
        &mut self,
        parts: &mut [P],
        clock: BatchClock,
        inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>>;
}

/// Each row to the partition of its key.
pub struct RouteRows {
    keys: Box<dyn RouteKeys>,
}

impl RouteRows {
    /// Routes by `keys`.
    pub fn new(keys: Box<dyn RouteKeys>) -> RouteRows {
        RouteRows { keys }
    }

    /// Each partition's output of a batch, the inputs routed by key (shared with shuffles that
    /// order the outputs afterwards).
    pub fn run_partitions<P: StatePartition>(
        &self,
        parts: &mut [P],
        clock: BatchClock,
        inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<Vec<RecordBatch>>> {
        let n = parts.len();
        if n == 1 {
            return Ok(vec![parts[0].process(clock, inputs)?]);
        }
        // Per partition, its rows of each child.
        let mut routed: Vec<Vec<Vec<RecordBatch>>> = vec![Vec::with_capacity(inputs.len()); n];
        for (child, input) in inputs.into_iter().enumerate() {
            let split = route_by_key(n, input, |b| self.keys.keys(child, b))?;
            for (p, rows) in split.into_iter().enumerate() {
                routed[p].push(rows);
            }
        }
        parts
            .par_iter_mut()
            .zip(routed.into_par_iter())
            .map(task(|(part, rows): (&mut P, Vec<Vec<RecordBatch>>)| {
                part.process(clock, rows)
            }))
            .collect()
    }
}

impl<P: StatePartition> Shuffle<P> for RouteRows {
    fn run(
        &mut self,
        parts: &mut [P],
        clock: BatchClock,
        inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        Ok(self
            .run_partitions(parts, clock, inputs)?
            .into_iter()
            .flatten()
            .collect())
    }
}

/// The figures of an operator's partitions added up (commit time: the slowest partition's),
/// with `numStatePartitions` when there are several.
pub(crate) fn merged_progress(
    name: &str,
    parts: impl ExactSizeIterator<Item = StateOperatorProgress>,
) -> StateOperatorProgress {
    let n = parts.len();
    let mut total = StateOperatorProgress {
        operator_name: name.to_owned(),
        ..Default::default()
    };
    for s in parts {
        total.num_rows_total += s.num_rows_total;
        total.num_rows_updated += s.num_rows_updated;
        total.num_rows_removed += s.num_rows_removed;
        total.num_rows_dropped_by_watermark += s.num_rows_dropped_by_watermark;
        total.memory_used_bytes += s.memory_used_bytes;
        total.commit_time_ms = total.commit_time_ms.max(s.commit_time_ms);
        for (k, v) in s.custom_metrics {
            *total.custom_metrics.entry(k).or_default() += v;
        }
    }
    if n > 1 {
        total
            .custom_metrics
            .insert("numStatePartitions".into(), n as u64);
    }
    total
}

/// A stateful node of the plan: N state partitions of one operator and the shuffle that
/// feeds them.
pub struct Exchange<P> {
    parts: Vec<P>,
    shuffle: Box<dyn Shuffle<P>>,
    name: &'static str,
    /// What it is keyed by (the first child's key columns), for `sluice explain`.
    key_columns: Vec<String>,
    emits_on_watermark: bool,
    /// The name its progress goes by (Spark's `operatorName`).
    progress_name: String,
}

impl<P: StatePartition> Exchange<P> {
    /// Operator `name` (`Deduplicate`, `Aggregate`, ...) in the partitions `parts` (in order,
    /// at least one), keyed by `key_columns`, fed by `shuffle`; `emits_on_watermark` as
    /// [`Operator::emits_on_watermark`].
    pub fn new(
        name: &'static str,
        parts: Vec<P>,
        key_columns: Vec<String>,
        shuffle: Box<dyn Shuffle<P>>,
        emits_on_watermark: bool,
    ) -> Result<Exchange<P>> {
        let first = parts.first().ok_or_else(|| {
            Error::data(
                name,
                "a stateful operator needs at least one state partition",
            )
        })?;
        let progress_name = first.progress().operator_name;
        Ok(Exchange {
            parts,
            shuffle,
            name,
            key_columns,
            emits_on_watermark,
            progress_name,
        })
    }

    /// Its partitions, in order.
    pub fn partitions(&self) -> &[P] {
        &self.parts
    }
}

impl<P: StatePartition> Operator for Exchange<P> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn schema(&self) -> SchemaRef {
        self.parts[0].schema()
    }
    fn required_partitioning(&self) -> Partitioning {
        Partitioning::ByKey {
            columns: self.key_columns.clone(),
            partitions: self.parts.len(),
        }
    }
    fn process(
        &mut self,
        ctx: &mut OperatorContext<'_>,
        inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        self.shuffle.run(&mut self.parts, ctx.clock, inputs)
    }
    fn output_lag_ms(&self) -> i64 {
        self.parts[0].output_lag_ms()
    }
    fn emits_on_watermark(&self) -> bool {
        self.emits_on_watermark
    }
    fn is_stateful(&self) -> bool {
        true
    }
    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        self.parts
            .par_iter_mut()
            .map(task(|p: &mut P| p.restore(version)))
            .collect::<Result<Vec<()>>>()?;
        Ok(())
    }
    fn commit(&mut self, batch_id: u64) -> Result<()> {
        self.parts
            .par_iter_mut()
            .map(task(|p: &mut P| p.commit(batch_id)))
            .collect::<Result<Vec<()>>>()?;
        Ok(())
    }
    fn purge(&mut self, keep_from: u64) -> Result<()> {
        for p in &mut self.parts {
            p.purge(keep_from)?;
        }
        Ok(())
    }
    /// The partitions' figures added up.
    fn progress(&self) -> Option<StateOperatorProgress> {
        Some(merged_progress(
            &self.progress_name,
            self.parts.iter().map(|p| p.progress()),
        ))
    }
    fn wants_no_data_batches(&self) -> bool {
        self.parts.iter().any(|p| p.wants_no_data_batches())
    }
    fn due_by_processing_time(&self, now_ms: i64) -> bool {
        self.parts.iter().any(|p| p.due_by_processing_time(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::operators::Watermarks;

    #[test]
    fn the_partition_of_a_key_is_fixed_and_spread() {
        // Fixed forever: state written under one release must be found by the next. These
        // are FNV-1a's published 64-bit values ("" and "a"), folded and reduced.
        let fold = |h: u64| ((h ^ (h >> 32)) % 1_000_003) as u32;
        assert_eq!(partition_of(b"", 1_000_003), fold(0xcbf2_9ce4_8422_2325));
        assert_eq!(partition_of(b"a", 1_000_003), fold(0xaf63_dc4c_8601_ec8c));
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[partition_of(format!("key-{i}").as_bytes(), 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    /// A partition that remembers the keys it saw, per child.
    struct Recorder {
        schema: SchemaRef,
        seen: Vec<Vec<String>>,
    }

    impl StatePartition for Recorder {
        fn schema(&self) -> SchemaRef {
            self.schema.clone()
        }
        fn process(
            &mut self,
            _clock: BatchClock,
            inputs: Vec<Vec<RecordBatch>>,
        ) -> Result<Vec<RecordBatch>> {
            let mut out = Vec::new();
            for (child, batches) in inputs.into_iter().enumerate() {
                for b in batches {
                    let keys = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                    self.seen[child].extend(keys.iter().map(|k| k.unwrap().to_owned()));
                    out.push(b);
                }
            }
            Ok(out)
        }
        fn restore(&mut self, _: Option<u64>) -> Result<()> {
            Ok(())
        }
        fn commit(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
        fn purge(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
        fn progress(&self) -> StateOperatorProgress {
            StateOperatorProgress {
                operator_name: "recorder".into(),
                num_rows_total: self.seen.iter().map(|s| s.len() as u64).sum(),
                ..Default::default()
            }
        }
        fn wants_no_data_batches(&self) -> bool {
            false
        }
    }

    #[test]
    fn equal_keys_of_every_child_meet_in_one_partition_and_output_keeps_partition_order() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let batch = |keys: &[&str]| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(keys.to_vec())),
                    Arc::new(Int64Array::from_iter_values(0..keys.len() as i64)),
                ],
            )
            .unwrap()
        };
        let parts = (0..4)
            .map(|_| Recorder {
                schema: schema.clone(),
                seen: vec![Vec::new(); 2],
            })
            .collect();
        let keys = KeyColumns::new(&schema, &["k".to_owned()]).unwrap();
        let mut exchange = Exchange::new(
            "Recorder",
            parts,
            vec!["k".into()],
            Box::new(RouteRows::new(Box::new(keys))),
            false,
        )
        .unwrap();
        let left: Vec<String> = (0..200).map(|i| format!("k{}", i % 37)).collect();
        let right: Vec<String> = (0..100).map(|i| format!("k{}", i % 53)).collect();
        fn as_str(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        let outputs = SharedOutputsForTest::new();
        let mut ctx = OperatorContext {
            clock: BatchClock {
                batch_id: 0,
                processing_time_ms: 0,
                watermarks: Watermarks::single(0),
            },
            steps: &mut [],
            outputs: &outputs.0,
            parallelism: 2,
        };
        let out = Operator::process(
            &mut exchange,
            &mut ctx,
            vec![
                vec![batch(&as_str(&left[..120])), batch(&as_str(&left[120..]))],
                vec![batch(&as_str(&right))],
            ],
        )
        .unwrap();
        assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 300);
        // Every key in exactly one partition, whichever child it came from.
        let mut owner = std::collections::HashMap::new();
        for (p, part) in exchange.partitions().iter().enumerate() {
            for key in part.seen.iter().flatten() {
                assert_eq!(*owner.entry(key.clone()).or_insert(p), p, "{key}");
            }
        }
        assert_eq!(owner.len(), 53);
        // Within a partition, rows keep their arrival order.
        let p0: Vec<&String> = left.iter().filter(|k| owner[*k] == owner["k0"]).collect();
        assert_eq!(
            exchange.partitions()[owner["k0"]].seen[0]
                .iter()
                .collect::<Vec<_>>(),
            p0
        );
        let progress = Operator::progress(&exchange).unwrap();
        assert_eq!(progress.num_rows_total, 300);
        assert_eq!(progress.custom_metrics["numStatePartitions"], 4);
        assert_eq!(
            exchange.required_partitioning(),
            Partitioning::ByKey {
                columns: vec!["k".into()],
                partitions: 4
            }
        );
    }

    /// Named outputs nobody writes to.
    struct SharedOutputsForTest(crate::sink::outputs::SharedOutputs);

    impl SharedOutputsForTest {
        fn new() -> Self {
            SharedOutputsForTest(crate::sink::outputs::SharedOutputs::new(Vec::new()))
        }
    }
}
