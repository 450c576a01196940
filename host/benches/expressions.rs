//! What an expression step costs against the native arrow kernels, and a Wasm scalar function
//! against the same function native (issue 31). Run with
//! `cargo bench -p sluice --bench expressions`; figures go to docs/BENCHMARKS.md.
//!
//! - `filter_project`: `SELECT id, amount WHERE amount >= 500` over 1,000,000 rows — arrow's
//!   kernels called directly (`native_1m`, the boundary benchmark's baseline) against two
//!   expression steps (`where = "amount >= 500"`, `selectExpr = ["id", "amount"]`), in that
//!   order (the filter moves every column, `city`'s strings too) and the other way round.
//! - `scalar_function`: `to_krw(amount)` (amount × 1000, rounded) over 1,000,000 rows — the
//!   `examples/to-krw` component called from an expression step, the same arithmetic written
//!   as an expression, and native.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::expr::{CompiledStep, ExprStepKind, ExprStepSpec, PlanOptions};
use sluice::pipeline::{GuestLimits, OnError};
use sluice::wasm::function::{FunctionSpec, WasmFunction};

mod common;

use common::{batch, modules, native_filter_project};

fn native_to_krw(batch: &RecordBatch) -> ArrayRef {
    let amount = batch
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let krw: Float64Array = amount.unary(|a| (a as f64 * 1000.0).round());
    Arc::new(krw)
}

fn step(kind: ExprStepKind, input: &RecordBatch, options: &PlanOptions) -> CompiledStep {
    let spec = ExprStepSpec {
        name: "bench".into(),
        kind,
        on_error: OnError::Fail,
    };
    CompiledStep::with_options(&spec, &input.schema(), options).unwrap()
}

fn expressions(c: &mut Criterion) {
    let big = batch(1_000_000);
    let plain = PlanOptions::default();
    let filter = step(ExprStepKind::Where("amount >= 500".into()), &big, &plain);
    let filtered = filter.evaluate(&big).unwrap();
    let project = step(
        ExprStepKind::SelectExpr(vec!["id".into(), "amount".into()]),
        &filtered,
        &plain,
    );
    let by_expressions = |b: &RecordBatch| project.evaluate(&filter.evaluate(b).unwrap()).unwrap();
    // The two paths must agree before we time them.
    let (ours, native) = (by_expressions(&big), native_filter_project(&big));
    assert_eq!(ours.num_rows(), native.num_rows());
    assert_eq!(ours.columns(), native.columns());

    // The same steps the other way round, as Spark's optimizer would order them: the filter
    // then moves only the two columns kept, as the native code does.
    let select = step(
        ExprStepKind::SelectExpr(vec!["id".into(), "amount".into()]),
        &big,
        &plain,
    );
    let selected = select.evaluate(&big).unwrap();
    let filter_after = step(
        ExprStepKind::Where("amount >= 500".into()),
        &selected,
        &plain,
    );
    let select_then_filter =
        |b: &RecordBatch| filter_after.evaluate(&select.evaluate(b).unwrap()).unwrap();
    assert_eq!(select_then_filter(&big).columns(), native.columns());

    let mut g = c.benchmark_group("filter_project");
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("native_1m", |b| b.iter(|| native_filter_project(&big)));
    g.bench_function("expr_1m", |b| b.iter(|| by_expressions(&big)));
    g.bench_function("expr_select_then_where_1m", |b| {
        b.iter(|| select_then_filter(&big))
    });
    g.finish();

    let to_krw = WasmFunction::load(FunctionSpec {
        name: "to_krw".into(),
        module: modules().join("to_krw.wasm"),
        config: serde_json::json!({ "rate": 1000 }).into(),
        limits: GuestLimits::default(),
    })
    .unwrap()
    .into_udf();
    let functions = [to_krw];
    let with_function = PlanOptions {
        functions: &functions,
        ..PlanOptions::default()
    };
    let wasm = step(
        ExprStepKind::SelectExpr(vec!["to_krw(amount) AS krw".into()]),
        &big,
        &with_function,
    );
    let expr = step(
        ExprStepKind::SelectExpr(vec!["round(CAST(amount AS DOUBLE) * 1000) AS krw".into()]),
        &big,
        &plain,
    );
    let want = native_to_krw(&big);
    assert_eq!(
        wasm.evaluate(&big).unwrap().column(0).as_ref(),
        want.as_ref()
    );
    assert_eq!(
        expr.evaluate(&big).unwrap().column(0).as_ref(),
        want.as_ref()
    );
    assert_eq!(want.len(), 1_000_000);

    let mut g = c.benchmark_group("scalar_function");
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("native_1m", |b| b.iter(|| native_to_krw(&big)));
    g.bench_function("expr_1m", |b| b.iter(|| expr.evaluate(&big).unwrap()));
    g.bench_function("wasm_function_1m", |b| {
        b.iter(|| wasm.evaluate(&big).unwrap())
    });
    g.finish();
}

criterion_group!(benches, expressions);
criterion_main!(benches);
