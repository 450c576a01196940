//! Streaming aggregation: `groupBy(keys[, window]).agg(count, sum, min, max, avg, first, last,
//! count distinct)` over micro-batches, with state that survives restarts.
//!
//! Groups live in a hash map keyed by the Arrow row encoding of the group columns followed by
//! the window start (8 bytes, big-endian), so each input row costs one hash lookup with no
//! allocation unless its group is new; the accumulators are updated in place. Rows whose
//! window ended at or behind the watermark are dropped and counted (except in complete
//! mode, which keeps everything). Session windows merge per key as rows arrive.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::StringBuilder;
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use foldhash::fast::FixedState;
use hashbrown::HashTable;
use tracing::warn;

use super::window::{WindowSpec, fixed_windows};
use super::{BatchClock, SpecProblem, StateOperatorProgress, StatefulOperator};
use crate::error::{Error, Result};
use crate::pipeline::OutputMode;
use crate::schema::timestamp_type;
use crate::state::{StateStore, layout};

/// The state store's name for aggregation (`state/aggregate/` in the checkpoint).
pub const STATE_NAME: &str = "aggregate";
use crate::wasm::aggregate::{UdafSpec, WasmAggregate};
use crate::watermark::event_times;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `count(*)` without a column, `count(col)` (non-null values) with one.
    Count,
    /// Sum of the values (BIGINT for integer input, DOUBLE for floating point).
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean, DOUBLE.
    Avg,
    /// First non-null value seen.
    First,
    /// Last non-null value seen.
    Last,
    /// Number of distinct non-null values.
    CountDistinct,
    /// A user-defined aggregate in a Wasm component (`AggSpec::udaf`).
    Udaf,
}

impl AggFunc {
    /// Parses a pipeline name (`count`, `sum`, ..., `count_distinct`).
    pub fn parse(name: &str) -> Option<AggFunc> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "avg" | "mean" => AggFunc::Avg,
            "first" => AggFunc::First,
            "last" => AggFunc::Last,
            "count_distinct" | "countdistinct" | "approx_count_distinct" => AggFunc::CountDistinct,
            _ => return None,
        })
    }
}

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

/// How an aggregate reads its input column.
#[derive(Debug, Clone)]
enum Kind {
    Star,
    /// Integer-like (ints, timestamps, dates), read as i64; output cast back to this type.
    Int(DataType),
    /// Floating point, read as f64.
    Float(DataType),
    Str,
    /// Any other type: only its nulls are looked at (count).
    Any,
}

/// A value kept by min/max/first/last/count distinct. Floats are kept as bits so values can
/// be hashed; they compare numerically.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scalar {
    I(i64),
    F(u64),
    S(Box<str>),
}

/// A value of an input row, borrowed from its array: compared with, or looked up among, kept
/// values without copying it, and copied into a [`Scalar`] only when it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ScalarRef<'a> {
    I(i64),
    F(u64),
    S(&'a str),
}

impl Scalar {
    fn as_ref(&self) -> ScalarRef<'_> {
        match self {
            Scalar::I(v) => ScalarRef::I(*v),
            Scalar::F(v) => ScalarRef::F(*v),
            Scalar::S(v) => ScalarRef::S(v),
        }
    }

    fn compare(&self, other: &Scalar) -> Ordering {
        self.as_ref().compare(other.as_ref())
    }
}

// Hashed as its borrowed form, so a set of kept values can be probed with a row's value.
impl std::hash::Hash for Scalar {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state)
    }
}

impl hashbrown::Equivalent<Scalar> for ScalarRef<'_> {
    fn equivalent(&self, key: &Scalar) -> bool {
        *self == key.as_ref()
    }
}

