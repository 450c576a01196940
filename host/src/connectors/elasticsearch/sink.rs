//! The Elasticsearch sink: a batch's rows as documents in `_bulk` requests.
//!
//! Guarantees: a document's `_id` is fixed by its row (`idColumns`) or by the batch id and
//! the row's position, and a batch re-run after a crash has the same rows in the same order,
//! so the replay overwrites the documents it already wrote: each row is in the index once,
//! with the clean run's values (exactly-once in effect; the server itself has no transaction).
//! A request the server could not take (429, 5xx, no connection) is retried with back-off; a
//! document it refuses (a mapping conflict, a bad index name) goes to the `deadLetter` output
//! with the server's reason, or fails the batch when there is none: never dropped in silence.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::SchemaRef;
use tracing::warn;

use super::{ElasticsearchSpec, IndexPart};
use crate::error::{Error, Result};
use crate::schema::JsonRows;
use crate::sink::Sink;
use crate::sink::outputs::SharedOutputs;

/// The longest a response is read (a `_bulk` answer lists every document).
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// Writes rows to an Elasticsearch (or OpenSearch) index.
pub struct ElasticsearchSink {
    spec: ElasticsearchSpec,
    agent: ureq::Agent,
    /// The `Authorization` header's value (a secret: never printed).
    authorization: Option<String>,
    /// Prefix of the ids of rows without `idColumns`: the query id (and output name).
    id_prefix: String,
    /// Where refused documents are staged for the `deadLetter` output.
    outputs: SharedOutputs,
}

/// One document of a batch: where its row is and where it goes.
struct Doc {
    /// Which record batch, and which row of it.
    batch: usize,
    row: usize,
    /// Its index when `index` names a column (`None`: the fixed index, not copied per row).
    index: Option<String>,
    id: String,
}

/// A row that is not in the index, and why.
#[derive(Debug, Clone)]
struct Refused {
    batch: usize,
    row: usize,
    reason: String,
}

