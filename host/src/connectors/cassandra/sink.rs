//! The Cassandra sink: each row an `INSERT` by the table's primary key, the rows of one
//! partition sent together in unlogged batches, a bounded number of requests in flight.
//!
//! Guarantees: an `INSERT` of a primary key overwrites what was there, and a batch re-run
//! after a crash holds the same rows (same offsets, same module versions), so the replay
//! rewrites the same values: each row is in the table once, with the clean run's values —
//! exactly-once in effect, when the rows of a batch are deterministic. (Cassandra has no
//! transaction to commit a batch atomically: between the crash and the replay a reader may see
//! part of a batch.) A write that timed out or met an overloaded cluster is retried with
//! back-off; a refused one (a type the table does not take) fails the batch, naming the sink,
//! the batch and the row. Nothing is dropped in silence.

use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::frame::response::result::ColumnType;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;
use tracing::warn;

use super::CassandraSinkSpec;
use super::client::{Client, backoff, consistency, retryable};
use super::types::{can_write, cql_name, value};
use crate::error::{Error, Result};
use crate::sink::Sink;

/// Writes rows to a Cassandra table.
pub struct CassandraSink {
    spec: CassandraSinkSpec,
    client: Client,
    /// The table's columns (name, type), in the table's order.
    columns: Vec<(String, ColumnType<'static>)>,
    /// The statement for the schema of the batches seen last.
    insert: Option<Insert>,
}

/// An `INSERT` of a batch schema's columns, prepared.
struct Insert {
    schema: SchemaRef,
    statement: PreparedStatement,
    /// Each bound column's CQL type, in the schema's order.
    types: Vec<ColumnType<'static>>,
    /// The schema's columns that make the partition key.
    partition_key: Vec<usize>,
}

/// One request: rows of one partition (one row: a plain statement).
type Rows = Vec<Vec<Option<CqlValue>>>;

impl CassandraSink {
    /// Connects, reads the table's columns, and (when the rows' schema is known: the query's
    /// main sink) checks every column against the table, so a missing table, a missing column
    /// or a type that does not map stops the query before its first batch.
    pub fn open(spec: CassandraSinkSpec, schema: Option<&SchemaRef>) -> Result<CassandraSink> {
        let sink = format!("CassandraSink[{}.{}]", spec.keyspace, spec.table);
        let fail = |message: String| Error::Sink {
            sink: sink.clone(),
            message,
        };
        let client = Client::connect(&spec.connection, "sink.password")?.map_err(|e| {
            fail(format!(
                "cannot connect to {}: {e}",
                spec.connection.contact_points.join(", ")
            ))
        })?;
        let columns = table_columns(&client, &spec.keyspace, &spec.table, schema).map_err(&fail)?;
        let mut sink = CassandraSink {
            spec,
            client,
            columns,
            insert: None,
        };
        if let Some(schema) = schema {
            sink.insert = Some(sink.prepare(schema).map_err(&fail)?);
        }
        Ok(sink)
    }

    fn table_name(&self) -> String {
        format!("{}.{}", self.spec.keyspace, self.spec.table)
    }

