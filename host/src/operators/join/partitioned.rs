//! A stream–stream join in state partitions (`shufflePartitions`): each side's rows are
//! routed by their join key — encoded the way the join compares keys, so equal keys of both
//! sides meet in the same partition — to one of N [`StreamStreamJoin`]s, each buffering its
//! rows in its own state files (`state/join/<p>/`), all run at once on the worker pool. The
//! output is the partitions' in partition order.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use rayon::prelude::*;

use super::JoinSpec;
use super::symmetric::StreamStreamJoin;
use crate::error::Result;
use crate::operators::operator::{Operator, OperatorContext, Partitioning};
use crate::operators::partitioned::{merged_progress, route_by_key};
use crate::operators::{StateOperatorProgress, Watermarks};
use crate::parallel::task;

/// The join's partitions and how rows reach them.
pub struct PartitionedStreamJoin {
    parts: Vec<StreamStreamJoin>,
    /// The left side's key columns (what `sluice explain` shows it partitioned by).
    key_columns: Vec<String>,
}

impl PartitionedStreamJoin {
    /// The join of `left` and `right` in `partitions` state partitions under `checkpoint`
    /// (one: the join's state in partition 0, as before partitioning).
    pub fn new(
        spec: JoinSpec,
        left: SchemaRef,
        right: SchemaRef,
        checkpoint: &crate::storage::Location,
        operator: &str,
        partitions: usize,
    ) -> Result<PartitionedStreamJoin> {
        let parts = (0..partitions.max(1))
            .map(|p| {
                StreamStreamJoin::new(
                    spec.clone(),
                    left.clone(),
                    right.clone(),
                    checkpoint,
                    operator,
                    p,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PartitionedStreamJoin {
            parts,
            key_columns: spec.on.iter().map(|(l, _)| l.clone()).collect(),
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

    /// One side's rows per partition, by the join key as the join encodes it.
    fn route(&self, side: usize, input: Vec<RecordBatch>) -> Result<Vec<Vec<RecordBatch>>> {
        let join = &self.parts[0];
        route_by_key(self.parts.len(), input, |batch| {
            join.encode_keys(side, batch)
        })
    }

    /// Joins a batch's rows of both sides (see [`StreamStreamJoin::process`]).
    pub fn process(
        &mut self,
        batch_id: u64,
        watermarks: Watermarks,
        left: Vec<RecordBatch>,
        right: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        if self.parts.len() == 1 {
            return self.parts[0].process_with(batch_id, watermarks, left, right);
        }
        let (left, right) = (self.route(0, left)?, self.route(1, right)?);
        let outputs: Vec<Result<Vec<RecordBatch>>> = self
            .parts
            .par_iter_mut()
            .zip(left.into_par_iter().zip(right.into_par_iter()))
            .map(task(
                |(part, (l, r)): (&mut StreamStreamJoin, (Vec<RecordBatch>, Vec<RecordBatch>))| {
                    part.process_with(batch_id, watermarks, l, r)
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
        let name = self.parts[0].progress().operator_name;
        merged_progress(&name, self.parts.iter().map(|p| p.progress()))
    }
}

/// The join as a node of the plan: its children are the left and the right stream.
impl Operator for PartitionedStreamJoin {
    fn name(&self) -> &'static str {
        "StreamStreamJoin"
    }
    fn schema(&self) -> SchemaRef {
        self.output_schema()
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
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        let right = inputs.pop().unwrap_or_default();
        let left = inputs.pop().unwrap_or_default();
        PartitionedStreamJoin::process(self, ctx.clock.batch_id, ctx.clock.watermarks, left, right)
    }
    fn output_lag_ms(&self) -> i64 {
        PartitionedStreamJoin::output_lag_ms(self)
    }
    fn emits_on_watermark(&self) -> bool {
        true
    }
    fn is_stateful(&self) -> bool {
        true
    }
    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        PartitionedStreamJoin::restore(self, version)
    }
    fn commit(&mut self, batch_id: u64) -> Result<()> {
        PartitionedStreamJoin::commit(self, batch_id)
    }
    fn purge(&mut self, keep_from: u64) -> Result<()> {
        PartitionedStreamJoin::purge(self, keep_from)
    }
    fn progress(&self) -> Option<StateOperatorProgress> {
        Some(PartitionedStreamJoin::progress(self))
    }
    fn wants_no_data_batches(&self) -> bool {
        PartitionedStreamJoin::wants_no_data_batches(self)
    }
}
