//! Joins: a stream with a static table ([`static_table`]) and two streams with each other
//! ([`symmetric`], Spark's `StreamingSymmetricHashJoinExec`).
//!
//! What both share lives here: the spec a pipeline's `[query.join]` becomes, the output schema
//! (left columns, then right columns; an equi-key named the same on both sides appears once,
//! as in Spark's `join(other, "key")`; another right column whose name is taken is prefixed
//! with the right side's name), key encoding (Arrow row format, so any key type hashes and
//! compares by bytes), and the gather that builds output rows from matched row pairs without
//! copying a row more than once.

pub mod static_table;
pub mod symmetric;

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, new_null_array};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::interleave::interleave;

use crate::connectors::file::FileSourceSpec;
use crate::error::{Error, Result};

/// `type = ...` of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Matching pairs only.
    Inner,
    /// Every left row; unmatched ones with nulls on the right.
    LeftOuter,
    /// Every right row; unmatched ones with nulls on the left.
    RightOuter,
    /// Every row of both sides.
    FullOuter,
    /// Left rows that have a match, once each, left columns only.
    LeftSemi,
    /// Left rows that have no match, left columns only (stream–static only).
    LeftAnti,
}

impl JoinType {
    /// Parses Spark's names (`inner`, `left_outer`/`leftOuter`/`left`, ...).
    pub fn parse(text: &str) -> Option<JoinType> {
        Some(
            match text.to_ascii_lowercase().replace(['_', ' '], "").as_str() {
                "inner" => JoinType::Inner,
                "left" | "leftouter" => JoinType::LeftOuter,
                "right" | "rightouter" => JoinType::RightOuter,
                "full" | "fullouter" | "outer" => JoinType::FullOuter,
                "leftsemi" | "semi" => JoinType::LeftSemi,
                "leftanti" | "anti" => JoinType::LeftAnti,
                _ => return None,
            },
        )
    }

    /// Whether unmatched left rows are emitted (with nulls).
    pub fn keeps_unmatched_left(self) -> bool {
        matches!(self, JoinType::LeftOuter | JoinType::FullOuter)
    }

    /// Whether unmatched right rows are emitted (with nulls).
    pub fn keeps_unmatched_right(self) -> bool {
        matches!(self, JoinType::RightOuter | JoinType::FullOuter)
    }

    /// Whether only left columns are emitted.
    pub fn is_left_only(self) -> bool {
        matches!(self, JoinType::LeftSemi | JoinType::LeftAnti)
    }
}

/// The event-time condition of a stream–stream join:
/// `right.time BETWEEN left.time + lower AND left.time + upper`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRange {
    /// The left side's event-time column.
    pub left: String,
    /// The right side's event-time column.
    pub right: String,
    /// Lower bound of `right - left`, µs (may be negative).
    pub lower_us: i64,
    /// Upper bound of `right - left`, µs.
    pub upper_us: i64,
}

/// The static side of a stream–static join: rows read whole into a hash table.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Where the rows are.
    pub source: TableSource,
    /// `refresh`: look for changed rows at most this often (default: between every batch for
    /// files and for a PostgreSQL table with a `versionQuery`; a minute for one without).
    pub refresh: Option<std::time::Duration>,
}

/// Where a join table's rows are.
#[derive(Debug, Clone)]
pub enum TableSource {
    /// Files, with a file source's options (format, path, schema, ...).
    Files(FileSourceSpec),
    /// A PostgreSQL table or query.
    Postgres(crate::connectors::postgres::table::PostgresTableSpec),
    /// A Cassandra table or query.
    Cassandra(Box<crate::connectors::cassandra::CassandraTableSpec>),
}

/// The other side of a join.
#[derive(Debug, Clone)]
pub enum JoinRight {
    /// Another input of the query (a stream–stream join).
    Input(String),
    /// A static table (a stream–static join).
    Table(TableSpec),
}

/// `[query.join]`.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// The left (streaming) input.
    pub left: String,
    /// The right input or table.
    pub right: JoinRight,
    /// The join type.
    pub join_type: JoinType,
    /// Equi-join keys: (left column, right column).
    pub on: Vec<(String, String)>,
    /// The event-time condition (stream–stream joins).
    pub within: Option<TimeRange>,
    /// The names the sides' columns may be qualified by in later expressions (`o.amount`):
    /// a SQL join's aliases. `None` (a TOML join): columns go by their names alone.
    pub qualifiers: Option<JoinQualifiers>,
}

