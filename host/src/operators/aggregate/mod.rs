//! Streaming aggregation: `groupBy(keys[, window]).agg(count, sum, min, max, avg, first, last,
//! count distinct)` over micro-batches, with state that survives restarts.
//!
//! Groups live in a hash map keyed by the Arrow row encoding of the group columns followed by
//! the window start (8 bytes, big-endian), so each input row costs one hash lookup with no
//! allocation unless its group is new; the accumulators are updated in place. Rows whose
//! window ended at or behind the watermark are dropped and counted (except in complete
//! mode, which keeps everything). Session windows merge per key as rows arrive.

mod acc;
mod grouping;
mod groups;
pub mod shuffle;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{
    Array, ArrayRef, RecordBatch, StructArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use tracing::warn;

pub use self::acc::AggFunc;
use self::acc::{Acc, Input, Kind, build_column, kind_of};
use self::grouping::{Grouping, Skipped, fold_udaf_rows};
use self::groups::{Entry, Groups};
use super::window::WindowSpec;
use super::{BatchClock, SpecProblem, StateOperatorProgress, StatefulOperator, Watermarks};
use crate::config::OutputMode;
use crate::error::{Error, Result};
use crate::schema::timestamp_type;
use crate::state::{StateStore, layout};

/// The state store's name for aggregation (`state/aggregate/` in the checkpoint).
pub const STATE_NAME: &str = "aggregate";
use crate::wasm::aggregate::{UdafSpec, WasmAggregate};
use crate::watermark::event_times;

/// One aggregate of `[query.aggregate] aggs`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    /// The function.
    pub func: AggFunc,
    /// Its input column (`None` only for `count(*)`).
    pub column: Option<String>,
    /// The output column's name.
    pub alias: String,
    /// For [`AggFunc::Udaf`]: the component.
    pub udaf: Option<UdafSpec>,
}

/// `[query.aggregate]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSpec {
    /// Grouping columns.
    pub group_by: Vec<String>,
    /// An event-time window to group by as well.
    pub window: Option<WindowSpec>,
    /// The aggregates, in output order.
    pub aggs: Vec<AggSpec>,
}

/// The aggregation operator.
pub struct Aggregate {
    grouping: Arc<Grouping>,
    mode: OutputMode,
    output_schema: SchemaRef,
    store: StateStore,
    groups: Groups,
    /// Session windows: group row bytes → session starts.
    sessions: HashMap<Box<[u8]>, Vec<i64>>,
    /// Groups changed by this batch (slab indices).
    changed: Vec<u32>,
    /// Keys removed from state by this batch.
    removed: Vec<Box<[u8]>>,
    /// User-defined aggregates, by aggregate position.
    udafs: Vec<Option<WasmAggregate>>,
    /// Per user-defined aggregate: (group, row) pairs of the batch being processed.
    udaf_rows: Vec<Vec<(u32, u32)>>,
    stats: StateOperatorProgress,
}

const NO_WINDOW: i64 = i64::MIN;

