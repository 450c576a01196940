//! The PostgreSQL sink: each batch in one database transaction that first claims the batch in
//! a small progress table, then bulk-loads the rows with a binary `COPY`.
//!
//! **Exactly once.** `sluice_progress (query_id, sink, batch_id)` holds the last batch each
//! query wrote into each table. A batch's transaction begins by moving that row forward to its
//! batch id — `INSERT ... ON CONFLICT DO UPDATE ... WHERE batch_id < $new` — which touches no
//! row when the batch (or a later one) is already recorded: a batch replayed after a crash
//! between the database commit and the checkpoint's commit is skipped, and one that crashed
//! before the database commit left nothing. The claimed row stays locked until the commit, so
//! two processes writing for one query cannot both write a batch.
//!
//! **Upsert.** Rows are copied into a temporary table with their position, then
//! `INSERT ... SELECT DISTINCT ON (key) ... ORDER BY key, position DESC ON CONFLICT (key) DO
//! UPDATE`: the last row of a key in a batch wins, as if the rows were applied in order.

use std::time::Duration;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use tracing::info;

use super::tls::pg;
use super::types::{Cell, column_type, staging_type};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::secret::SecretSource;
use crate::sink::Sink;

/// How a batch's rows reach the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every row is inserted.
    Append,
    /// A row replaces the table's row with the same key (`INSERT ... ON CONFLICT`).
    Upsert,
}

/// `[query.sink] format = "postgres"` (or a named output).
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresSinkSpec {
    /// libpq-style connection string or `postgres://` URL, without a password.
    pub url: String,
    /// Where the password is.
    pub password: Option<SecretSource>,
    /// The table, optionally schema-qualified (`public.orders`).
    pub table: String,
    /// Append or upsert.
    pub mode: WriteMode,
    /// Upsert key columns.
    pub key: Vec<String>,
    /// Create the table from the Arrow schema when it does not exist.
    pub create_table: bool,
    /// How long to wait for the server to answer.
    pub connect_timeout: Duration,
    /// TLS certificates (`sslmode` is in `url`).
    pub tls: super::tls::TlsFiles,
}

impl PostgresSinkSpec {
    /// `PostgresSink[host:port/db table]`, for logs and progress.
    pub fn description(&self) -> String {
        let where_ = self
            .url
            .parse::<postgres::Config>()
            .map(|c| {
                let host = c
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        postgres::config::Host::Tcp(h) => h.clone(),
                        postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .unwrap_or_else(|| "localhost".into());
                let port = c.get_ports().first().copied().unwrap_or(5432);
                format!("{host}:{port}/{}", c.get_dbname().unwrap_or_default())
            })
            .unwrap_or_default();
        format!("PostgresSink[{where_} {}]", self.table)
    }
}

/// Quotes an identifier (`public.orders` → `"public"."orders"`).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) fn quote_table(table: &str) -> String {
    table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// Which rows a sink gets: the query's (known at start), or a named output's (known when a
/// handler writes them).
#[derive(Debug, Clone)]
pub enum Rows {
    /// The main sink: rows of this schema.
    Of(SchemaRef),
    /// `[query.outputs.NAME]`.
    Output(String),
}

/// How rows of one schema are written: the quoted columns, the table column types and the
/// Arrow types they are staged as, and for upsert the statement that merges staged rows.
struct Plan {
    schema: SchemaRef,
    columns: Vec<String>,
    types: Vec<(Type, arrow_schema::DataType)>,
    merge: Option<String>,
}

/// Writes batches into a PostgreSQL table, exactly once per batch.
pub struct PostgresSink {
    spec: PostgresSinkSpec,
    client: Client,
    query_id: String,
    /// The sink's name in the progress table: its table, or `outputs.NAME`.
    sink_name: String,
    /// Made for the schema of the rows (at start for the main sink, at the first write for
    /// a named output).
    plan: Option<Plan>,
    /// `PostgresSink[host:port/db table]`, made once (progress asks for it every batch).
    description: String,
}

impl PostgresSink {
    fn err(spec: &PostgresSinkSpec, message: String) -> Error {
        Error::Sink {
            sink: spec.description(),
            message,
        }
    }

