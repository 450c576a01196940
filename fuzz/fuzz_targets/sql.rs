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

/// The pipeline around the query: a watermarked input, a plain one and a static table (the
/// same as tests/sql_validation.rs).
fn pipeline_text(sql: &str) -> String {
    format!(
        r#"[[query]]
name = "q"
checkpointLocation = "ckpt"
sql = """
{sql}
"""

[query.inputs.orders]
format = "json"
path = "in"
schema = "id BIGINT, uid BIGINT, order_time TIMESTAMP, category STRING, amount BIGINT"
watermark = {{ column = "order_time", delay = "10 minutes" }}

[query.inputs.clicks]
format = "json"
path = "clicks"
schema = "id BIGINT, click_time TIMESTAMP"

[query.tables.users]
format = "json"
path = "users"
schema = "id BIGINT, name STRING, since TIMESTAMP"

[query.sink]
format = "json"
path = "out"
"#
    )
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