impl Aggregate {
    /// Builds the operator for input `schema`, with its state in partition `partition` under
    /// `checkpoint`; `watermark` is the query's (grouped by its column without a window, a
    /// group is final once the watermark passes its value).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: AggregateSpec,
        mode: OutputMode,
        watermark: Option<&crate::watermark::WatermarkSpec>,
        schema: SchemaRef,
        checkpoint: &crate::storage::Location,
        operator: &str,
        partition: usize,
        query: &str,
    ) -> Result<Self> {
        spec.check_input(&schema)?;
        let col = |name: &str, what: &str| {
            schema.index_of(name).map_err(|_| Error::Data {
                context: format!("{what} column '{name}'"),
                message: format!(
                    "is not among the columns reaching the aggregation ({})",
                    crate::schema::column_names(&schema)
                ),
            })
        };
        let key_indices = spec
            .group_by
            .iter()
            .map(|c| col(c, "groupBy"))
            .collect::<Result<Vec<_>>>()?;
        let key_types: Vec<DataType> = key_indices
            .iter()
            .map(|&i| schema.field(i).data_type().clone())
            .collect();
        let converter = if key_indices.is_empty() {
            None
        } else {
            Some(
                RowConverter::new(
                    key_types
                        .iter()
                        .map(|t| SortField::new(t.clone()))
                        .collect(),
                )
                .map_err(|e| Error::data("groupBy", e))?,
            )
        };
        let mut inputs = Vec::new();
        let mut udafs = Vec::new();
        // Spark's order: `window`, then the group columns, then the aggregates.
        let mut fields: Vec<Field> = Vec::new();
        if spec.window.is_some() {
            fields.push(Field::new(
                "window",
                DataType::Struct(window_fields()),
                false,
            ));
        }
        fields.extend(
            key_indices
                .iter()
                .map(|&i| schema.field(i).clone().with_nullable(true)),
        );
        for agg in &spec.aggs {
            let (index, kind) = match &agg.column {
                None => (None, Kind::Star),
                Some(c) => {
                    let i = col(c, "aggregate")?;
                    (Some(i), kind_of(schema.field(i).data_type()))
                }
            };
            let udaf = match (&agg.udaf, index) {
                (Some(u), Some(i)) => {
                    if matches!(spec.window, Some(WindowSpec::Session { .. })) {
                        return Err(Error::Data {
                            context: format!("aggregate '{}'", agg.alias),
                            message: "user-defined aggregates do not support session windows yet"
                                .into(),
                        });
                    }
                    let label = format!("query '{query}' aggregate '{}'", agg.alias);
                    Some(WasmAggregate::new(
                        u.clone(),
                        &label,
                        schema.field(i).clone(),
                    )?)
                }
                _ => None,
            };
            let out_type = match (agg.func, &udaf) {
                (AggFunc::Udaf, Some(u)) => u.output_field().data_type().clone(),
                (AggFunc::Udaf, None) => {
                    return Err(Error::Data {
                        context: format!("aggregate '{}'", agg.alias),
                        message: "a user-defined aggregate needs a module and a column".into(),
                    });
                }
                _ => builtin_output_type(agg, &schema).map_err(|p| Error::Data {
                    context: format!("aggregate '{}'", agg.alias),
                    message: p,
                })?,
            };
            fields.push(Field::new(&agg.alias, out_type, true));
            inputs.push((index, if udaf.is_some() { Kind::Any } else { kind }));
            udafs.push(udaf);
        }
        Ok(Aggregate {
            store: {
                let store = StateStore::open_partition(checkpoint, operator, partition, 10)?;
                let key_schema = schema
                    .project(&key_indices)
                    .map_err(|e| Error::data("groupBy", e))?;
                layout::write(
                    checkpoint,
                    operator,
                    &serde_json::json!({
                        "keySchema": layout::schema_hex(&key_schema),
                        "aggs": spec.aggs.iter().map(|a| a.alias.clone()).collect::<Vec<_>>(),
                        "window": spec.window.is_some(),
                    }),
                )?;
                store
            },
            output_schema: Arc::new(Schema::new(fields)),
            grouping: Arc::new(Grouping {
                event_time_key: watermark
                    .map(|w| w.column.clone())
                    .filter(|c| spec.window.is_none() && spec.group_by.contains(c)),
                spec,
                key_indices,
                key_types,
                converter,
                inputs,
            }),
            mode,
            groups: Groups::default(),
            sessions: HashMap::new(),
            changed: Vec::new(),
            removed: Vec::new(),
            udaf_rows: vec![Vec::new(); udafs.len()],
            udafs,
            stats: StateOperatorProgress {
                operator_name: "stateStoreSave".into(),
                ..Default::default()
            },
        })
    }

    /// The group-forming half, for the partial phase of a two-phase aggregation.
    fn grouping(&self) -> Arc<Grouping> {
        self.grouping.clone()
    }

    /// Adds row `i` to the group `key` (creating it with window end `end`).
    #[inline]
    fn update_group(&mut self, key: &[u8], end: i64, inputs: &[Input], i: usize, batch_id: u64) {
        let index = match self.groups.find(key) {
            Some(index) => index,
            None => {
                let accs = self.grouping.new_accs();
                self.groups.insert(Entry {
                    key: key.into(),
                    end,
                    touched: u64::MAX,
                    accs,
                })
            }
        };
        let entry = self.groups.entry_mut(index);
        for (acc, input) in entry.accs.iter_mut().zip(inputs) {
            acc.update(input, i);
        }
        for (a, rows) in self.udaf_rows.iter_mut().enumerate() {
            if self.udafs[a].is_some() {
                rows.push((index, i as u32));
            }
        }
        if entry.touched != batch_id {
            entry.touched = batch_id;
            self.changed.push(index);
        }
    }

    /// Fixed windows or no window.
    fn process_fixed(
        &mut self,
        batch_id: u64,
        late_us: i64,
        drop_late: bool,
        batch: &RecordBatch,
    ) -> Result<()> {
        let grouping = self.grouping.clone();
        let inputs = grouping.prepare_inputs(batch)?;
        let skipped = grouping.for_each_group_row(batch, late_us, drop_late, |key, end, i| {
            self.update_group(key, end, &inputs, i, batch_id)
        })?;
        self.note_skipped(skipped, true);
        fold_udaf_rows(
            &mut self.groups,
            &mut self.udafs,
            &self.grouping.inputs,
            &mut self.udaf_rows,
            batch,
        )
    }

    /// Counts rows dropped as late, and warns of rows without an event time (once per batch
    /// of the aggregation: `warn` is false in all but one of the places that saw them).
    fn note_skipped(&mut self, skipped: Skipped, warn: bool) {
        self.stats.num_rows_dropped_by_watermark += skipped.late;
        if skipped.null_times > 0 && warn {
            warn!(
                rows = skipped.null_times,
                "rows with a null event time have no window and were not aggregated"
            );
        }
    }

    fn process_sessions(
        &mut self,
        batch_id: u64,
        wm_us: i64,
        drop_late: bool,
        batch: &RecordBatch,
        gap: Duration,
        column: &str,
    ) -> Result<()> {
        let gap = gap.as_micros() as i64;
        let inputs = self.grouping.prepare_inputs(batch)?;
        let rows = self.grouping.group_rows(batch)?;
        let times = event_times(batch, column)?;
        // Rows in event-time order, so sessions grow forwards.
        let mut order: Vec<usize> = (0..batch.num_rows())
            .filter(|&i| times.is_valid(i))
            .collect();
        order.sort_by_key(|&i| times.value(i));
        for i in order {
            let t = times.value(i);
            if drop_late && t + gap <= wm_us {
                self.stats.num_rows_dropped_by_watermark += 1;
                continue;
            }
            let row: &[u8] = rows.as_ref().map_or(&[][..], |r| r.row(i).data());
            let key_of = |s: i64| -> Vec<u8> {
                let mut k = row.to_vec();
                k.extend_from_slice(&s.to_be_bytes());
                k
            };
            let mut accs = self.grouping.new_accs();
            for (acc, input) in accs.iter_mut().zip(&inputs) {
                acc.update(input, i);
            }
            let (mut start, mut end) = (t, t + gap);
            // Absorb every session of this key that [t, t+gap) overlaps.
            let starts = self.sessions.remove(row).unwrap_or_default();
            let mut kept = Vec::with_capacity(starts.len() + 1);
            for s in starts {
                let overlapping = self
                    .groups
                    .find(&key_of(s))
                    .filter(|&g| t < self.groups.entry(g).end && s < t + gap);
                match overlapping.and_then(|g| self.groups.remove(g)) {
                    Some(old) => {
                        start = start.min(s);
                        end = end.max(old.end);
                        let mut merged = old.accs;
                        for (m, a) in merged.iter_mut().zip(accs.into_vec()) {
                            m.merge(a);
                        }
                        accs = merged;
                        self.removed.push(old.key);
                    }
                    None => kept.push(s),
                }
            }
            kept.push(start);
            kept.sort_unstable();
            self.sessions.insert(row.into(), kept);
            let key = key_of(start);
            self.removed.retain(|r| **r != *key);
            let index = self.groups.insert(Entry {
                key: key.into(),
                end,
                touched: batch_id,
                accs,
            });
            self.changed.push(index);
        }
        Ok(())
    }

    fn window_start(key: &[u8]) -> i64 {
        key.len()
            .checked_sub(8)
            .and_then(|n| key[n..].try_into().ok())
            .map_or(NO_WINDOW, i64::from_be_bytes)
    }

    /// Forgets what the previous batch changed.
    fn begin_batch(&mut self) {
        self.changed.clear();
        self.removed.clear();
        self.stats.num_rows_dropped_by_watermark = 0;
    }

    /// Rows behind the first value (µs) are late when the second is true: complete mode keeps
    /// every row.
    fn lateness(&self, watermarks: Watermarks) -> (i64, bool) {
        (
            watermarks.late_ms.saturating_mul(1000),
            self.mode != OutputMode::Complete && watermarks.late_ms > 0,
        )
    }

    /// Merges pre-aggregated groups (a chunk's partial results, in the order the chunk first
    /// touched them) into the state, as if their rows had been folded in one by one. A Wasm
    /// aggregate's two states of one group are combined by its `merge`.
    fn merge_partials(&mut self, batch_id: u64, partials: Vec<Entry>) -> Result<()> {
        for partial in partials {
            let index = match self.groups.find(&partial.key) {
                Some(index) => {
                    let entry = self.groups.entry_mut(index);
                    let parts = entry.accs.iter_mut().zip(partial.accs.into_vec());
                    for (a, (acc, part)) in parts.enumerate() {
                        match (acc, part) {
                            (Acc::Udaf(state), Acc::Udaf(later)) => {
                                if state.is_empty() {
                                    *state = later;
                                } else if !later.is_empty() {
                                    let udaf = self.udafs[a].as_mut().ok_or_else(|| {
                                        Error::data("aggregate", "its module is missing")
                                    })?;
                                    *state = udaf.merge(state, &later)?;
                                }
                            }
                            (acc, part) => acc.merge(part),
                        }
                    }
                    index
                }
                None => self.groups.insert(partial),
            };
            let entry = self.groups.entry_mut(index);
            if entry.touched != batch_id {
                entry.touched = batch_id;
                self.changed.push(index);
            }
        }
        Ok(())
    }

    /// How output from several partitions is put back in the order one gives (by window
    /// start, then group), for append and complete mode (`None`: update mode keeps the order
    /// the batch touched groups in; or there is at most one group).
    fn readable_order(&self) -> Result<Option<OutputOrder>> {
        let keys = self.grouping.key_indices.len();
        let windowed = self.grouping.spec.window.is_some();
        if self.mode == OutputMode::Update || (keys == 0 && !windowed) {
            return Ok(None);
        }
        let mut fields = Vec::new();
        if windowed {
            fields.push(SortField::new(timestamp_type()));
        }
        fields.extend(
            self.grouping
                .key_types
                .iter()
                .map(|t| SortField::new(t.clone())),
        );
        let converter = RowConverter::new(fields).map_err(|e| Error::data("output order", e))?;
        Ok(Some(OutputOrder {
            converter,
            keys,
            windowed,
        }))
    }

    /// A fresh instance of each Wasm aggregate (`None` for built-in ones), for a worker of the
    /// partial phase.
    fn worker_udafs(&self) -> Result<Vec<Option<WasmAggregate>>> {
        self.udafs
            .iter()
            .map(|u| u.as_ref().map(WasmAggregate::another_instance).transpose())
            .collect()
    }

    /// Emits what the batch's rows made final (or changed, by output mode) and evicts what
    /// the watermark passed.
    fn finish_batch(&mut self, watermarks: Watermarks) -> Result<Vec<RecordBatch>> {
        let wm_us = watermarks.eviction_ms.saturating_mul(1000);
        let evictable = (self.grouping.spec.window.is_some()
            || self.grouping.event_time_key.is_some())
            && watermarks.eviction_ms > 0
            && self.mode != OutputMode::Complete;
        let expired: Vec<u32> = if evictable {
            self.groups
                .iter()
                .filter(|(_, e)| e.end <= wm_us)
                .map(|(i, _)| i)
                .collect()
        } else {
            Vec::new()
        };
        let out_indices: Vec<u32> = match self.mode {
            OutputMode::Complete => self.sorted(self.groups.iter().map(|(i, _)| i).collect()),
            // Changed groups in the order the batch first touched them: deterministic, and no
            // sort of what can be most of the state.
            OutputMode::Update => self
                .changed
                .iter()
                .copied()
                .filter(|&i| self.groups.is_live(i))
                .collect(),
            OutputMode::Append => self.sorted(expired.clone()),
        };
        let out = if out_indices.is_empty() {
            Vec::new()
        } else {
            let mut udafs = std::mem::take(&mut self.udafs);
            let emitted = self.emit(&out_indices, &mut udafs);
            self.udafs = udafs;
            vec![emitted?]
        };
        for i in expired {
            if let Some(entry) = self.groups.remove(i) {
                if let Some(starts) = self.sessions.get_mut(&entry.key[..entry.key.len() - 8]) {
                    let s = Self::window_start(&entry.key);
                    starts.retain(|x| *x != s);
                }
                self.removed.push(entry.key);
            }
        }
        if evictable {
            self.sessions.retain(|_, s| !s.is_empty());
        }
        Ok(out)
    }

    /// Builds output rows for the groups at `indices` (in that order).
    fn emit(&self, indices: &[u32], udafs: &mut [Option<WasmAggregate>]) -> Result<RecordBatch> {
        let entries: Vec<&Entry> = indices.iter().map(|&i| self.groups.entry(i)).collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output_schema.fields().len());
        if self.grouping.spec.window.is_some() {
            let starts = TimestampMicrosecondArray::from_iter_values(
                entries.iter().map(|e| Self::window_start(&e.key)),
            )
            .with_timezone(crate::schema::UTC);
            let ends = TimestampMicrosecondArray::from_iter_values(entries.iter().map(|e| e.end))
                .with_timezone(crate::schema::UTC);
            columns.push(Arc::new(StructArray::new(
                window_fields(),
                vec![Arc::new(starts), Arc::new(ends)],
                None,
            )));
        }
        if let Some(converter) = &self.grouping.converter {
            let keys_out = crate::state::row_keys::decode(
                converter,
                entries.iter().map(|e| &e.key[..e.key.len() - 8]),
            )
            .map_err(|e| Error::data("building group keys", e))?;
            for (col, t) in keys_out.into_iter().zip(&self.grouping.key_types) {
                debug_assert_eq!(col.data_type(), t);
                columns.push(col);
            }
        }
        for (a, (agg, (_, kind))) in self
            .grouping
            .spec
            .aggs
            .iter()
            .zip(&self.grouping.inputs)
            .enumerate()
        {
            if agg.func == AggFunc::Udaf {
                let states: Vec<&[u8]> = entries
                    .iter()
                    .map(|e| match &e.accs[a] {
                        Acc::Udaf(s) => s.as_slice(),
                        _ => &[],
                    })
                    .collect();
                let udaf = udafs
                    .get_mut(a)
                    .and_then(Option::as_mut)
                    .ok_or_else(|| Error::data("aggregate", "its module is missing"))?;
                columns.push(udaf.finish(&states)?);
                continue;
            }
            columns.push(build_column(
                agg.func,
                kind,
                entries.iter().map(|e| Some(&e.accs[a])),
            )?);
        }
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map_err(|e| Error::data("building aggregation output", e))
    }

    /// Live groups among `indices`, each once, by window start then key (for readable output).
    fn sorted(&self, mut indices: Vec<u32>) -> Vec<u32> {
        indices.retain(|&i| self.groups.is_live(i));
        indices.sort_unstable_by(|&a, &b| {
            let (ka, kb) = (&self.groups.entry(a).key, &self.groups.entry(b).key);
            Self::window_start(ka)
                .cmp(&Self::window_start(kb))
                .then_with(|| ka.cmp(kb))
        });
        indices.dedup();
        indices
    }

    fn encode_value(entry: &Entry, out: &mut Vec<u8>) {
        out.extend_from_slice(&entry.end.to_le_bytes());
        for a in entry.accs.iter() {
            a.encode(out);
        }
    }
}