    /// Connects and creates the progress table; for the main sink also creates the table
    /// (with `createTable`) and checks that every column of its rows can be written into the
    /// table's column of that name.
    pub fn open(spec: PostgresSinkSpec, query_id: &str, rows: Rows) -> Result<Self> {
        let mut config: postgres::Config = spec
            .url
            .parse()
            .map_err(|e| Self::err(&spec, format!("url: {e}")))?;
        if let Some(password) = &spec.password {
            config.password(password.read("sink.password")?.expose());
        }
        config.connect_timeout(spec.connect_timeout);
        config.application_name("sluice");
        let mut client = super::tls::connect(&config, &spec.tls).map_err(|e| {
            Self::err(
                &spec,
                format!(
                    "could not connect within {:?}: {e}; check url, password, TLS and that the server is up",
                    spec.connect_timeout,
                ),
            )
        })?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS sluice_progress (\
                 query_id text NOT NULL, sink text NOT NULL, batch_id bigint NOT NULL, \
                 updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (query_id, sink))",
            )
            .map_err(|e| Self::err(&spec, format!("creating sluice_progress: {}", pg(e))))?;
        let (sink_name, schema) = match rows {
            Rows::Of(schema) => (spec.table.clone(), Some(schema)),
            Rows::Output(name) => (format!("outputs.{name}"), None),
        };
        let spec_description = spec.description();
        let mut sink = PostgresSink {
            spec,
            client,
            query_id: query_id.to_owned(),
            sink_name,
            plan: None,
            description: spec_description,
        };
        if let Some(schema) = schema {
            sink.plan = Some(sink.plan_for(&schema)?);
        }
        info!(sink = %sink.description, "connected");
        Ok(sink)
    }

    /// Creates the table when asked to and reads its column types for rows of `schema`.
    fn plan_for(&mut self, schema: &SchemaRef) -> Result<Plan> {
        let spec = &self.spec;
        let client = &mut self.client;
        let table = quote_table(&spec.table);
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect();
        for k in &spec.key {
            if schema.index_of(k).is_err() {
                return Err(Self::err(
                    spec,
                    format!(
                        "key column '{k}' is not among the columns reaching the sink ({})",
                        crate::schema::column_names(schema)
                    ),
                ));
            }
        }
        if spec.create_table {
            let mut defs = Vec::new();
            for (f, quoted) in schema.fields().iter().zip(&columns) {
                let t = column_type(f.data_type()).ok_or_else(|| {
                    Self::err(
                        spec,
                        format!(
                            "column '{}' is {}, which has no PostgreSQL column type here; \
                             cast it in a step, or create the table yourself",
                            f.name(),
                            f.data_type()
                        ),
                    )
                })?;
                defs.push(format!("{quoted} {t}"));
            }
            if spec.mode == WriteMode::Upsert {
                let key: Vec<String> = spec.key.iter().map(|k| quote_ident(k)).collect();
                defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
            }
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {table} ({})",
                    defs.join(", ")
                ))
                .map_err(|e| Self::err(spec, format!("creating the table: {}", pg(e))))?;
        }
        // The table's column types, by preparing a query of exactly the sink's columns.
        let probe = client
            .prepare(&format!(
                "SELECT {} FROM {table} LIMIT 0",
                columns.join(", ")
            ))
            .map_err(|e| Self::err(spec, format!("reading the table's columns: {}", pg(e))))?;
        let mut types = Vec::new();
        for (f, c) in schema.fields().iter().zip(probe.columns()) {
            let staged = staging_type(f.data_type(), c.type_()).ok_or_else(|| {
                Self::err(
                    spec,
                    format!(
                        "column '{}' is {} in the query but {} in the table, which does not map \
                         (see docs/PIPELINES.md, PostgreSQL types)",
                        f.name(),
                        f.data_type(),
                        c.type_()
                    ),
                )
            })?;
            types.push((c.type_().clone(), staged));
        }
        let merge = (spec.mode == WriteMode::Upsert).then(|| {
            let key: Vec<String> = spec.key.iter().map(|k| quote_ident(k)).collect();
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            let on_conflict = if updates.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            format!(
                "INSERT INTO {table} ({cols}) SELECT DISTINCT ON ({key}) {cols} FROM sluice_stage \
                 ORDER BY {key}, sluice_position DESC ON CONFLICT ({key}) {on_conflict}",
                cols = columns.join(", "),
                key = key.join(", "),
            )
        });
        Ok(Plan {
            schema: schema.clone(),
            columns,
            types,
            merge,
        })
    }
}

impl Sink for PostgresSink {
    fn description(&self) -> String {
        self.description.clone()
    }

