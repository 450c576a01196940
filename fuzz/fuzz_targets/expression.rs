//! Expression steps (`selectExpr`, `where`, `withColumn`): parsed, resolved and type-checked
//! against a schema of every common type, then evaluated over rows with nulls, as a query
//! runs them. The first byte picks the step; the rest is its text (`selectExpr`: one
//! expression a line). A bad expression is an error with its position, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use arrow_array::RecordBatch;
use libfuzzer_sys::fuzz_target;
use sluice::pipeline::{ExprStepKind, ExprStepSpec, OnError};

/// The Spark conformance fixture's rows (tests/fixtures/spark-expressions).
fn input() -> &'static RecordBatch {
    static INPUT: OnceLock<RecordBatch> = OnceLock::new();
    INPUT.get_or_init(|| {
        let schema = sluice::schema::parse_ddl(
            "id BIGINT, s STRING, n BIGINT, d DOUBLE, b BOOLEAN, ts TIMESTAMP, dt DATE, j STRING, \
             t STRING, csv STRING, tf STRING, td STRING",
        )
        .unwrap();
        let schema = sluice::schema::all_nullable(&schema);
        let text = include_bytes!("../../tests/fixtures/spark-expressions/input.jsonl");
        arrow_json::ReaderBuilder::new(schema)
            .build(std::io::Cursor::new(&text[..]))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let [pick, text @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let kind = match pick % 3 {
        0 => ExprStepKind::SelectExpr(text.lines().map(str::to_owned).collect()),
        1 => ExprStepKind::Where(text.to_owned()),
        _ => ExprStepKind::WithColumn {
            name: "x".into(),
            expr: text.to_owned(),
        },
    };
    let spec = ExprStepSpec {
        name: "step".into(),
        kind,
        on_error: OnError::Fail,
    };
    let batch = input();
    if let Ok(step) = sluice::expr::CompiledStep::new(&spec, &Arc::clone(batch.schema_ref())) {
        let _ = step.evaluate(batch);
    }
});
