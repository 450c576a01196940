//! The file source: json lines, csv, parquet and text files appearing in a directory.
//!
//! Like Spark's `FileStreamSource`, every batch's file list is written to the source log
//! (`checkpoint/sources/0/<n>`) *before* the engine records the batch's offset
//! `{"logOffset": n}`, so a re-run reads exactly the same files. A file is read once: names
//! already in the log are never read again. Files are expected to appear atomically (written
//! elsewhere, then renamed in); names starting with `.` or `_` are ignored, so a file still
//! being written under a hidden name is never read half-way.
//!
//! The log is the set of files read so far, so without `cleanSource` it grows with the
//! directory (one small entry per batch that found files; Spark's log does the same). With
//! `cleanSource`, a committed file is gone from the path and need not be remembered: once an
//! entry's files are all deleted or archived its entry is purged, keeping the last committed
//! one (its id numbers the next). The checkpoint then stays bounded however long the query
//! runs, and so does the source's memory of names.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::flat_json::FlatJson;
use super::listing::{FileListing, ListedFile, normalize};
use super::{CleanSource, FileFormat, FileSourceSpec, ParseMode};
use crate::error::{Error, Result};
use crate::schema::all_nullable;
use crate::source::{Offset, ReadLimit, Source, SourceContext, SourceMetrics, offset_u64};
use crate::storage::Location;

/// Rows per Arrow record batch produced by the readers.
const BATCH_ROWS: usize = 64 * 1024;

/// One entry of the source log: the files of one batch.
#[derive(Debug, Serialize, Deserialize)]
struct LogEntry {
    files: Vec<PathBuf>,
}

/// Reads new files of a directory (or glob) batch by batch.
pub struct FileSource {
    spec: FileSourceSpec,
    ctx: SourceContext,
    /// Schema of the data in the files.
    data_schema: SchemaRef,
    /// Schema of the batches returned: the data schema plus the corrupt-record column in
    /// PERMISSIVE mode for json and csv.
    schema: SchemaRef,
    listing: FileListing,
    /// JSON lines of a flat schema: the fast decoder tried before arrow-json.
    flat_json: Option<FlatJson>,
    log: BTreeMap<u64, Vec<PathBuf>>,
    seen: HashSet<PathBuf>,
    /// For `availableNow`: only files present when the query started.
    available_now: Option<HashSet<PathBuf>>,
    cleaned_through: Option<u64>,
    /// Log entries with a file `cleanSource` could not delete or move: kept, as they were read.
    uncleaned: HashSet<u64>,
    /// Rows dropped or nulled as malformed since the last progress record (counted by the
    /// workers that decode files at once).
    malformed_rows: std::sync::atomic::AtomicU64,
    /// Whether the listing has said it found no file at all (said once).
    reported_no_files: std::sync::atomic::AtomicBool,
}

