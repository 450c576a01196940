//! Apache Cassandra and ScyllaDB (CQL): a sink that writes rows by primary key, and a table a
//! stream–static join reads whole. The client is the `scylla` driver (the maintained Rust
//! driver for both), on a small Tokio runtime of the connector's own.
//!
//! ```toml
//! [query.sink]
//! format = "cassandra"
//! contactPoints = ["db1:9042", "db2:9042"]
//! localDatacenter = "dc1"                     # route requests to this datacenter's nodes
//! keyspace = "shop"
//! table = "user_events"
//! username = "sluice"                         # PasswordAuthenticator, with
//! password = { env = "CASSANDRA_PASSWORD" }   # a secret, never printed
//! consistency = "LOCAL_QUORUM"                # the default
//! sslRootCert = "certs/ca.pem"                # TLS, nodes' certificates signed by this CA
//!
//! [query.join.table]
//! format = "cassandra"
//! contactPoints = ["db1:9042"]
//! keyspace = "shop"
//! table = "users"                             # or query = "SELECT id, name FROM shop.users"
//! refresh = "1 minute"
//! ```

pub mod client;
pub mod sink;
pub mod table;
pub mod types;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::reader::TableReader;
use crate::secret::SecretSource;

/// How to reach the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// `host:port` (port 9042 when left out) of the nodes to start from.
    pub contact_points: Vec<String>,
    /// Only this datacenter's nodes serve requests (Cassandra's `LOCAL_*` consistency).
    pub local_datacenter: Option<String>,
    /// PasswordAuthenticator's user.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<SecretSource>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// TLS: `Some` (with the PEM certificates that sign the nodes', or the system's store).
    pub tls: Option<Option<PathBuf>>,
}

/// The consistency levels a request can ask for, by their CQL names.
pub const CONSISTENCY_LEVELS: &[&str] = &[
    "ANY",
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "LOCAL_ONE",
];

/// `format = "cassandra"` sink options.
#[derive(Debug, Clone, PartialEq)]
pub struct CassandraSinkSpec {
    /// The cluster.
    pub connection: Connection,
    /// The table's keyspace.
    pub keyspace: String,
    /// The table rows go to (its columns are the rows' columns, by name).
    pub table: String,
    /// The consistency level of each write (a name from [`CONSISTENCY_LEVELS`]).
    pub consistency: String,
    /// Rows of one partition written in one unlogged batch, at most.
    pub batch_rows: usize,
    /// Requests in flight at once, at most.
    pub max_in_flight: usize,
    /// Retries of a request that timed out or found the cluster overloaded.
    pub max_retries: u32,
}

/// `format = "cassandra"` join table options.
#[derive(Debug, Clone, PartialEq)]
pub struct CassandraTableSpec {
    /// The cluster.
    pub connection: Connection,
    /// The statement that reads the rows: `SELECT * FROM <keyspace>.<table>` or the user's.
    pub query: String,
    /// The consistency level of the reads.
    pub consistency: String,
    /// Rows per page.
    pub page_size: i32,
}

const CONNECTION_KEYS: &[&str] = &[
    "contactPoints",
    "localDatacenter",
    "username",
    "password",
    "connectTimeout",
    "requestTimeout",
    "consistency",
    "ssl",
    "sslRootCert",
];

/// The connection options every use shares.
fn parse_connection(s: &mut TableReader, base: &Path) -> Option<Connection> {
    let contact_points = match s.string_list("contactPoints") {
        Some(points) if !points.is_empty() => Some(points),
        Some(_) => {
            s.error_here(
                "contactPoints",
                "name at least one node, e.g. contactPoints = [\"db1:9042\"]".to_owned(),
            );
            None
        }
        None => {
            s.error_here(
                "contactPoints",
                "missing: the nodes to connect to, e.g. contactPoints = [\"db1:9042\"]".to_owned(),
            );
            None
        }
    };
    let local_datacenter = s.string("localDatacenter");
    let username = s.string("username");
    let password = s.secret("password", base);
    if username.is_some() != password.is_some() {
        s.error_here(
            "username",
            "username and password go together (PasswordAuthenticator)".to_owned(),
        );
    }
    let connect_timeout = s
        .duration("connectTimeout")
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(10));
    let request_timeout = s
        .duration("requestTimeout")
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(30));
    let ssl_root_cert = s.string("sslRootCert").map(|p| base.join(p));
    let tls = match (s.bool("ssl"), ssl_root_cert) {
        (Some(false), Some(_)) => {
            s.error_here(
                "ssl",
                "is false, but sslRootCert is given: TLS is on with a CA".to_owned(),
            );
            None
        }
        (Some(true), ca) | (None, ca @ Some(_)) => Some(ca),
        (Some(false) | None, None) => None,
    };
    Some(Connection {
        contact_points: contact_points?,
        local_datacenter,
        username,
        password,
        connect_timeout,
        request_timeout,
        tls,
    })
}