/// The order of one partition's output, for the output of several: window start, then the
/// group columns, compared as [`Aggregate`] compares its groups (row format).
pub(crate) struct OutputOrder {
    converter: RowConverter,
    /// Group columns: the output's first columns after `window`.
    keys: usize,
    /// Whether the `window` struct comes first.
    windowed: bool,
}

impl OutputOrder {
    /// `batches` (rows of `schema`) as one batch in order.
    fn sort(&self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
        let all = arrow_select::concat::concat_batches(schema, batches)
            .map_err(|e| Error::data("ordering aggregation output", e))?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.keys + 1);
        let first_key = usize::from(self.windowed);
        if self.windowed {
            let window = all
                .column(0)
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| Error::data("ordering aggregation output", "no window column"))?;
            columns.push(window.column(0).clone());
        }
        columns.extend(
            all.columns()[first_key..first_key + self.keys]
                .iter()
                .cloned(),
        );
        let rows = self
            .converter
            .convert_columns(&columns)
            .map_err(|e| Error::data("ordering aggregation output", e))?;
        let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
        order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
        let sorted = arrow_select::take::take_record_batch(&all, &UInt32Array::from(order))
            .map_err(|e| Error::data("ordering aggregation output", e))?;
        Ok(vec![sorted])
    }
}

