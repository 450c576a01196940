//! Spark's console sink: each batch printed as a table.

pub mod sink;

use crate::pipeline::SinkSpec;
use crate::pipeline::tree::TableReader;

/// `format = "console"` options (Spark's `numRows`, `truncate`).
pub(crate) fn parse_sink(mut s: TableReader) -> Option<SinkSpec> {
    let num_rows = s.positive("numRows").unwrap_or(20) as usize;
    let truncate = s.bool("truncate").unwrap_or(true);
    s.finish(&["format", "numRows", "truncate"]);
    Some(SinkSpec::Console { num_rows, truncate })
}
