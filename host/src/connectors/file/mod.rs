//! Files in a directory or glob: json lines, csv, parquet and text; a source with a file log and a sink with a commit log (exactly-once).

pub mod sink;
pub mod source;
