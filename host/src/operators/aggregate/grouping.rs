//! How an aggregation's input rows map to groups: the group key of each row (and window), and
//! each aggregate's view of its column. It reads batches and keeps nothing, so the state
//! partitions of one aggregation and its partial phase (see [`super::two_phase`]) share one.

use std::collections::HashMap;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_row::{RowConverter, Rows};
use arrow_schema::DataType;

use super::acc::{Acc, Input, Kind};
use super::groups::{Entry, Groups};
use super::{AggregateSpec, NO_WINDOW};
use crate::error::{Error, Result};
use crate::operators::exchange::partition_of;
use crate::operators::window::{WindowSpec, fixed_windows};
use crate::wasm::aggregate::WasmAggregate;
use crate::watermark::event_times;

/// The group-forming half of an aggregation.
pub(super) struct Grouping {
    pub(super) spec: AggregateSpec,
    /// A `group_by` column the query's watermark is on, in an aggregation without a window:
    /// a group is final — emitted in append mode, then evicted — once the watermark passes
    /// its value, as Spark does.
    pub(super) event_time_key: Option<String>,
    pub(super) key_indices: Vec<usize>,
    pub(super) key_types: Vec<DataType>,
    pub(super) converter: Option<RowConverter>,
    /// Per aggregate: input column index and how to read it.
    pub(super) inputs: Vec<(Option<usize>, Kind)>,
}

/// What folding a batch's rows into groups skipped.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Skipped {
    /// (Row, window) pairs behind the watermark.
    pub(super) late: u64,
    /// Rows with a null event time (no window).
    pub(super) null_times: u64,
}

impl Skipped {
    pub(super) fn add(&mut self, other: Skipped) {
        self.late += other.late;
        self.null_times += other.null_times;
    }
}

/// One chunk's groups, pre-aggregated, split by the state partition that owns each: in each
/// partition, in the order the chunk first touched them.
pub(super) struct Partial {
    pub(super) by_partition: Vec<Vec<Entry>>,
    pub(super) skipped: Skipped,
}

impl Grouping {
    /// Fresh accumulators for a new group.
    pub(super) fn new_accs(&self) -> Box<[Acc]> {
        self.spec
            .aggs
            .iter()
            .zip(&self.inputs)
            .map(|(a, (_, k))| Acc::new(a.func, k))
            .collect()
    }

    /// Each aggregate's view of its column in `batch`.
    pub(super) fn prepare_inputs(&self, batch: &RecordBatch) -> Result<Vec<Input>> {
        self.inputs
            .iter()
            .map(|(index, kind)| {
                let Some(i) = index else {
                    return Ok(Input::Star);
                };
                let col = batch.column(*i);
                let cast = |t: &DataType| {
                    arrow_cast::cast(col, t)
                        .map_err(|e| Error::data("reading an aggregate's column", e))
                };
                Ok(match kind {
                    Kind::Star => Input::Star,
                    Kind::Int(_) => Input::I(Int64Array::from(cast(&DataType::Int64)?.to_data())),
                    Kind::Float(_) => {
                        Input::F(Float64Array::from(cast(&DataType::Float64)?.to_data()))
                    }
                    Kind::Str => Input::S(StringArray::from(cast(&DataType::Utf8)?.to_data())),
                    Kind::Any => Input::Any(col.clone()),
                })
            })
            .collect()
    }

    /// The group columns of `batch` in row format (`None` without `groupBy`).
    pub(super) fn group_rows(&self, batch: &RecordBatch) -> Result<Option<Rows>> {
        match &self.converter {
            Some(c) => {
                let cols: Vec<ArrayRef> = self
                    .key_indices
                    .iter()
                    .map(|&i| batch.column(i).clone())
                    .collect();
                Ok(Some(
                    c.convert_columns(&cols)
                        .map_err(|e| Error::data("groupBy", e))?,
                ))
            }
            None => Ok(None),
        }
    }

    /// Calls `f(key, window end, row)` for every row of `batch` and fixed window it falls in
    /// (or once per row without a window) that is not behind `late_us` (when `drop_late`).
    pub(super) fn for_each_group_row(
        &self,
        batch: &RecordBatch,
        late_us: i64,
        drop_late: bool,
        mut f: impl FnMut(&[u8], i64, usize),
    ) -> Result<Skipped> {
        let rows = self.group_rows(batch)?;
        let window = &self.spec.window;
        let times = match (window, &self.event_time_key) {
            (Some(w), _) => Some(event_times(batch, w.column())?),
            (None, Some(column)) => Some(event_times(batch, column)?),
            (None, None) => None,
        };
        let mut key = Vec::with_capacity(64);
        let mut skipped = Skipped::default();
        for i in 0..batch.num_rows() {
            let row = rows.as_ref().map_or(&[][..], |r| r.row(i).data());
            match (window, &times) {
                (
                    Some(WindowSpec::Fixed {
                        duration,
                        slide,
                        start,
                        ..
                    }),
                    Some(ts),
                ) => {
                    if ts.is_null(i) {
                        skipped.null_times += 1;
                        continue;
                    }
                    let d = duration.as_micros() as i64;
                    fixed_windows(ts.value(i), *duration, *slide, *start, |ws| {
                        key.clear();
                        key.extend_from_slice(row);
                        key.extend_from_slice(&ws.to_be_bytes());
                        if drop_late && ws + d <= late_us {
                            skipped.late += 1;
                        } else {
                            f(&key, ws + d, i);
                        }
                    });
                }
                (None, Some(ts)) => {
                    // Grouped by the event time: final once the watermark passes the value.
                    if ts.is_null(i) {
                        skipped.null_times += 1;
                        continue;
                    }
                    let end = ts.value(i).saturating_add(1);
                    if drop_late && end <= late_us {
                        skipped.late += 1;
                        continue;
                    }
                    key.clear();
                    key.extend_from_slice(row);
                    key.extend_from_slice(&NO_WINDOW.to_be_bytes());
                    f(&key, end, i);
                }
                _ => {
                    key.clear();
                    key.extend_from_slice(row);
                    key.extend_from_slice(&NO_WINDOW.to_be_bytes());
                    f(&key, i64::MAX, i);
                }
            }
        }
        Ok(skipped)
    }

