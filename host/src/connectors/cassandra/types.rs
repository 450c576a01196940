//! Arrow ↔ CQL. Writing: which Arrow column may go to which CQL column (checked when the sink
//! starts, by column name, so a mismatch stops the query before a row is written), and how a
//! value crosses. Reading: the Arrow type each CQL column of a join table becomes.
//!
//! | CQL | written from Arrow | read as Arrow |
//! |---|---|---|
//! | text, ascii, varchar | strings | Utf8 |
//! | int, bigint, smallint, tinyint, varint | integers that fit (int8 into bigint, not the reverse) | Int32, Int64, Int16, Int8, Utf8 (varint) |
//! | double, float | floats (float32 into double), integers into double | Float64, Float32 |
//! | boolean | Boolean | Boolean |
//! | timestamp | timestamps (any unit; to milliseconds), Date32 | Timestamp(µs, UTC) |
//! | date | Date32 | Date32 |
//! | uuid, timeuuid | strings (`8-4-4-4-12`) or 16-byte binary | Utf8 |
//! | blob | binary | Binary |
//! | decimal | Decimal128 | Utf8 (exact digits) |
//! | list, set | lists of the above | List |
//! | map | maps of the above | (refused: select its fields) |
//!
//! Anything else (counter, duration, time, inet, tuples, user-defined types, vectors) is
//! refused by name.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use scylla::frame::response::result::{CollectionType, ColumnType, NativeType};
use scylla::value::{CqlDate, CqlDecimal, CqlTimestamp, CqlTimeuuid, CqlValue};

/// A CQL type as CQL writes it (`text`, `list<int>`), for messages.
pub fn cql_name(t: &ColumnType<'_>) -> String {
    match t {
        ColumnType::Native(n) => format!("{n:?}").to_ascii_lowercase(),
        ColumnType::Collection { typ, .. } => match typ {
            CollectionType::List(e) => format!("list<{}>", cql_name(e)),
            CollectionType::Set(e) => format!("set<{}>", cql_name(e)),
            CollectionType::Map(k, v) => format!("map<{}, {}>", cql_name(k), cql_name(v)),
            _ => "a collection".to_owned(),
        },
        ColumnType::Tuple(_) => "tuple".to_owned(),
        ColumnType::UserDefinedType { definition, .. } => definition.name.to_string(),
        ColumnType::Vector { .. } => "vector".to_owned(),
        _ => "an unknown type".to_owned(),
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    ) || matches!(t, DataType::FixedSizeBinary(_))
}

/// Bits of an integer type (signed or not), if it is one.
fn int_bits(t: &DataType) -> Option<(u32, bool)> {
    Some(match t {
        DataType::Int8 => (8, true),
        DataType::Int16 => (16, true),
        DataType::Int32 => (32, true),
        DataType::Int64 => (64, true),
        DataType::UInt8 => (8, false),
        DataType::UInt16 => (16, false),
        DataType::UInt32 => (32, false),
        _ => return None,
    })
}

/// Whether every value of Arrow type `arrow` can be written to a CQL column of type `cql`.
pub fn can_write(arrow: &DataType, cql: &ColumnType<'_>) -> bool {
    let fits =
        |bits: u32| int_bits(arrow).is_some_and(|(b, signed)| b < bits || (b == bits && signed));
    match cql {
        ColumnType::Native(n) => match n {
            NativeType::Text | NativeType::Ascii => is_string(arrow),
            NativeType::BigInt => fits(64),
            NativeType::Int => fits(32),
            NativeType::SmallInt => fits(16),
            NativeType::TinyInt => fits(8),
            NativeType::Varint => fits(64),
            NativeType::Double => {
                matches!(arrow, DataType::Float32 | DataType::Float64) || fits(53)
            }
            NativeType::Float => matches!(arrow, DataType::Float32),
            NativeType::Boolean => matches!(arrow, DataType::Boolean),
            NativeType::Timestamp => {
                matches!(arrow, DataType::Timestamp(_, _) | DataType::Date32)
            }
            NativeType::Date => matches!(arrow, DataType::Date32),
            NativeType::Uuid | NativeType::Timeuuid => {
                is_string(arrow) || matches!(arrow, DataType::FixedSizeBinary(16))
            }
            NativeType::Blob => is_binary(arrow),
            NativeType::Decimal => matches!(arrow, DataType::Decimal128(_, _)),
            _ => false,
        },
        ColumnType::Collection { typ, .. } => match (typ, arrow) {
            (CollectionType::List(e) | CollectionType::Set(e), DataType::List(f))
            | (CollectionType::List(e) | CollectionType::Set(e), DataType::LargeList(f)) => {
                can_write(f.data_type(), e)
            }
            (CollectionType::Map(k, v), DataType::Map(entries, _)) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => {
                    can_write(kv[0].data_type(), k) && can_write(kv[1].data_type(), v)
                }
                _ => false,
            },
            _ => false,
        },
        _ => false,
    }
}

