//! A stream–stream join in state partitions (`shufflePartitions`): each side's rows are
//! routed by their join key — encoded the way the join compares keys, so equal keys of both
//! sides meet in the same partition — to one of N [`StreamStreamJoin`]s, each buffering its
//! rows in its own state files (`state/join/<p>/`), all run at once on the worker pool. The
//! output is the partitions' in partition order.

use std::path::Path;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use rayon::prelude::*;

use super::symmetric::StreamStreamJoin;
use super::{JoinLayout, JoinSpec, KeyEncoder};
use crate::error::{Error, Result};
use crate::operators::StateOperatorProgress;
use crate::operators::partitioned::partition_of;
use crate::parallel::task;

/// The join's partitions and how rows reach them.
pub struct PartitionedStreamJoin {
    parts: Vec<StreamStreamJoin>,
    keys: [Vec<usize>; 2],
    encoder: KeyEncoder,
}

impl PartitionedStreamJoin {
    /// The join of `left` and `right` in `partitions` state partitions under `checkpoint`
    /// (one: the join's state in partition 0, as before partitioning).
    pub fn new(
        spec: JoinSpec,
        left: SchemaRef,
        right: SchemaRef,
        checkpoint: &Path,
        partitions: usize,
    ) -> Result<PartitionedStreamJoin> {
        let layout = JoinLayout::new(&spec, &left, &right)?;
        let encoder = KeyEncoder::new(
            &layout
                .left_keys
                .iter()
                .map(|&i| left.field(i).data_type().clone())
                .collect::<Vec<_>>(),
        )?;
        let parts = (0..partitions.max(1))
            .map(|p| {
                StreamStreamJoin::new(spec.clone(), left.clone(), right.clone(), checkpoint, p)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PartitionedStreamJoin {
            parts,
            keys: [layout.left_keys, layout.right_keys],
            encoder,
        })
    }

    /// The schema of the joined rows.
    pub fn output_schema(&self) -> SchemaRef {
        self.parts[0].output_schema()
    }

    /// How far behind the watermark the rows it emits can be, ms.
    pub fn output_lag_ms(&self) -> i64 {
        self.parts[0].output_lag_ms()
    }

    /// Whether a watermark that moved without data can evict.
    pub fn wants_no_data_batches(&self) -> bool {
        self.parts[0].wants_no_data_batches()
    }

    /// One side's rows per partition.
    fn route(&self, side: usize, input: Vec<RecordBatch>) -> Result<Vec<Vec<RecordBatch>>> {
        let n = self.parts.len();
        if n == 1 {
            return Ok(vec![input]);
        }
        let keys = &self.keys[side];
        let encoder = &self.encoder;
        let split: Vec<Vec<Option<RecordBatch>>> = input
            .into_par_iter()
            .map(task(
                |batch: RecordBatch| -> Result<Vec<Option<RecordBatch>>> {
                    let (encoded, _) = encoder.encode(&batch, keys)?;
                    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n];
                    for (r, key) in encoded.iter().enumerate() {
                        rows[partition_of(key.as_ref(), n as u32) as usize].push(r as u32);
                    }
                    rows.into_iter()
                        .map(|rows| {
                            Ok(match rows.len() {
                                0 => None,
                                len if len == batch.num_rows() => Some(batch.clone()),
                                _ => Some(
                                    arrow_select::take::take_record_batch(
                                        &batch,
                                        &UInt32Array::from(rows),
                                    )
                                    .map_err(|e| {
                                        Error::data("routing join rows to partitions", e)
                                    })?,
                                ),
                            })
                        })
                        .collect()
                },
            ))
            .collect::<Result<_>>()?;
        let mut routed: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
        for parts in split {
            for (p, part) in parts.into_iter().enumerate() {
                routed[p].extend(part);
            }
        }
        Ok(routed)
    }

    /// Joins a batch's rows of both sides (see [`StreamStreamJoin::process`]).
    pub fn process(
        &mut self,
        batch_id: u64,
        watermark_ms: i64,
        left: Vec<RecordBatch>,
        right: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        if self.parts.len() == 1 {
            return self.parts[0].process(batch_id, watermark_ms, left, right);
        }
        let (left, right) = (self.route(0, left)?, self.route(1, right)?);
        let outputs: Vec<Result<Vec<RecordBatch>>> = self
            .parts
            .par_iter_mut()
            .zip(left.into_par_iter().zip(right.into_par_iter()))
            .map(task(
                |(part, (l, r)): (&mut StreamStreamJoin, (Vec<RecordBatch>, Vec<RecordBatch>))| {
                    part.process(batch_id, watermark_ms, l, r)
                },
            ))
            .collect();
        let mut out = Vec::new();
        for o in outputs {
            out.extend(o?);
        }
        Ok(out)
    }

    /// Loads every partition's state after batch `version`.
    pub fn restore(&mut self, version: Option<u64>) -> Result<()> {
        for p in &mut self.parts {
            p.restore(version)?;
        }
        Ok(())
    }

    /// Persists every partition's changes of batch `batch_id`, at once.
    pub fn commit(&mut self, batch_id: u64) -> Result<()> {
        self.parts
            .par_iter_mut()
            .map(task(|p: &mut StreamStreamJoin| p.commit(batch_id)))
            .collect::<Result<Vec<()>>>()?;
        Ok(())
    }

    /// Removes versions older than `keep_from` in every partition.
    pub fn purge(&mut self, keep_from: u64) -> Result<()> {
        for p in &mut self.parts {
            p.purge(keep_from)?;
        }
        Ok(())
    }

    /// The partitions' figures added up.
    pub fn progress(&self) -> StateOperatorProgress {
        let mut total = self.parts[0].progress();
        for p in &self.parts[1..] {
            let s = p.progress();
            total.num_rows_total += s.num_rows_total;
            total.num_rows_updated += s.num_rows_updated;
            total.num_rows_removed += s.num_rows_removed;
            total.num_rows_dropped_by_watermark += s.num_rows_dropped_by_watermark;
            total.memory_used_bytes += s.memory_used_bytes;
            total.commit_time_ms = total.commit_time_ms.max(s.commit_time_ms);
        }
        if self.parts.len() > 1 {
            total
                .custom_metrics
                .insert("numStatePartitions".into(), self.parts.len() as u64);
        }
        total
    }
}
