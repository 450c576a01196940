//! What the Wasm boundary costs (issue: Wasm transforms). Run with
//! `cargo bench -p sluice --bench wasm_boundary`; figures go to docs/BENCHMARKS.md.
//!
//! The same filter + projection (`SELECT id, amount WHERE amount >= 500`) three ways:
//! - `native`: arrow-rs kernels in the host;
//! - `wasm_1m`: the `filter-project` example component on a 1,000,000-row batch (per-row cost);
//! - `wasm_1row`: the same component on a 1-row batch (the fixed cost of a call: flattening,
//!   the canonical ABI copy in, the guest's decode, `emit`, the host's validation of the output).

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sluice::pipeline::{GuestLimits, OnError, TransformSpec};
use sluice::sink::outputs::SharedOutputs;
use sluice::wasm::transform::WasmTransform;

fn module() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = std::process::Command::new("bash")
        .arg(repo.join("scripts/build-guests.sh"))
        .status()
        .expect("running scripts/build-guests.sh");
    assert!(status.success(), "building the guests failed");
    repo.join("examples/modules/filter_project.wasm")
}

fn batch(rows: usize) -> RecordBatch {
    const CITIES: [&str; 4] = ["Seoul", "Busan", "Incheon", "Daegu"];
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
    ]));
    let ids = Int64Array::from_iter_values(0..rows as i64);
    let cities = StringArray::from_iter_values((0..rows).map(|i| CITIES[i % 4]));
    let amounts = Int64Array::from_iter_values((0..rows as i64).map(|i| (i * 7919) % 1000));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(ids), Arc::new(cities), Arc::new(amounts)],
    )
    .unwrap()
}

fn native(batch: &RecordBatch) -> RecordBatch {
    let amount = batch
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let keep = arrow_ord::cmp::gt_eq(amount, &Int64Array::new_scalar(500)).unwrap();
    let projected = batch.project(&[0, 2]).unwrap();
    arrow_select::filter::filter_record_batch(&projected, &keep).unwrap()
}

fn boundary(c: &mut Criterion) {
    let spec = TransformSpec {
        name: "filter-project".into(),
        module_ref: None,
        module: module(),
        config: serde_json::json!({"min": 500}),
        limits: GuestLimits::default(),
        on_error: OnError::Fail,
    };
    let big = batch(1_000_000);
    let one = batch(1);
    let mut step = WasmTransform::new(spec, "bench", big.schema()).unwrap();
    let outputs = SharedOutputs::default();

    // The two paths must agree before we time them.
    let from_wasm = step.process(0, vec![big.clone()], &outputs, 1).unwrap();
    assert_eq!(from_wasm, vec![native(&big)]);

    let mut g = c.benchmark_group("filter_project");
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("native_1m", |b| b.iter(|| native(&big)));
    g.bench_function("wasm_1m", |b| {
        b.iter_batched(
            || vec![big.clone()],
            |input| step.process(0, input, &outputs, 1).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("native_1row", |b| b.iter(|| native(&one)));
    // The boundary alone: a guest that emits its input unchanged (the test fixture
    // `hostile-transform` with no behaviour configured).
    let identity = TransformSpec {
        name: "identity".into(),
        module_ref: None,
        module: module().with_file_name("hostile_transform.wasm"),
        config: serde_json::json!({}),
        limits: GuestLimits::default(),
        on_error: OnError::Fail,
    };
    let mut identity = WasmTransform::new(identity, "bench", one.schema()).unwrap();
    assert_eq!(
        identity.process(0, vec![one.clone()], &outputs, 1).unwrap(),
        vec![one.clone()]
    );
    g.bench_function("wasm_identity_1m", |b| {
        b.iter_batched(
            || vec![big.clone()],
            |input| identity.process(0, input, &outputs, 1).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("wasm_identity_1row", |b| {
        b.iter_batched(
            || vec![one.clone()],
            |input| identity.process(0, input, &outputs, 1).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("wasm_1row", |b| {
        b.iter_batched(
            || vec![one.clone()],
            |input| step.process(0, input, &outputs, 1).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, boundary);
criterion_main!(benches);
