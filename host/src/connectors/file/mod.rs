//! Files in a directory or glob: json lines, csv, parquet and text; a source with a file log and a sink with a commit log (exactly-once).

pub mod flat_json;
pub mod listing;
pub mod sink;
pub mod source;

use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;

use crate::config::reader::TableReader;
use crate::config::resolve;
use crate::schema::parse_ddl;

/// File formats read and written by the file source and sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// JSON lines: one object per line.
    Json,
    /// Comma (or `sep`) separated values.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// One row per line, in a `value` column.
    Text,
}

impl FileFormat {
    /// The format's name as written in a pipeline and used as a file extension.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Json => "json",
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
            FileFormat::Text => "text",
        }
    }
}

/// What to do with a row that does not parse (Spark's `mode` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// Keep the row: all columns null, the raw text in the corrupt-record column.
    #[default]
    Permissive,
    /// Drop the row and count it (`numMalformedRows` in the source's progress metrics).
    DropMalformed,
    /// Stop the query with an error naming the file and line.
    FailFast,
}

/// What happens to a source file once its batch is committed (Spark's `cleanSource`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CleanSource {
    /// Leave it where it is.
    #[default]
    Off,
    /// Move it under this directory, keeping its full path.
    Archive(PathBuf),
    /// Delete it.
    Delete,
}

/// Options of the file source.
#[derive(Debug, Clone)]
pub struct FileSourceSpec {
    /// The format of the files.
    pub format: FileFormat,
    /// A glob (`dir/*.json`) or a directory (all its visible files).
    pub path: PathBuf,
    /// The declared schema, if any.
    pub schema: Option<SchemaRef>,
    /// Infer the schema from the first file when none is declared (the default for parquet).
    pub infer_schema: bool,
    /// At most this many new files per batch.
    pub max_files_per_trigger: Option<u64>,
    /// Process the newest files first.
    pub latest_first: bool,
    /// What to do with files once committed.
    pub clean_source: CleanSource,
    /// What to do with malformed rows.
    pub mode: ParseMode,
    /// Name of the column that holds malformed rows' text in PERMISSIVE mode.
    pub column_name_of_corrupt_record: String,
    /// CSV: the first line of each file is a header.
    pub header: bool,
    /// CSV: the field separator.
    pub sep: u8,
}

/// Options of the file sink.
#[derive(Debug, Clone)]
pub struct FileSinkSpec {
    /// json, csv or parquet.
    pub format: FileFormat,
    /// Output directory.
    pub path: PathBuf,
    /// Columns whose values name sub-directories (`city=Seoul/`).
    pub partition_by: Vec<String>,
    /// CSV: write a header line.
    pub header: bool,
}

/// Every key a file source accepts.
const FILE_SOURCE_KEYS: &[&str] = &[
    "format",
    "path",
    "schema",
    "inferSchema",
    "maxFilesPerTrigger",
    "latestFirst",
    "cleanSource",
    "sourceArchiveDir",
    "mode",
    "columnNameOfCorruptRecord",
    "header",
    "sep",
];

/// `format = "json" | "csv" | "parquet" | "text"` source options; `base` anchors relative
/// paths (the pipeline file's folder).
pub(crate) fn parse_source(
    mut s: TableReader,
    format: &str,
    base: &Path,
) -> Option<FileSourceSpec> {
    let format = match format.to_ascii_lowercase().as_str() {
        "json" => FileFormat::Json,
        "csv" => FileFormat::Csv,
        "parquet" => FileFormat::Parquet,
        _ => FileFormat::Text,
    };
    let spec = parse_file_source(&mut s, format, base);
    s.finish(FILE_SOURCE_KEYS);
    spec
}

/// `format = "json" | "csv" | "parquet"` sink options.
pub(crate) fn parse_sink(mut s: TableReader, format: &str, base: &Path) -> Option<FileSinkSpec> {
    let format = match format.to_ascii_lowercase().as_str() {
        "json" => FileFormat::Json,
        "csv" => FileFormat::Csv,
        _ => FileFormat::Parquet,
    };
    let path = s.required_string(
        "path",
        "the output directory, e.g. path = \"output/events\"",
    );
    let partition_by = s.string_list("partitionBy").unwrap_or_default();
    let header = s.bool("header").unwrap_or(false);
    if format != FileFormat::Csv
        && let Some(node) = s.get("header")
    {
        s.error_at(
            node.span().start,
            "header",
            "only applies to csv".to_owned(),
        );
    }
    s.finish(&["format", "path", "partitionBy", "header"]);
    Some(FileSinkSpec {
        format,
        path: resolve(base, &path?),
        partition_by,
        header,
    })
}