impl ElasticsearchSink {
    /// Opens the sink: reads the secrets, and asks the server who it is (so a wrong URL or
    /// password stops the query before its first batch, with the server's words).
    pub fn open(
        spec: ElasticsearchSpec,
        query_id: &str,
        output: Option<&str>,
        outputs: SharedOutputs,
    ) -> Result<Self> {
        let sink_name = format!("ElasticsearchSink[{}]", spec.url);
        let fail = |message: String| Error::Sink {
            sink: sink_name.clone(),
            message,
        };
        let authorization = match (&spec.username, &spec.password, &spec.api_key) {
            (Some(user), Some(password), _) => {
                use base64::Engine;
                let password = password.read("sink.password")?;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{}", password.expose()))
                ))
            }
            (_, _, Some(key)) => Some(format!("ApiKey {}", key.read("sink.apiKey")?.expose())),
            _ => None,
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(spec.request_timeout));
        if spec.url.starts_with("https://") {
            config = config.tls_config(tls_config(&spec).map_err(&fail)?);
        }
        let sink = ElasticsearchSink {
            agent: config.build().into(),
            authorization,
            id_prefix: match output {
                Some(name) => format!("{query_id}-{name}"),
                None => query_id.to_owned(),
            },
            outputs,
            spec,
        };
        let (status, body) = sink
            .request("GET", "/", &[])
            .map_err(|e| fail(format!("cannot reach {}: {e}", sink.spec.url)))?;
        match status {
            200..=299 => {}
            // Signed in, but not allowed to read the cluster's info: a writer may well not
            // be; its writes are judged when they come.
            403 => {
                warn!(sink = %sink.spec.url, "GET / answered 403 (the user may not read the cluster's info); going on")
            }
            _ => {
                return Err(fail(format!(
                    "{} answered {status}: {}",
                    sink.spec.url,
                    server_reason(&body)
                )));
            }
        }
        Ok(sink)
    }

    /// One request; `Err` when no answer came (the connection failed or timed out).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::result::Result<(u16, Vec<u8>), String> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.spec.url))
            .header("Content-Type", "application/x-ndjson");
        if let Some(auth) = &self.authorization {
            req = req.header("Authorization", auth);
        }
        let req = req.body(body).map_err(|e| e.to_string())?;
        let mut resp = self.agent.run(req).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok((status, body))
    }

    /// Sends one `_bulk` body, retrying while the server cannot take it; the answer's items.
    fn bulk(&self, batch_id: u64, body: &[u8]) -> Result<Vec<serde_json::Value>> {
        let path = match &self.spec.refresh {
            Some(r) => format!("/_bulk?refresh={r}"),
            None => "/_bulk".to_owned(),
        };
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let answer = self.request("POST", &path, body);
            let retry_why = match &answer {
                Err(e) => e.clone(),
                Ok((status, body)) if *status == 429 || *status >= 500 => {
                    format!("{status}: {}", server_reason(body))
                }
                Ok((status, body)) if !(200..300).contains(status) => {
                    return Err(self.err(
                        batch_id,
                        format!("_bulk answered {status}: {}", server_reason(body)),
                    ));
                }
                Ok((_, body)) => {
                    let answer: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                        self.err(batch_id, format!("_bulk answered with no JSON: {e}"))
                    })?;
                    return match answer.get("items").and_then(|i| i.as_array()) {
                        Some(items) => Ok(items.clone()),
                        None => Err(self.err(batch_id, "_bulk answered without items".into())),
                    };
                }
            };
            if attempt >= self.spec.max_retries {
                return Err(self.err(
                    batch_id,
                    format!(
                        "_bulk failed {} time{}, last: {retry_why}",
                        attempt + 1,
                        if attempt == 0 { "" } else { "s" }
                    ),
                ));
            }
            warn!(sink = %self.spec.url, batch_id, attempt, error = %retry_why, "retrying a _bulk request");
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    fn err(&self, batch_id: u64, message: String) -> Error {
        Error::Sink {
            sink: self.description(),
            message: format!("batch {batch_id}: {message}"),
        }
    }

    /// Each row's index and id, or why a row has none.
    fn docs(
        &self,
        batch_id: u64,
        batches: &[RecordBatch],
    ) -> Result<Vec<std::result::Result<Doc, Refused>>> {
        let options = FormatOptions::default().with_null("null");
        let mut out = Vec::new();
        let mut position = 0u64;
        for (b, batch) in batches.iter().enumerate() {
            let column = |name: &str, what: &str| -> Result<&ArrayRef> {
                batch
                    .schema()
                    .index_of(name)
                    .map(|i| batch.column(i))
                    .map_err(|_| {
                        self.err(
                            batch_id,
                            format!(
                                "{what} names '{name}', which is not among the columns ({})",
                                crate::schema::column_names(&batch.schema())
                            ),
                        )
                    })
            };
            fn formatter<'a>(
                a: &'a ArrayRef,
                options: &'a FormatOptions<'a>,
            ) -> std::result::Result<ArrayFormatter<'a>, String> {
                ArrayFormatter::try_new(a.as_ref(), options).map_err(|e| e.to_string())
            }
            let format_err = |e: String| self.err(batch_id, format!("formatting a value: {e}"));
            let ids = self
                .spec
                .id_columns
                .iter()
                .map(|c| column(c, "idColumns"))
                .collect::<Result<Vec<_>>>()?;
            let id_formats = ids
                .iter()
                .map(|a| formatter(a, &options).map_err(format_err))
                .collect::<Result<Vec<_>>>()?;
            let index_columns = self
                .spec
                .index
                .iter()
                .map(|p| match p {
                    IndexPart::Column(c) => column(c, "index").map(Some),
                    IndexPart::Text(_) => Ok(None),
                })
                .collect::<Result<Vec<_>>>()?;
            let index_formats = index_columns
                .iter()
                .map(|a| {
                    a.map(|a| formatter(a, &options).map_err(format_err))
                        .transpose()
                })
                .collect::<Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                let null_id = ids.iter().position(|a| a.is_null(row));
                let null_index = index_columns
                    .iter()
                    .position(|a| a.is_some_and(|a| a.is_null(row)));
                let refuse = |reason: String| Refused {
                    batch: b,
                    row,
                    reason,
                };
                if let Some(i) = null_id {
                    out.push(Err(refuse(format!(
                        "idColumns: '{}' is null",
                        self.spec.id_columns[i]
                    ))));
                } else if let Some(IndexPart::Column(c)) = null_index.map(|i| &self.spec.index[i]) {
                    out.push(Err(refuse(format!("index: '{c}' is null"))));
                } else {
                    let id = if id_formats.is_empty() {
                        format!("{}-{batch_id}-{position}", self.id_prefix)
                    } else {
                        id_formats
                            .iter()
                            .map(|f| f.value(row).to_string())
                            .collect::<Vec<_>>()
                            .join(":")
                    };
                    let index = index_formats.iter().any(Option::is_some).then(|| {
                        self.spec
                            .index
                            .iter()
                            .zip(&index_formats)
                            .map(|(p, f)| match (p, f) {
                                (IndexPart::Text(t), _) => t.clone(),
                                (IndexPart::Column(_), Some(f)) => f.value(row).to_string(),
                                (IndexPart::Column(_), None) => String::new(),
                            })
                            .collect()
                    });
                    out.push(Ok(Doc {
                        batch: b,
                        row,
                        index,
                        id,
                    }));
                }
                position += 1;
            }
        }
        Ok(out)
    }

    /// Stages the refused rows (with the reason in `_error`) for the `deadLetter` output, or
    /// fails the batch naming the first few.
    fn refuse(
        &self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        refused: Vec<Refused>,
    ) -> Result<()> {
        let Some(output) = &self.spec.dead_letter else {
            let first: Vec<String> = refused.iter().take(3).map(|r| r.reason.clone()).collect();
            return Err(self.err(
                batch_id,
                format!(
                    "{} document{} refused (first: {}); set deadLetter = \"<output>\" to keep them and go on",
                    refused.len(),
                    if refused.len() == 1 { " was" } else { "s were" },
                    first.join("; ")
                ),
            ));
        };
        let dl_schema = crate::sink::outputs::dead_letter_schema(schema);
        for (b, batch) in batches.iter().enumerate() {
            let mine: Vec<&Refused> = refused.iter().filter(|r| r.batch == b).collect();
            if mine.is_empty() {
                continue;
            }
            let rows = UInt32Array::from(mine.iter().map(|r| r.row as u32).collect::<Vec<_>>());
            let errors = StringArray::from_iter_values(mine.iter().map(|r| r.reason.as_str()));
            let dl = arrow_select::take::take_record_batch(batch, &rows)
                .and_then(|taken| {
                    crate::sink::outputs::dead_letter_rows(&dl_schema, &taken, errors)
                })
                .map_err(|e| self.err(batch_id, format!("building dead letters: {e}")))?;
            self.outputs
                .stage(output, dl)
                .map_err(|e| self.err(batch_id, e))?;
        }
        warn!(sink = %self.spec.url, batch_id, refused = refused.len(), output = %output, "documents refused by the server went to the dead-letter output");
        Ok(())
    }
}