impl FileSource {
    /// Opens the source, restoring its log from the checkpoint.
    pub fn open(spec: FileSourceSpec, ctx: SourceContext) -> Result<Self> {
        ctx.log_dir.create_dir_all()?;
        let listing = FileListing::new(&spec.path)?;
        if listing.is_object_store() && matches!(spec.clean_source, CleanSource::Archive(_)) {
            return Err(Error::Source {
                source_name: format!("FileSource[{}]", spec.path.display()),
                message: "cleanSource = \"archive\" moves local files; in an object store use cleanSource = \"delete\" (or a bucket lifecycle rule)".into(),
            });
        }
        let mut log = BTreeMap::new();
        for id in ctx.log_dir.numbered_entries()? {
            let path = ctx.log_dir.join(id.to_string());
            let corrupt = |message: String| Error::Checkpoint {
                path: path.to_path_buf(),
                message,
            };
            let bytes = path
                .read()?
                .ok_or_else(|| corrupt("source log entry vanished".into()))?;
            let entry: LogEntry = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(format!("source log entry is corrupt: {e}")))?;
            log.insert(id, entry.files);
        }
        // Logs written before local paths were normalized hold names like `p/../in/a.json`:
        // their normalized form counts as read too, so an upgrade reads no file twice.
        let seen = log
            .values()
            .flatten()
            .flat_map(|p| {
                let normalized = (!listing.is_object_store()).then(|| normalize(p));
                std::iter::once(p.clone()).chain(normalized)
            })
            .collect();
        let mut source = FileSource {
            data_schema: Arc::new(Schema::empty()),
            schema: Arc::new(Schema::empty()),
            spec,
            ctx,
            listing,
            flat_json: None,
            log,
            seen,
            available_now: None,
            cleaned_through: None,
            uncleaned: HashSet::new(),
            malformed_rows: std::sync::atomic::AtomicU64::new(0),
            reported_no_files: std::sync::atomic::AtomicBool::new(false),
        };
        source.data_schema = source.resolve_schema()?;
        source.schema = row_schema(&source.spec, &source.data_schema);
        if source.spec.format == FileFormat::Json {
            source.flat_json = FlatJson::new(&source.data_schema);
        }
        Ok(source)
    }

    fn name(&self) -> String {
        format!("FileSource[{}]", self.spec.path.display())
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Source {
            source_name: self.name(),
            message: message.into(),
        }
    }

    fn has_corrupt_column(&self) -> bool {
        has_corrupt_column(&self.spec)
    }

    /// The declared schema, the one inferred on a previous run (kept in the source log so it
    /// never changes under a running query), or one inferred from the oldest file now.
    fn resolve_schema(&self) -> Result<SchemaRef> {
        if self.spec.format == FileFormat::Text {
            return Ok(text_schema());
        }
        if let Some(schema) = &self.spec.schema {
            return Ok(schema.clone());
        }
        let saved = self.ctx.log_dir.join("schema.json");
        if let Some(bytes) = saved.read()? {
            let schema: Schema = serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
                path: saved.to_path_buf(),
                message: format!("saved inferred schema is corrupt: {e}"),
            })?;
            return Ok(Arc::new(schema));
        }
        let first = self.list_new_files()?.into_iter().next().ok_or_else(|| {
            self.err(format!(
                "inferSchema needs at least one file matching {} when the query starts; add one or declare a schema",
                self.listing.glob()
            ))
        })?;
        let schema = self.infer_from(&first.path)?;
        info!(file = %first.path.display(), schema = %schema_ddl(&schema), "inferred source schema");
        let json = serde_json::to_vec(schema.as_ref())
            .map_err(|e| Error::data("saving inferred schema", e))?;
        saved.write(json)?;
        Ok(schema)
    }

    fn infer_from(&self, path: &Path) -> Result<SchemaRef> {
        let bytes = self.listing.read(path)?;
        let ctx = || format!("inferring the schema of {}", path.display());
        let schema = match self.spec.format {
            FileFormat::Json => {
                let mut reader = Cursor::new(bytes.as_ref());
                arrow_json::reader::infer_json_schema_from_seekable(&mut reader, Some(1000))
                    .map_err(|e| Error::data(ctx(), e))?
                    .0
            }
            FileFormat::Csv => {
                let format = arrow_csv::reader::Format::default()
                    .with_header(self.spec.header)
                    .with_delimiter(self.spec.sep);
                format
                    .infer_schema(Cursor::new(bytes.as_ref()), Some(1000))
                    .map_err(|e| Error::data(ctx(), e))?
                    .0
            }
            FileFormat::Parquet => {
                let builder =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                        .map_err(|e| Error::data(ctx(), e))?;
                builder.schema().as_ref().clone()
            }
            FileFormat::Text => unreachable!("text has a fixed schema"),
        };
        Ok(all_nullable(&schema))
    }

    /// The visible files the path matches that no batch has read yet, oldest first (newest
    /// first with `latestFirst`; every file, for a source that never plans batches: a join's
    /// static table). The first listing that finds no file at all says so on stderr, naming
    /// the absolute glob: a job that reads nothing must not look like one that worked.
    pub(crate) fn list_new_files(&self) -> Result<Vec<ListedFile>> {
        let listed = self.listing.list()?;
        if listed.is_empty()
            && !self
                .reported_no_files
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            warn!("no files match {}", self.listing.glob());
        }
        let mut files: Vec<ListedFile> = listed
            .into_iter()
            .filter(|f| !self.seen.contains(&f.path))
            .filter(|f| {
                self.available_now
                    .as_ref()
                    .is_none_or(|allowed| allowed.contains(&f.path))
            })
            .collect();
        files.sort_by(|a, b| {
            a.modified
                .cmp(&b.modified)
                .then_with(|| a.path.cmp(&b.path))
        });
        if self.spec.latest_first {
            files.reverse();
        }
        Ok(files)
    }

    /// The rows of one file, with the source's schema and `mode`.
    fn count_malformed(&self) {
        self.malformed_rows
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Decodes one file of the source's format with its declared schema, applying its
    /// `mode` to malformed rows (public for the decoding fuzz target, `fuzz/`).
    pub fn read_file(&self, path: &Path) -> Result<Vec<RecordBatch>> {
        match self.spec.format {
            FileFormat::Parquet => self.read_parquet(path),
            format => {
                let bytes = self.listing.read(path)?;
                match format {
                    FileFormat::Text => self.read_text(path, &bytes),
                    _ => self.read_delimited(path, &bytes),
                }
            }
        }
    }

    /// json lines and csv: decode the whole file in one go; if that fails, go line by line to
    /// find the malformed rows and apply the source's `mode` to them.
    ///
    /// Bytes that are not UTF-8 go straight to the line-by-line reading, which finds the lines
    /// they are on: arrow-csv and arrow-json check UTF-8 only on the text left once delimiters
    /// and quotes are taken out, so a field ending in half a character followed by one starting
    /// with its other half (`2\xcc,\x81x`) passed, and built a string column that was not
    /// UTF-8. Delimiters, quotes and newlines are ASCII, so every field of valid UTF-8 is
    /// valid UTF-8 too.
    fn read_delimited(&self, path: &Path, bytes: &[u8]) -> Result<Vec<RecordBatch>> {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return self.read_lines_tolerantly(path, bytes);
        };
        if let Some(batches) = self
            .flat_json
            .as_ref()
            .and_then(|fast| fast.decode(text, BATCH_ROWS))
        {
            return batches
                .into_iter()
                .map(|b| self.with_corrupt_column(b, None))
                .collect();
        }
        let mut decoder = self.decoder(BATCH_ROWS, self.spec.header)?;
        match decode_all(&mut decoder, text) {
            Ok(batches) => batches
                .into_iter()
                .map(|b| self.with_corrupt_column(b, None))
                .collect(),
            Err(first_error) => {
                debug!(file = %path.display(), error = %first_error, "falling back to line-by-line parsing");
                self.read_lines_tolerantly(path, bytes)
            }
        }
    }

    /// A decoder of the declared schema; `skip_header` drops a CSV file's first line (the
    /// line-by-line fallback skips it itself, as each line gets a fresh decoder).
    fn decoder(&self, batch_rows: usize, skip_header: bool) -> Result<RowDecoder> {
        let ctx = || format!("building a {} reader", self.spec.format.name());
        Ok(match self.spec.format {
            FileFormat::Json => RowDecoder::Json(
                arrow_json::ReaderBuilder::new(self.data_schema.clone())
                    .with_batch_size(batch_rows)
                    .build_decoder()
                    .map_err(|e| Error::data(ctx(), e))?,
            ),
            _ => RowDecoder::Csv(Box::new(
                arrow_csv::ReaderBuilder::new(self.data_schema.clone())
                    .with_batch_size(batch_rows)
                    .with_delimiter(self.spec.sep)
                    .with_header(skip_header)
                    .build_decoder(),
            )),
        })
    }

    fn read_lines_tolerantly(&self, path: &Path, bytes: &[u8]) -> Result<Vec<RecordBatch>> {
        let mut rows: Vec<RecordBatch> = Vec::new();
        let mut decoder = self.decoder(1, false)?;
        let mut start = 0;
        let mut line_no = 0;
        while start < bytes.len() {
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| start + p + 1);
            let line = &bytes[start..end];
            start = end;
            line_no += 1;
            if line.iter().all(u8::is_ascii_whitespace) || (line_no == 1 && self.spec.header) {
                continue;
            }
            let decoded = match std::str::from_utf8(line) {
                Ok(line) => decode_all(&mut decoder, line),
                Err(e) => Err(format!("not valid UTF-8: {e}")),
            };
            match decoded {
                Ok(batches) => {
                    for b in batches {
                        rows.push(self.with_corrupt_column(b, None)?);
                    }
                }
                Err(message) => {
                    decoder = self.decoder(1, false)?;
                    let text = String::from_utf8_lossy(line).trim_end().to_owned();
                    match self.spec.mode {
                        ParseMode::FailFast => {
                            return Err(Error::MalformedRecord {
                                file: path.to_path_buf(),
                                line: line_no,
                                message,
                            });
                        }
                        ParseMode::DropMalformed => {
                            self.count_malformed();
                            warn!(file = %path.display(), line = line_no, error = %message, "dropped malformed record");
                        }
                        ParseMode::Permissive => {
                            self.count_malformed();
                            rows.push(self.corrupt_row(&text)?);
                        }
                    }
                }
            }
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let batch = arrow_select::concat::concat_batches(&self.schema, &rows)
            .map_err(|e| Error::data(format!("assembling rows of {}", path.display()), e))?;
        Ok(vec![batch])
    }

    fn with_corrupt_column(&self, batch: RecordBatch, text: Option<&str>) -> Result<RecordBatch> {
        if !self.has_corrupt_column() {
            return Ok(batch);
        }
        let corrupt: ArrayRef = match text {
            None => new_null_array(&DataType::Utf8, batch.num_rows()),
            Some(t) => Arc::new(arrow_array::StringArray::from(vec![t])),
        };
        let mut columns = batch.columns().to_vec();
        columns.push(corrupt);
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::data("adding the corrupt-record column", e))
    }

    fn corrupt_row(&self, text: &str) -> Result<RecordBatch> {
        let nulls: Vec<ArrayRef> = self
            .data_schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        let batch = RecordBatch::try_new(self.data_schema.clone(), nulls)
            .map_err(|e| Error::data("building a corrupt-record row", e))?;
        self.with_corrupt_column(batch, Some(text))
    }

    fn read_text(&self, path: &Path, bytes: &[u8]) -> Result<Vec<RecordBatch>> {
        let mut builder = StringBuilder::with_capacity(bytes.len() / 32 + 1, bytes.len());
        let mut out = Vec::new();
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if !bytes.is_empty() {
            for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match std::str::from_utf8(line) {
                    Ok(s) => builder.append_value(s),
                    Err(e) => match self.spec.mode {
                        ParseMode::FailFast => {
                            return Err(Error::MalformedRecord {
                                file: path.to_path_buf(),
                                line: i + 1,
                                message: format!("not valid UTF-8: {e}"),
                            });
                        }
                        ParseMode::DropMalformed => self.count_malformed(),
                        ParseMode::Permissive => {
                            self.count_malformed();
                            builder.append_value(String::from_utf8_lossy(line));
                        }
                    },
                }
                if builder.len() == BATCH_ROWS {
                    out.push(self.text_batch(builder.finish())?);
                }
            }
        }
        if builder.len() > 0 {
            out.push(self.text_batch(builder.finish())?);
        }
        Ok(out)
    }

    fn text_batch(&self, values: arrow_array::StringArray) -> Result<RecordBatch> {
        RecordBatch::try_new(self.schema.clone(), vec![Arc::new(values)])
            .map_err(|e| Error::data("building a text batch", e))
    }

    /// Reads a parquet file and lines its columns up with the source schema by name: missing
    /// columns are null, columns of another type are cast.
    fn read_parquet(&self, path: &Path) -> Result<Vec<RecordBatch>> {
        let ctx = || format!("reading parquet file {}", path.display());
        let builder = if self.listing.is_object_store() {
            ParquetRecordBatchReaderBuilder::try_new(ParquetInput::Bytes(self.listing.read(path)?))
        } else {
            let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
            ParquetRecordBatchReaderBuilder::try_new(ParquetInput::File(file))
        };
        let reader = builder
            .map_err(|e| Error::data(ctx(), e))?
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| Error::data(ctx(), e))?;
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| Error::data(ctx(), e))?;
            let file_schema = batch.schema();
            let columns = self
                .schema
                .fields()
                .iter()
                .map(|field| match file_schema.index_of(field.name()) {
                    Ok(i) if batch.column(i).data_type() == field.data_type() => {
                        Ok(batch.column(i).clone())
                    }
                    Ok(i) => arrow_cast::cast(batch.column(i), field.data_type()).map_err(|e| {
                        Error::data(format!("{}: column '{}'", ctx(), field.name()), e)
                    }),
                    Err(_) => Ok(new_null_array(field.data_type(), batch.num_rows())),
                })
                .collect::<Result<Vec<_>>>()?;
            out.push(
                RecordBatch::try_new(self.schema.clone(), columns)
                    .map_err(|e| Error::data(ctx(), e))?,
            );
        }
        Ok(out)
    }

    /// Deletes or archives `files`; whether every one of them is gone from the source path
    /// (a file that could not be moved stays, and so must its log entry: it was read).
    fn clean(&self, files: &[PathBuf]) -> bool {
        let mut all_gone = true;
        for file in files {
            if self.listing.is_object_store() {
                // Only `delete` is accepted for objects (see `open`).
                if let Err(e) = Location::parse(file).and_then(|l| l.remove()) {
                    warn!(file = %file.display(), error = %e, "could not clean source file; it stays in place");
                    all_gone = false;
                }
                continue;
            }
            let result = match &self.spec.clean_source {
                CleanSource::Off => return false,
                CleanSource::Delete => std::fs::remove_file(file),
                CleanSource::Archive(dir) => {
                    let relative = file.strip_prefix("/").unwrap_or(file);
                    let target = dir.join(relative);
                    if let Some(parent) = target.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    std::fs::rename(file, &target).or_else(|_| {
                        // Another filesystem: copy, then remove.
                        std::fs::copy(file, &target).and_then(|_| std::fs::remove_file(file))
                    })
                }
            };
            match result {
                Ok(()) => debug!(file = %file.display(), "cleaned source file"),
                // Already cleaned by an earlier run that stopped before recording it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(file = %file.display(), error = %e, "could not clean source file; it stays in place");
                    all_gone = false;
                }
            }
        }
        all_gone
    }

    /// Forgets the log entry `id` (its files cleaned): its file in the checkpoint, its names.
    fn purge_entry(&mut self, id: u64) -> Result<()> {
        self.ctx.log_dir.join(id.to_string()).remove()?;
        if let Some(files) = self.log.remove(&id) {
            for file in &files {
                self.seen.remove(file);
                if !self.listing.is_object_store() {
                    self.seen.remove(&normalize(file));
                }
            }
        }
        debug!(entry = id, "purged source log entry: its files are cleaned");
        Ok(())
    }
}