    fn add_batch(
        &mut self,
        batch_id: u64,
        _schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        let batch = i64::try_from(batch_id).unwrap_or(i64::MAX);
        let Some(first) = batches.first() else {
            return Ok(0);
        };
        if self
            .plan
            .as_ref()
            .is_none_or(|p| p.schema != first.schema())
        {
            // A named output's rows: planned when first written (or when their schema
            // changes between batches).
            self.plan = Some(self.plan_for(&first.schema())?);
        }
        let Some(plan) = self.plan.as_ref() else {
            return Ok(0);
        };
        // Each column cast once to what its table column is written from.
        let staged: Vec<Vec<ArrayRef>> = batches
            .iter()
            .map(|b| {
                b.columns()
                    .iter()
                    .zip(&plan.types)
                    .enumerate()
                    .map(|(i, (c, (_, t)))| {
                        arrow_cast::cast::cast_with_options(
                            c,
                            t,
                            &arrow_cast::CastOptions {
                                safe: false,
                                ..Default::default()
                            },
                        )
                        .map_err(|e| {
                            Self::err(
                                &self.spec,
                                format!(
                                    "batch {batch_id}: column '{}' does not fit its table column: {e}",
                                    plan.columns[i]
                                ),
                            )
                        })
                    })
                    .collect()
            })
            .collect::<Result<_>>()?;
        let (query_id, sink_name) = (self.query_id.clone(), self.sink_name.clone());
        let mut types: Vec<Type> = plan.types.iter().map(|(t, _)| t.clone()).collect();
        let table = quote_table(&self.spec.table);
        let mut columns = plan.columns.clone();
        let merge = plan.merge.clone();
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Self::err(&self.spec, format!("batch {batch_id}: begin: {}", pg(e))))?;
        let claimed = tx
            .execute(
                "INSERT INTO sluice_progress (query_id, sink, batch_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (query_id, sink) DO UPDATE SET batch_id = EXCLUDED.batch_id, \
                 updated_at = now() WHERE sluice_progress.batch_id < EXCLUDED.batch_id",
                &[&query_id, &sink_name, &batch],
            )
            .map_err(|e| {
                Self::err(
                    &self.spec,
                    format!("batch {batch_id}: claiming it: {}", pg(e)),
                )
            })?;
        if claimed == 0 {
            // Written by an earlier run that crashed before the checkpoint recorded it.
            tx.rollback()
                .map_err(|e| Self::err(&self.spec, format!("batch {batch_id}: {}", pg(e))))?;
            info!(batch_id, sink = %self.description, "batch already in the table; skipped");
            return Ok(0);
        }
        let target = if merge.is_some() {
            tx.batch_execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS sluice_stage ON COMMIT DELETE ROWS AS \
                 SELECT {cols}, 0::bigint AS sluice_position FROM {table} LIMIT 0; \
                 TRUNCATE sluice_stage",
                cols = columns.join(", ")
            ))
            .map_err(|e| Self::err(&self.spec, format!("batch {batch_id}: staging: {}", pg(e))))?;
            columns.push("sluice_position".to_owned());
            types.push(Type::INT8);
            "sluice_stage".to_owned()
        } else {
            table
        };
        let rows: usize = staged
            .iter()
            .map(|c| c.first().map_or(0, |c| c.len()))
            .sum();
        let writer = tx
            .copy_in(&format!(
                "COPY {target} ({}) FROM STDIN (FORMAT binary)",
                columns.join(", ")
            ))
            .map_err(|e| Self::err(&self.spec, format!("batch {batch_id}: COPY: {}", pg(e))))?;
        let mut writer = BinaryCopyInWriter::new(writer, &types);
        // One row's values, reused from row to row: no allocation per row.
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(types.len());
        let mut written = 0usize;
        for cols in &staged {
            let n = cols.first().map_or(0, |c| c.len());
            for r in 0..n {
                cells.clear();
                cells.extend(cols.iter().map(|c| Cell::new(c, r)));
                if merge.is_some() {
                    // The staging position: the last row of a key in the batch wins.
                    cells.push(Cell::Int8(written as i64));
                }
                writer.write_raw(cells.iter()).map_err(|e| {
                    Self::err(
                        &self.spec,
                        format!("batch {batch_id}: COPY row {r}: {}", pg(e)),
                    )
                })?;
                written += 1;
                if written == rows / 2 {
                    failpoint::hit("postgres-mid-copy", batch_id);
                }
            }
        }
        writer
            .finish()
            .map_err(|e| Self::err(&self.spec, format!("batch {batch_id}: COPY: {}", pg(e))))?;
        if let Some(merge) = &merge {
            tx.execute(merge.as_str(), &[]).map_err(|e| {
                Self::err(&self.spec, format!("batch {batch_id}: upsert: {}", pg(e)))
            })?;
        }
        failpoint::hit("postgres-before-commit", batch_id);
        tx.commit()
            .map_err(|e| Self::err(&self.spec, format!("batch {batch_id}: commit: {}", pg(e))))?;
        failpoint::hit("postgres-after-commit", batch_id);
        Ok(rows as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_so_names_cannot_inject_sql() {
        assert_eq!(quote_table("public.orders"), "\"public\".\"orders\"");
        assert_eq!(quote_ident("a\"b; DROP"), "\"a\"\"b; DROP\"");
    }
}
