//! The stream–static join: each micro-batch's rows probe a hash table built from files or a
//! PostgreSQL table.
//!
//! A file table is every file its path matches, read whole with a file source's options (so
//! parquet, csv, json and text work as they do for a source) into one Arrow batch, indexed by
//! key bytes. Between batches the query asks it to [`StreamStaticJoin::refresh`]: the file list
//! with sizes and modification times is fingerprinted, and a changed fingerprint reloads the
//! table — a file replaced by rename (the safe way to publish one) is seen at the next batch.
//! A PostgreSQL table is reloaded when its `versionQuery` answers something new, or, without
//! one, when its rows hash differently ([`crate::connectors::postgres::table`]).
//! With `refresh = "1 hour"` the table is looked at only that often. Each batch's offsets
//! entry records the version it joined with; a re-run after a crash says so when the table
//! changed in between (the old rows are gone, so it joins with what is there now).
//!
//! Guarantees: inner, left outer (the stream on the left), left semi and left anti; a stream
//! row with a null key matches nothing; output rows come in stream order, one batch per input
//! batch. Keeps no state of its own between batches besides the table.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use hashbrown::HashMap;
use sha2::{Digest, Sha256};
use tracing::info;

use super::{JoinLayout, JoinSpec, JoinType, KeyEncoder, RowPair, TableSource, TableSpec, gather};
use crate::connectors::file::source::FileSource;
use crate::connectors::postgres::table::PostgresTable;
use crate::error::{Error, Result};
use crate::source::SourceContext;

/// No row follows in a key's chain.
const END: u32 = u32::MAX;

/// The static side: the rows, their key index and the version they were read at.
struct Table {
    rows: RecordBatch,
    /// Key bytes → first row with that key; `next[row]` chains the others.
    heads: HashMap<Box<[u8]>, u32, foldhash::fast::FixedState>,
    next: Vec<u32>,
    version: String,
}

/// Where the table's rows are read from.
enum Rows {
    Files(Box<FileSource>),
    Postgres(Box<PostgresTable>),
    Cassandra(Box<crate::connectors::cassandra::table::CassandraTable>),
}

/// A stream joined with a table.
pub struct StreamStaticJoin {
    spec: JoinSpec,
    table_spec: TableSpec,
    rows: Rows,
    left_schema: SchemaRef,
    layout: JoinLayout,
    keys: KeyEncoder,
    table: Table,
    last_check: Instant,
}

impl StreamStaticJoin {
    /// Reads the table and lays out the join of `left_schema` with it. `log_dir` keeps the
    /// table's inferred schema, so it does not change under a running query.
    pub fn open(
        spec: JoinSpec,
        table_spec: TableSpec,
        left_schema: SchemaRef,
        log_dir: crate::storage::Location,
    ) -> Result<StreamStaticJoin> {
        let rows = match &table_spec.source {
            TableSource::Files(files) => Rows::Files(Box::new(FileSource::open(
                files.clone(),
                SourceContext {
                    log_dir,
                    parallelism: crate::parallel::default_parallelism(),
                },
            )?)),
            TableSource::Postgres(p) => Rows::Postgres(Box::new(PostgresTable::open(p.clone())?)),
            TableSource::Cassandra(c) => Rows::Cassandra(Box::new(
                crate::connectors::cassandra::table::CassandraTable::open((**c).clone())?,
            )),
        };
        let right_schema = match &rows {
            Rows::Files(f) => crate::source::Source::schema(f.as_ref()),
            Rows::Postgres(p) => p.schema(),
            Rows::Cassandra(c) => c.schema(),
        };
        let layout = JoinLayout::new(&spec, &left_schema, &right_schema)?;
        let keys = KeyEncoder::new(
            &layout
                .left_keys
                .iter()
                .map(|&i| left_schema.field(i).data_type().clone())
                .collect::<Vec<_>>(),
        )?;
        let mut join = StreamStaticJoin {
            table: Table {
                rows: RecordBatch::new_empty(right_schema),
                heads: HashMap::default(),
                next: Vec::new(),
                version: String::new(),
            },
            spec,
            table_spec,
            rows,
            left_schema,
            layout,
            keys,
            last_check: Instant::now(),
        };
        join.check()?;
        Ok(join)
    }

    /// The schema of the joined rows.
    pub fn schema(&self) -> SchemaRef {
        self.layout.schema.clone()
    }

    /// The version (a fingerprint of the files) the next batch joins with.
    pub fn version(&self) -> &str {
        &self.table.version
    }

    fn err(&self, message: String) -> Error {
        Error::Source {
            source_name: self.describe(),
            message,
        }
    }

    fn describe(&self) -> String {
        match (&self.rows, &self.table_spec.source) {
            (Rows::Postgres(p), _) => p.describe(),
            (Rows::Cassandra(c), _) => c.describe(),
            (_, TableSource::Files(f)) => format!("join table {}", f.path.display()),
            (_, TableSource::Postgres(p)) => format!("join table postgres[{}]", p.query),
            (_, TableSource::Cassandra(c)) => format!("join table cassandra[{}]", c.query),
        }
    }