/// A join's side names for qualified columns (see [`crate::qualifier`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinQualifiers {
    /// The left side's alias (for its columns not already qualified by an earlier join).
    pub left: String,
    /// The right side's alias, also the prefix of a right column whose name is taken.
    pub right: String,
}

impl JoinSpec {
    /// The name the right side goes by in messages and prefixed column names.
    pub fn right_name(&self) -> &str {
        if let Some(q) = &self.qualifiers {
            return &q.right;
        }
        match &self.right {
            JoinRight::Input(name) => name,
            JoinRight::Table(_) => "table",
        }
    }
}

/// How a join's output is laid out: which right columns appear and the output schema.
#[derive(Debug, Clone)]
pub struct JoinLayout {
    /// The output schema.
    pub schema: SchemaRef,
    /// Left key column indices, in `on` order.
    pub left_keys: Vec<usize>,
    /// Right key column indices, in `on` order.
    pub right_keys: Vec<usize>,
    /// The right columns emitted, in order (same-named keys are left out).
    pub right_columns: Vec<usize>,
    /// For each left column: the right column that fills it on rows with no left side (a
    /// same-named key of an outer join).
    pub left_from_right: Vec<Option<usize>>,
    join_type: JoinType,
}

impl JoinLayout {
    /// Lays out the join of `left` and `right`; fails naming the column when a key is missing
    /// or the key types differ.
    pub fn new(spec: &JoinSpec, left: &Schema, right: &Schema) -> Result<JoinLayout> {
        let err = |message: String| Error::Data {
            context: format!("join of '{}' with '{}'", spec.left, spec.right_name()),
            message,
        };
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        for (l, r) in &spec.on {
            let li = crate::qualifier::index_of(left, l).ok_or_else(|| {
                err(format!(
                    "key column '{l}' is not among the left side's columns ({})",
                    crate::schema::column_names(left)
                ))
            })?;
            let ri = crate::qualifier::index_of(right, r).ok_or_else(|| {
                err(format!(
                    "key column '{r}' is not among the right side's columns ({})",
                    crate::schema::column_names(right)
                ))
            })?;
            let (lt, rt) = (left.field(li).data_type(), right.field(ri).data_type());
            if lt != rt {
                return Err(err(format!(
                    "key '{l}' is {lt} on the left but '{r}' is {rt} on the right; make them the same type in a step"
                )));
            }
            left_keys.push(li);
            right_keys.push(ri);
        }
        let jt = spec.join_type;
        let qualifiers = spec.qualifiers.as_ref();
        let mut fields: Vec<Field> = left
            .fields()
            .iter()
            .map(|f| {
                let field = f
                    .as_ref()
                    .clone()
                    .with_nullable(f.is_nullable() || jt.keeps_unmatched_right());
                match qualifiers {
                    Some(q) if crate::qualifier::of(f).next().is_none() => {
                        crate::qualifier::qualify(field, &q.left, f.name(), f.name())
                    }
                    _ => field,
                }
            })
            .collect();
        let mut left_from_right = vec![None; left.fields().len()];
        let mut right_columns = Vec::new();
        if !jt.is_left_only() {
            for (ri, f) in right.fields().iter().enumerate() {
                // SQL's ON keeps both sides' keys (`p.id` is null on an unmatched row of a
                // left join); a TOML join shows a same-named key once, as Spark's
                // `join(other, "key")`.
                let same_named_key = spec
                    .on
                    .iter()
                    .zip(&left_keys)
                    .find(|((l, r), _)| qualifiers.is_none() && l == r && r == f.name());
                if let Some((_, &li)) = same_named_key {
                    left_from_right[li] = Some(ri);
                    // The key is never null where either side has it.
                    fields[li] = fields[li]
                        .clone()
                        .with_nullable(left.field(li).is_nullable());
                    continue;
                }
                let name = if fields.iter().any(|l| l.name() == f.name()) {
                    format!("{}_{}", spec.right_name(), f.name())
                } else {
                    f.name().clone()
                };
                let nullable = f.is_nullable() || jt.keeps_unmatched_left();
                let field = match qualifiers {
                    None => Field::new(name, f.data_type().clone(), nullable),
                    Some(q) => {
                        let original = crate::qualifier::original_name(f).to_owned();
                        let field = f.as_ref().clone().with_nullable(nullable);
                        if crate::qualifier::of(f).next().is_none() {
                            crate::qualifier::qualify(field, &q.right, &name, &original)
                        } else {
                            let mut metadata = field.metadata().clone();
                            metadata.insert(crate::qualifier::ORIGINAL_NAME.to_owned(), original);
                            field.with_name(name).with_metadata(metadata)
                        }
                    }
                };
                fields.push(field);
                right_columns.push(ri);
            }
        }
        Ok(JoinLayout {
            schema: Arc::new(Schema::new(fields)),
            left_keys,
            right_keys,
            right_columns,
            left_from_right,
            join_type: jt,
        })
    }
}