fn window_fields() -> Fields {
    Fields::from(vec![
        Field::new("start", timestamp_type(), false),
        Field::new("end", timestamp_type(), false),
    ])
}

/// The result type of built-in aggregate `agg` over `schema`, or why it cannot be computed.
fn builtin_output_type(agg: &AggSpec, schema: &Schema) -> std::result::Result<DataType, String> {
    let (index, kind) = match &agg.column {
        None => (None, Kind::Star),
        Some(c) => match schema.index_of(c) {
            Ok(i) => (Some(i), kind_of(schema.field(i).data_type())),
            Err(_) => {
                return Err(format!(
                    "column '{c}' is not among the columns reaching the aggregation ({})",
                    crate::schema::column_names(schema)
                ));
            }
        },
    };
    let f = agg.func;
    Ok(match (f, &kind) {
        (AggFunc::CountDistinct, Kind::Int(_) | Kind::Float(_) | Kind::Str) => DataType::Int64,
        (AggFunc::CountDistinct, _) => {
            return Err("count_distinct needs a numeric or string column".into());
        }
        (AggFunc::Count, _) => DataType::Int64,
        (AggFunc::Avg, Kind::Int(_) | Kind::Float(_)) => DataType::Float64,
        (AggFunc::Sum, Kind::Int(_)) => DataType::Int64,
        (AggFunc::Sum, Kind::Float(_)) => DataType::Float64,
        (
            AggFunc::Min | AggFunc::Max | AggFunc::First | AggFunc::Last,
            Kind::Int(t) | Kind::Float(t),
        ) => t.clone(),
        (AggFunc::Min | AggFunc::Max | AggFunc::First | AggFunc::Last, Kind::Str) => DataType::Utf8,
        (AggFunc::CollectList | AggFunc::CollectSet, Kind::Int(t) | Kind::Float(t)) => {
            DataType::new_list(t.clone(), true)
        }
        (AggFunc::CollectList | AggFunc::CollectSet, Kind::Str) => {
            DataType::new_list(DataType::Utf8, true)
        }
        (f, _) => {
            return Err(format!(
                "{} of column '{}' ({}) is not supported; it needs a numeric{} column",
                format!("{f:?}").to_ascii_lowercase(),
                agg.column.as_deref().unwrap_or("*"),
                index.map_or("no column".to_owned(), |i| schema
                    .field(i)
                    .data_type()
                    .to_string()),
                if matches!(f, AggFunc::Sum | AggFunc::Avg) {
                    ""
                } else {
                    " or string"
                }
            ));
        }
    })
}

