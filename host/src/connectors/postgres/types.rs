//! Arrow ↔ PostgreSQL types: which column type a table gets (`createTable`), which Arrow
//! columns can be written into which table columns, and how one value is encoded for a binary
//! `COPY`.
//!
//! | Arrow | PostgreSQL column | written as |
//! |---|---|---|
//! | Int8, Int16, UInt8 | smallint (or integer, bigint) | the column's width |
//! | Int32, UInt16 | integer (or bigint) | |
//! | Int64, UInt32 | bigint | |
//! | any integer or float | numeric | integers exactly, floats by their shortest decimal form |
//! | Float32 | real (or double precision) | |
//! | Float64 | double precision | |
//! | Utf8, LargeUtf8 | text, varchar, char, json, jsonb | json/jsonb: the text as JSON |
//! | Boolean | boolean | |
//! | Timestamp with a time zone | timestamptz (or timestamp, as UTC) | microseconds |
//! | Timestamp without one | timestamp | microseconds |
//! | Date32, Date64 | date | |
//! | Binary, LargeBinary | bytea | |
//!
//! Anything else (lists, structs, UInt64, intervals) is refused at start with the column
//! named. A join table reads numeric as Float64.

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
        // Written exactly from integers, from floats by their shortest decimal form.
        Type::NUMERIC if from_int => DataType::Int64,
        Type::NUMERIC if from_float => DataType::Float64,
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
pub enum Cell<'a> {
    /// Row `row` of staged column `column`.
    At {
        /// The staged column.
        column: &'a ArrayRef,
        /// The row.
        row: usize,
    },
    /// A bigint the sink adds itself (an upsert's staging position).
    Int8(i64),
}

impl<'a> Cell<'a> {
    /// Row `row` of staged column `column`.
    pub fn new(column: &'a ArrayRef, row: usize) -> Cell<'a> {
        Cell::At { column, row }
    }
}

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        use bytes::BufMut;
        let (c, i) = match self {
            Cell::At { column, row } => (*column, *row),
            Cell::Int8(v) => {
                out.put_i64(*v);
                return Ok(IsNull::No);
            }
        };
        if c.is_null(i) {
            return Ok(IsNull::Yes);
        }
        if *ty == Type::NUMERIC {
            let text = match c.data_type() {
                DataType::Int64 => c.as_primitive::<Int64Type>().value(i).to_string(),
                DataType::Float64 => {
                    let v = c.as_primitive::<Float64Type>().value(i);
                    if v.is_nan() {
                        // numeric's NaN: no digits, the NaN sign.
                        out.put_slice(&[0, 0, 0, 0, 0xC0, 0, 0, 0]);
                        return Ok(IsNull::No);
                    }
                    if v.is_infinite() {
                        return Err(format!("{v} does not fit a numeric column").into());
                    }
                    // Display never uses an exponent: "0.0000001", "1000000000000000000000".
                    v.to_string()
                }
                other => return Err(format!("no numeric encoding for staged {other}").into()),
            };
            encode_numeric(&text, out);
            return Ok(IsNull::No);
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

/// A decimal text (`-123.4500`, digits with an optional sign and point) in numeric's binary
/// form: digit count, weight (of the first digit, in powers of 10,000), sign, display scale,
/// then base-10,000 digits.
pub fn encode_numeric(text: &str, out: &mut BytesMut) {
    use bytes::BufMut;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let dscale = frac.len() as u16;
    // Pad to whole groups of four digits on each side of the point.
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let all: Vec<u8> = std::iter::repeat_n(b'0', int_pad)
        .chain(int.bytes())
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', frac_pad))
        .collect();
    let mut groups: Vec<i16> = all
        .chunks(4)
        .map(|g| g.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = ((int.len() + int_pad) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(dscale);
    for g in groups {
        out.put_i16(g);
    }
}

/// A numeric in binary form as a float (NaN for numeric's NaN).
pub fn decode_numeric(raw: &[u8]) -> Result<f64, String> {
    let word = |i: usize| -> Result<u16, String> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a truncated numeric".to_owned())
    };
    let (ndigits, weight, sign) = (word(0)? as usize, word(1)? as i16, word(2)?);
    if sign == 0xC000 {
        return Ok(f64::NAN);
    }
    let mut v = 0f64;
    for d in 0..ndigits {
        v += f64::from(word(4 + d)?) * 10_000f64.powi(i32::from(weight) - d as i32);
    }
    Ok(if sign == 0x4000 { -v } else { v })
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
    fn numerics_are_encoded_in_base_ten_thousand_and_read_back() {
        let enc = |t: &str| {
            let mut out = BytesMut::new();
            encode_numeric(t, &mut out);
            out.to_vec()
        };
        // 12345.678: digits 1, 2345, 6780; weight 1; scale 3.
        assert_eq!(
            enc("12345.678"),
            vec![0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        assert_eq!(enc("-0.0001"), vec![0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 1]);
        assert_eq!(enc("0"), vec![0, 0, 0, 0, 0, 0, 0, 0]);
        for (t, v) in [
            ("12345.678", 12345.678),
            ("-0.0001", -0.0001),
            ("1000000", 1e6),
        ] {
            assert!((decode_numeric(&enc(t)).unwrap() - v).abs() < 1e-9, "{t}");
        }
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