    /// The state partition (of `n`) that owns group `key`: by the group columns — the same
    /// partition [`crate::operators::exchange`] routes their rows to — or, in an
    /// aggregation by window alone, by the whole key (group bytes, then window start).
    pub(super) fn partition_of(&self, key: &[u8], n: u32) -> u32 {
        if n <= 1 || (self.key_indices.is_empty() && self.spec.window.is_none()) {
            0
        } else if self.key_indices.is_empty() {
            partition_of(key, n)
        } else {
            partition_of(&key[..key.len() - 8], n)
        }
    }

    /// Folds `chunk` into groups of its own (the partial phase of a two-phase aggregation),
    /// split among `partitions` state partitions; `udafs` are this worker's instances of the
    /// Wasm aggregates (by aggregate position; empty without any).
    pub(super) fn partial(
        &self,
        chunk: &[RecordBatch],
        late_us: i64,
        drop_late: bool,
        partitions: u32,
        udafs: &mut [Option<WasmAggregate>],
    ) -> Result<Partial> {
        let mut groups = Groups::default();
        let mut skipped = Skipped::default();
        let wasm: Vec<usize> = (0..udafs.len()).filter(|&a| udafs[a].is_some()).collect();
        let mut udaf_rows: Vec<Vec<(u32, u32)>> = vec![Vec::new(); udafs.len()];
        for batch in chunk {
            let inputs = self.prepare_inputs(batch)?;
            skipped.add(
                self.for_each_group_row(batch, late_us, drop_late, |key, end, i| {
                    let index = groups.find(key).unwrap_or_else(|| {
                        groups.insert(Entry {
                            key: key.into(),
                            end,
                            touched: u64::MAX,
                            accs: self.new_accs(),
                        })
                    });
                    for (acc, input) in groups.entry_mut(index).accs.iter_mut().zip(&inputs) {
                        acc.update(input, i);
                    }
                    for &a in &wasm {
                        udaf_rows[a].push((index, i as u32));
                    }
                })?,
            );
            fold_udaf_rows(&mut groups, udafs, &self.inputs, &mut udaf_rows, batch)?;
        }
        let mut by_partition: Vec<Vec<Entry>> =
            (0..partitions.max(1)).map(|_| Vec::new()).collect();
        for entry in groups.into_entries() {
            by_partition[self.partition_of(&entry.key, partitions) as usize].push(entry);
        }
        Ok(Partial {
            by_partition,
            skipped,
        })
    }
}

/// Hands each Wasm aggregate the rows of `batch` collected for it in `udaf_rows` ((group,
/// row) pairs, emptied here): one `update` call per aggregate with the states of all the
/// groups those rows touched.
pub(super) fn fold_udaf_rows(
    groups: &mut Groups,
    udafs: &mut [Option<WasmAggregate>],
    inputs: &[(Option<usize>, Kind)],
    udaf_rows: &mut [Vec<(u32, u32)>],
    batch: &RecordBatch,
) -> Result<()> {
    for a in 0..udafs.len() {
        let pairs = std::mem::take(&mut udaf_rows[a]);
        let (Some(udaf), Some(column)) = (udafs[a].as_mut(), inputs[a].0) else {
            continue;
        };
        if pairs.is_empty() {
            continue;
        }
        let mut slot_of: HashMap<u32, u32> = HashMap::new();
        let mut touched: Vec<u32> = Vec::new();
        let group_ids: Vec<u32> = pairs
            .iter()
            .map(|(g, _)| {
                *slot_of.entry(*g).or_insert_with(|| {
                    touched.push(*g);
                    (touched.len() - 1) as u32
                })
            })
            .collect();
        let rows = arrow_array::UInt32Array::from_iter_values(pairs.iter().map(|(_, r)| *r));
        let values = arrow_select::take::take(batch.column(column), &rows, None)
            .map_err(|e| Error::data("routing rows to an aggregate", e))?;
        let states: Vec<&[u8]> = touched
            .iter()
            .map(|&g| match &groups.entry(g).accs[a] {
                Acc::Udaf(s) => s.as_slice(),
                _ => &[],
            })
            .collect();
        let new = udaf.update(&states, &group_ids, values)?;
        for (g, state) in touched.into_iter().zip(new) {
            groups.entry_mut(g).accs[a] = Acc::Udaf(state);
        }
    }
    Ok(())
}
