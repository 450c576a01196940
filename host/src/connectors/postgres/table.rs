//! A PostgreSQL table (or query) as the static side of a stream–static join:
//!
//! ```toml
//! [query.join.table]
//! format = "postgres"
//! url = "host=db port=5432 user=sluice dbname=shop"
//! password = { env = "PGPASSWORD" }
//! table = "users"                                       # or query = "SELECT id, name FROM ..."
//! versionQuery = "SELECT max(updated_at) FROM users"     # reload when its answer changes
//! refresh = "30 seconds"                                 # how often to ask
//! ```
//!
//! Without `versionQuery` the rows themselves are the version: every `refresh` (default one
//! minute) they are read again and a changed content hash swaps the table in.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{BinaryBuilder, BooleanBuilder, StringBuilder};
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use postgres::types::{FromSql, Type};
use postgres::{Client, Row};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::secret::SecretSource;

/// `[query.join.table] format = "postgres"`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresTableSpec {
    /// libpq-style connection string or `postgres://` URL, without a password.
    pub url: String,
    /// Where the password is.
    pub password: Option<SecretSource>,
    /// The rows: `SELECT * FROM <table>` or the user's query.
    pub query: String,
    /// A query whose one value changes when the rows do.
    pub version_query: Option<String>,
    /// How long to wait for the server to answer.
    pub connect_timeout: Duration,
    /// TLS certificates (`sslmode` is in `url`).
    pub tls: super::tls::TlsFiles,
}

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// The Arrow type a PostgreSQL column is read as (`None`: not mapped; cast it in `query`).
fn arrow_type(t: &Type) -> Option<DataType> {
    Some(match *t {
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        // As a float: exact to 15 significant digits; cast to text in `query` for more.
        Type::FLOAT8 | Type::NUMERIC => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::JSONB => {
            DataType::Utf8
        }
        Type::BOOL => DataType::Boolean,
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::DATE => DataType::Date32,
        Type::BYTEA => DataType::Binary,
        _ => return None,
    })
}

/// A value's wire bytes, read as they are (the column's Arrow builder decodes them): written
/// by hand so that timestamps, dates and json need no date or JSON library in between.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Raw(raw))
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn be<const N: usize>(raw: &[u8]) -> std::result::Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("a {N}-byte value arrived as {} bytes", raw.len()))
}

/// Reads a PostgreSQL table or query into Arrow.
pub struct PostgresTable {
    spec: PostgresTableSpec,
    client: Client,
    schema: SchemaRef,
    /// The answer of `versionQuery` the loaded rows belong to.
    seen_version: Option<String>,
}

impl PostgresTable {
    fn err(&self, message: String) -> Error {
        Error::Source {
            source_name: self.describe(),
            message,
        }
    }

    /// `postgres table <query>`, for errors and logs.
    pub fn describe(&self) -> String {
        format!("join table postgres[{}]", self.spec.query)
    }

