//! What the Wasm boundary costs (issue: Wasm transforms). Run with
//! `cargo bench -p sluice --bench wasm_boundary`; figures go to docs/BENCHMARKS.md.
//!
//! The same filter + projection (`SELECT id, amount WHERE amount >= 500`) three ways:
//! - `native`: arrow-rs kernels in the host;
//! - `wasm_1m`: the `filter-project` example component on a 1,000,000-row batch (per-row cost):
//!   it reads `amount` only and answers with a selection (`emit_rows`);
//! - `wasm_1row`: the same component on a 1-row batch (the fixed cost of a call).
//!
//! And identities: `pass_through` (reads nothing, answers every row and column: the boundary's
//! fixed cost) and `identity_copying` (`hostile-transform` without a behaviour: reads every
//! column and emits it back, every buffer crossing twice).
//!
//! `--features bench-mimalloc` runs it all under mimalloc, the faster allocator for the native
//! baseline; without it, under the system allocator the binary ships with.

#[cfg(feature = "bench-mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use arrow_array::Int64Array;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sluice::pipeline::{GuestLimits, OnError, TransformSpec};
use sluice::sink::outputs::SharedOutputs;
use sluice::wasm::transform::WasmTransform;

mod common;

use common::{batch, native_filter_project as native};

fn module() -> PathBuf {
    common::modules().join("filter_project.wasm")
}

fn boundary(c: &mut Criterion) {
    let spec = TransformSpec {
        name: "filter-project".into(),
        module_ref: None,
        module: module(),
        config: serde_json::json!({"min": 500}).into(),
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
    // Where the native time goes: the predicate alone (the part a guest computes), and a
    // copy of the column it reads (what crossing into a guest costs at least).
    let amount = big
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .clone();
    g.bench_function("native_predicate_1m", |b| {
        b.iter(|| arrow_ord::cmp::gt_eq(&amount, &Int64Array::new_scalar(500)).unwrap())
    });
    let mut copy = vec![0u8; amount.values().inner().len()];
    g.bench_function("memcpy_read_column_1m", |b| {
        b.iter(|| copy.copy_from_slice(amount.values().inner().as_slice()))
    });
    g.bench_function("wasm_1m", |b| {
        b.iter_batched(
            || vec![big.clone()],
            |input| step.process(0, input, &outputs, 1).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("native_1row", |b| b.iter(|| native(&one)));
    // Identities. `pass_through` reads no column and answers "every row, every column":
    // what a call costs when nothing crosses. `identity_copying` reads and emits every buffer.
    let identity = |name: &str, file: &str| {
        let spec = TransformSpec {
            name: name.into(),
            module_ref: None,
            module: module().with_file_name(file),
            config: serde_json::json!({}).into(),
            limits: GuestLimits::default(),
            on_error: OnError::Fail,
        };
        let mut step = WasmTransform::new(spec, "bench", one.schema()).unwrap();
        assert_eq!(
            step.process(0, vec![big.clone()], &outputs, 1).unwrap(),
            vec![big.clone()]
        );
        step
    };
    for (name, file) in [
        ("pass_through", "pass_through.wasm"),
        ("identity_copying", "hostile_transform.wasm"),
    ] {
        let mut step = identity(name, file);
        g.throughput(Throughput::Elements(1_000_000));
        g.bench_function(format!("wasm_{name}_1m"), |b| {
            b.iter_batched(
                || vec![big.clone()],
                |input| step.process(0, input, &outputs, 1).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("wasm_{name}_1row"), |b| {
            b.iter_batched(
                || vec![one.clone()],
                |input| step.process(0, input, &outputs, 1).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
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
