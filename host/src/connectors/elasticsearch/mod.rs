//! Elasticsearch and OpenSearch: each row a document, written with `_bulk` requests.
//!
//! ```toml
//! [query.sink]
//! format = "elasticsearch"                   # or "opensearch"
//! url = "http://localhost:9200"               # https:// with sslRootCert for a private CA
//! index = "orders"                            # or "orders-{category}": a column's value per row
//! idColumns = ["order_id"]                    # the document _id; a replay overwrites the same
//! username = "sluice"                         # basic auth, with
//! password = { env = "ES_PASSWORD" }          # a secret; or apiKey = { env = "ES_API_KEY" }
//! deadLetter = "rejected"                     # documents the server refuses, with the reason
//! ```

pub mod sink;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::reader::TableReader;
use crate::secret::SecretSource;

/// One part of an index name: text, or a column whose value each row puts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexPart {
    /// Written as is.
    Text(String),
    /// The row's value of this column (`{column}` in `index`).
    Column(String),
}

/// Options of the Elasticsearch sink.
#[derive(Debug, Clone, PartialEq)]
pub struct ElasticsearchSpec {
    /// The server's base URL, without a trailing `/` (`http://localhost:9200`).
    pub url: String,
    /// The index each row goes to.
    pub index: Vec<IndexPart>,
    /// Columns whose values make a document's `_id`, joined by `:`; empty: an id made of the
    /// query id, the batch id and the row's position, so a replayed batch still writes each
    /// document once.
    pub id_columns: Vec<String>,
    /// Documents per `_bulk` request at most.
    pub bulk_rows: usize,
    /// Bytes per `_bulk` request at most (a request holds at least one document).
    pub bulk_bytes: u64,
    /// `refresh` of each request (`"true"`, `"wait_for"`), when not `false`.
    pub refresh: Option<String>,
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<SecretSource>,
    /// An API key (`Authorization: ApiKey ...`).
    pub api_key: Option<SecretSource>,
    /// PEM certificates that sign the server's (default: the system's store), for `https://`.
    pub ssl_root_cert: Option<PathBuf>,
    /// Retries of a request the server could not take (429, 5xx, no connection).
    pub max_retries: u32,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// The named output refused documents go to (with an `_error` column).
    pub dead_letter: Option<String>,
}

/// `index = "orders-{category}"` as parts; `Err` says what is wrong.
fn parse_index(text: &str) -> Result<Vec<IndexPart>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(IndexPart::Text(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("'{text}' opens '{{' without closing it"))?;
        let column = rest[open + 1..open + close].trim();
        if column.is_empty() {
            return Err(format!("'{text}' has an empty '{{}}'; name a column"));
        }
        parts.push(IndexPart::Column(column.to_owned()));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(IndexPart::Text(rest.to_owned()));
    }
    if parts.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(parts)
}

/// `format = "elasticsearch" | "opensearch"` options; `main`: the query's sink (only it may
/// send refused documents to a `deadLetter` output).
pub(crate) fn parse_sink(mut s: TableReader, base: &Path, main: bool) -> Option<ElasticsearchSpec> {
    let url = s
        .required_string("url", "the server, e.g. url = \"http://localhost:9200\"")
        .and_then(|u| {
            let u = u.trim_end_matches('/').to_owned();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                s.error_here("url", format!("'{u}' must start with http:// or https://"));
                return None;
            }
            if u.split("://").nth(1).is_some_and(|rest| {
                rest.split('/')
                    .next()
                    .is_some_and(|authority| authority.contains('@'))
            }) {
                s.error_here(
                    "url",
                    format!(
                        "holds credentials; give username and password, or apiKey; {}",
                        crate::secret::HOW_TO_WRITE
                    ),
                );
                return None;
            }
            Some(u)
        });
    let index = s
        .required_string("index", "the index, e.g. index = \"orders\"")
        .and_then(|i| match parse_index(&i) {
            Ok(parts) => Some(parts),
            Err(e) => {
                s.error_here("index", e);
                None
            }
        });
    let id_columns = s.string_list("idColumns").unwrap_or_default();
    let bulk_rows = s.positive("bulkSize").unwrap_or(1000) as usize;
    let bulk_bytes = s.bytes("bulkBytes").unwrap_or(5 << 20);
    let refresh = match s.string("refresh").as_deref() {
        None | Some("false") => None,
        Some(r @ ("true" | "wait_for")) => Some(r.to_owned()),
        Some(other) => {
            s.error_here(
                "refresh",
                format!("'{other}' is not an option; use \"false\", \"true\" or \"wait_for\""),
            );
            None
        }
    };
    let username = s.string("username");
    let password = s.secret("password", base);
    let api_key = s.secret("apiKey", base);
    if username.is_some() != password.is_some() {
        s.error_here(
            "username",
            "username and password go together (basic auth)".to_owned(),
        );
    }
    if api_key.is_some() && username.is_some() {
        s.error_here(
            "apiKey",
            "give apiKey or username and password, not both".to_owned(),
        );
    }
    let ssl_root_cert = s.string("sslRootCert").map(|p| base.join(p));
    let max_retries = s.u64("maxRetries").unwrap_or(5).min(100) as u32;
    let request_timeout = s
        .duration("requestTimeout")
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(30));
    let dead_letter = s.string("deadLetter");
    if dead_letter.is_some() && !main {
        s.error_here(
            "deadLetter",
            "only the query's sink may send refused documents to an output".to_owned(),
        );
    }
    s.finish(&[
        "format",
        "url",
        "index",
        "idColumns",
        "bulkSize",
        "bulkBytes",
        "refresh",
        "username",
        "password",
        "apiKey",
        "sslRootCert",
        "maxRetries",
        "requestTimeout",
        "deadLetter",
    ]);
    Some(ElasticsearchSpec {
        url: url?,
        index: index?,
        id_columns,
        bulk_rows,
        bulk_bytes,
        refresh,
        username,
        password,
        api_key,
        ssl_root_cert,
        max_retries,
        request_timeout,
        dead_letter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_templates_name_columns() {
        assert_eq!(
            parse_index("orders-{category}-x").unwrap(),
            vec![
                IndexPart::Text("orders-".into()),
                IndexPart::Column("category".into()),
                IndexPart::Text("-x".into()),
            ]
        );
        assert_eq!(
            parse_index("orders").unwrap(),
            vec![IndexPart::Text("orders".into())]
        );
        assert!(parse_index("orders-{").is_err());
        assert!(parse_index("a{}").is_err());
        assert!(parse_index("").is_err());
    }
}