/// Encodes key columns as comparable bytes; a row with a null key never matches (SQL).
pub struct KeyEncoder {
    converter: RowConverter,
}

impl KeyEncoder {
    /// An encoder for key columns of these types.
    pub fn new(types: &[DataType]) -> Result<KeyEncoder> {
        let converter =
            RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())
                .map_err(|e| Error::data("join keys", e))?;
        Ok(KeyEncoder { converter })
    }

    /// The keys of `batch`'s rows (columns `keys`) and which rows have a null key.
    pub fn encode(&self, batch: &RecordBatch, keys: &[usize]) -> Result<(Rows, Vec<bool>)> {
        let columns: Vec<ArrayRef> = keys.iter().map(|&i| batch.column(i).clone()).collect();
        let rows = self
            .converter
            .convert_columns(&columns)
            .map_err(|e| Error::data("join keys", e))?;
        let null = (0..batch.num_rows())
            .map(|r| columns.iter().any(|c| c.is_null(r)))
            .collect();
        Ok((rows, null))
    }
}

/// A row of one side: (chunk, row) of the record batches it is gathered from.
pub type RowRef = (usize, usize);

/// One output row: its left and right rows (`None`: nulls on that side).
pub type RowPair = (Option<RowRef>, Option<RowRef>);

/// Builds output rows: each pair names its left and right row (`None`: nulls on that side).
pub fn gather(
    layout: &JoinLayout,
    left: &[&RecordBatch],
    right: &[&RecordBatch],
    left_schema: &Schema,
    right_schema: &Schema,
    pairs: &[RowPair],
) -> Result<RecordBatch> {
    // One chunk per side (a stream batch probing a table): `take` with null indices for the
    // missing side is several times faster than a general interleave.
    if left.len() <= 1 && right.len() <= 1 && !layout.join_type.keeps_unmatched_right() {
        return gather_single(
            layout,
            left.first(),
            right.first(),
            left_schema,
            right_schema,
            pairs,
        );
    }
    // Where each output row's value is, per side, in the arrays [nulls, chunk 0, chunk 1, ...]:
    // the same for every column of that side, so built once.
    let index = |r: Option<RowRef>| match r {
        None => (0, 0),
        Some((chunk, row)) => (chunk + 1, row),
    };
    let left_idx: Vec<(usize, usize)> = pairs.iter().map(|p| index(p.0)).collect();
    let right_idx: Vec<(usize, usize)> = pairs.iter().map(|p| index(p.1)).collect();
    // Column `i` of one side over its chunks, behind a one-row null array for `None`.
    let column = |chunks: &[&RecordBatch],
                  schema: &Schema,
                  i: usize,
                  idx: &[(usize, usize)]|
     -> Result<ArrayRef> {
        let null = new_null_array(schema.field(i).data_type(), 1);
        let mut arrays: Vec<&dyn Array> = vec![null.as_ref()];
        arrays.extend(chunks.iter().map(|c| c.column(i).as_ref()));
        interleave(&arrays, idx).map_err(|e| Error::data("join output", e))
    };
    let mut columns = Vec::with_capacity(layout.schema.fields().len());
    for i in 0..left_schema.fields().len() {
        match layout.left_from_right[i] {
            // A same-named key: from whichever side the row has.
            Some(ri) if layout.join_type.keeps_unmatched_right() => {
                let null = new_null_array(left_schema.field(i).data_type(), 1);
                let mut arrays: Vec<&dyn Array> = vec![null.as_ref()];
                arrays.extend(left.iter().map(|c| c.column(i).as_ref()));
                arrays.extend(right.iter().map(|c| c.column(ri).as_ref()));
                let idx: Vec<(usize, usize)> = pairs
                    .iter()
                    .map(|(l, r)| match (l, r) {
                        (Some((c, row)), _) => (c + 1, *row),
                        (None, Some((c, row))) => (left.len() + c + 1, *row),
                        (None, None) => (0, 0),
                    })
                    .collect();
                columns.push(interleave(&arrays, &idx).map_err(|e| Error::data("join output", e))?);
            }
            _ => columns.push(column(left, left_schema, i, &left_idx)?),
        }
    }
    for &ri in &layout.right_columns {
        columns.push(column(right, right_schema, ri, &right_idx)?);
    }
    RecordBatch::try_new_with_options(
        layout.schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(pairs.len())),
    )
    .map_err(|e| Error::data("join output", e))
}