fn parse_file_source(
    s: &mut TableReader,
    format: FileFormat,
    base: &Path,
) -> Option<FileSourceSpec> {
    let path = s.required_string("path", "a directory or glob, e.g. path = \"input/*.json\"");
    let schema = s.get("schema").and_then(|node| {
        let text = s.string("schema")?;
        match parse_ddl(&text) {
            // As Spark's: "CSV data source does not support array<string> data type".
            Ok(schema) if format == FileFormat::Csv => {
                match schema.fields().iter().find(|f| f.data_type().is_nested()) {
                    Some(nested) => {
                        s.error_at(
                            node.span().start,
                            "schema",
                            format!(
                                "column '{}' is {}, which a CSV cell cannot hold; read nested data from json or parquet",
                                nested.name(),
                                crate::schema::spark_type_name(nested.data_type())
                            ),
                        );
                        None
                    }
                    None => Some(schema),
                }
            }
            Ok(schema) => Some(schema),
            Err(e) => {
                s.error_at(node.span().start, "schema", e);
                None
            }
        }
    });
    // Parquet carries its schema, and Spark reads it from the files: inferring is the default.
    let infer_schema = s
        .bool("inferSchema")
        .unwrap_or(format == FileFormat::Parquet);
    if format != FileFormat::Text && schema.is_none() && !infer_schema && s.get("schema").is_none()
    {
        s.error_here(
            "schema",
            "a streaming file source needs a schema: declare one (schema = \"city STRING, n BIGINT\") or set inferSchema = true to take it from the first file".to_owned(),
        );
    }
    if format == FileFormat::Text && s.get("schema").is_some() {
        s.error_here(
            "schema",
            "a text source always has one column, `value`; remove the schema".to_owned(),
        );
    }
    let max_files_per_trigger = s.positive("maxFilesPerTrigger");
    let latest_first = s.bool("latestFirst").unwrap_or(false);
    let archive_dir = s.string("sourceArchiveDir");
    let clean_source = match s
        .string("cleanSource")
        .map(|c| c.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("off") => CleanSource::Off,
        Some("delete") => CleanSource::Delete,
        Some("archive") => match &archive_dir {
            Some(dir) => CleanSource::Archive(resolve(base, dir)),
            None => {
                s.error_here(
                    "sourceArchiveDir",
                    "cleanSource = \"archive\" needs sourceArchiveDir = \"...\"".to_owned(),
                );
                CleanSource::Off
            }
        },
        Some(other) => {
            s.error_here(
                "cleanSource",
                format!("'{other}' is not an option; use \"off\", \"archive\" or \"delete\""),
            );
            CleanSource::Off
        }
    };
    let mode = match s.string("mode").map(|m| m.to_ascii_uppercase()).as_deref() {
        None | Some("PERMISSIVE") => ParseMode::Permissive,
        Some("DROPMALFORMED") => ParseMode::DropMalformed,
        Some("FAILFAST") => ParseMode::FailFast,
        Some(other) => {
            s.error_here(
                "mode",
                format!(
                    "'{other}' is not a mode; use \"PERMISSIVE\", \"DROPMALFORMED\" or \"FAILFAST\""
                ),
            );
            ParseMode::Permissive
        }
    };
    let column_name_of_corrupt_record = s
        .string("columnNameOfCorruptRecord")
        .unwrap_or_else(|| "_corrupt_record".to_owned());
    let header = s.bool("header").unwrap_or(false);
    let sep = match s.string("sep") {
        None => b',',
        Some(sep) if sep.len() == 1 => sep.as_bytes()[0],
        Some(sep) if sep == "\\t" => b'\t',
        Some(sep) => {
            s.error_here("sep", format!("'{sep}' must be a single character"));
            b','
        }
    };
    if format != FileFormat::Csv {
        for key in ["header", "sep"] {
            if let Some(node) = s.get(key) {
                s.error_at(
                    node.span().start,
                    key,
                    format!("only applies to csv, not {}", format.name()),
                );
            }
        }
    }
    let path = resolve(base, &path?);
    if let CleanSource::Archive(dir) = &clean_source {
        let root = listing::normalize(&glob_root(&path));
        if listing::normalize(dir).starts_with(&root) {
            s.error_here(
                "sourceArchiveDir",
                format!(
                    "{} is inside the source path {}; archived files would be read again",
                    dir.display(),
                    root.display()
                ),
            );
        }
    }
    Some(FileSourceSpec {
        format,
        path,
        schema,
        infer_schema,
        max_files_per_trigger,
        latest_first,
        clean_source,
        mode,
        column_name_of_corrupt_record,
        header,
        sep,
    })
}

/// The directory part of a glob: the longest prefix without wildcard characters.
pub fn glob_root(path: &Path) -> PathBuf {
    let mut root = PathBuf::new();
    for c in path.components() {
        if c.as_os_str()
            .to_string_lossy()
            .contains(['*', '?', '[', '{'])
        {
            break;
        }
        root.push(c);
    }
    root
}