    /// The `INSERT` of `schema`'s columns, each checked against the table.
    fn prepare(&self, schema: &SchemaRef) -> std::result::Result<Insert, String> {
        let mut types = Vec::with_capacity(schema.fields().len());
        let mut names = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let name = field.name();
            let Some((column, cql)) = self.columns.iter().find(|(c, _)| c == name).or_else(|| {
                self.columns
                    .iter()
                    .find(|(c, _)| c.eq_ignore_ascii_case(name))
            }) else {
                return Err(format!(
                    "column '{name}' is not in table {} (its columns: {}); rename or drop it in a step",
                    self.table_name(),
                    self.columns
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if !can_write(field.data_type(), cql) {
                return Err(format!(
                    "column '{name}' is {} but {}.{column} is {}; cast it in a step (e.g. CAST({name} AS ...))",
                    field.data_type(),
                    self.table_name(),
                    cql_name(cql)
                ));
            }
            types.push(cql.clone());
            names.push(column.clone());
        }
        let cql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table_name(),
            names.join(", "),
            vec!["?"; names.len()].join(", ")
        );
        let consistency = consistency(&self.spec.consistency);
        let mut statement = self
            .client
            .run(|s| s.prepare(cql.clone()))
            .map_err(|e| format!("preparing '{cql}': {e}"))?;
        statement.set_consistency(consistency);
        // An INSERT by primary key may be sent twice: the driver may retry it on another node.
        statement.set_is_idempotent(true);
        let mut partition_key: Vec<(u16, usize)> = statement
            .get_variable_pk_indexes()
            .iter()
            .map(|k| (k.sequence, usize::from(k.index)))
            .collect();
        partition_key.sort_unstable();
        Ok(Insert {
            schema: schema.clone(),
            statement,
            types,
            partition_key: partition_key.into_iter().map(|(_, i)| i).collect(),
        })
    }

    /// The batch's rows as CQL values, grouped into requests: a partition's rows together, at
    /// most `batchSize` per request, partitions in the order they first appear.
    fn requests(
        &self,
        insert: &Insert,
        batch_id: u64,
        batches: &[RecordBatch],
    ) -> Result<Vec<Rows>> {
        let mut groups: Vec<Rows> = Vec::new();
        let mut partition_of: HashMap<Box<[u8]>, usize> = HashMap::new();
        let mut row_number = 0usize;
        for batch in batches {
            let keys = if insert.partition_key.is_empty() {
                None
            } else {
                let converter = RowConverter::new(
                    insert
                        .partition_key
                        .iter()
                        .map(|&i| SortField::new(batch.schema().field(i).data_type().clone()))
                        .collect(),
                )
                .map_err(|e| Error::data("partition keys", e))?;
                let columns: Vec<_> = insert
                    .partition_key
                    .iter()
                    .map(|&i| batch.column(i).clone())
                    .collect();
                Some(
                    converter
                        .convert_columns(&columns)
                        .map_err(|e| Error::data("partition keys", e))?,
                )
            };
            for row in 0..batch.num_rows() {
                let values = batch
                    .columns()
                    .iter()
                    .zip(&insert.types)
                    .zip(batch.schema().fields())
                    .map(|((array, cql), field)| {
                        value(array.as_ref(), row, cql).map_err(|e| Error::Sink {
                            sink: self.description(),
                            message: format!(
                                "batch {batch_id}, row {row_number}, column '{}': {e}",
                                field.name()
                            ),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let group = match &keys {
                    Some(keys) => {
                        let key: Box<[u8]> = keys.row(row).as_ref().into();
                        let next = groups.len();
                        let g = *partition_of.entry(key).or_insert(next);
                        if g == next {
                            groups.push(Vec::new());
                        }
                        g
                    }
                    None => {
                        groups.push(Vec::new());
                        groups.len() - 1
                    }
                };
                groups[group].push(values);
                row_number += 1;
            }
        }
        Ok(groups
            .into_iter()
            .flat_map(|rows| {
                let mut rows = rows.into_iter().peekable();
                let size = self.spec.batch_rows;
                std::iter::from_fn(move || {
                    rows.peek()?;
                    Some(rows.by_ref().take(size).collect::<Rows>())
                })
            })
            .collect())
    }
}

/// Sends one request, retrying what may succeed later; the error names what failed.
async fn send(
    session: &Session,
    statement: &PreparedStatement,
    consistency: scylla::statement::Consistency,
    rows: &Rows,
    max_retries: u32,
) -> std::result::Result<u64, String> {
    let mut attempt = 0;
    loop {
        let outcome = if rows.len() == 1 {
            session
                .execute_unpaged(statement, &rows[0])
                .await
                .map(|_| ())
        } else {
            let mut batch = Batch::new(BatchType::Unlogged);
            batch.set_consistency(consistency);
            batch.set_is_idempotent(true);
            for _ in rows {
                batch.append_statement(statement.clone());
            }
            session.batch(&batch, rows).await.map(|_| ())
        };
        match outcome {
            Ok(()) => return Ok(rows.len() as u64),
            Err(e) if retryable(&e) && attempt < max_retries => {
                attempt += 1;
                warn!(error = %e, attempt, "a Cassandra write failed; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => {
                return Err(match attempt {
                    0 => e.to_string(),
                    n => format!("{e} (after {n} retries)"),
                });
            }
        }
    }
}

impl Sink for CassandraSink {
    fn description(&self) -> String {
        format!("CassandraSink[{}]", self.table_name())
    }

    fn add_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        let sink = self.description();
        let fail = |message: String| Error::Sink {
            sink: sink.clone(),
            message: format!("batch {batch_id}: {message}"),
        };
        if self.insert.as_ref().is_none_or(|i| i.schema != *schema) {
            let insert = self.prepare(schema).map_err(&fail)?;
            self.insert = Some(insert);
        }
        let Some(insert) = self.insert.as_ref() else {
            return Ok(0);
        };
        let requests = self.requests(insert, batch_id, batches)?;
        let statement = &insert.statement;
        let consistency = consistency(&self.spec.consistency);
        let (in_flight, retries) = (self.spec.max_in_flight, self.spec.max_retries);
        let write = |requests: &[Rows]| {
            self.client.run(|session| {
                futures::stream::iter(requests.iter())
                    .map(|rows| send(session, statement, consistency, rows, retries))
                    .buffer_unordered(in_flight)
                    .try_fold(0u64, |total, n| async move { Ok(total + n) })
            })
        };
        // In two halves, so crash tests can stop a batch with part of its rows written.
        let (first, second) = requests.split_at(requests.len() / 2);
        let mut written = write(first).map_err(&fail)?;
        if !first.is_empty() {
            crate::failpoint::hit("mid-sink", batch_id);
        }
        written += write(second).map_err(&fail)?;
        Ok(written)
    }
}

/// The columns of `keyspace.table` (name, CQL type) as a `SELECT *` reports them; a missing
/// table is an error that shows how to create one for `schema`.
fn table_columns(
    client: &Client,
    keyspace: &str,
    table: &str,
    schema: Option<&SchemaRef>,
) -> std::result::Result<Vec<(String, ColumnType<'static>)>, String> {
    let cql = format!("SELECT * FROM {keyspace}.{table}");
    match client.run(|s| s.prepare(cql.clone())) {
        Ok(statement) => Ok(statement
            .get_current_result_set_col_specs()
            .get()
            .iter()
            .map(|c| (c.name().to_owned(), c.typ().clone().into_owned()))
            .collect()),
        Err(e) => {
            let text = e.to_string();
            // The statement is well formed, so the server's "invalid" means no such table
            // (Cassandra: "table x does not exist"; ScyllaDB: "unconfigured table x").
            let missing = matches!(
                &e,
                scylla::errors::PrepareError::AllAttemptsFailed {
                    first_attempt: scylla::errors::RequestAttemptError::DbError(
                        scylla::errors::DbError::Invalid,
                        _
                    )
                }
            );
            if missing {
                Err(format!(
                    "table {keyspace}.{table} does not exist ({text}); create it first{}",
                    schema
                        .map(|s| format!(", e.g.: {}", create_table(keyspace, table, s)))
                        .unwrap_or_default()
                ))
            } else {
                Err(format!("reading the columns of {keyspace}.{table}: {text}"))
            }
        }
    }
}

/// A `CREATE TABLE` for rows of `schema`, the first column as the primary key (a suggestion:
/// the right key is the user's to choose).
pub fn create_table(keyspace: &str, table: &str, schema: &SchemaRef) -> String {
    use arrow_schema::DataType as D;
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                D::Utf8 | D::LargeUtf8 | D::Utf8View => "text",
                D::Int8 => "tinyint",
                D::Int16 | D::UInt8 => "smallint",
                D::Int32 | D::UInt16 => "int",
                D::Int64 | D::UInt32 => "bigint",
                D::Float32 => "float",
                D::Float64 => "double",
                D::Boolean => "boolean",
                D::Timestamp(_, _) => "timestamp",
                D::Date32 => "date",
                D::Decimal128(_, _) => "decimal",
                D::Binary | D::LargeBinary | D::FixedSizeBinary(_) => "blob",
                _ => "text /* map this yourself */",
            };
            format!("{} {t}", f.name())
        })
        .collect();
    let key = schema
        .fields()
        .first()
        .map(|f| f.name().as_str())
        .unwrap_or("id");
    format!(
        "CREATE TABLE {keyspace}.{table} ({}, PRIMARY KEY ({key}))",
        columns.join(", ")
    )
}