/// [`gather`] when each side's rows come from one record batch (or none).
fn gather_single(
    layout: &JoinLayout,
    left: Option<&&RecordBatch>,
    right: Option<&&RecordBatch>,
    left_schema: &Schema,
    right_schema: &Schema,
    pairs: &[RowPair],
) -> Result<RecordBatch> {
    use arrow_array::UInt32Array;
    let indices = |side: fn(&RowPair) -> Option<RowRef>| -> UInt32Array {
        pairs
            .iter()
            .map(|p| side(p).map(|(_, row)| row as u32))
            .collect()
    };
    let take = |batch: Option<&&RecordBatch>,
                schema: &Schema,
                i: usize,
                idx: &UInt32Array|
     -> Result<ArrayRef> {
        match batch {
            Some(b) => arrow_select::take::take(b.column(i).as_ref(), idx, None)
                .map_err(|e| Error::data("join output", e)),
            None => Ok(new_null_array(schema.field(i).data_type(), idx.len())),
        }
    };
    let li = indices(|p| p.0);
    let mut columns = Vec::with_capacity(layout.schema.fields().len());
    for i in 0..left_schema.fields().len() {
        columns.push(take(left, left_schema, i, &li)?);
    }
    if !layout.right_columns.is_empty() {
        let ri = indices(|p| p.1);
        for &c in &layout.right_columns {
            columns.push(take(right, right_schema, c, &ri)?);
        }
    }
    RecordBatch::try_new_with_options(
        layout.schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(pairs.len())),
    )
    .map_err(|e| Error::data("join output", e))
}

#[cfg(test)]
mod tests {
    use arrow_array::{Int64Array, StringArray};

    use super::*;

    fn spec(join_type: JoinType, on: &[(&str, &str)]) -> JoinSpec {
        JoinSpec {
            left: "events".into(),
            right: JoinRight::Input("users".into()),
            join_type,
            on: on
                .iter()
                .map(|(l, r)| (l.to_string(), r.to_string()))
                .collect(),
            within: None,
            qualifiers: None,
        }
    }

    #[test]
    fn a_same_named_key_appears_once_and_other_taken_names_are_prefixed() {
        let left = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        let right = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("city", DataType::Utf8, true),
        ]);
        let layout =
            JoinLayout::new(&spec(JoinType::LeftOuter, &[("id", "id")]), &left, &right).unwrap();
        let names: Vec<_> = layout
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "name", "users_name", "city"]);
        assert!(layout.schema.field(3).is_nullable());
    }

    #[test]
    fn a_missing_or_mistyped_key_is_named() {
        let left = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let right = Schema::new(vec![Field::new("uid", DataType::Utf8, false)]);
        let e = JoinLayout::new(&spec(JoinType::Inner, &[("id", "user")]), &left, &right)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key column 'user' is not among the right side's columns (uid"),
            "{e}"
        );
        let e = JoinLayout::new(&spec(JoinType::Inner, &[("id", "uid")]), &left, &right)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is Int64 on the left but 'uid' is Utf8"), "{e}");
    }

    #[test]
    fn gather_fills_an_outer_key_from_the_side_that_has_it() {
        let left_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("l", DataType::Utf8, true),
        ]));
        let right_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("r", DataType::Utf8, true),
        ]));
        let layout = JoinLayout::new(
            &spec(JoinType::FullOuter, &[("k", "k")]),
            &left_schema,
            &right_schema,
        )
        .unwrap();
        let l = RecordBatch::try_new(
            left_schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .unwrap();
        let r = RecordBatch::try_new(
            right_schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![2, 3])),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap();
        let out = gather(
            &layout,
            &[&l],
            &[&r],
            &left_schema,
            &right_schema,
            &[
                (Some((0, 1)), Some((0, 0))),
                (Some((0, 0)), None),
                (None, Some((0, 1))),
            ],
        )
        .unwrap();
        let k = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(k.values(), &[2, 1, 3]);
        let rcol = out
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            rcol.iter().collect::<Vec<_>>(),
            [Some("x"), None, Some("y")]
        );
        let lcol = out
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            lcol.iter().collect::<Vec<_>>(),
            [Some("b"), Some("a"), None]
        );
    }
}