impl AggregateSpec {
    /// Whether this aggregation runs in two phases ([`shuffle`]): fixed windows or none (a
    /// session's extent depends on every row of its key, so sessions form where the key's
    /// state is), and Wasm aggregates only without `groupBy` (their partial states are
    /// combined by one `merge` call per group and chunk: cheap for a few windows, too many
    /// calls for many keys, whose rows are routed to their state partition instead).
    pub fn merges_partials(&self) -> bool {
        !matches!(self.window, Some(WindowSpec::Session { .. }))
            && (self.group_by.is_empty() || !self.aggs.iter().any(|a| a.func == AggFunc::Udaf))
    }

    /// Checks this aggregation against the schema that reaches it: the grouping and window
    /// columns exist (the window's is a TIMESTAMP) and every built-in aggregate can take its
    /// column's type. `sluice validate` calls it on a declared schema; the operator calls it
    /// when it starts. The error's key is the pipeline path of the field at fault.
    pub fn check_input(&self, schema: &Schema) -> std::result::Result<(), SpecProblem> {
        for (i, c) in self.group_by.iter().enumerate() {
            if schema.index_of(c).is_err() {
                return Err(SpecProblem {
                    key: format!("aggregate.groupBy[{i}]"),
                    message: format!(
                        "column '{c}' is not among the columns reaching the aggregation ({})",
                        crate::schema::column_names(schema)
                    ),
                });
            }
        }
        if let Some(w) = &self.window {
            crate::watermark::check_event_time_column(schema, w.column(), "window").map_err(
                |e| SpecProblem {
                    key: "aggregate.window.column".into(),
                    message: e.to_string(),
                },
            )?;
        }
        for (i, agg) in self.aggs.iter().enumerate() {
            let problem = |message| SpecProblem {
                key: format!("aggregate.aggs[{i}].column"),
                message,
            };
            if agg.func == AggFunc::Udaf {
                if let Some(c) = &agg.column
                    && schema.index_of(c).is_err()
                {
                    return Err(problem(format!(
                        "column '{c}' is not among the columns reaching the aggregation ({})",
                        crate::schema::column_names(schema)
                    )));
                }
                continue;
            }
            builtin_output_type(agg, schema).map_err(problem)?;
        }
        Ok(())
    }
}

