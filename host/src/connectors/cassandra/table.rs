//! A Cassandra table (or a `SELECT`) as the static side of a stream–static join: read whole,
//! page by page, into the join's hash table, and read again on `refresh` (default every
//! minute). The rows themselves are the version: a changed content hash swaps the table in,
//! and the offsets log records the hash per batch, as for a PostgreSQL table.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::TryStreamExt;
use scylla::frame::response::result::ColumnType;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use sha2::{Digest, Sha256};

use super::CassandraTableSpec;
use super::client::{Client, consistency};
use super::types::{schema_of, to_batch};
use crate::error::{Error, Result};

/// Reads a Cassandra table or query into Arrow.
pub struct CassandraTable {
    spec: CassandraTableSpec,
    client: Client,
    statement: PreparedStatement,
    schema: SchemaRef,
}

impl CassandraTable {
    fn err(&self, message: String) -> Error {
        Error::Source {
            source_name: self.describe(),
            message,
        }
    }

    /// `join table cassandra[<query>]`, for errors and logs.
    pub fn describe(&self) -> String {
        format!("join table cassandra[{}]", self.spec.query)
    }

    /// Connects and learns the rows' schema (every column must map to Arrow).
    pub fn open(spec: CassandraTableSpec) -> Result<CassandraTable> {
        let fail = |message: String| Error::Source {
            source_name: format!("join table cassandra[{}]", spec.query),
            message,
        };
        let client = Client::connect(&spec.connection, "join.table.password")?.map_err(|e| {
            fail(format!(
                "cannot connect to {}: {e}",
                spec.connection.contact_points.join(", ")
            ))
        })?;
        let mut statement = client
            .run(|s| s.prepare(spec.query.clone()))
            .map_err(|e| fail(format!("preparing the query: {e}")))?;
        statement.set_page_size(spec.page_size);
        statement.set_consistency(consistency(&spec.consistency));
        let columns: Vec<(String, ColumnType<'static>)> = statement
            .get_current_result_set_col_specs()
            .get()
            .iter()
            .map(|c| (c.name().to_owned(), c.typ().clone().into_owned()))
            .collect();
        let schema =
            schema_of(&columns).map_err(|e| fail(format!("{e}; leave it out of query")))?;
        Ok(CassandraTable {
            spec,
            client,
            statement,
            schema,
        })
    }

    /// The rows' schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rows and their version (a hash of them), if that differs from `current`.
    pub fn read_if_changed(&mut self, current: &str) -> Result<Option<(RecordBatch, String)>> {
        let statement = self.statement.clone();
        let rows: Vec<Vec<Option<CqlValue>>> = self
            .client
            .run(|session| async move {
                let pager = session
                    .execute_iter(statement, ())
                    .await
                    .map_err(|e| e.to_string())?;
                let stream = pager.rows_stream::<Row>().map_err(|e| e.to_string())?;
                stream
                    .map_ok(|r| r.columns)
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| self.err(format!("reading the rows: {e}")))?;
        let mut hash = Sha256::new();
        for row in &rows {
            // The values' debug form is fixed by the driver's types and holds every byte.
            hash.update(format!("{row:?}").as_bytes());
            hash.update(b"\n");
        }
        let version: String = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        if version == current {
            return Ok(None);
        }
        let batch = to_batch(&self.schema, &rows).map_err(|e| self.err(e))?;
        Ok(Some((batch, version)))
    }
}
