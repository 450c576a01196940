//! Expression steps against Spark's own answers: every expression of
//! `tests/fixtures/spark-expressions/cases.txt`, planned by Sluice as a `selectExpr` item and
//! run over the fixture's rows, must give the value pyspark 4.0.1 gave for each row
//! (`expected.jsonl`, made by `generate.py` beside it), or fail where Spark failed.
//!
//! Where Sluice does not give Spark's answer yet, the case is listed in `DIVERGENCES` with
//! what differs: the test fails if a listed case starts to agree (take it off the list) or
//! an unlisted one disagrees, so the list is always exactly what differs.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use serde_json::{Value, json};
use sluice::expr::{CompiledStep, ExprStepKind, ExprStepSpec};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/spark-expressions"
);

/// The cases where Sluice's answer is not Spark's yet, and how it differs (the work left to
/// give expressions Spark's meaning everywhere).
const DIVERGENCES: &[(&str, &str)] = &[
    (
        "CAST(d AS STRING)",
        "Spark writes large doubles in scientific notation (1.0E10)",
    ),
    ("n div 2", "sqlparser's generic dialect has no DIV operator"),
    (
        "round(2.5)",
        "Spark rounds a decimal literal to DECIMAL(2,0); DataFusion reads 2.5 as a DOUBLE",
    ),
    ("bround(2.5)", "no bround yet"),
    (
        "1.5 + 1",
        "Spark reads 1.5 as DECIMAL(2,1); DataFusion as DOUBLE (the same value)",
    ),
    (
        "2147483647 + 1",
        "Spark's integer literals are INT and overflow (ANSI); DataFusion's are BIGINT",
    ),
    (
        "months_between(ts, TIMESTAMP'2026-01-01 00:00:00')",
        "no months_between yet",
    ),
    (
        "to_json(named_struct('ts', ts))",
        "Spark always writes milliseconds (.000Z)",
    ),
    (
        "split(csv, ',')[1]",
        "Spark fails an index past the end (ANSI); DataFusion gives null",
    ),
];

/// The fixture's rows, with the schema generate.py gives them.
fn input() -> RecordBatch {
    let schema = sluice::schema::parse_ddl(
        "id BIGINT, s STRING, n BIGINT, d DOUBLE, b BOOLEAN, ts TIMESTAMP, dt DATE, j STRING, \
         t STRING, csv STRING, tf STRING, td STRING",
    )
    .unwrap();
    let schema = sluice::schema::all_nullable(&schema);
    let text = std::fs::read(format!("{DIR}/input.jsonl")).unwrap();
    let mut reader = arrow_json::ReaderBuilder::new(schema)
        .build(std::io::Cursor::new(text))
        .unwrap();
    reader.next().unwrap().unwrap()
}

/// A value of `array` at `row` as generate.py writes Spark's.
fn normal(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    let float = |v: f64| {
        if v.is_nan() {
            json!("NaN")
        } else if v.is_infinite() {
            json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            json!(v)
        }
    };
    match array.data_type() {
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => json!(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => json!(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => json!(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => json!(array.as_string::<i64>().value(row)),
        DataType::Utf8View => json!(array.as_string_view().value(row)),
        DataType::Binary => json!(format!("0x{}", hex(array.as_binary::<i32>().value(row)))),
        DataType::LargeBinary => json!(format!("0x{}", hex(array.as_binary::<i64>().value(row)))),
        DataType::BinaryView => json!(format!("0x{}", hex(array.as_binary_view().value(row)))),
        DataType::Decimal128(_, _) => {
            let a = array.as_primitive::<Decimal128Type>();
            json!(a.value_as_string(row))
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            json!(
                chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                    .unwrap()
                    .format("%Y-%m-%d")
                    .to_string()
            )
        }
        DataType::Timestamp(unit, _) => {
            let us = match unit {
                TimeUnit::Second => {
                    array.as_primitive::<TimestampSecondType>().value(row) * 1_000_000
                }
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row) * 1000
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().value(row) / 1000
                }
            };
            json!(
                chrono::DateTime::from_timestamp_micros(us)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%S%.6f")
                    .to_string()
            )
        }
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            Value::Array(
                (0..values.len())
                    .map(|i| normal(values.as_ref(), i))
                    .collect(),
            )
        }
        DataType::LargeList(_) => {
            let values = array.as_list::<i64>().value(row);
            Value::Array(
                (0..values.len())
                    .map(|i| normal(values.as_ref(), i))
                    .collect(),
            )
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), normal(c.as_ref(), row)))
                    .collect(),
            )
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let mut pairs: Vec<Value> = (0..entries.len())
                .map(|i| {
                    json!([
                        normal(entries.column(0).as_ref(), i),
                        normal(entries.column(1).as_ref(), i)
                    ])
                })
                .collect();
            pairs.sort_by_key(|p| p.to_string());
            Value::Array(pairs)
        }
        other => json!(format!("<{other}>")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two normalised values agree (floats to 1e-9 relative, as Spark prints doubles).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

/// What Sluice gives for `expr`: the values by row, or `Err` with why it refused.
fn sluice_answer(expr: &str, batch: &RecordBatch) -> Result<Vec<Value>, String> {
    let spec = ExprStepSpec {
        name: "case".into(),
        kind: ExprStepKind::SelectExpr(vec![format!("{expr} AS r")]),
        on_error: sluice::wasm::spec::OnError::Fail,
    };
    let step = CompiledStep::new(&spec, &batch.schema()).map_err(|e| e.to_string())?;
    let out = step.evaluate(batch).map_err(|e| e.to_string())?;
    let column = Arc::clone(out.column(0));
    Ok((0..out.num_rows())
        .map(|r| normal(column.as_ref(), r))
        .collect())
}

#[test]
fn expressions_give_spark_s_answers() {
    let batch = input();
    let expected = std::fs::read_to_string(format!("{DIR}/expected.jsonl")).unwrap();
    let divergences: BTreeMap<&str, &str> = DIVERGENCES.iter().copied().collect();
    let (mut agree, mut report, mut fixed) = (0, Vec::new(), Vec::new());
    let mut cases = 0;
    for line in expected.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let expr = case["expr"].as_str().unwrap();
        cases += 1;
        let ours = sluice_answer(expr, &batch);
        let matches = match (&case["error"], &ours) {
            (Value::Null, Ok(values)) => {
                let want = case["values"].as_array().unwrap();
                want.len() == values.len() && want.iter().zip(values).all(|(a, b)| same(a, b))
            }
            // Spark refused or failed: Sluice must too (the reason's words differ).
            (Value::String(_), Err(_)) => true,
            _ => false,
        };
        match (matches, divergences.contains_key(expr)) {
            (true, false) => agree += 1,
            (true, true) => fixed.push(expr.to_owned()),
            (false, true) if std::env::var_os("SHOW_DIVERGENCES").is_none() => {}
            (false, _) => report.push(format!(
                "{expr}\n    spark:  {}\n    sluice: {}",
                if case["error"].is_null() {
                    format!("{} {}", case["type"], case["values"])
                } else {
                    format!("error {}", case["error"])
                },
                match &ours {
                    Ok(v) => Value::Array(v.clone()).to_string(),
                    Err(e) => format!("error {e}"),
                }
            )),
        }
    }
    assert!(cases >= 200, "{cases} cases");
    assert!(
        fixed.is_empty() && report.is_empty(),
        "these now agree with Spark; take them off DIVERGENCES: {fixed:#?}\n{} of {cases} expressions differ from Spark ({agree} agree):\n{}",
        report.len(),
        report.join("\n")
    );
}