impl ScalarRef<'_> {
    fn to_scalar(self) -> Scalar {
        match self {
            ScalarRef::I(v) => Scalar::I(v),
            ScalarRef::F(v) => Scalar::F(v),
            ScalarRef::S(v) => Scalar::S(v.into()),
        }
    }

    fn compare(self, other: ScalarRef<'_>) -> Ordering {
        match (self, other) {
            (ScalarRef::I(a), ScalarRef::I(b)) => a.cmp(&b),
            (ScalarRef::F(a), ScalarRef::F(b)) => f64::from_bits(a).total_cmp(&f64::from_bits(b)),
            (ScalarRef::S(a), ScalarRef::S(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// The distinct values of a `count_distinct` group.
type DistinctSet = hashbrown::HashSet<Scalar, FixedState>;

/// An accumulator.
#[derive(Debug, Clone, PartialEq)]
enum Acc {
    Count(i64),
    SumI(Option<i64>),
    SumF(Option<f64>),
    Avg(f64, i64),
    Min(Option<Scalar>),
    Max(Option<Scalar>),
    First(Option<Scalar>),
    Last(Option<Scalar>),
    // Boxed on purpose: it keeps every accumulator (most are a few bytes) at 32 bytes, which
    // matters with a million groups in state.
    #[allow(clippy::box_collection)]
    Distinct(Box<DistinctSet>),
    /// A user-defined aggregate's opaque state (updated per batch, not per row).
    Udaf(Vec<u8>),
}

/// One batch's view of an aggregate's input column.
enum Input {
    Star,
    I(Int64Array),
    F(Float64Array),
    S(StringArray),
    Any(ArrayRef),
}

impl Input {
    /// Row `i`'s value, borrowed (`None`: null, or a column kind no scalar holds).
    fn value(&self, i: usize) -> Option<ScalarRef<'_>> {
        match self {
            Input::I(a) if a.is_valid(i) => Some(ScalarRef::I(a.value(i))),
            Input::F(a) if a.is_valid(i) => Some(ScalarRef::F(a.value(i).to_bits())),
            Input::S(a) if a.is_valid(i) => Some(ScalarRef::S(a.value(i))),
            _ => None,
        }
    }

    /// Row `i`'s value, copied.
    fn scalar(&self, i: usize) -> Option<Scalar> {
        self.value(i).map(ScalarRef::to_scalar)
    }

    /// Compares row `i` with a kept value without copying it (`None`: the row is null).
    fn compare_with(&self, i: usize, kept: &Scalar) -> Option<Ordering> {
        Some(self.value(i)?.compare(kept.as_ref()))
    }

    fn is_present(&self, i: usize) -> bool {
        match self {
            Input::Star => true,
            Input::I(a) => a.is_valid(i),
            Input::F(a) => a.is_valid(i),
            Input::S(a) => a.is_valid(i),
            Input::Any(a) => a.is_valid(i),
        }
    }
}

impl Acc {
    fn new(func: AggFunc, kind: &Kind) -> Acc {
        match func {
            AggFunc::Count => Acc::Count(0),
            AggFunc::Sum if matches!(kind, Kind::Float(_)) => Acc::SumF(None),
            AggFunc::Sum => Acc::SumI(None),
            AggFunc::Avg => Acc::Avg(0.0, 0),
            AggFunc::Min => Acc::Min(None),
            AggFunc::Max => Acc::Max(None),
            AggFunc::First => Acc::First(None),
            AggFunc::Last => Acc::Last(None),
            AggFunc::CountDistinct => Acc::Distinct(Box::default()),
            AggFunc::Udaf => Acc::Udaf(Vec::new()),
        }
    }

    #[inline]
    fn update(&mut self, input: &Input, i: usize) {
        match self {
            Acc::Count(n) => *n += input.is_present(i) as i64,
            Acc::SumI(s) => {
                if let Input::I(a) = input
                    && a.is_valid(i)
                {
                    // Wrapping, not panicking: an overflowing sum is the user's data, not a crash.
                    *s = Some(s.unwrap_or(0).wrapping_add(a.value(i)));
                }
            }
            Acc::SumF(s) => {
                if let Input::F(a) = input
                    && a.is_valid(i)
                {
                    *s = Some(s.unwrap_or(0.0) + a.value(i));
                }
            }
            Acc::Avg(sum, n) => match input {
                Input::I(a) if a.is_valid(i) => {
                    *sum += a.value(i) as f64;
                    *n += 1;
                }
                Input::F(a) if a.is_valid(i) => {
                    *sum += a.value(i);
                    *n += 1;
                }
                _ => {}
            },
            // Compare first, copy only a new extreme: no allocation per string row.
            Acc::Min(m) => match m {
                Some(kept) => {
                    if input.compare_with(i, kept) == Some(Ordering::Less) {
                        *m = input.scalar(i);
                    }
                }
                None => *m = input.scalar(i),
            },
            Acc::Max(m) => match m {
                Some(kept) => {
                    if input.compare_with(i, kept) == Some(Ordering::Greater) {
                        *m = input.scalar(i);
                    }
                }
                None => *m = input.scalar(i),
            },
            Acc::First(f) => {
                if f.is_none() {
                    *f = input.scalar(i);
                }
            }
            // Copy a row's value only when it changes what is kept: no allocation for a
            // repeated last value or an already counted distinct one.
            Acc::Last(l) => {
                if let Some(v) = input.value(i)
                    && l.as_ref().is_none_or(|kept| kept.as_ref() != v)
                {
                    *l = Some(v.to_scalar());
                }
            }
            Acc::Distinct(set) => {
                if let Some(v) = input.value(i)
                    && !set.contains(&v)
                {
                    set.insert(v.to_scalar());
                }
            }
            // Collected per batch and handed to the guest in one call (Aggregate::flush_udafs).
            Acc::Udaf(_) => {}
        }
    }

    /// Combines `other` (a later part of the same group) into `self` (session merges).
    fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::SumI(a), Acc::SumI(Some(b))) => *a = Some(a.unwrap_or(0).wrapping_add(b)),
            (Acc::SumF(a), Acc::SumF(Some(b))) => *a = Some(a.unwrap_or(0.0) + b),
            (Acc::Avg(s, n), Acc::Avg(s2, n2)) => {
                *s += s2;
                *n += n2;
            }
            (Acc::Min(a), Acc::Min(Some(b)))
                if a.as_ref().is_none_or(|c| b.compare(c) == Ordering::Less) =>
            {
                *a = Some(b)
            }
            (Acc::Max(a), Acc::Max(Some(b)))
                if a.as_ref().is_none_or(|c| b.compare(c) == Ordering::Greater) =>
            {
                *a = Some(b)
            }
            (Acc::First(a), Acc::First(b)) if a.is_none() => *a = b,
            (Acc::Last(a), Acc::Last(b)) if b.is_some() => *a = b,
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(*b),
            _ => {}
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        fn scalar(out: &mut Vec<u8>, s: Option<&Scalar>) {
            match s {
                None => out.push(0),
                Some(Scalar::I(v)) => {
                    out.push(1);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Some(Scalar::F(v)) => {
                    out.push(2);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Some(Scalar::S(v)) => {
                    out.push(3);
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
        match self {
            Acc::Count(n) => {
                out.push(0);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::SumI(s) => {
                out.push(1);
                scalar(out, s.map(Scalar::I).as_ref());
            }
            Acc::SumF(s) => {
                out.push(2);
                scalar(out, s.map(|f| Scalar::F(f.to_bits())).as_ref());
            }
            Acc::Avg(s, n) => {
                out.push(3);
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::Min(s) => {
                out.push(4);
                scalar(out, s.as_ref());
            }
            Acc::Max(s) => {
                out.push(5);
                scalar(out, s.as_ref());
            }
            Acc::First(s) => {
                out.push(6);
                scalar(out, s.as_ref());
            }
            Acc::Last(s) => {
                out.push(7);
                scalar(out, s.as_ref());
            }
            Acc::Udaf(state) => {
                out.push(9);
                out.extend_from_slice(&(state.len() as u32).to_le_bytes());
                out.extend_from_slice(state);
            }
            Acc::Distinct(set) => {
                out.push(8);
                out.extend_from_slice(&(set.len() as u32).to_le_bytes());
                for v in set.iter() {
                    scalar(out, Some(v));
                }
            }
        }
    }

    fn decode(input: &mut &[u8]) -> Option<Acc> {
        fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = input.split_at_checked(n)?;
            *input = tail;
            Some(head)
        }
        fn i64_(input: &mut &[u8]) -> Option<i64> {
            Some(i64::from_le_bytes(take(input, 8)?.try_into().ok()?))
        }
        fn scalar(input: &mut &[u8]) -> Option<Option<Scalar>> {
            Some(match take(input, 1)?[0] {
                0 => None,
                1 => Some(Scalar::I(i64_(input)?)),
                2 => Some(Scalar::F(i64_(input)? as u64)),
                3 => {
                    let n = u32::from_le_bytes(take(input, 4)?.try_into().ok()?) as usize;
                    Some(Scalar::S(std::str::from_utf8(take(input, n)?).ok()?.into()))
                }
                _ => return None,
            })
        }
        Some(match take(input, 1)?[0] {
            0 => Acc::Count(i64_(input)?),
            1 => Acc::SumI(scalar(input)?.map(|s| if let Scalar::I(v) = s { v } else { 0 })),
            2 => Acc::SumF(scalar(input)?.map(|s| {
                if let Scalar::F(v) = s {
                    f64::from_bits(v)
                } else {
                    0.0
                }
            })),
            3 => {
                let s = f64::from_bits(i64_(input)? as u64);
                Acc::Avg(s, i64_(input)?)
            }
            4 => Acc::Min(scalar(input)?),
            5 => Acc::Max(scalar(input)?),
            6 => Acc::First(scalar(input)?),
            7 => Acc::Last(scalar(input)?),
            8 => {
                let n = u32::from_le_bytes(take(input, 4)?.try_into().ok()?) as usize;
                let mut set = DistinctSet::with_capacity_and_hasher(n, FixedState::default());
                for _ in 0..n {
                    set.insert(scalar(input)??);
                }
                Acc::Distinct(Box::new(set))
            }
            9 => {
                let n = u32::from_le_bytes(take(input, 4)?.try_into().ok()?) as usize;
                Acc::Udaf(take(input, n)?.to_vec())
            }
            _ => return None,
        })
    }
}

/// A group's state: its key (group row bytes, then the window start), its window end (µs;
/// `i64::MAX` without a window) and accumulators.
#[derive(Debug)]
struct Entry {
    key: Box<[u8]>,
    end: i64,
    /// The batch that last changed it (to list each changed group once).
    touched: u64,
    accs: Box<[Acc]>,
}

/// The groups: a slab of entries and a hash table of slab indices, so a row costs one hash
/// of its key bytes and no allocation unless its group is new, and "changed this batch" is a
/// list of small indices, not of copied keys.
#[derive(Debug, Default)]
struct Groups {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    table: HashTable<u32>,
    hasher: FixedState,
    /// Bytes of all live keys, kept as groups come and go (for the state's memory figure).
    key_bytes: usize,
}

impl Groups {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn entry(&self, i: u32) -> &Entry {
        self.entries[i as usize].as_ref().expect("live group index")
    }

    fn entry_mut(&mut self, i: u32) -> &mut Entry {
        self.entries[i as usize].as_mut().expect("live group index")
    }

    fn is_live(&self, i: u32) -> bool {
        matches!(self.entries.get(i as usize), Some(Some(_)))
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let entries = &self.entries;
        self.table
            .find(self.hash(key), |&i| {
                entries[i as usize].as_ref().is_some_and(|e| &*e.key == key)
            })
            .copied()
    }

    fn insert(&mut self, entry: Entry) -> u32 {
        let hash = self.hash(&entry.key);
        self.key_bytes += entry.key.len();
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(entry);
                i
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            hasher.hash_one(&entries[j as usize].as_ref().expect("live group index").key)
        });
        i
    }

    fn remove(&mut self, i: u32) -> Option<Entry> {
        let hash = self.hash(&self.entries.get(i as usize)?.as_ref()?.key);
        if let Ok(found) = self.table.find_entry(hash, |&j| j == i) {
            found.remove();
        }
        self.free.push(i);
        let entry = self.entries[i as usize].take();
        self.key_bytes -= entry.as_ref().map_or(0, |e| e.key.len());
        entry
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as u32, e)))
    }

    fn clear(&mut self) {
        *self = Groups::default();
    }
}

/// The aggregation operator.
pub struct Aggregate {
    spec: AggregateSpec,
    mode: OutputMode,
    output_schema: SchemaRef,
    key_indices: Vec<usize>,
    key_types: Vec<DataType>,
    converter: Option<RowConverter>,
    /// Per aggregate: input column index and how to read it.
    inputs: Vec<(Option<usize>, Kind)>,
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
    /// In an aggregation by window alone split into partitions, every partition sees every
    /// row and keeps the windows whose key hashes to it: (this partition, partitions).
    owner: Option<(u32, u32)>,
}

const NO_WINDOW: i64 = i64::MIN;

impl Aggregate {
    /// Builds the operator for input `schema`, with its state in partition `partition` under
    /// `checkpoint`.
    pub fn new(
        spec: AggregateSpec,
        mode: OutputMode,
        schema: SchemaRef,
        checkpoint: &Path,
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
        let mut fields: Vec<Field> = key_indices
            .iter()
            .map(|&i| schema.field(i).clone().with_nullable(true))
            .collect();
        if spec.window.is_some() {
            fields.push(Field::new(
                "window",
                DataType::Struct(window_fields()),
                false,
            ));
        }
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
                let store = StateStore::open_partition(checkpoint, STATE_NAME, partition, 10)?;
                let key_schema = schema
                    .project(&key_indices)
                    .map_err(|e| Error::data("groupBy", e))?;
                layout::write(
                    checkpoint,
                    STATE_NAME,
                    &serde_json::json!({
                        "keySchema": layout::schema_hex(&key_schema),
                        "aggs": spec.aggs.iter().map(|a| a.alias.clone()).collect::<Vec<_>>(),
                        "window": spec.window.is_some(),
                    }),
                )?;
                store
            },
            output_schema: Arc::new(Schema::new(fields)),
            spec,
            mode,
            key_indices,
            key_types,
            converter,
            inputs,
            groups: Groups::default(),
            owner: None,
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

    fn new_accs(&self) -> Box<[Acc]> {
        self.spec
            .aggs
            .iter()
            .zip(&self.inputs)
            .map(|(a, (_, k))| Acc::new(a.func, k))
            .collect()
    }

    fn prepare_inputs(&self, batch: &RecordBatch) -> Result<Vec<Input>> {
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

    fn group_rows(&self, batch: &RecordBatch) -> Result<Option<arrow_row::Rows>> {
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

    /// Adds row `i` to the group `key` (creating it with window end `end`).
    #[inline]
    fn update_group(&mut self, key: &[u8], end: i64, inputs: &[Input], i: usize, batch_id: u64) {
        let index = match self.groups.find(key) {
            Some(index) => index,
            None => {
                let accs = self.new_accs();
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
        wm_us: i64,
        drop_late: bool,
        batch: &RecordBatch,
    ) -> Result<()> {
        let inputs = self.prepare_inputs(batch)?;
        let rows = self.group_rows(batch)?;
        let window = self.spec.window.clone();
        let times = match &window {
            Some(w) => Some(event_times(batch, w.column())?),
            None => None,
        };
        let mut key = Vec::with_capacity(64);
        let mut null_times = 0u64;
        for i in 0..batch.num_rows() {
            let row = rows.as_ref().map_or(&[][..], |r| r.row(i).data());
            match (&window, &times) {
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
                        null_times += 1;
                        continue;
                    }
                    let d = duration.as_micros() as i64;
                    fixed_windows(ts.value(i), *duration, *slide, *start, |ws| {
                        key.clear();
                        key.extend_from_slice(row);
                        key.extend_from_slice(&ws.to_be_bytes());
                        if self.owner.is_some_and(|(p, n)| {
                            crate::operators::partitioned::partition_of(&key, n) != p
                        }) {
                            // Another partition's window.
                        } else if drop_late && ws + d <= wm_us {
                            self.stats.num_rows_dropped_by_watermark += 1;
                        } else {
                            self.update_group(&key, ws + d, &inputs, i, batch_id);
                        }
                    });
                }
                _ => {
                    key.clear();
                    key.extend_from_slice(row);
                    key.extend_from_slice(&NO_WINDOW.to_be_bytes());
                    self.update_group(&key, i64::MAX, &inputs, i, batch_id);
                }
            }
        }
        if null_times > 0 && self.owner.is_none_or(|(p, _)| p == 0) {
            warn!(
                rows = null_times,
                "rows with a null event time have no window and were not aggregated"
            );
        }
        self.flush_udafs(batch)
    }

    /// Hands each user-defined aggregate the rows this batch routed to it: one call with the
    /// states of all touched groups.
    fn flush_udafs(&mut self, batch: &RecordBatch) -> Result<()> {
        for a in 0..self.udafs.len() {
            let pairs = std::mem::take(&mut self.udaf_rows[a]);
            let (Some(udaf), Some(column)) = (self.udafs[a].as_mut(), self.inputs[a].0) else {
                continue;
            };
            if pairs.is_empty() {
                continue;
            }
            let mut slot_of: HashMap<u32, u32> = HashMap::new();
            let mut groups: Vec<u32> = Vec::new();
            let group_ids: Vec<u32> = pairs
                .iter()
                .map(|(g, _)| {
                    *slot_of.entry(*g).or_insert_with(|| {
                        groups.push(*g);
                        (groups.len() - 1) as u32
                    })
                })
                .collect();
            let rows = arrow_array::UInt32Array::from_iter_values(pairs.iter().map(|(_, r)| *r));
            let values = arrow_select::take::take(batch.column(column), &rows, None)
                .map_err(|e| Error::data("routing rows to an aggregate", e))?;
            let states: Vec<&[u8]> = groups
                .iter()
                .map(|&g| match &self.groups.entry(g).accs[a] {
                    Acc::Udaf(s) => s.as_slice(),
                    _ => &[],
                })
                .collect();
            let new = udaf.update(&states, &group_ids, values)?;
            for (g, state) in groups.into_iter().zip(new) {
                self.groups.entry_mut(g).accs[a] = Acc::Udaf(state);
            }
        }
        Ok(())
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
        let inputs = self.prepare_inputs(batch)?;
        let rows = self.group_rows(batch)?;
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
            let mut accs = self.new_accs();
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

    /// Makes this instance partition `partition` of `partitions` of an aggregation by a fixed
    /// window alone: it is given every row and keeps only the windows that hash to it (there
    /// is no group key to route rows by). Refused for other aggregations.
    pub fn own_windows(&mut self, partition: usize, partitions: usize) -> Result<()> {
        if !self.spec.group_by.is_empty()
            || !matches!(self.spec.window, Some(WindowSpec::Fixed { .. }))
        {
            return Err(Error::data(
                "aggregate",
                "only an aggregation by a tumbling or sliding window alone splits by window",
            ));
        }
        self.owner = Some((partition as u32, partitions as u32));
        Ok(())
    }

    /// Builds output rows for the groups at `indices` (in that order).
    fn emit(&self, indices: &[u32], udafs: &mut [Option<WasmAggregate>]) -> Result<RecordBatch> {
        let entries: Vec<&Entry> = indices.iter().map(|&i| self.groups.entry(i)).collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output_schema.fields().len());
        if let Some(converter) = &self.converter {
            let parser = converter.parser();
            let rows = entries
                .iter()
                .map(|e| parser.parse(&e.key[..e.key.len() - 8]));
            let keys_out = converter
                .convert_rows(rows)
                .map_err(|e| Error::data("building group keys", e))?;
            for (col, t) in keys_out.into_iter().zip(&self.key_types) {
                debug_assert_eq!(col.data_type(), t);
                columns.push(col);
            }
        }
        if self.spec.window.is_some() {
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
        for (a, (agg, (_, kind))) in self.spec.aggs.iter().zip(&self.inputs).enumerate() {
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

fn kind_of(t: &DataType) -> Kind {
    use DataType::*;
    match t {
        Int8
        | Int16
        | Int32
        | Int64
        | UInt8
        | UInt16
        | UInt32
        | UInt64
        | Timestamp(_, _)
        | Date32
        | Date64 => Kind::Int(t.clone()),
        Float16 | Float32 | Float64 | Decimal128(_, _) | Decimal256(_, _) => Kind::Float(t.clone()),
        Utf8 | LargeUtf8 | Utf8View => Kind::Str,
        _ => Kind::Any,
    }
}

fn build_column<'a>(
    func: AggFunc,
    kind: &Kind,
    accs: impl Iterator<Item = Option<&'a Acc>>,
) -> Result<ArrayRef> {
    let scalars = |accs: &mut dyn Iterator<Item = Option<&'a Acc>>| -> Vec<Option<Scalar>> {
        accs.map(|a| match a {
            Some(Acc::Min(s) | Acc::Max(s) | Acc::First(s) | Acc::Last(s)) => s.clone(),
            _ => None,
        })
        .collect()
    };
    let mut accs = accs;
    Ok(match func {
        // Built by the guest's `finish` (Aggregate::emit); never reaches here.
        AggFunc::Udaf => arrow_array::new_null_array(&DataType::Null, accs.count()),
        AggFunc::Count | AggFunc::CountDistinct => {
            Arc::new(Int64Array::from_iter(accs.map(|a| match a {
                Some(Acc::Count(n)) => Some(*n),
                Some(Acc::Distinct(s)) => Some(s.len() as i64),
                _ => None,
            })))
        }
        AggFunc::Sum => match kind {
            Kind::Float(_) => Arc::new(Float64Array::from_iter(accs.map(|a| match a {
                Some(Acc::SumF(s)) => *s,
                _ => None,
            }))),
            _ => Arc::new(Int64Array::from_iter(accs.map(|a| match a {
                Some(Acc::SumI(s)) => *s,
                _ => None,
            }))),
        },
        AggFunc::Avg => Arc::new(Float64Array::from_iter(accs.map(|a| match a {
            Some(Acc::Avg(s, n)) if *n > 0 => Some(s / *n as f64),
            _ => None,
        }))),
        AggFunc::Min | AggFunc::Max | AggFunc::First | AggFunc::Last => {
            let values = scalars(&mut accs);
            match kind {
                Kind::Int(t) => {
                    let ints = Int64Array::from_iter(values.iter().map(|v| match v {
                        Some(Scalar::I(i)) => Some(*i),
                        _ => None,
                    }));
                    arrow_cast::cast(&ints, t)
                        .map_err(|e| Error::data("building aggregation output", e))?
                }
                Kind::Float(t) => {
                    let floats = Float64Array::from_iter(values.iter().map(|v| match v {
                        Some(Scalar::F(f)) => Some(f64::from_bits(*f)),
                        _ => None,
                    }));
                    arrow_cast::cast(&floats, t)
                        .map_err(|e| Error::data("building aggregation output", e))?
                }
                _ => {
                    let mut b = StringBuilder::new();
                    for v in &values {
                        match v {
                            Some(Scalar::S(s)) => b.append_value(s),
                            _ => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
            }
        }
    })
}

impl StatefulOperator for Aggregate {
    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        self.groups.clear();
        self.sessions.clear();
        let n = self.spec.aggs.len();
        for (key, value) in self.store.load(version)? {
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
            if matches!(self.spec.window, Some(WindowSpec::Session { .. })) {
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
        self.changed.clear();
        self.removed.clear();
        self.stats.num_rows_dropped_by_watermark = 0;
        let late_us = watermarks.late_ms.saturating_mul(1000);
        let wm_us = watermarks.eviction_ms.saturating_mul(1000);
        // Complete mode keeps every row; otherwise rows behind the watermark are late.
        let drop_late = self.mode != OutputMode::Complete && watermarks.late_ms > 0;
        for batch in &input {
            match self.spec.window.clone() {
                Some(WindowSpec::Session { gap, column }) => {
                    self.process_sessions(batch_id, late_us, drop_late, batch, gap, &column)?
                }
                _ => self.process_fixed(batch_id, late_us, drop_late, batch)?,
            }
        }
        let evictable = self.spec.window.is_some()
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
            + self.inputs.len() * std::mem::size_of::<Acc>()
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
        self.spec.window.is_some() && self.mode != OutputMode::Complete
    }
}

impl Acc {
    /// The accumulator as JSON, for `sluice state show`.
    fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let scalar = |s: &Option<Scalar>| match s {
            None => Value::Null,
            Some(Scalar::I(v)) => json!(v),
            Some(Scalar::F(bits)) => json!(f64::from_bits(*bits)),
            Some(Scalar::S(v)) => json!(v.as_ref()),
        };
        match self {
            Acc::Count(n) => json!(n),
            Acc::SumI(v) => json!(v),
            Acc::SumF(v) => json!(v),
            Acc::Avg(sum, n) => json!({ "sum": sum, "count": n }),
            Acc::Min(v) | Acc::Max(v) | Acc::First(v) | Acc::Last(v) => scalar(v),
            Acc::Distinct(set) => json!({ "distinct": set.len() }),
            Acc::Udaf(bytes) => json!({ "udafStateBytes": bytes.len() }),
        }
    }
}

/// The groups in state after batch `version` as JSON rows (for `sluice state show`): the
/// group columns, the window, and each aggregate's accumulator.
pub fn state_rows(
    checkpoint: &Path,
    version: u64,
    matches: &dyn Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<Vec<serde_json::Value>> {
    let corrupt = |message: String| layout::corrupt(checkpoint, STATE_NAME, message);
    let (spec, schema) = layout::read_with_keys(checkpoint, STATE_NAME)?;
    let aggs: Vec<String> = spec["aggs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let windowed = spec["window"].as_bool().unwrap_or(false);
    let state = StateStore::load_all_sorted(checkpoint, STATE_NAME, version)?;
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
        let mut row = serde_json::json!({ "operator": STATE_NAME, "key": group, "aggs": accs });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulators_survive_encoding() {
        let accs = vec![
            Acc::Count(3),
            Acc::SumI(Some(-7)),
            Acc::SumF(None),
            Acc::Avg(2.5, 2),
            Acc::Min(Some(Scalar::S("kimchi".into()))),
            Acc::Max(Some(Scalar::F(1.5f64.to_bits()))),
            Acc::First(Some(Scalar::I(9))),
            Acc::Last(None),
            Acc::Distinct(Box::new(
                [Scalar::I(1), Scalar::S("a".into())].into_iter().collect(),
            )),
        ];
        let mut bytes = Vec::new();
        for a in &accs {
            a.encode(&mut bytes);
        }
        let mut rest: &[u8] = &bytes;
        let back: Vec<Acc> = (0..accs.len())
            .map(|_| Acc::decode(&mut rest).unwrap())
            .collect();
        assert_eq!(back, accs);
        assert!(rest.is_empty());
        assert!(
            Acc::decode(&mut &[0u8, 1][..]).is_none(),
            "truncated input is refused"
        );
    }

    #[test]
    fn min_and_max_keep_the_extremes_of_strings_and_floats_and_skip_nulls() {
        let strings = Input::S(StringArray::from(vec![
            Some("kimchi"),
            None,
            Some("apple"),
            Some("zucchini"),
        ]));
        let floats = Input::F(Float64Array::from(vec![
            Some(2.5),
            Some(-1.0),
            None,
            Some(7.25),
        ]));
        let (mut smin, mut smax, mut fmin, mut fmax) = (
            Acc::Min(None),
            Acc::Max(None),
            Acc::Min(None),
            Acc::Max(None),
        );
        for i in 0..4 {
            smin.update(&strings, i);
            smax.update(&strings, i);
            fmin.update(&floats, i);
            fmax.update(&floats, i);
        }
        assert_eq!(smin, Acc::Min(Some(Scalar::S("apple".into()))));
        assert_eq!(smax, Acc::Max(Some(Scalar::S("zucchini".into()))));
        assert_eq!(fmin, Acc::Min(Some(Scalar::F((-1.0f64).to_bits()))));
        assert_eq!(fmax, Acc::Max(Some(Scalar::F(7.25f64.to_bits()))));
    }

    #[test]
    fn merging_sessions_combines_accumulators() {
        let mut a = Acc::Min(Some(Scalar::I(5)));
        a.merge(Acc::Min(Some(Scalar::I(2))));
        assert_eq!(a, Acc::Min(Some(Scalar::I(2))));
        let mut avg = Acc::Avg(10.0, 2);
        avg.merge(Acc::Avg(5.0, 3));
        assert_eq!(avg, Acc::Avg(15.0, 5));
    }
}