/// Row `row` of `array` as a value of CQL type `cql` (checked by [`can_write`] first);
/// `Err`: the value cannot be (a string that is not a UUID, say).
pub fn value(
    array: &dyn Array,
    row: usize,
    cql: &ColumnType<'_>,
) -> Result<Option<CqlValue>, String> {
    if array.is_null(row) {
        return Ok(None);
    }
    let int = || -> Result<i64, String> {
        Ok(match array.data_type() {
            DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
            DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
            DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
            DataType::Int64 => array.as_primitive::<Int64Type>().value(row),
            DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
            DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
            DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
            other => return Err(format!("{other} is not an integer")),
        })
    };
    let text = || -> Result<String, String> {
        Ok(match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
            DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_owned(),
            DataType::Utf8View => array.as_string_view().value(row).to_owned(),
            other => return Err(format!("{other} is not a string")),
        })
    };
    let bytes = || -> Result<Vec<u8>, String> {
        Ok(match array.data_type() {
            DataType::Binary => array.as_binary::<i32>().value(row).to_vec(),
            DataType::LargeBinary => array.as_binary::<i64>().value(row).to_vec(),
            DataType::BinaryView => array.as_binary_view().value(row).to_vec(),
            DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(row).to_vec(),
            other => return Err(format!("{other} is not binary")),
        })
    };
    let uuid = || -> Result<uuid::Uuid, String> {
        match array.data_type() {
            DataType::FixedSizeBinary(16) => {
                uuid::Uuid::from_slice(&bytes()?).map_err(|e| e.to_string())
            }
            _ => {
                let t = text()?;
                uuid::Uuid::parse_str(&t).map_err(|e| format!("'{t}' is not a UUID: {e}"))
            }
        }
    };
    let out_of_range = |v: i64, t: &str| format!("{v} does not fit a CQL {t}");
    Ok(Some(match cql {
        ColumnType::Native(n) => match n {
            NativeType::Text => CqlValue::Text(text()?),
            NativeType::Ascii => CqlValue::Ascii(text()?),
            NativeType::BigInt => CqlValue::BigInt(int()?),
            NativeType::Int => {
                let v = int()?;
                CqlValue::Int(i32::try_from(v).map_err(|_| out_of_range(v, "int"))?)
            }
            NativeType::SmallInt => {
                let v = int()?;
                CqlValue::SmallInt(i16::try_from(v).map_err(|_| out_of_range(v, "smallint"))?)
            }
            NativeType::TinyInt => {
                let v = int()?;
                CqlValue::TinyInt(i8::try_from(v).map_err(|_| out_of_range(v, "tinyint"))?)
            }
            NativeType::Varint => CqlValue::Varint(scylla::value::CqlVarint::from_signed_bytes_be(
                min_be_bytes(int()?.into()),
            )),
            NativeType::Double => CqlValue::Double(match array.data_type() {
                DataType::Float64 => array.as_primitive::<Float64Type>().value(row),
                DataType::Float32 => array.as_primitive::<Float32Type>().value(row).into(),
                _ => int()? as f64,
            }),
            NativeType::Float => CqlValue::Float(array.as_primitive::<Float32Type>().value(row)),
            NativeType::Boolean => CqlValue::Boolean(array.as_boolean().value(row)),
            NativeType::Timestamp => CqlValue::Timestamp(CqlTimestamp(match array.data_type() {
                DataType::Timestamp(TimeUnit::Second, _) => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .saturating_mul(1000),
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                DataType::Timestamp(TimeUnit::Microsecond, _) => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(row)
                    .div_euclid(1000),
                DataType::Timestamp(TimeUnit::Nanosecond, _) => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value(row)
                    .div_euclid(1_000_000),
                DataType::Date32 => {
                    i64::from(array.as_primitive::<Date32Type>().value(row)) * 86_400_000
                }
                other => return Err(format!("{other} is not a time")),
            })),
            NativeType::Date => {
                let days = array.as_primitive::<Date32Type>().value(row);
                CqlValue::Date(CqlDate((i64::from(days) + (1i64 << 31)) as u32))
            }
            NativeType::Uuid => CqlValue::Uuid(uuid()?),
            NativeType::Timeuuid => {
                CqlValue::Timeuuid(CqlTimeuuid::from_bytes(*uuid()?.as_bytes()))
            }
            NativeType::Blob => CqlValue::Blob(bytes()?),
            NativeType::Decimal => {
                let DataType::Decimal128(_, scale) = array.data_type() else {
                    return Err(format!("{} is not a decimal", array.data_type()));
                };
                let unscaled = array.as_primitive::<Decimal128Type>().value(row);
                CqlValue::Decimal(CqlDecimal::from_signed_be_bytes_and_exponent(
                    min_be_bytes(unscaled),
                    i32::from(*scale),
                ))
            }
            other => return Err(format!("CQL {other:?} is not written by Sluice")),
        },
        ColumnType::Collection { typ, .. } => match typ {
            CollectionType::List(e) | CollectionType::Set(e) => {
                let values = match array.data_type() {
                    DataType::List(_) => array.as_list::<i32>().value(row),
                    DataType::LargeList(_) => array.as_list::<i64>().value(row),
                    other => return Err(format!("{other} is not a list")),
                };
                let items = (0..values.len())
                    .map(|i| {
                        value(values.as_ref(), i, e)?
                            .ok_or_else(|| "a CQL collection cannot hold a null".to_owned())
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                match typ {
                    CollectionType::Set(_) => CqlValue::Set(items),
                    _ => CqlValue::List(items),
                }
            }
            CollectionType::Map(k, v) => {
                let map = array.as_map();
                let entries = map.value(row);
                let (keys, values) = (entries.column(0), entries.column(1));
                let pairs = (0..entries.len())
                    .map(|i| {
                        let key = value(keys.as_ref(), i, k)?
                            .ok_or_else(|| "a CQL map key cannot be null".to_owned())?;
                        let val = value(values.as_ref(), i, v)?
                            .ok_or_else(|| "a CQL map value cannot be null".to_owned())?;
                        Ok((key, val))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                CqlValue::Map(pairs)
            }
            _ => return Err("an unknown collection".to_owned()),
        },
        other => return Err(format!("CQL {} is not written by Sluice", cql_name(other))),
    }))
}

/// `v`'s two's-complement big-endian bytes without redundant sign bytes (CQL's varint and
/// decimal encoding; the driver sends the bytes as given).
fn min_be_bytes(v: i128) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut i = 0;
    while i < 15
        && ((b[i] == 0x00 && b[i + 1] & 0x80 == 0) || (b[i] == 0xff && b[i + 1] & 0x80 != 0))
    {
        i += 1;
    }
    b[i..].to_vec()
}

/// The Arrow type a CQL column is read as; `None`: not read (the message says so).
pub fn arrow_type(cql: &ColumnType<'_>) -> Option<DataType> {
    Some(match cql {
        ColumnType::Native(n) => match n {
            NativeType::Text | NativeType::Ascii => DataType::Utf8,
            NativeType::Int => DataType::Int32,
            NativeType::BigInt | NativeType::Counter => DataType::Int64,
            NativeType::SmallInt => DataType::Int16,
            NativeType::TinyInt => DataType::Int8,
            NativeType::Float => DataType::Float32,
            NativeType::Double => DataType::Float64,
            NativeType::Boolean => DataType::Boolean,
            NativeType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            NativeType::Date => DataType::Date32,
            NativeType::Uuid
            | NativeType::Timeuuid
            | NativeType::Decimal
            | NativeType::Varint
            | NativeType::Inet => DataType::Utf8,
            NativeType::Blob => DataType::Binary,
            _ => return None,
        },
        ColumnType::Collection {
            typ: CollectionType::List(e) | CollectionType::Set(e),
            ..
        } => DataType::List(Arc::new(Field::new_list_field(arrow_type(e)?, true))),
        _ => return None,
    })
}

/// The schema of rows whose columns are `columns` (name, CQL type); `Err` names the first
/// column that has no Arrow type.
pub fn schema_of(columns: &[(String, ColumnType<'static>)]) -> Result<SchemaRef, String> {
    let fields = columns
        .iter()
        .map(|(name, t)| {
            arrow_type(t)
                .map(|a| Field::new(name, a, true))
                .ok_or_else(|| {
                    format!(
                        "column '{name}' is {}, which Sluice does not read",
                        cql_name(t)
                    )
                })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Rows read from CQL (each a value per column of `schema`) as one record batch.
pub fn to_batch(schema: &SchemaRef, rows: &[Vec<Option<CqlValue>>]) -> Result<RecordBatch, String> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let values: Vec<Option<&CqlValue>> = rows
                .iter()
                .map(|r| r.get(i).and_then(Option::as_ref))
                .collect();
            column(f.data_type(), &values).map_err(|e| format!("column '{}': {e}", f.name()))
        })
        .collect::<Result<Vec<ArrayRef>, String>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| e.to_string())
}

/// One column of type `t` from CQL values.
fn column(t: &DataType, values: &[Option<&CqlValue>]) -> Result<ArrayRef, String> {
    use arrow_array::builder::*;
    let unexpected = |v: &CqlValue| format!("a {v:?} where {t} was expected");
    macro_rules! primitive {
        ($builder:ty, $($pat:pat => $val:expr),+) => {{
            let mut b = <$builder>::with_capacity(values.len());
            for v in values {
                match v {
                    None => b.append_null(),
                    $(Some($pat) => b.append_value($val),)+
                    Some(other) => return Err(unexpected(other)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match t {
        DataType::Int8 => primitive!(Int8Builder, CqlValue::TinyInt(v) => *v),
        DataType::Int16 => primitive!(Int16Builder, CqlValue::SmallInt(v) => *v),
        DataType::Int32 => primitive!(Int32Builder, CqlValue::Int(v) => *v),
        DataType::Int64 => {
            primitive!(Int64Builder, CqlValue::BigInt(v) => *v, CqlValue::Counter(c) => c.0)
        }
        DataType::Float32 => primitive!(Float32Builder, CqlValue::Float(v) => *v),
        DataType::Float64 => primitive!(Float64Builder, CqlValue::Double(v) => *v),
        DataType::Boolean => primitive!(BooleanBuilder, CqlValue::Boolean(v) => *v),
        DataType::Date32 => {
            primitive!(Date32Builder, CqlValue::Date(d) => (i64::from(d.0) - (1i64 << 31)) as i32)
        }
        DataType::Timestamp(_, tz) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(values.len());
            for v in values {
                match v {
                    None => b.append_null(),
                    Some(CqlValue::Timestamp(ts)) => b.append_value(ts.0.saturating_mul(1000)),
                    Some(other) => return Err(unexpected(other)),
                }
            }
            Arc::new(b.finish().with_timezone_opt(tz.clone()))
        }
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match v {
                    None => b.append_null(),
                    Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => b.append_value(s),
                    Some(CqlValue::Uuid(u)) => b.append_value(u.to_string()),
                    Some(CqlValue::Timeuuid(u)) => b.append_value(u.to_string()),
                    Some(CqlValue::Inet(a)) => b.append_value(a.to_string()),
                    Some(CqlValue::Decimal(d)) => b.append_value(decimal_text(d)),
                    Some(CqlValue::Varint(v)) => b.append_value(varint_text(v)),
                    Some(other) => return Err(unexpected(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match v {
                    None => b.append_null(),
                    Some(CqlValue::Blob(bytes)) => b.append_value(bytes),
                    Some(other) => return Err(unexpected(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::List(element) => {
            let mut offsets = vec![0i32];
            let mut items: Vec<Option<&CqlValue>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    None => valid.push(false),
                    Some(CqlValue::List(xs) | CqlValue::Set(xs)) => {
                        items.extend(xs.iter().map(Some));
                        valid.push(true);
                    }
                    Some(other) => return Err(unexpected(other)),
                }
                offsets.push(i32::try_from(items.len()).map_err(|_| "a list too long".to_owned())?);
            }
            let child = column(element.data_type(), &items)?;
            Arc::new(
                arrow_array::ListArray::try_new(
                    element.clone(),
                    arrow_buffer::OffsetBuffer::new(offsets.into()),
                    child,
                    Some(valid.into()),
                )
                .map_err(|e| e.to_string())?,
            )
        }
        other => return Err(format!("no reader for {other}")),
    })
}

/// A CQL decimal's exact digits (`-12.345`).
fn decimal_text(d: &CqlDecimal) -> String {
    let (bytes, scale) = d.as_signed_be_bytes_slice_and_exponent();
    let digits = signed_be_text(bytes);
    if scale <= 0 {
        return format!("{digits}{}", "0".repeat(scale.unsigned_abs() as usize));
    }
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d.to_owned()),
        None => ("", digits),
    };
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

fn varint_text(v: &scylla::value::CqlVarint) -> String {
    signed_be_text(v.as_signed_bytes_be_slice())
}

/// Two's-complement big-endian bytes as decimal digits (up to 16 bytes; longer values, which
/// an i128 cannot hold, are written as hex).
fn signed_be_text(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "0".to_owned();
    }
    if bytes.len() > 16 {
        return format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut full = [fill; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    i128::from_be_bytes(full).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Decimal128Array, Int32Array, ListArray, StringArray};

    fn native(n: NativeType) -> ColumnType<'static> {
        ColumnType::Native(n)
    }

    #[test]
    fn writable_pairs_widen_but_never_narrow() {
        assert!(can_write(&DataType::Int32, &native(NativeType::BigInt)));
        assert!(!can_write(&DataType::Int64, &native(NativeType::Int)));
        assert!(can_write(&DataType::UInt16, &native(NativeType::Int)));
        assert!(!can_write(&DataType::UInt32, &native(NativeType::Int)));
        assert!(can_write(&DataType::Utf8, &native(NativeType::Uuid)));
        assert!(!can_write(&DataType::Float64, &native(NativeType::Float)));
        assert!(!can_write(&DataType::Utf8, &native(NativeType::Duration)));
        let list = ColumnType::Collection {
            frozen: false,
            typ: CollectionType::List(Box::new(native(NativeType::Text))),
        };
        assert!(can_write(
            &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            &list
        ));
        assert_eq!(cql_name(&list), "list<text>");
    }

    #[test]
    fn values_cross_and_bad_ones_are_named() {
        let ids = StringArray::from(vec![
            Some("0b9c5c8e-7f4a-4a6e-9d2b-1c1f3e5a7b9d"),
            Some("nope"),
            None,
        ]);
        assert!(matches!(
            value(&ids, 0, &native(NativeType::Uuid)),
            Ok(Some(CqlValue::Uuid(_)))
        ));
        assert!(
            value(&ids, 1, &native(NativeType::Uuid))
                .unwrap_err()
                .contains("not a UUID")
        );
        assert_eq!(value(&ids, 2, &native(NativeType::Uuid)), Ok(None));
        let d = Decimal128Array::from(vec![-12345i128])
            .with_precision_and_scale(10, 3)
            .unwrap();
        let Some(CqlValue::Decimal(dec)) = value(&d, 0, &native(NativeType::Decimal)).unwrap()
        else {
            panic!("a decimal");
        };
        assert_eq!(decimal_text(&dec), "-12.345");
        let big = Int32Array::from(vec![70_000]);
        assert!(
            value(&big, 0, &native(NativeType::SmallInt))
                .unwrap_err()
                .contains("does not fit")
        );
    }

    #[test]
    fn rows_read_back_into_arrow() {
        let columns = vec![
            ("id".to_owned(), native(NativeType::Int)),
            (
                "tags".to_owned(),
                ColumnType::Collection {
                    frozen: false,
                    typ: CollectionType::Set(Box::new(native(NativeType::Text))),
                },
            ),
            ("at".to_owned(), native(NativeType::Timestamp)),
        ];
        let schema = schema_of(&columns).unwrap();
        let rows = vec![
            vec![
                Some(CqlValue::Int(1)),
                Some(CqlValue::Set(vec![
                    CqlValue::Text("a".into()),
                    CqlValue::Text("b".into()),
                ])),
                Some(CqlValue::Timestamp(CqlTimestamp(1_500))),
            ],
            vec![Some(CqlValue::Int(2)), None, None],
        ];
        let batch = to_batch(&schema, &rows).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let tags = batch
            .column(1)
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        assert_eq!(tags.value(0).len(), 2);
        assert!(tags.is_null(1));
        assert_eq!(
            batch
                .column(2)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_500_000
        );
        let refused = schema_of(&[("d".to_owned(), native(NativeType::Duration))]).unwrap_err();
        assert!(refused.contains("column 'd' is duration"), "{refused}");
    }
}
