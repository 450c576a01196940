//! Accumulators of the built-in aggregates: how each reads an input row, merges with another
//! part of the same group (session merges, and the partial results of a two-phase
//! aggregation), is persisted in the state store, and becomes an output column.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow_schema::DataType;
use foldhash::fast::FixedState;

use crate::error::{Error, Result};

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
    /// Every non-null value, in arrival order (Spark's `collect_list`).
    CollectList,
    /// The distinct non-null values, in no particular order (Spark's `collect_set`).
    CollectSet,
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
            "collect_list" => AggFunc::CollectList,
            "collect_set" => AggFunc::CollectSet,
            _ => return None,
        })
    }
}

/// How an aggregate reads its input column.
#[derive(Debug, Clone)]
pub(super) enum Kind {
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
pub(super) enum Scalar {
    I(i64),
    F(u64),
    S(Box<str>),
}

/// A value of an input row, borrowed from its array: compared with, or looked up among, kept
/// values without copying it, and copied into a [`Scalar`] only when it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ScalarRef<'a> {
    I(i64),
    F(u64),
    S(&'a str),
}

impl Scalar {
    pub(super) fn as_ref(&self) -> ScalarRef<'_> {
        match self {
            Scalar::I(v) => ScalarRef::I(*v),
            Scalar::F(v) => ScalarRef::F(*v),
            Scalar::S(v) => ScalarRef::S(v),
        }
    }

    pub(super) fn compare(&self, other: &Scalar) -> Ordering {
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
    pub(super) fn to_scalar(self) -> Scalar {
        match self {
            ScalarRef::I(v) => Scalar::I(v),
            ScalarRef::F(v) => Scalar::F(v),
            ScalarRef::S(v) => Scalar::S(v.into()),
        }
    }

    pub(super) fn compare(self, other: ScalarRef<'_>) -> Ordering {
        match (self, other) {
            (ScalarRef::I(a), ScalarRef::I(b)) => a.cmp(&b),
            (ScalarRef::F(a), ScalarRef::F(b)) => f64::from_bits(a).total_cmp(&f64::from_bits(b)),
            (ScalarRef::S(a), ScalarRef::S(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// The distinct values of a `count_distinct` group.
pub(super) type DistinctSet = hashbrown::HashSet<Scalar, FixedState>;

/// An accumulator.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Acc {
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
    /// `collect_list`'s values (boxed for the size, as `Distinct`).
    #[allow(clippy::box_collection)]
    List(Box<Vec<Scalar>>),
}

/// One batch's view of an aggregate's input column.
pub(super) enum Input {
    Star,
    I(Int64Array),
    F(Float64Array),
    S(StringArray),
    Any(ArrayRef),
}

impl Input {
    /// Row `i`'s value, borrowed (`None`: null, or a column kind no scalar holds).
    pub(super) fn value(&self, i: usize) -> Option<ScalarRef<'_>> {
        match self {
            Input::I(a) if a.is_valid(i) => Some(ScalarRef::I(a.value(i))),
            Input::F(a) if a.is_valid(i) => Some(ScalarRef::F(a.value(i).to_bits())),
            Input::S(a) if a.is_valid(i) => Some(ScalarRef::S(a.value(i))),
            _ => None,
        }
    }

    /// Row `i`'s value, copied.
    pub(super) fn scalar(&self, i: usize) -> Option<Scalar> {
        self.value(i).map(ScalarRef::to_scalar)
    }

    /// Compares row `i` with a kept value without copying it (`None`: the row is null).
    pub(super) fn compare_with(&self, i: usize, kept: &Scalar) -> Option<Ordering> {
        Some(self.value(i)?.compare(kept.as_ref()))
    }

    pub(super) fn is_present(&self, i: usize) -> bool {
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
    pub(super) fn new(func: AggFunc, kind: &Kind) -> Acc {
        match func {
            AggFunc::Count => Acc::Count(0),
            AggFunc::Sum if matches!(kind, Kind::Float(_)) => Acc::SumF(None),
            AggFunc::Sum => Acc::SumI(None),
            AggFunc::Avg => Acc::Avg(0.0, 0),
            AggFunc::Min => Acc::Min(None),
            AggFunc::Max => Acc::Max(None),
            AggFunc::First => Acc::First(None),
            AggFunc::Last => Acc::Last(None),
            AggFunc::CountDistinct | AggFunc::CollectSet => Acc::Distinct(Box::default()),
            AggFunc::CollectList => Acc::List(Box::default()),
            AggFunc::Udaf => Acc::Udaf(Vec::new()),
        }
    }

    #[inline]
    pub(super) fn update(&mut self, input: &Input, i: usize) {
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
            Acc::List(values) => {
                if let Some(v) = input.value(i) {
                    values.push(v.to_scalar());
                }
            }
            // Collected per batch and handed to the guest in one call (Aggregate::flush_udafs).
            Acc::Udaf(_) => {}
        }
    }

    /// Combines `other` (a later part of the same group) into `self` (session merges).
    pub(super) fn merge(&mut self, other: Acc) {
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
            (Acc::List(a), Acc::List(b)) => a.extend(*b),
            _ => {}
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
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
            Acc::List(values) => {
                out.push(10);
                out.extend_from_slice(&(values.len() as u32).to_le_bytes());
                for v in values.iter() {
                    scalar(out, Some(v));
                }
            }
        }
    }

    pub(super) fn decode(input: &mut &[u8]) -> Option<Acc> {
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
                // As for lists: a corrupt length must not reserve more than the bytes left
                // (a stored set of 2^32 claimed values once asked for 200 GB; fuzz `checkpoint`).
                let mut set = DistinctSet::with_capacity_and_hasher(
                    n.min(input.len()),
                    FixedState::default(),
                );
                for _ in 0..n {
                    set.insert(scalar(input)??);
                }
                Acc::Distinct(Box::new(set))
            }
            9 => {
                let n = u32::from_le_bytes(take(input, 4)?.try_into().ok()?) as usize;
                Acc::Udaf(take(input, n)?.to_vec())
            }
            10 => {
                let n = u32::from_le_bytes(take(input, 4)?.try_into().ok()?) as usize;
                // Each value takes at least a byte: a corrupt length cannot reserve more.
                let mut values = Vec::with_capacity(n.min(input.len()));
                for _ in 0..n {
                    values.push(scalar(input)??);
                }
                Acc::List(Box::new(values))
            }
            _ => return None,
        })
    }
}