impl StatefulOperator for Aggregate {
    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        self.groups.clear();
        self.sessions.clear();
        let n = self.grouping.spec.aggs.len();
        for (key, value) in self.store.load(version)? {
            // Every key ends in its window's start (8 bytes), which the code below slices off.
            if key.len() < 8 {
                return Err(Error::data(
                    "restoring aggregation state",
                    "a key is truncated",
                ));
            }
            let mut v: &[u8] = &value;
            let end = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_le_bytes)
                .ok_or_else(|| {
                    Error::data("restoring aggregation state", "a value is truncated")
                })?;
            v = &v[8..];
            let accs = (0..n)
                .map(|_| Acc::decode(&mut v))
                .collect::<Option<Box<[Acc]>>>()
                .ok_or_else(|| Error::data("restoring aggregation state", "a value is corrupt"))?;
            if matches!(self.grouping.spec.window, Some(WindowSpec::Session { .. })) {
                let row: Box<[u8]> = key[..key.len().saturating_sub(8)].into();
                self.sessions
                    .entry(row)
                    .or_default()
                    .push(Self::window_start(&key));
            }
            self.groups.insert(Entry {
                key,
                end,
                touched: u64::MAX,
                accs,
            });
        }
        for starts in self.sessions.values_mut() {
            starts.sort_unstable();
        }
        Ok(())
    }

    fn process(&mut self, clock: BatchClock, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let (batch_id, watermarks) = (clock.batch_id, clock.watermarks);
        self.begin_batch();
        let (late_us, drop_late) = self.lateness(watermarks);
        for batch in &input {
            match self.grouping.spec.window.clone() {
                Some(WindowSpec::Session { gap, column }) => {
                    self.process_sessions(batch_id, late_us, drop_late, batch, gap, &column)?
                }
                _ => self.process_fixed(batch_id, late_us, drop_late, batch)?,
            }
        }
        self.finish_batch(watermarks)
    }

    fn commit(&mut self, batch_id: u64) -> Result<()> {
        let started = Instant::now();
        let (groups, changed, removed) = (&self.groups, &self.changed, &self.removed);
        self.store.commit(
            batch_id,
            |w| {
                for &i in changed {
                    if groups.is_live(i) {
                        let e = groups.entry(i);
                        w.put(&e.key, |b| Self::encode_value(e, b))?;
                    }
                }
                for key in removed {
                    if groups.find(key).is_none() {
                        w.remove(key)?;
                    }
                }
                Ok(())
            },
            |w| {
                for (_, e) in groups.iter() {
                    w.put(&e.key, |b| Self::encode_value(e, b))?;
                }
                Ok(())
            },
        )?;
        self.stats.num_rows_total = self.groups.len() as u64;
        self.stats.num_rows_updated = self.changed.len() as u64;
        self.stats.num_rows_removed = self.removed.len() as u64;
        // Per group: its slot, its accumulators, its table index; plus every key's bytes.
        let per_group = std::mem::size_of::<Option<Entry>>()
            + self.grouping.inputs.len() * std::mem::size_of::<Acc>()
            + 8;
        self.stats.memory_used_bytes =
            (self.groups.len() * per_group + self.groups.key_bytes) as u64;
        self.stats.commit_time_ms = started.elapsed().as_millis() as u64;
        Ok(())
    }

    fn purge(&mut self, keep_from: u64) -> Result<()> {
        self.store.purge(keep_from)
    }

    fn progress(&self) -> StateOperatorProgress {
        self.stats.clone()
    }

    fn wants_no_data_batches(&self) -> bool {
        self.grouping.spec.window.is_some() && self.mode != OutputMode::Complete
    }
}

