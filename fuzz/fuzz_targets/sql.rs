//! SQL queries as a pipeline's `sql = """..."""`: parsed, planned into the engine's steps
//! (joins, windows, aggregations, views) and type-checked against the declared inputs and
//! table, as `sluice validate` does. A bad query is an error at its line, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn base() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap().keep())
}

/// The pipeline around the query: a watermarked input, a plain one and a static table
/// (the one tests/sql_validation.rs uses).
fn pipeline_text(sql: &str) -> String {
    include_str!("../../tests/fixtures/sql-validation/pipeline.toml").replace("{sql}", sql)
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if sql.contains("\"\"\"") || sql.contains('\\') {
        return;
    }
    let _ = sluice::pipeline::Pipeline::parse(&pipeline_text(sql), &base().join("p.toml"));
});