/// The TLS settings of an `https://` server: its CA (`sslRootCert`) or the system's store.
fn tls_config(spec: &ElasticsearchSpec) -> std::result::Result<ureq::tls::TlsConfig, String> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let certs: Vec<Certificate<'static>> = match &spec.ssl_root_cert {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read sslRootCert {}: {e}", path.display()))?;
            ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(format!("sslRootCert {}: {e}", path.display()))),
                })
                .collect::<std::result::Result<_, _>>()?
        }
        None => rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    };
    if certs.is_empty() {
        return Err("no CA certificate to check the server's with: give sslRootCert".to_owned());
    }
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
}

/// What the server said: its `error.reason` (or `error` text), else the body's start.
fn server_reason(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned();
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => match &v["error"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(_) => item_reason(&v["error"]),
            _ => text,
        },
        Err(_) => text,
    }
}

/// A refused item's reason: `type: reason` (and the root cause's, when it differs).
fn item_reason(error: &serde_json::Value) -> String {
    let kind = error["type"].as_str().unwrap_or("error");
    let reason = error["reason"].as_str().unwrap_or("");
    let cause = error["caused_by"]["reason"].as_str().unwrap_or("");
    if cause.is_empty() || cause == reason {
        format!("{kind}: {reason}")
    } else {
        format!("{kind}: {reason} ({cause})")
    }
}

impl Sink for ElasticsearchSink {
    fn description(&self) -> String {
        format!("ElasticsearchSink[{}]", self.spec.url)
    }

