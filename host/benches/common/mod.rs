//! What the benchmarks share: the guests built from source, and the orders batch with the
//! native filter + projection every Wasm or expression variant is measured against.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

/// Builds every guest component from source and returns the folder holding them.
pub fn modules() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = std::process::Command::new("bash")
        .arg(repo.join("scripts/build-guests.sh"))
        .status()
        .expect("running scripts/build-guests.sh");
    assert!(status.success(), "building the guests failed");
    repo.join("examples/modules")
}

/// `rows` orders: `id`, `city` (4 cities), `amount` (0..1000, spread).
pub fn batch(rows: usize) -> RecordBatch {
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

/// `SELECT id, amount WHERE amount >= 500` with arrow's kernels called directly.
pub fn native_filter_project(batch: &RecordBatch) -> RecordBatch {
    let amount = batch
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let keep = arrow_ord::cmp::gt_eq(amount, &Int64Array::new_scalar(500)).unwrap();
    let projected = batch.project(&[0, 2]).unwrap();
    arrow_select::filter::filter_record_batch(&projected, &keep).unwrap()
}