    /// The files now, and their fingerprint: paths, sizes and modification times.
    fn fingerprint(files: &FileSource) -> Result<(Vec<PathBuf>, String)> {
        let mut files = files.list_new_files()?;
        files.sort();
        let mut hash = Sha256::new();
        for f in &files {
            let (path, size) = (&f.path, f.size);
            let nanos = f
                .modified
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            hash.update(path.to_string_lossy().as_bytes());
            hash.update(size.to_le_bytes());
            hash.update(nanos.to_le_bytes());
        }
        let hex: String = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((files.into_iter().map(|f| f.path).collect(), hex))
    }

    /// Between batches: reloads the table if its rows changed (at most every `refresh`, when
    /// set). Returns whether it did.
    pub fn refresh(&mut self) -> Result<bool> {
        let every = self.table_spec.refresh.or(match &self.table_spec.source {
            TableSource::Postgres(p) if p.version_query.is_none() => {
                Some(std::time::Duration::from_secs(60))
            }
            TableSource::Cassandra(_) => Some(std::time::Duration::from_secs(60)),
            _ => None,
        });
        if let Some(every) = every
            && self.last_check.elapsed() < every
        {
            return Ok(false);
        }
        self.check()
    }

    /// Reads the table if it changed since the version loaded; returns whether it did.
    fn check(&mut self) -> Result<bool> {
        self.last_check = Instant::now();
        let (rows, version, files) = match &mut self.rows {
            Rows::Files(files) => {
                let (paths, version) = Self::fingerprint(files)?;
                if version == self.table.version {
                    return Ok(false);
                }
                let schema = crate::source::Source::schema(files.as_ref());
                let mut batches = Vec::new();
                for path in &paths {
                    batches.extend(files.read_file(path)?);
                }
                let rows = arrow_select::concat::concat_batches(&schema, &batches)
                    .map_err(|e| Error::data("concatenating the join table", e))?;
                (rows, version, paths.len())
            }
            Rows::Postgres(table) => match table.read_if_changed(&self.table.version)? {
                Some((rows, version)) => (rows, version, 0),
                None => return Ok(false),
            },
            Rows::Cassandra(table) => match table.read_if_changed(&self.table.version)? {
                Some((rows, version)) => (rows, version, 0),
                None => return Ok(false),
            },
        };
        self.load(rows, version, files)?;
        Ok(true)
    }

    /// Makes `rows` (table version `version`, read from `files` files) the table, indexed.
    fn load(&mut self, rows: RecordBatch, version: String, files: usize) -> Result<()> {
        let schema = rows.schema();
        if rows.num_rows() >= END as usize {
            return Err(self.err(format!(
                "{} rows is more than a join table may hold ({})",
                rows.num_rows(),
                END - 1
            )));
        }
        let encoder = KeyEncoder::new(
            &self
                .layout
                .right_keys
                .iter()
                .map(|&i| schema.field(i).data_type().clone())
                .collect::<Vec<_>>(),
        )?;
        let (keys, null) = encoder.encode(&rows, &self.layout.right_keys)?;
        let mut heads: HashMap<Box<[u8]>, u32, foldhash::fast::FixedState> =
            HashMap::with_capacity_and_hasher(rows.num_rows(), Default::default());
        let mut next = vec![END; rows.num_rows()];
        // Build back to front so each chain lists rows in table order.
        for row in (0..rows.num_rows()).rev() {
            if null[row] {
                continue;
            }
            let key = keys.row(row);
            match heads.get_mut(key.as_ref()) {
                Some(head) => {
                    next[row] = *head;
                    *head = row as u32;
                }
                None => {
                    heads.insert(key.as_ref().into(), row as u32);
                }
            }
        }
        info!(table = %self.describe(), rows = rows.num_rows(), files, version = %version, "join table loaded");
        self.table = Table {
            rows,
            heads,
            next,
            version,
        };
        Ok(())
    }

    /// Joins one micro-batch's stream rows with the table.
    pub fn process(&mut self, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let jt = self.spec.join_type;
        let mut out = Vec::with_capacity(input.len());
        let mut pairs: Vec<RowPair> = Vec::new();
        for batch in &input {
            pairs.clear();
            let (keys, null) = self.keys.encode(batch, &self.layout.left_keys)?;
            for (row, is_null) in null.iter().enumerate() {
                let head = if *is_null {
                    None
                } else {
                    self.table.heads.get(keys.row(row).as_ref()).copied()
                };
                match (jt, head) {
                    (JoinType::LeftSemi, Some(_)) | (JoinType::LeftAnti, None) => {
                        pairs.push((Some((0, row)), None));
                    }
                    (JoinType::LeftSemi, None) | (JoinType::LeftAnti, Some(_)) => {}
                    (_, Some(mut t)) => {
                        while t != END {
                            pairs.push((Some((0, row)), Some((0, t as usize))));
                            t = self.table.next[t as usize];
                        }
                    }
                    (JoinType::LeftOuter, None) => pairs.push((Some((0, row)), None)),
                    (_, None) => {}
                }
            }
            if pairs.is_empty() {
                continue;
            }
            out.push(gather(
                &self.layout,
                &[batch],
                &[&self.table.rows],
                &self.left_schema,
                &self.table.rows.schema(),
                &pairs,
            )?);
        }
        Ok(out)
    }
}

