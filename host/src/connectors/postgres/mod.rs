//! PostgreSQL: an exactly-once sink (`format = "postgres"`, append or upsert, one database
//! transaction per batch that also records the batch) — as the main sink, or as a named
//! output a foreachBatch handler writes to.
//!
//! ```toml
//! [query.sink]
//! format = "postgres"
//! url = "host=db.internal port=5432 user=sluice dbname=shop"   # libpq keywords or postgres://
//! password = { env = "PGPASSWORD" }                           # or { file = "/run/secrets/pg" }
//! table = "public.revenue"
//! mode = "upsert"                                            # or "append"
//! key = ["category", "window_start"]
//! createTable = true                                         # from the Arrow schema
//! sslRootCert = "certs/db-ca.pem"                            # TLS: sslmode in url, see [`tls`]
//! ```
//!
//! And a table (or query) as the static side of a stream–static join ([`table`]).

pub mod sink;
pub mod table;
pub mod tls;
pub mod types;

use std::path::Path;
use std::time::Duration;

use self::sink::{PostgresSinkSpec, WriteMode};
use self::table::PostgresTableSpec;
use crate::config::reader::TableReader;

/// `format = "postgres"` sink options.
pub(crate) fn parse_sink(mut s: TableReader, base: &Path) -> Option<PostgresSinkSpec> {
    let c = connection(&mut s, base);
    let table = s.required_string(
        "table",
        "the table to write, e.g. table = \"public.orders\"",
    );
    let mode = match s.string("mode").map(|m| m.to_ascii_lowercase()) {
        None => Some(WriteMode::Append),
        Some(m) if m == "append" => Some(WriteMode::Append),
        Some(m) if m == "upsert" => Some(WriteMode::Upsert),
        Some(other) => {
            s.error_here(
                "mode",
                format!("unknown mode '{other}'; use append or upsert"),
            );
            None
        }
    };
    let key = s.string_list("key").unwrap_or_default();
    if mode == Some(WriteMode::Upsert) && key.is_empty() {
        s.error_here(
            "key",
            "an upsert needs the key columns its rows replace by, e.g. key = [\"id\"]".to_owned(),
        );
    }
    if mode == Some(WriteMode::Append) && !key.is_empty() {
        s.error_here(
            "key",
            "only an upsert has a key; set mode = \"upsert\" or remove key".to_owned(),
        );
    }
    let create_table = s.bool("createTable").unwrap_or(false);
    s.finish(&[
        "format",
        "url",
        "password",
        "table",
        "mode",
        "key",
        "createTable",
        "connectTimeout",
        "sslRootCert",
        "sslCert",
        "sslKey",
    ]);
    Some(PostgresSinkSpec {
        url: c.url?,
        password: c.password,
        table: table?,
        mode: mode?,
        key,
        create_table,
        connect_timeout: c.connect_timeout,
        tls: c.tls,
    })
}

/// How a sink or table reaches its server.
struct Connection {
    url: Option<String>,
    password: Option<crate::secret::SecretSource>,
    connect_timeout: Duration,
    tls: tls::TlsFiles,
}

/// `url` (without a password), `password` (a secret), `connectTimeout` (default 10 s) and the
/// TLS files (`sslRootCert`, `sslCert`, `sslKey`), shared by the sink and the table.
fn connection(s: &mut TableReader, base: &Path) -> Connection {
    let url = s.required_string(
        "url",
        "the database, e.g. url = \"host=localhost port=5432 user=sluice dbname=app\"",
    );
    let url = url.and_then(|u| match u.parse::<postgres::Config>() {
        Ok(config) if config.get_password().is_some() => {
            s.error_here(
                "url",
                "holds a password; give it as password = { env = \"NAME\" } or { file = \"path\" } \
                 so the pipeline file never holds it"
                    .to_owned(),
            );
            None
        }
        Ok(_) => Some(u),
        Err(e) => {
            s.error_here("url", format!("is not a PostgreSQL connection string: {e}"));
            None
        }
    });
    let password = s.secret("password", base);
    let connect_timeout = s
        .duration("connectTimeout")
        .unwrap_or(Duration::from_secs(10));
    let mut file = |key: &str| s.string(key).map(|p| base.join(p));
    let tls = tls::TlsFiles {
        root_cert: file("sslRootCert"),
        cert: file("sslCert"),
        key: file("sslKey"),
    };
    if tls.cert.is_some() != tls.key.is_some() {
        s.error_here(
            "sslCert",
            "sslCert and sslKey go together (a client certificate and its key)".to_owned(),
        );
    }
    Connection {
        url,
        password,
        connect_timeout,
        tls,
    }
}

/// `[query.join.table] format = "postgres"` options (`refresh` is read by the join).
pub(crate) fn parse_table(mut s: TableReader, base: &Path) -> Option<PostgresTableSpec> {
    let c = connection(&mut s, base);
    let query = match (s.string("table"), s.string("query")) {
        (Some(t), None) => Some(format!("SELECT * FROM {}", sink::quote_table(&t))),
        (None, Some(q)) => Some(q),
        (Some(_), Some(_)) => {
            s.error_here("query", "give table or query, not both".to_owned());
            None
        }
        (None, None) => {
            s.error_here(
                "table",
                "missing; name the table (table = \"users\") or give a query".to_owned(),
            );
            None
        }
    };
    let version_query = s.string("versionQuery");
    // Read by the join: `format` chose this parser, `refresh` is the join's.
    s.get("format");
    s.get("refresh");
    s.finish(&[
        "format",
        "url",
        "password",
        "table",
        "query",
        "versionQuery",
        "connectTimeout",
        "refresh",
        "sslRootCert",
        "sslCert",
        "sslKey",
    ]);
    Some(PostgresTableSpec {
        url: c.url?,
        password: c.password,
        query: query?,
        version_query,
        connect_timeout: c.connect_timeout,
        tls: c.tls,
    })
}