pub(super) fn kind_of(t: &DataType) -> Kind {
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

pub(super) fn build_column<'a>(
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
        AggFunc::CollectList | AggFunc::CollectSet => {
            // One flat column of every group's values, cut into a list per group.
            let mut flat: Vec<Option<Scalar>> = Vec::new();
            let mut offsets = vec![0i32];
            for a in accs {
                match a {
                    Some(Acc::List(values)) => flat.extend(values.iter().cloned().map(Some)),
                    Some(Acc::Distinct(set)) => flat.extend(set.iter().cloned().map(Some)),
                    _ => {}
                }
                let end = i32::try_from(flat.len())
                    .map_err(|e| Error::data("building collect_list output", e))?;
                offsets.push(end);
            }
            let values = scalar_column(kind, &flat)?;
            let field = Arc::new(arrow_schema::Field::new_list_field(
                values.data_type().clone(),
                true,
            ));
            Arc::new(
                arrow_array::ListArray::try_new(
                    field,
                    arrow_buffer::OffsetBuffer::new(offsets.into()),
                    values,
                    None,
                )
                .map_err(|e| Error::data("building collect_list output", e))?,
            )
        }
        AggFunc::Min | AggFunc::Max | AggFunc::First | AggFunc::Last => {
            let values = scalars(&mut accs);
            scalar_column(kind, &values)?
        }
    })
}

/// Kept values as a column of the input's type.
fn scalar_column(kind: &Kind, values: &[Option<Scalar>]) -> Result<ArrayRef> {
    Ok(match kind {
        Kind::Int(t) => {
            let ints = Int64Array::from_iter(values.iter().map(|v| match v {
                Some(Scalar::I(i)) => Some(*i),
                _ => None,
            }));
            arrow_cast::cast(&ints, t).map_err(|e| Error::data("building aggregation output", e))?
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
            for v in values {
                match v {
                    Some(Scalar::S(s)) => b.append_value(s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    })
}

impl Acc {
    /// The accumulator as JSON, for `sluice state show`.
    pub(super) fn to_json(&self) -> serde_json::Value {
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
            Acc::List(values) => json!({ "values": values.len() }),
            Acc::Udaf(bytes) => json!({ "udafStateBytes": bytes.len() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored distinct set or list claiming 2^32 - 1 values in a few bytes is refused
    /// without reserving room for them (fuzz `checkpoint` found the set asking for 200 GB).
    #[test]
    fn a_corrupt_length_reserves_nothing_it_cannot_read() {
        for tag in [8u8, 10] {
            let mut bytes = vec![tag];
            bytes.extend_from_slice(&u32::MAX.to_le_bytes());
            bytes.extend_from_slice(&[1, 7, 0, 0, 0, 0, 0, 0, 0]);
            assert!(Acc::decode(&mut bytes.as_slice()).is_none(), "tag {tag}");
        }
    }

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
            Acc::List(Box::new(vec![Scalar::S("b".into()), Scalar::S("b".into())])),
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