    fn add_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        let docs = self.docs(batch_id, batches)?;
        // The index of every row when `index` names no column.
        let fixed_index: String = self
            .spec
            .index
            .iter()
            .map(|p| match p {
                IndexPart::Text(t) => t.as_str(),
                IndexPart::Column(_) => "",
            })
            .collect();
        let json = batches
            .iter()
            .map(|b| {
                JsonRows::of(b, &[]).map_err(|e| self.err(batch_id, format!("rows as JSON: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut refused: Vec<Refused> = Vec::new();
        let mut pending: Vec<&Doc> = Vec::with_capacity(docs.len());
        for d in &docs {
            match d {
                Ok(doc) => pending.push(doc),
                Err(r) => refused.push(r.clone()),
            }
        }
        let mut written = 0u64;
        // Documents the server was too busy for (429 per item) go round again, with the
        // request retries' back-off between rounds.
        let mut round = 0;
        while !pending.is_empty() {
            let mut busy: Vec<&Doc> = Vec::new();
            let mut start = 0;
            while start < pending.len() {
                let mut body = Vec::new();
                let mut end = start;
                while end < pending.len()
                    && end - start < self.spec.bulk_rows
                    && (end == start || (body.len() as u64) < self.spec.bulk_bytes)
                {
                    let doc = pending[end];
                    body.extend_from_slice(b"{\"index\":{\"_index\":");
                    // Names are written escaped straight into the body (no String per row).
                    let index = doc.index.as_deref().unwrap_or(&fixed_index);
                    let _ = serde_json::to_writer(&mut body, index);
                    body.extend_from_slice(b",\"_id\":");
                    let _ = serde_json::to_writer(&mut body, &doc.id);
                    body.extend_from_slice(b"}}\n");
                    body.extend_from_slice(json[doc.batch].row(doc.row));
                    body.push(b'\n');
                    end += 1;
                }
                let items = self.bulk(batch_id, &body)?;
                if end < pending.len() {
                    // Crash tests stop here: part of the batch's documents are in the index.
                    crate::failpoint::hit("mid-sink", batch_id);
                }
                if items.len() != end - start {
                    return Err(self.err(
                        batch_id,
                        format!(
                            "_bulk answered {} items for {} documents",
                            items.len(),
                            end - start
                        ),
                    ));
                }
                for (doc, item) in pending[start..end].iter().zip(&items) {
                    let result = item.as_object().and_then(|o| o.values().next());
                    let status = result.and_then(|r| r["status"].as_u64()).unwrap_or(0);
                    match status {
                        200..=299 => written += 1,
                        429 => busy.push(doc),
                        _ => refused.push(Refused {
                            batch: doc.batch,
                            row: doc.row,
                            reason: format!(
                                "_id {}: {}",
                                doc.id,
                                result.map_or_else(
                                    || "no answer".to_owned(),
                                    |r| item_reason(&r["error"])
                                )
                            ),
                        }),
                    }
                }
                start = end;
            }
            if !busy.is_empty() {
                round += 1;
                if round > self.spec.max_retries {
                    return Err(self.err(
                        batch_id,
                        format!("{} documents were still refused as too many requests (429) after {} rounds", busy.len(), round),
                    ));
                }
                std::thread::sleep(Duration::from_millis(100) * (1 << round.min(6)));
            }
            pending = busy;
        }
        if !refused.is_empty() {
            refused.sort_by_key(|r| (r.batch, r.row));
            self.refuse(batch_id, schema, batches, refused)?;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `_bulk` answer as noida-db gave it for a `create` of an existing id (the server
    /// accepts every `index` action, so the refusal path is read from its own words here).
    const REFUSED: &str = r#"{"errors":true,"items":[{"index":{"_id":"3","_index":"t","status":201}},{"create":{"error":{"reason":"[1]: version conflict, document already exists","root_cause":[{"reason":"[1]: version conflict, document already exists","type":"version_conflict_engine_exception"}],"type":"version_conflict_engine_exception"},"status":409}}],"took":0}"#;

    #[test]
    fn a_refused_item_says_the_server_s_type_and_reason() {
        let answer: serde_json::Value = serde_json::from_str(REFUSED).unwrap();
        let item = &answer["items"][1]["create"];
        assert_eq!(item["status"], 409);
        assert_eq!(
            item_reason(&item["error"]),
            "version_conflict_engine_exception: [1]: version conflict, document already exists"
        );
        let caused = serde_json::json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [n]", "caused_by": {"reason": "For input string: \"abc\""}});
        assert_eq!(
            item_reason(&caused),
            "mapper_parsing_exception: failed to parse field [n] (For input string: \"abc\")"
        );
        assert_eq!(
            server_reason(br#"{"error":{"type":"security_exception","reason":"unable to authenticate user [sluice]"},"status":401}"#),
            "security_exception: unable to authenticate user [sluice]"
        );
        assert_eq!(server_reason(b"Bad Gateway"), "Bad Gateway");
    }
}