/// The groups in state after batch `version` as JSON rows (for `sluice state show`): the
/// group columns, the window, and each aggregate's accumulator.
pub fn state_rows(
    checkpoint: &crate::storage::Location,
    operator: &str,
    version: u64,
    matches: &dyn Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<Vec<serde_json::Value>> {
    let corrupt = |message: String| layout::corrupt(checkpoint, operator, message);
    let (spec, schema) = layout::read_with_keys(checkpoint, operator)?;
    let aggs: Vec<String> = spec["aggs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let windowed = spec["window"].as_bool().unwrap_or(false);
    let state = StateStore::load_all_sorted(checkpoint, operator, version)?;
    if state.iter().any(|(k, _)| k.len() < 8) {
        return Err(corrupt("a key is truncated".into()));
    }
    let group = |k: &[u8]| -> Vec<u8> { k[..k.len().saturating_sub(8)].to_vec() };
    let groups: Vec<Vec<u8>> = state.iter().map(|(k, _)| group(k)).collect();
    let keys = layout::keys_as_json(&schema, groups.iter().map(|g| &g[..])).map_err(corrupt)?;
    let mut rows = Vec::new();
    for ((key, value), group) in state.iter().zip(keys) {
        if !matches(&group) {
            continue;
        }
        let mut v: &[u8] = value;
        let end = v
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes)
            .ok_or_else(|| corrupt("a value is truncated".into()))?;
        v = &v[8..];
        let mut accs = serde_json::Map::new();
        for name in &aggs {
            let acc = Acc::decode(&mut v).ok_or_else(|| corrupt("a value is corrupt".into()))?;
            accs.insert(name.clone(), acc.to_json());
        }
        let mut row = serde_json::json!({ "operator": operator, "key": group, "aggs": accs });
        if windowed {
            row["window"] = serde_json::json!({
                "start": layout::iso_us(Aggregate::window_start(key)),
                "end": layout::iso_us(end),
            });
        }
        rows.push(row);
    }
    Ok(rows)
}