/// Whether rows carry the corrupt-record column (PERMISSIVE json and csv).
fn has_corrupt_column(spec: &FileSourceSpec) -> bool {
    spec.mode == ParseMode::Permissive && matches!(spec.format, FileFormat::Json | FileFormat::Csv)
}

/// The schema of the batches the source returns for files of `data_schema`: the data
/// columns, plus the corrupt-record column where malformed lines are kept.
pub fn row_schema(spec: &FileSourceSpec, data_schema: &SchemaRef) -> SchemaRef {
    if has_corrupt_column(spec) {
        let mut fields: Vec<_> = data_schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            &spec.column_name_of_corrupt_record,
            DataType::Utf8,
            true,
        )));
        Arc::new(Schema::new(fields))
    } else {
        data_schema.clone()
    }
}

/// The schema a text source's files have: one `value` line.
pub fn text_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, true)]))
}

impl Source for FileSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn description(&self) -> String {
        self.name()
    }

    fn prepare_for_available_now(&mut self) -> Result<()> {
        let present = self.list_new_files()?.into_iter().map(|f| f.path).collect();
        self.available_now = Some(present);
        Ok(())
    }

    fn latest_offset(
        &mut self,
        start: Option<&Offset>,
        limit: ReadLimit,
    ) -> Result<Option<Offset>> {
        let start_id = offset_u64(start, "logOffset");
        let last_logged = self.log.keys().next_back().copied();
        // A log entry past the committed offset: claimed by a run that died before writing the
        // offsets log. Serve it again rather than re-listing.
        if let Some(last) = last_logged
            && start_id.is_none_or(|s| last > s)
        {
            return Ok(Some(serde_json::json!({ "logOffset": last })));
        }
        let mut files = self.list_new_files()?;
        if limit == ReadLimit::Configured
            && let Some(max) = self.spec.max_files_per_trigger
        {
            files.truncate(max as usize);
        }
        if files.is_empty() {
            return Ok(start.cloned());
        }
        let id = last_logged.map_or(0, |l| l + 1);
        let entry = LogEntry {
            files: files.into_iter().map(|f| f.path).collect(),
        };
        let json =
            serde_json::to_vec(&entry).map_err(|e| Error::data("writing the source log", e))?;
        // Created, never replaced: a second process planning the same batch (possible on an
        // object store, which has no lock) must not swap the file list under the first.
        if !self.ctx.log_dir.join(id.to_string()).create(json)? {
            return Err(Error::Checkpoint {
                path: self.ctx.log_dir.join(id.to_string()).to_path_buf(),
                message: "written by another process: another query owns this checkpoint; stop it or give this query its own checkpointLocation".into(),
            });
        }
        self.seen.extend(entry.files.iter().cloned());
        self.log.insert(id, entry.files);
        Ok(Some(serde_json::json!({ "logOffset": id })))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let from = offset_u64(start, "logOffset").map_or(0, |s| s + 1);
        let to = offset_u64(Some(end), "logOffset")
            .ok_or_else(|| self.err(format!("offset {end} has no logOffset")))?;
        if from > to {
            return Err(self.err(format!(
                "batch ends at {end}, before it starts (log entry {from})"
            )));
        }
        let files: Vec<PathBuf> = self
            .log
            .range(from..=to)
            .flat_map(|(_, f)| f.clone())
            .collect();
        // Each file is a partition: decoded at once on the worker pool, kept in file order.
        let per_file =
            crate::parallel::try_map(files, self.ctx.parallelism, |f| self.read_file(&f))?;
        Ok(per_file.into_iter().flatten().collect())
    }

    fn commit(&mut self, end: &Offset) -> Result<()> {
        let Some(to) = offset_u64(Some(end), "logOffset") else {
            return Ok(());
        };
        if self.spec.clean_source == CleanSource::Off {
            return Ok(());
        }
        let from = self.cleaned_through.map_or(0, |c| c + 1);
        if from > to {
            return Ok(());
        }
        let uncleaned: Vec<u64> = self
            .log
            .range(from..=to)
            .filter(|(_, files)| !self.clean(files))
            .map(|(id, _)| *id)
            .collect();
        self.uncleaned.extend(uncleaned);
        self.cleaned_through = Some(to);
        // Every entry before the last committed one is cleaned now, but those whose files
        // stayed. The last stays too: the next entry's id follows it.
        let purgeable: Vec<u64> = self
            .log
            .range(..to)
            .map(|(id, _)| *id)
            .filter(|id| !self.uncleaned.contains(id))
            .collect();
        for id in purgeable {
            self.purge_entry(id)?;
        }
        Ok(())
    }

    fn take_metrics(&mut self) -> SourceMetrics {
        let mut m = SourceMetrics::new();
        if self.spec.format != FileFormat::Parquet {
            m.insert(
                "numMalformedRows".into(),
                self.malformed_rows
                    .swap(0, std::sync::atomic::Ordering::Relaxed)
                    .into(),
            );
        }
        m
    }
}

