//! Arrow ↔ PostgreSQL types: which column type a table gets (`createTable`), which Arrow
//! columns can be written into which table columns, and how one value is encoded for a binary
//! `COPY`.
//!
//! | Arrow | PostgreSQL column | written as |
//! |---|---|---|
//! | Int8, Int16, UInt8 | smallint (or integer, bigint) | the column's width |
//! | Int32, UInt16 | integer (or bigint) | |
//! | Int64, UInt32 | bigint | |
//! | Float32 | real (or double precision) | |
//! | Float64 | double precision | |
//! | Utf8, LargeUtf8 | text, varchar, char, json, jsonb | json/jsonb: the text as JSON |
//! | Boolean | boolean | |
//! | Timestamp with a time zone | timestamptz (or timestamp, as UTC) | microseconds |
//! | Timestamp without one | timestamp | microseconds |
//! | Date32, Date64 | date | |
//! | Binary, LargeBinary | bytea | |
//!
//! Anything else (numeric, lists, structs, UInt64, intervals) is refused at start with the
//! column named.

use std::error::Error as StdError;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// The column type `createTable` gives an Arrow type (`None`: not mapped).
pub fn column_type(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Boolean => "boolean",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        _ => return None,
    })
}

/// The Arrow type a column of `target` is written from: Arrow columns are cast to it first
/// (`arrow_cast`, failing on overflow), then read row by row. `None`: the pair does not map.
pub fn staging_type(arrow: &DataType, target: &Type) -> Option<DataType> {
    let from_int = arrow.is_integer();
    let from_float = arrow.is_floating();
    let text = matches!(
        arrow,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    Some(match *target {
        Type::INT2 if from_int => DataType::Int16,
        Type::INT4 if from_int => DataType::Int32,
        Type::INT8 if from_int => DataType::Int64,
        Type::FLOAT4 if from_float => DataType::Float32,
        Type::FLOAT8 if from_float || from_int => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::JSONB
            if text =>
        {
            DataType::Utf8
        }
        Type::BOOL if *arrow == DataType::Boolean => DataType::Boolean,
        // Only the unit changes: the values stay UTC instants (with a zone) or wall-clock
        // times (without), which is what timestamptz and timestamp hold.
        Type::TIMESTAMPTZ | Type::TIMESTAMP => match arrow {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            _ => return None,
        },
        Type::DATE if matches!(arrow, DataType::Date32 | DataType::Date64) => DataType::Date32,
        Type::BYTEA
            if matches!(
                arrow,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            ) =>
        {
            DataType::Binary
        }
        _ => return None,
    })
}

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// One value of a staged column (see [`staging_type`]), encoded for the table column's type.
/// Written by hand rather than through chrono's `ToSql`: a staged timestamp is already the
/// microseconds PostgreSQL sends on the wire, less an epoch.
#[derive(Debug)]
pub struct Cell<'a> {
    column: &'a ArrayRef,
    row: usize,
}

impl<'a> Cell<'a> {
    /// Row `row` of staged column `column`.
    pub fn new(column: &'a ArrayRef, row: usize) -> Cell<'a> {
        Cell { column, row }
    }
}

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        use bytes::BufMut;
        let (c, i) = (self.column, self.row);
        if c.is_null(i) {
            return Ok(IsNull::Yes);
        }
        match c.data_type() {
            DataType::Int16 => out.put_i16(c.as_primitive::<Int16Type>().value(i)),
            DataType::Int32 => out.put_i32(c.as_primitive::<Int32Type>().value(i)),
            DataType::Int64 => out.put_i64(c.as_primitive::<Int64Type>().value(i)),
            DataType::Float32 => out.put_f32(c.as_primitive::<Float32Type>().value(i)),
            DataType::Float64 => out.put_f64(c.as_primitive::<Float64Type>().value(i)),
            DataType::Boolean => out.put_u8(u8::from(c.as_boolean().value(i))),
            DataType::Utf8 => {
                if *ty == Type::JSONB {
                    // jsonb's binary form: a version byte, then the text.
                    out.put_u8(1);
                }
                out.put_slice(c.as_string::<i32>().value(i).as_bytes());
            }
            DataType::Binary => out.put_slice(c.as_binary::<i32>().value(i)),
            DataType::Timestamp(TimeUnit::Microsecond, _) => out.put_i64(
                c.as_primitive::<TimestampMicrosecondType>()
                    .value(i)
                    .saturating_sub(PG_EPOCH_US),
            ),
            DataType::Date32 => {
                out.put_i32(c.as_primitive::<Date32Type>().value(i) - PG_EPOCH_DAYS)
            }
            other => return Err(format!("no PostgreSQL encoding for staged {other}").into()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        // Which column types a staged column goes to is decided once, at start
        // (`staging_type`); the encoding follows the staged Arrow type.
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_arrow_type_stages_into_the_column_type_it_creates() {
        for t in [
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::UInt8,
            DataType::UInt16,
            DataType::UInt32,
            DataType::Float32,
            DataType::Float64,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Date32,
            DataType::Binary,
        ] {
            let created = column_type(&t).unwrap();
            let pg = match created {
                "smallint" => Type::INT2,
                "integer" => Type::INT4,
                "bigint" => Type::INT8,
                "real" => Type::FLOAT4,
                "double precision" => Type::FLOAT8,
                "text" => Type::TEXT,
                "boolean" => Type::BOOL,
                "timestamptz" => Type::TIMESTAMPTZ,
                "timestamp" => Type::TIMESTAMP,
                "date" => Type::DATE,
                "bytea" => Type::BYTEA,
                other => panic!("{other}"),
            };
            assert!(staging_type(&t, &pg).is_some(), "{t} into {created}");
        }
        assert_eq!(column_type(&DataType::UInt64), None);
        assert_eq!(staging_type(&DataType::Utf8, &Type::INT8), None);
        assert_eq!(staging_type(&DataType::Float64, &Type::INT8), None);
    }

    #[test]
    fn timestamps_and_dates_are_sent_from_postgres_epoch() {
        use arrow_array::{Date32Array, TimestampMicrosecondArray};
        let ts: ArrayRef =
            std::sync::Arc::new(TimestampMicrosecondArray::from(vec![PG_EPOCH_US + 5]));
        let mut out = BytesMut::new();
        Cell::new(&ts, 0)
            .to_sql(&Type::TIMESTAMPTZ, &mut out)
            .unwrap();
        assert_eq!(&out[..], &5i64.to_be_bytes());
        let d: ArrayRef = std::sync::Arc::new(Date32Array::from(vec![PG_EPOCH_DAYS + 1]));
        let mut out = BytesMut::new();
        Cell::new(&d, 0).to_sql(&Type::DATE, &mut out).unwrap();
        assert_eq!(&out[..], &1i32.to_be_bytes());
    }
}
