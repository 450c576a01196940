//! What more than one fuzz target builds.

use std::path::Path;

use sluice::connectors::file::FileSourceSpec;
use sluice::connectors::file::source::FileSource;
use sluice::pipeline::{CleanSource, FileFormat, ParseMode};
use sluice::source::SourceContext;
use sluice::storage::Location;

/// How a file source reads: its format, mode, declared schema (DDL) and CSV options.
pub struct Reading<'a> {
    pub format: FileFormat,
    pub mode: ParseMode,
    pub schema: &'a str,
    pub header: bool,
    pub sep: u8,
}

/// A file source over `dir/in` with its log in `log_dir`, opened as a query opens it
/// (reading the log's entries).
pub fn file_source(
    reading: &Reading<'_>,
    dir: &Path,
    log_dir: &Path,
) -> sluice::error::Result<FileSource> {
    let spec = FileSourceSpec {
        format: reading.format,
        path: dir.join("in"),
        // A schema that does not parse would make the source infer one from whatever file is
        // there when it opens, and a finding would depend on the inputs before it.
        schema: Some(
            sluice::schema::parse_ddl(reading.schema).expect("a fuzz target's schemas are valid DDL"),
        ),
        infer_schema: false,
        max_files_per_trigger: None,
        latest_first: false,
        clean_source: CleanSource::Off,
        mode: reading.mode,
        column_name_of_corrupt_record: "_corrupt_record".into(),
        header: reading.header,
        sep: reading.sep,
    };
    let ctx = SourceContext {
        log_dir: Location::Local(log_dir.to_path_buf()),
        parallelism: 1,
    };
    FileSource::open(spec, ctx)
}
