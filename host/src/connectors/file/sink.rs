//! The file sink: json lines, csv or parquet files under a directory, made exactly-once by a
//! commit log, like Spark's `_spark_metadata`.
//!
//! Batch N writes its data files under deterministic names (`part-00042-0000.parquet`,
//! under `col=value/` directories with `partitionBy`), each written to a hidden temp name,
//! fsynced and renamed in (in an object store: one PUT, which makes an object appear whole);
//! then one entry `_sluice_metadata/N` lists them. A batch id at or
//! below the last logged one is skipped, so a batch re-run after a crash writes nothing
//! twice. Readers should list the directory through the log ([`committed_files`]): a file of
//! a batch that died before its log entry is never listed (and the re-run overwrites it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::{FileFormat, FileSinkSpec};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::sink::Sink;
use crate::storage::Location;

/// Name of the commit-log directory inside the output directory.
pub const METADATA_DIR: &str = "_sluice_metadata";

/// One commit-log entry: the files of one batch, relative to the output directory.
#[derive(Debug, Serialize, Deserialize)]
pub struct SinkLogEntry {
    /// Data files written by the batch.
    pub files: Vec<PathBuf>,
    /// Rows in those files.
    pub num_rows: u64,
}

/// All data files committed to the output directory `dir` (a path or an `s3://…` URL), in
/// batch order.
pub fn committed_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let log = Location::parse(dir)?.join(METADATA_DIR);
    let mut files = Vec::new();
    for id in log.numbered_entries()? {
        let path = log.join(id.to_string());
        let corrupt = |message: String| Error::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let bytes = path
            .read()?
            .ok_or_else(|| corrupt("sink log entry vanished".into()))?;
        let entry: SinkLogEntry = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("sink log entry is corrupt: {e}")))?;
        files.extend(entry.files.into_iter().map(|f| dir.join(f)));
    }
    Ok(files)
}

/// Writes each batch's rows as files and logs them.
pub struct FileSink {
    spec: FileSinkSpec,
    /// The output directory.
    root: Location,
    /// Its commit log.
    log_dir: Location,
    last_committed: Option<u64>,
    /// How many of a batch's files are written at once.
    parallelism: usize,
}

impl FileSink {
    /// Opens the output directory and reads its commit log.
    pub fn open(spec: FileSinkSpec, parallelism: usize) -> Result<Self> {
        let root = Location::parse(&spec.path)?;
        let log_dir = root.join(METADATA_DIR);
        log_dir.create_dir_all()?;
        let last_committed = log_dir.numbered_entries()?.last().copied();
        Ok(FileSink {
            parallelism: parallelism.max(1),
            spec,
            root,
            log_dir,
            last_committed,
        })
    }

    fn err(&self, message: String) -> Error {
        Error::Sink {
            sink: self.description(),
            message,
        }
    }