/// The two line-oriented Arrow decoders behind one interface.
enum RowDecoder {
    Json(arrow_json::reader::Decoder),
    Csv(Box<arrow_csv::reader::Decoder>),
}

impl RowDecoder {
    fn decode(&mut self, buf: &[u8]) -> std::result::Result<usize, arrow_schema::ArrowError> {
        match self {
            RowDecoder::Json(d) => d.decode(buf),
            RowDecoder::Csv(d) => d.decode(buf),
        }
    }

    fn flush(&mut self) -> std::result::Result<Option<RecordBatch>, arrow_schema::ArrowError> {
        match self {
            RowDecoder::Json(d) => d.flush(),
            RowDecoder::Csv(d) => d.flush(),
        }
    }

    fn has_partial_record(&self) -> bool {
        match self {
            RowDecoder::Json(d) => d.has_partial_record(),
            RowDecoder::Csv(_) => false,
        }
    }
}

/// Decodes all of `text` (UTF-8 checked first: see `read_delimited`), returning the error text
/// on the first problem.
fn decode_all(
    decoder: &mut RowDecoder,
    text: &str,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let mut bytes = text.as_bytes();
    let mut out = Vec::new();
    loop {
        let consumed = decoder.decode(bytes).map_err(|e| e.to_string())?;
        bytes = &bytes[consumed..];
        if bytes.is_empty() {
            if decoder.has_partial_record() {
                return Err("the record is incomplete".to_owned());
            }
            if let RowDecoder::Csv(_) = decoder {
                // Tell the CSV decoder the input ended, so a last line without '\n' counts.
                decoder.decode(&[]).map_err(|e| e.to_string())?;
            }
            if let Some(b) = decoder.flush().map_err(|e| e.to_string())? {
                out.push(b);
            }
            return Ok(out);
        }
        match decoder.flush().map_err(|e| e.to_string())? {
            Some(b) => out.push(b),
            None if consumed == 0 => return Err("the decoder made no progress".to_owned()),
            None => {}
        }
    }
}

/// Renders a schema as a DDL string for logs.
pub fn schema_ddl(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a parquet file is read from: a local file (read by ranges) or an object's bytes.
enum ParquetInput {
    File(File),
    Bytes(bytes::Bytes),
}

impl parquet::file::reader::Length for ParquetInput {
    fn len(&self) -> u64 {
        match self {
            ParquetInput::File(f) => f.len(),
            ParquetInput::Bytes(b) => b.len() as u64,
        }
    }
}

impl parquet::file::reader::ChunkReader for ParquetInput {
    type T = Box<dyn std::io::Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(match self {
            ParquetInput::File(f) => Box::new(f.get_read(start)?),
            ParquetInput::Bytes(b) => Box::new(b.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        match self {
            ParquetInput::File(f) => f.get_bytes(start, length),
            ParquetInput::Bytes(b) => b.get_bytes(start, length),
        }
    }
}
