//! Spark's console sink: each batch printed as a table.

pub mod sink;

use crate::config::reader::TableReader;

/// Options of the console sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSpec {
    /// Rows shown per batch.
    pub num_rows: usize,
    /// Cut cells to 20 characters.
    pub truncate: bool,
}

/// `format = "console"` options (Spark's `numRows`, `truncate`).
pub(crate) fn parse_sink(mut s: TableReader) -> Option<ConsoleSpec> {
    let num_rows = s.positive("numRows").unwrap_or(20) as usize;
    let truncate = s.bool("truncate").unwrap_or(true);
    s.finish(&["format", "numRows", "truncate"]);
    Some(ConsoleSpec { num_rows, truncate })
}