/// `consistency`, checked against the CQL names (default `LOCAL_QUORUM`, or `LOCAL_ONE` for
/// reads).
fn parse_consistency(s: &mut TableReader, default: &str) -> String {
    match s.string("consistency") {
        None => default.to_owned(),
        Some(c) => {
            let upper = c.to_ascii_uppercase();
            if CONSISTENCY_LEVELS.contains(&upper.as_str()) {
                upper
            } else {
                s.error_here(
                    "consistency",
                    format!(
                        "'{c}' is not a consistency level; use one of {}",
                        CONSISTENCY_LEVELS.join(", ")
                    ),
                );
                default.to_owned()
            }
        }
    }
}

/// A CQL identifier as written, checked: letters, digits and `_` (quoted names are not
/// supported, so a name cannot smuggle CQL into a statement).
fn identifier(s: &mut TableReader, key: &str, hint: &str) -> Option<String> {
    let name = s.required_string(key, hint)?;
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        s.error_here(
            key,
            format!(
                "'{name}' is not a CQL name (letters, digits and _, not starting with a digit)"
            ),
        );
        return None;
    }
    Some(name)
}

/// `[query.sink] format = "cassandra"` (and named outputs).
pub(crate) fn parse_sink(mut s: TableReader, base: &Path) -> Option<CassandraSinkSpec> {
    let connection = parse_connection(&mut s, base);
    let keyspace = identifier(
        &mut s,
        "keyspace",
        "the table's keyspace, e.g. keyspace = \"shop\"",
    );
    let table = identifier(
        &mut s,
        "table",
        "the table rows go to, e.g. table = \"orders\"",
    );
    let consistency = parse_consistency(&mut s, "LOCAL_QUORUM");
    let batch_rows = s.positive("batchSize").unwrap_or(20).min(65_535) as usize;
    let max_in_flight = s.positive("maxInFlight").unwrap_or(16).min(1024) as usize;
    let max_retries = s.u64("maxRetries").unwrap_or(5).min(100) as u32;
    let mut known = vec![
        "format",
        "keyspace",
        "table",
        "batchSize",
        "maxInFlight",
        "maxRetries",
    ];
    known.extend(CONNECTION_KEYS);
    s.finish(&known);
    Some(CassandraSinkSpec {
        connection: connection?,
        keyspace: keyspace?,
        table: table?,
        consistency,
        batch_rows,
        max_in_flight,
        max_retries,
    })
}

/// `[query.join.table] format = "cassandra"` (`refresh` is read by the join).
pub(crate) fn parse_table(mut s: TableReader, base: &Path) -> Option<CassandraTableSpec> {
    // Read by the join: which connector, and how often to read the table again.
    let _ = s.get("format");
    let _ = s.get("refresh");
    let connection = parse_connection(&mut s, base);
    let consistency = parse_consistency(&mut s, "LOCAL_ONE");
    let page_size = s.positive("pageSize").unwrap_or(5000).min(1 << 20) as i32;
    let query = match (s.get("query").is_some(), s.get("table").is_some()) {
        (true, false) => s.string("query"),
        (false, true) => {
            let keyspace = identifier(
                &mut s,
                "keyspace",
                "the table's keyspace, e.g. keyspace = \"shop\"",
            );
            let table = identifier(&mut s, "table", "the table, e.g. table = \"users\"");
            keyspace
                .zip(table)
                .map(|(k, t)| format!("SELECT * FROM {k}.{t}"))
        }
        _ => {
            s.error_here(
                "table",
                "give table (with keyspace) or query (a SELECT), one of them".to_owned(),
            );
            None
        }
    };
    let mut known = vec![
        "format", "keyspace", "table", "query", "refresh", "pageSize",
    ];
    known.extend(CONNECTION_KEYS);
    s.finish(&known);
    Some(CassandraTableSpec {
        connection: connection?,
        query: query?,
        consistency,
        page_size,
    })
}