/// The join as a node of the plan: its one child is the stream.
impl crate::operators::operator::Operator for StreamStaticJoin {
    fn name(&self) -> &'static str {
        "StreamStaticJoin"
    }
    fn schema(&self) -> SchemaRef {
        StreamStaticJoin::schema(self)
    }
    fn process(
        &mut self,
        _ctx: &mut crate::operators::operator::OperatorContext<'_>,
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        StreamStaticJoin::process(self, inputs.pop().unwrap_or_default())
    }
    fn refresh(&mut self) -> Result<()> {
        StreamStaticJoin::refresh(self).map(|_| ())
    }
    fn table_version(&self) -> Option<String> {
        Some(self.version().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::connectors::file::{CleanSource, FileFormat, FileSourceSpec, ParseMode};
    use crate::operators::join::JoinRight;

    fn table(dir: &std::path::Path) -> TableSpec {
        TableSpec {
            source: TableSource::Files(FileSourceSpec {
                path: dir.to_path_buf(),
                format: FileFormat::Csv,
                schema: Some(Arc::new(Schema::new(vec![
                    Field::new("id", DataType::Int64, true),
                    Field::new("name", DataType::Utf8, true),
                ]))),
                infer_schema: false,
                max_files_per_trigger: None,
                latest_first: false,
                clean_source: CleanSource::Off,
                mode: ParseMode::FailFast,
                column_name_of_corrupt_record: "_corrupt_record".into(),
                sep: b',',
                header: true,
            }),
            refresh: None,
        }
    }

    fn join(jt: JoinType, dir: &std::path::Path) -> StreamStaticJoin {
        let spec = JoinSpec {
            left: "events".into(),
            right: JoinRight::Table(table(dir)),
            join_type: jt,
            on: vec![("user".into(), "id".into())],
            within: None,
            qualifiers: None,
        };
        let left = Arc::new(Schema::new(vec![Field::new("user", DataType::Int64, true)]));
        let log = tempfile::tempdir().unwrap();
        let log = crate::storage::Location::Local(log.path().to_path_buf());
        StreamStaticJoin::open(spec, table(dir), left, log).unwrap()
    }

    fn users(join: &mut StreamStaticJoin, ids: &[Option<i64>]) -> Vec<Option<i64>> {
        let left = Arc::new(Schema::new(vec![Field::new("user", DataType::Int64, true)]));
        let batch =
            RecordBatch::try_new(left, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap();
        join.process(vec![batch])
            .unwrap()
            .iter()
            .flat_map(|b| {
                let c = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .clone();
                (0..c.len()).map(move |i| c.is_valid(i).then(|| c.value(i)))
            })
            .collect()
    }

    #[test]
    fn semi_and_anti_keep_the_stream_rows_with_and_without_a_match() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("u.csv"), "id,name\n1,ann\n2,bo\n2,bob\n").unwrap();
        let ids = [Some(1), Some(2), Some(3), None];
        assert_eq!(
            users(&mut join(JoinType::LeftSemi, dir.path()), &ids),
            [Some(1), Some(2)]
        );
        assert_eq!(
            users(&mut join(JoinType::LeftAnti, dir.path()), &ids),
            [Some(3), None]
        );
        // Inner: user 2 has two rows in the table; a null key matches nothing.
        assert_eq!(
            users(&mut join(JoinType::Inner, dir.path()), &ids),
            [Some(1), Some(2), Some(2)]
        );
    }

    #[test]
    fn a_changed_file_is_seen_at_the_next_refresh_and_changes_the_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("u.csv"), "id,name\n1,ann\n").unwrap();
        let mut j = join(JoinType::LeftOuter, dir.path());
        let v1 = j.version().to_owned();
        assert!(!j.refresh().unwrap(), "nothing changed");
        std::fs::write(dir.path().join("v.csv"), "id,name\n7,gus\n").unwrap();
        assert!(j.refresh().unwrap());
        assert_ne!(j.version(), v1);
        let names = |j: &mut StreamStaticJoin| -> Vec<Option<String>> {
            let left = Arc::new(Schema::new(vec![Field::new("user", DataType::Int64, true)]));
            let batch =
                RecordBatch::try_new(left, vec![Arc::new(Int64Array::from(vec![7]))]).unwrap();
            let out = j.process(vec![batch]).unwrap();
            let c = out[0]
                .column_by_name("name")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            c.iter().map(|s| s.map(str::to_owned)).collect()
        };
        assert_eq!(names(&mut j), [Some("gus".to_owned())]);
    }
}
