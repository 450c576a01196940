//! How a query's inputs become one stream (`pipeline::Combine`, built): one input passed
//! on, a union, a stream–static join or a stream–stream join; and what a checkpoint records of
//! each input so it is never resumed by a pipeline reading something else.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::operators::Watermarks;
use crate::operators::join::JoinRight;
use crate::operators::join::partitioned::PartitionedStreamJoin;
use crate::operators::join::static_table::StreamStaticJoin;
use crate::pipeline::{Combine, InputSpec, QuerySpec, SourceSpec};

/// What the checkpoint's metadata records of an input, so a checkpoint is never resumed by a
/// pipeline reading something else. The one-input form keeps the bare source identity that
/// checkpoints written before named inputs hold.
pub(super) fn input_identity(input: &InputSpec) -> String {
    let source = source_identity(&input.source);
    if input.name == "source" {
        source
    } else {
        format!("{}={source}", input.name)
    }
}

/// The schema of a union: every input's columns must have the same names and types in the
/// same order (a column is nullable if it is in any input).
fn union_schema(spec: &QuerySpec, inputs: &[SchemaRef]) -> Result<SchemaRef> {
    let first = inputs[0].clone();
    let describe = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut fields: Vec<arrow_schema::Field> =
        first.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (input, schema) in spec.inputs.iter().zip(inputs).skip(1) {
        let same = schema.fields().len() == fields.len()
            && schema
                .fields()
                .iter()
                .zip(&fields)
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !same {
            return Err(Error::Data {
                context: format!("union of query '{}'", spec.name),
                message: format!(
                    "input '{}' has ({}) but input '{}' has ({}); give each input steps that produce the same columns",
                    input.name,
                    describe(schema),
                    spec.inputs[0].name,
                    describe(&first)
                ),
            });
        }
        for (f, other) in fields.iter_mut().zip(schema.fields()) {
            if other.is_nullable() {
                *f = f.clone().with_nullable(true);
            }
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// How a query's inputs become one stream (`pipeline::Combine`, built).
pub(super) enum Combiner {
    /// One input, passed on.
    Single,
    /// A union: every input's rows relabelled with this schema.
    Union(SchemaRef),
    /// The one input joined with a table of files.
    StaticJoin(Box<StreamStaticJoin>),
    /// Two inputs joined with each other (`left`, `right`: their input indices).
    StreamJoin {
        join: Box<PartitionedStreamJoin>,
        left: usize,
        right: usize,
    },
}

impl Combiner {
    pub(super) fn open(
        spec: &QuerySpec,
        inputs: &[SchemaRef],
        checkpoint: &crate::storage::Location,
        shuffle: usize,
    ) -> Result<Combiner> {
        let index = |name: &str| spec.inputs.iter().position(|i| i.name == name).unwrap_or(0);
        Ok(match &spec.combine {
            Combine::Single => Combiner::Single,
            Combine::Union => Combiner::Union(union_schema(spec, inputs)?),
            Combine::StaticJoin(join) => {
                let JoinRight::Table(table) = &join.right else {
                    return Err(Error::data("join", "a static join without a table"));
                };
                Combiner::StaticJoin(Box::new(StreamStaticJoin::open(
                    join.clone(),
                    table.clone(),
                    inputs[index(&join.left)].clone(),
                    checkpoint.join("tables").join("0"),
                )?))
            }
            Combine::StreamJoin(join) => {
                let JoinRight::Input(right) = &join.right else {
                    return Err(Error::data("join", "a stream join without a right input"));
                };
                let (left, right) = (index(&join.left), index(right));
                Combiner::StreamJoin {
                    join: Box::new(PartitionedStreamJoin::new(
                        join.clone(),
                        inputs[left].clone(),
                        inputs[right].clone(),
                        checkpoint,
                        shuffle,
                    )?),
                    left,
                    right,
                }
            }
        })
    }

    /// The schema of the combined stream.
    pub(super) fn schema(&self, inputs: &[SchemaRef]) -> SchemaRef {
        match self {
            Combiner::Single => inputs[0].clone(),
            Combiner::Union(schema) => schema.clone(),
            Combiner::StaticJoin(j) => j.schema(),
            Combiner::StreamJoin { join, .. } => join.output_schema(),
        }
    }

    pub(super) fn combine(
        &mut self,
        batch_id: u64,
        watermark_ms: i64,
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        match self {
            Combiner::Single => Ok(inputs.pop().unwrap_or_default()),
            Combiner::Union(schema) => union(schema, inputs),
            Combiner::StaticJoin(j) => j.process(inputs.pop().unwrap_or_default()),
            Combiner::StreamJoin { join, left, right } => {
                let r = std::mem::take(&mut inputs[*right]);
                let l = std::mem::take(&mut inputs[*left]);
                join.process(batch_id, watermark_ms, l, r)
            }
        }
    }

    /// Between batches: a static table reloads if its files changed.
    pub(super) fn refresh(&mut self) -> Result<()> {
        if let Combiner::StaticJoin(j) = self {
            j.refresh()?;
        }
        Ok(())
    }

    /// The table versions a batch planned now joins with (for its offsets entry).
    pub(super) fn table_versions(&self) -> BTreeMap<String, String> {
        match self {
            Combiner::StaticJoin(j) => {
                BTreeMap::from([("join".to_owned(), j.version().to_owned())])
            }
            _ => BTreeMap::new(),
        }
    }

    pub(super) fn restore(&mut self, version: Option<u64>) -> Result<()> {
        match self {
            Combiner::StreamJoin { join, .. } => join.restore(version),
            _ => Ok(()),
        }
    }

    pub(super) fn commit(&mut self, batch_id: u64) -> Result<()> {
        match self {
            Combiner::StreamJoin { join, .. } => join.commit(batch_id),
            _ => Ok(()),
        }
    }

    pub(super) fn purge(&mut self, keep_from: u64) -> Result<()> {
        match self {
            Combiner::StreamJoin { join, .. } => join.purge(keep_from),
            _ => Ok(()),
        }
    }

    pub(super) fn progress(&self) -> Option<crate::operators::StateOperatorProgress> {
        match self {
            Combiner::StreamJoin { join, .. } => Some(join.progress()),
            _ => None,
        }
    }

    pub(super) fn wants_no_data_batches(&self) -> bool {
        match self {
            Combiner::StreamJoin { join, .. } => join.wants_no_data_batches(),
            _ => false,
        }
    }

    /// The watermarks the stateful operators after the combine run with, given the previous
    /// batch's watermark and this one's: a stream–stream join holds both back by how far its
    /// output can lag (its time range), and judges lateness by the previous batch's.
    pub(super) fn downstream_watermarks(&self, previous_ms: i64, current_ms: i64) -> Watermarks {
        match self {
            Combiner::StreamJoin { join, .. } => {
                let lag = join.output_lag_ms();
                let held = |ms: i64| if ms > 0 { (ms - lag).max(0) } else { 0 };
                Watermarks {
                    late_ms: held(previous_ms.min(current_ms)),
                    eviction_ms: held(current_ms),
                }
            }
            _ => Watermarks::single(current_ms),
        }
    }
}

/// The rows of every input, relabelled with the union's schema (same columns; nullability
/// widened), without copying any buffer.
fn union(schema: &SchemaRef, inputs: Vec<Vec<RecordBatch>>) -> Result<Vec<RecordBatch>> {
    inputs
        .into_iter()
        .flatten()
        .map(|b| {
            RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                .map_err(|e| Error::data("union", e))
        })
        .collect()
}

fn source_identity(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::File(f) => format!("{}:{}", f.format.name(), f.path.display()),
        SourceSpec::Rate(_) => "rate".into(),
        SourceSpec::RateMicroBatch(_) => "rate-micro-batch".into(),
        SourceSpec::Nexmark(_) => "nexmark".into(),
        SourceSpec::Socket(s) => format!("socket:{}:{}", s.host, s.port),
        // Not the bootstrap servers: the same topics behind another address are the same data.
        SourceSpec::Kafka(k) => format!("kafka:{:?}", k.subscription),
    }
}