    /// Connects and learns the rows' schema (every column must map to Arrow).
    pub fn open(spec: PostgresTableSpec) -> Result<PostgresTable> {
        let fail = |message: String| Error::Source {
            source_name: format!("join table postgres[{}]", spec.query),
            message,
        };
        let mut config: postgres::Config =
            spec.url.parse().map_err(|e| fail(format!("url: {e}")))?;
        if let Some(p) = &spec.password {
            config.password(p.read("join.table.password")?.expose());
        }
        config.connect_timeout(spec.connect_timeout);
        config.application_name("sluice");
        let mut client = super::tls::connect(&config, &spec.tls)
            .map_err(|e| fail(format!("could not connect: {e}")))?;
        let statement = client
            .prepare(&spec.query)
            .map_err(|e| fail(format!("preparing the query: {}", super::tls::pg(e))))?;
        let fields = statement
            .columns()
            .iter()
            .map(|c| {
                arrow_type(c.type_())
                    .map(|t| Field::new(c.name(), t, true))
                    .ok_or_else(|| {
                        fail(format!(
                            "column '{}' is {}, which has no Arrow type here; cast it in query \
                             (e.g. {}::text or ::double precision)",
                            c.name(),
                            c.type_(),
                            c.name()
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PostgresTable {
            spec,
            client,
            schema: Arc::new(Schema::new(fields)),
            seen_version: None,
        })
    }

    /// The rows' schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rows, if they may have changed since `current` (the version loaded): `None` when
    /// `versionQuery` answers what it answered for them. The version of rows read is the
    /// `versionQuery` answer and a hash of the rows.
    pub fn read_if_changed(&mut self, current: &str) -> Result<Option<(RecordBatch, String)>> {
        let answer = match &self.spec.version_query {
            Some(q) => {
                let row = self
                    .client
                    .query_opt(q.as_str(), &[])
                    .map_err(|e| self.err(format!("versionQuery: {}", super::tls::pg(e))))?;
                let text = row
                    .map(|r| version_text(&r))
                    .transpose()
                    .map_err(|e| self.err(format!("versionQuery: {e}")))?
                    .unwrap_or_default();
                if !current.is_empty() && self.seen_version.as_deref() == Some(text.as_str()) {
                    return Ok(None);
                }
                Some(text)
            }
            None => None,
        };
        let rows = self
            .client
            .query(self.spec.query.as_str(), &[])
            .map_err(|e| self.err(format!("reading the rows: {}", super::tls::pg(e))))?;
        let batch = self.to_arrow(&rows)?;
        let mut hash = Sha256::new();
        if let Some(a) = &answer {
            hash.update(a.as_bytes());
        }
        for row in &rows {
            for i in 0..row.len() {
                match row.try_get::<_, Option<Raw>>(i) {
                    Ok(Some(Raw(b))) => {
                        hash.update((b.len() as u64).to_le_bytes());
                        hash.update(b);
                    }
                    _ => hash.update(u64::MAX.to_le_bytes()),
                }
            }
        }
        let version: String = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        self.seen_version = answer;
        if version == current {
            return Ok(None);
        }
        Ok(Some((batch, version)))
    }

    fn to_arrow(&self, rows: &[Row]) -> Result<RecordBatch> {
        let n = rows.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, field) in self.schema.fields().iter().enumerate() {
            fn raw(r: &Row, i: usize) -> std::result::Result<Option<&[u8]>, String> {
                r.try_get::<_, Option<Raw>>(i)
                    .map(|v| v.map(|Raw(b)| b))
                    .map_err(|e| e.to_string())
            }
            let value =
                |r| raw(r, i).map_err(|e| self.err(format!("column '{}': {e}", field.name())));
            let bad = |e: String| self.err(format!("column '{}': {e}", field.name()));
            let pg_type = rows.first().map(|r| r.columns()[i].type_().clone());
            let jsonb = pg_type == Some(Type::JSONB);
            let column: ArrayRef = match field.data_type() {
                DataType::Int16 => Arc::new(fixed::<Int16Type>(rows, &value, &bad, |v| {
                    Ok(i16::from_be_bytes(be(v)?))
                })?),
                DataType::Int32 => Arc::new(fixed::<Int32Type>(rows, &value, &bad, |v| {
                    Ok(i32::from_be_bytes(be(v)?))
                })?),
                DataType::Int64 => Arc::new(fixed::<Int64Type>(rows, &value, &bad, |v| {
                    Ok(i64::from_be_bytes(be(v)?))
                })?),
                DataType::Float32 => Arc::new(fixed::<Float32Type>(rows, &value, &bad, |v| {
                    Ok(f32::from_be_bytes(be(v)?))
                })?),
                DataType::Float64 if pg_type == Some(Type::NUMERIC) => {
                    Arc::new(fixed::<Float64Type>(
                        rows,
                        &value,
                        &bad,
                        super::types::decode_numeric,
                    )?)
                }
                DataType::Float64 => Arc::new(fixed::<Float64Type>(rows, &value, &bad, |v| {
                    Ok(f64::from_be_bytes(be(v)?))
                })?),
                DataType::Boolean => {
                    let mut b = BooleanBuilder::with_capacity(n);
                    for r in rows {
                        b.append_option(value(r)?.map(|v| v.first() == Some(&1)));
                    }
                    Arc::new(b.finish())
                }
                DataType::Utf8 => {
                    let mut b = StringBuilder::with_capacity(n, n * 16);
                    for r in rows {
                        match value(r)? {
                            Some(v) => {
                                // jsonb's binary form starts with a version byte.
                                let text = if jsonb {
                                    v.get(1..).unwrap_or_default()
                                } else {
                                    v
                                };
                                b.append_value(
                                    std::str::from_utf8(text).map_err(|e| bad(e.to_string()))?,
                                );
                            }
                            None => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
                DataType::Binary => {
                    let mut b = BinaryBuilder::with_capacity(n, n * 16);
                    for r in rows {
                        b.append_option(value(r)?);
                    }
                    Arc::new(b.finish())
                }
                DataType::Timestamp(_, tz) => Arc::new(
                    fixed::<TimestampMicrosecondType>(rows, &value, &bad, |v| {
                        Ok(i64::from_be_bytes(be(v)?).saturating_add(PG_EPOCH_US))
                    })?
                    .with_timezone_opt(tz.clone()),
                ),
                DataType::Date32 => Arc::new(fixed::<Date32Type>(rows, &value, &bad, |v| {
                    Ok(i32::from_be_bytes(be(v)?).saturating_add(PG_EPOCH_DAYS))
                })?),
                other => return Err(self.err(format!("no reader for {other}"))),
            };
            columns.push(column);
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| self.err(format!("building the table: {e}")))
    }
}

/// A fixed-width column: each row's value (`value`) decoded from its wire bytes.
fn fixed<'r, T: ArrowPrimitiveType>(
    rows: &'r [Row],
    value: &dyn Fn(&'r Row) -> Result<Option<&'r [u8]>>,
    bad: &dyn Fn(String) -> Error,
    decode: impl Fn(&[u8]) -> std::result::Result<T::Native, String>,
) -> Result<PrimitiveArray<T>> {
    rows.iter()
        .map(|r| value(r)?.map(&decode).transpose().map_err(bad))
        .collect()
}

/// `versionQuery`'s one value as text: its wire bytes in hex, whatever its type.
fn version_text(row: &Row) -> std::result::Result<String, String> {
    if row.is_empty() {
        return Err("returned no column".into());
    }
    Ok(
        match row
            .try_get::<_, Option<Raw>>(0)
            .map_err(|e| e.to_string())?
        {
            Some(Raw(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
            None => "null".into(),
        },
    )
}
