//! A stateful operator split into state partitions (Spark's `spark.sql.shuffle.partitions`,
//! our `shufflePartitions`): rows are routed by a hash of the operator's key columns to one
//! of N instances, each with its own state files (`state/<operator>/<p>/`), and the instances
//! run a batch at once on the worker pool. (Most aggregations do not route rows: they run in
//! two phases, see [`crate::operators::aggregate::two_phase`].)
//!
//! Guarantees: a key always goes to the same partition (the hash is fixed, written here, and
//! the number of partitions is fixed per checkpoint, see [`crate::state::shuffle`]); the
//! output is the partitions' outputs in partition order, so a re-run batch emits the same
//! rows in the same order whatever thread ran what.

use arrow_array::{RecordBatch, UInt32Array};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::SchemaRef;
use rayon::prelude::*;

use super::{BatchClock, StateOperatorProgress, StatefulOperator};
use crate::error::{Error, Result};

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

/// N instances of one operator, each owning the keys that hash to it.
pub struct Partitioned {
    parts: Vec<Box<dyn StatefulOperator>>,
    key_indices: Vec<usize>,
    converter: Option<RowConverter>,
    name: String,
}

impl Partitioned {
    /// Routes rows of `input_schema` by the columns at `key_indices` (none: everything to
    /// partition 0) to `parts`, the operator's partitions in order.
    pub fn new(
        parts: Vec<Box<dyn StatefulOperator>>,
        input_schema: &SchemaRef,
        key_indices: Vec<usize>,
    ) -> Result<Partitioned> {
        let converter = if key_indices.is_empty() {
            None
        } else {
            Some(
                RowConverter::new(
                    key_indices
                        .iter()
                        .map(|&i| SortField::new(input_schema.field(i).data_type().clone()))
                        .collect(),
                )
                .map_err(|e| Error::data("routing rows to state partitions", e))?,
            )
        };
        let name = parts
            .first()
            .map(|p| p.progress().operator_name)
            .unwrap_or_default();
        Ok(Partitioned {
            parts,
            key_indices,
            converter,
            name,
        })
    }

    /// Each partition's rows, in arrival order within a partition.
    fn route(&self, input: Vec<RecordBatch>) -> Result<Vec<Vec<RecordBatch>>> {
        let n = self.parts.len();
        let Some(converter) = &self.converter else {
            let mut routed = vec![Vec::new(); n];
            routed[0] = input;
            return Ok(routed);
        };
        let key_indices = &self.key_indices;
        route_by_key(n, input, |batch| {
            let columns: Vec<_> = key_indices
                .iter()
                .map(|&i| batch.column(i).clone())
                .collect();
            converter
                .convert_columns(&columns)
                .map_err(|e| Error::data("routing rows to state partitions", e))
        })
    }
}

/// Splits every input batch's rows among `n` partitions by the hash of their key (`encode`
/// gives a batch's keys in row format), the batches at once on the worker pool; each
/// partition's rows stay in arrival order. Shared by every partitioned operator, so keys go
/// to the same partition whichever operator routes them.
pub(crate) fn route_by_key(
    n: usize,
    input: Vec<RecordBatch>,
    encode: impl Fn(&RecordBatch) -> Result<Rows> + Sync,
) -> Result<Vec<Vec<RecordBatch>>> {
    if n <= 1 {
        return Ok(vec![input]);
    }
    let split_one = |batch: RecordBatch| -> Result<Vec<Option<RecordBatch>>> {
        let keys = encode(&batch)?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (r, key) in keys.iter().enumerate() {
            rows[partition_of(key.as_ref(), n as u32) as usize].push(r as u32);
        }
        rows.into_iter()
            .map(|rows| {
                Ok(match rows.len() {
                    0 => None,
                    len if len == batch.num_rows() => Some(batch.clone()),
                    _ => Some(
                        arrow_select::take::take_record_batch(&batch, &UInt32Array::from(rows))
                            .map_err(|e| Error::data("routing rows to state partitions", e))?,
                    ),
                })
            })
            .collect()
    };
    let split: Vec<Vec<Option<RecordBatch>>> = input
        .into_par_iter()
        .map(crate::parallel::task(split_one))
        .collect::<Result<_>>()?;
    let mut routed: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    for parts in split {
        for (p, part) in parts.into_iter().enumerate() {
            routed[p].extend(part);
        }
    }
    Ok(routed)
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

/// Loads every partition's state after batch `version`, at once.
pub(crate) fn restore_all<T: StatefulOperator>(
    parts: &mut [T],
    version: Option<u64>,
) -> Result<()> {
    parts
        .par_iter_mut()
        .map(crate::parallel::task(|p: &mut T| p.restore(version)))
        .collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// Persists every partition's state after batch `batch_id`, at once.
pub(crate) fn commit_all<T: StatefulOperator>(parts: &mut [T], batch_id: u64) -> Result<()> {
    parts
        .par_iter_mut()
        .map(crate::parallel::task(|p: &mut T| p.commit(batch_id)))
        .collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// Removes every partition's state versions older than `keep_from`.
pub(crate) fn purge_all<T: StatefulOperator>(parts: &mut [T], keep_from: u64) -> Result<()> {
    for p in parts {
        p.purge(keep_from)?;
    }
    Ok(())
}

impl StatefulOperator for Partitioned {
    fn output_schema(&self) -> SchemaRef {
        self.parts[0].output_schema()
    }

    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        restore_all(&mut self.parts, version)
    }

    fn process(&mut self, clock: BatchClock, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let routed = self.route(input)?;
        let outputs: Vec<Result<Vec<RecordBatch>>> = self
            .parts
            .par_iter_mut()
            .zip(routed.into_par_iter())
            .map(crate::parallel::task(
                |(part, rows): (&mut Box<dyn StatefulOperator>, Vec<RecordBatch>)| {
                    part.process(clock, rows)
                },
            ))
            .collect();
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
        purge_all(&mut self.parts, keep_from)
    }

    /// The partitions' figures added up.
    fn progress(&self) -> StateOperatorProgress {
        merged_progress(&self.name, self.parts.iter().map(|p| p.progress()))
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
    use super::*;

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
}