    /// Splits the batches by the values of the `partitionBy` columns, returning
    /// `(relative directory, rows without the partition columns)` groups in first-seen order.
    fn partition(
        &self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Vec<(String, Vec<RecordBatch>)>> {
        if self.spec.partition_by.is_empty() {
            return Ok(vec![(String::new(), batches.to_vec())]);
        }
        let key_idx: Vec<usize> = self
            .spec
            .partition_by
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| {
                    self.err(format!(
                        "partitionBy column '{c}' is not in the batch's columns ({})",
                        crate::schema::column_names(schema)
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let data_idx: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !key_idx.contains(i))
            .collect();
        let data_schema = Arc::new(
            schema
                .project(&data_idx)
                .map_err(|e| Error::data("projecting", e))?,
        );
        let options = FormatOptions::default();
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<RecordBatch>> = HashMap::new();
        let mut key = String::new();
        let mut value = String::new();
        for batch in batches {
            let formatters = key_idx
                .iter()
                .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::data("formatting partition values", e))?;
            let mut rows: HashMap<String, Vec<u32>> = HashMap::new();
            for row in 0..batch.num_rows() {
                key.clear();
                for (n, (f, &i)) in formatters.iter().zip(&key_idx).enumerate() {
                    if n > 0 {
                        key.push('/');
                    }
                    key.push_str(schema.field(i).name());
                    key.push('=');
                    value.clear();
                    // Into a reused buffer: no allocation per row.
                    let _ = write!(value, "{}", f.value(row));
                    if batch.column(i).is_null(row) || value.is_empty() {
                        key.push_str("__HIVE_DEFAULT_PARTITION__");
                    } else {
                        escape_path_value(&value, &mut key);
                    }
                }
                match rows.get_mut(&key) {
                    Some(v) => v.push(row as u32),
                    None => {
                        rows.insert(key.clone(), vec![row as u32]);
                    }
                }
            }
            let projected = batch
                .project(&data_idx)
                .map_err(|e| Error::data("projecting", e))?;
            // Iterate keys in first-row order so file numbering is deterministic on a re-run.
            let mut keys: Vec<(&String, &Vec<u32>)> = rows.iter().collect();
            keys.sort_by_key(|(_, v)| v[0]);
            for (k, indices) in keys {
                let taken = arrow_select::take::take_record_batch(
                    &projected,
                    &UInt32Array::from(indices.clone()),
                )
                .map_err(|e| Error::data("splitting a batch by partition", e))?;
                let taken = RecordBatch::try_new(data_schema.clone(), taken.columns().to_vec())
                    .map_err(|e| Error::data("splitting a batch by partition", e))?;
                if !groups.contains_key(k) {
                    order.push(k.clone());
                }
                groups.entry(k.clone()).or_default().push(taken);
            }
        }
        Ok(order
            .into_iter()
            .map(|k| {
                let v = groups.remove(&k).unwrap_or_default();
                (k, v)
            })
            .collect())
    }

    /// Writes one data file whole (a temp file renamed in, or one PUT): a reader of the
    /// directory never sees half of it.
    fn write_file(&self, rel: &str, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        let at = self.root.join(rel);
        if let Some(parent) = at.as_local().and_then(Path::parent) {
            crate::fsutil::create_dir_all(parent)?;
        }
        let format = self.spec.format;
        let header = self.spec.header;
        // Encoding errors travel as io errors and come out naming the file.
        at.write_with(|out| {
            let fail = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
            match format {
                FileFormat::Parquet => {
                    let props = parquet::file::properties::WriterProperties::builder()
                        .set_compression(parquet::basic::Compression::SNAPPY)
                        .build();
                    let mut w =
                        parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))
                            .map_err(|e| fail(&e))?;
                    for b in batches {
                        w.write(b).map_err(|e| fail(&e))?;
                    }
                    w.close().map_err(|e| fail(&e))?;
                }
                FileFormat::Csv => {
                    let mut w = arrow_csv::WriterBuilder::new()
                        .with_header(header)
                        .build(BufWriter::with_capacity(1 << 20, out));
                    for b in batches {
                        w.write(b).map_err(|e| fail(&e))?;
                    }
                }
                _ => {
                    let mut w = crate::schema::json_lines(BufWriter::with_capacity(1 << 20, out));
                    for b in batches {
                        w.write(b).map_err(|e| fail(&e))?;
                    }
                    w.finish().map_err(|e| fail(&e))?;
                }
            }
            Ok(())
        })
    }
}

impl Sink for FileSink {
    fn description(&self) -> String {
        format!("FileSink[{}]", self.spec.path.display())
    }

    fn add_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        if let Some(last) = self.last_committed
            && batch_id <= last
        {
            info!(batch_id, last_committed = last, sink = %self.description(), "batch already committed to the sink; skipping");
            return Ok(0);
        }
        let num_rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let mut files = Vec::new();
        if num_rows > 0 {
            // A file per partition directory, and a directory's rows split into up to
            // `parallelism` files (contiguous runs of the batch's record batches), written
            // at once. Names follow the split, so a re-run writes the same files.
            let groups = self.partition(schema, batches)?;
            let ext = self.spec.format.name();
            let split = if groups.len() >= self.parallelism {
                1
            } else {
                self.parallelism
            };
            let mut tasks = Vec::new();
            for (dir, group) in groups {
                for part in crate::parallel::runs(group, split) {
                    let n = tasks.len();
                    let name = format!("part-{batch_id:05}-{n:04}.{ext}");
                    let rel = if dir.is_empty() {
                        name
                    } else {
                        format!("{dir}/{name}")
                    };
                    tasks.push((rel, part));
                }
            }
            let written = crate::parallel::try_map(tasks, self.parallelism, |(rel, part)| {
                let part_schema = part
                    .first()
                    .map(|b| b.schema())
                    .unwrap_or_else(|| Arc::new(Schema::empty()));
                self.write_file(&rel, &part_schema, &part)?;
                debug!(file = %rel, "wrote sink file");
                Ok::<_, Error>(PathBuf::from(rel))
            })?;
            files.extend(written);
            failpoint::hit("mid-sink", batch_id);
        }
        let entry = SinkLogEntry { files, num_rows };
        let json =
            serde_json::to_vec(&entry).map_err(|e| Error::data("writing the sink log", e))?;
        self.log_dir.join(batch_id.to_string()).write(json)?;
        self.last_committed = Some(batch_id);
        Ok(num_rows)
    }
}

/// Escapes a partition value for a directory name the way Hive and Spark do (`%2F` for `/`).
fn escape_path_value(value: &str, out: &mut String) {
    for c in value.chars() {
        if c.is_control() || "\"#%'*/:=?\\\u{7f}{[]^".contains(c) {
            let mut utf8 = [0; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_are_escaped_like_hive() {
        let mut s = String::new();
        escape_path_value("a/b=c d", &mut s);
        assert_eq!(s, "a%2Fb%3Dc d");
    }
}
