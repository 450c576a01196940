//! foreachBatch: a `handler` component receives each micro-batch with its batch id, and
//! reaches only what the pipeline grants it — named outputs, one directory, allow-listed
//! HTTP hosts.

use std::path::{Component as PathPart, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use wasmtime::Store;
use wasmtime::component::Linker;

use super::bindings::handler::sluice::pipeline::{files, http, sinks};
use super::bindings::handler::{Handler, HandlerPre};
use super::bindings::transformer::sluice::pipeline::arrow::BatchResult;
use super::spec::HandlerSpec;
use super::{
    GuestState, SchemaCache, WasmRuntime, WorldLink, batch_from_guest, begin_call, explain,
    prepare, with_guest_batch, world_mismatch,
};
use crate::error::{Error, Result};
use crate::sink::Sink;
use crate::sink::outputs::SharedOutputs;
use sluice_guest_sdk::abi;

/// What a handler may reach, from its pipeline entry.
pub struct Grants {
    outputs: SharedOutputs,
    directory: Option<PathBuf>,
    allow_hosts: Vec<String>,
    schemas: SchemaCache,
}

impl Grants {
    fn file_path(&self, path: &str) -> std::result::Result<PathBuf, String> {
        let dir = self.directory.as_ref().ok_or(
            "no directory is granted to this handler; set `directory` in the pipeline's sink",
        )?;
        let rel = Path::new(path);
        if path.is_empty() || rel.components().any(|c| !matches!(c, PathPart::Normal(_))) {
            return Err(format!(
                "'{path}' must be a relative path inside the granted directory, without '..'"
            ));
        }
        Ok(dir.join(rel))
    }
}

impl sinks::Host for GuestState {
    fn write(
        &mut self,
        name: String,
        schema: Vec<u8>,
        batch: BatchResult,
    ) -> std::result::Result<(), String> {
        // Refused past the call's budget: the rows are staged in the host until the batch ends.
        self.emit_budget.take(&batch)?;
        let grants = self.grants.as_mut().ok_or("no outputs are granted")?;
        let schema = grants.schemas.get(&schema)?;
        let batch = batch_from_guest(&schema, batch)?;
        grants.outputs.stage(&name, batch)
    }
}

impl GuestState {
    /// Counts a file write or HTTP request against the call's budget; past it, the call will
    /// fail (even if the guest ignores the refusal) with the limit named.
    fn take_io(&mut self, bytes: u64, what: &str) -> std::result::Result<(), String> {
        if let Some(e) = &self.emit_error {
            return Err(e.clone());
        }
        self.emit_budget.take_io(bytes, what).inspect_err(|e| {
            self.emit_error = Some(e.clone());
        })
    }
}

impl files::Host for GuestState {
    fn write_file(&mut self, path: String, contents: Vec<u8>) -> std::result::Result<(), String> {
        self.take_io(contents.len() as u64, "files.write-file")?;
        let grants = self.grants.as_ref().ok_or("no directory is granted")?;
        let target = grants.file_path(&path)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        crate::fsutil::write_atomic(&target, &contents).map_err(|e| e.to_string())
    }

    fn read_file(&mut self, path: String) -> std::result::Result<Vec<u8>, String> {
        let grants = self.grants.as_ref().ok_or("no directory is granted")?;
        let target = grants.file_path(&path)?;
        std::fs::read(&target).map_err(|e| format!("reading {path}: {e}"))
    }
}

impl http::Host for GuestState {
    fn send(&mut self, req: http::Request) -> std::result::Result<http::Response, String> {
        self.take_io(req.body.len() as u64, "http.send")?;
        let grants = self.grants.as_ref().ok_or("no hosts are granted")?;
        let uri: ureq::http::Uri = req
            .url
            .parse()
            .map_err(|e| format!("bad URL '{}': {e}", req.url))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("URL '{}' has no host", req.url))?
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let allowed = grants
            .allow_hosts
            .iter()
            .any(|a| *a == host || *a == format!("{host}:{port}"));
        if !allowed {
            return Err(format!(
                "host '{host}:{port}' is not in the pipeline's allowHosts ({}); the request was not sent",
                if grants.allow_hosts.is_empty() {
                    "empty".to_owned()
                } else {
                    grants.allow_hosts.join(", ")
                }
            ));
        }
        let mut builder = ureq::http::Request::builder()
            .method(req.method.as_str())
            .uri(uri);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(req.body)
            .map_err(|e| format!("bad request: {e}"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut response = agent
            .run(request)
            .map_err(|e| format!("request to {host}:{port} failed: {e}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(super::MAX_HTTP_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| {
                format!(
                    "reading the response from {host}:{port} (at most {}): {e}",
                    super::human_bytes(super::MAX_HTTP_RESPONSE_BYTES)
                )
            })?;
        Ok(http::Response {
            status,
            headers,
            body,
        })
    }
}

pub(crate) const LINK: WorldLink = WorldLink {
    what: "a foreachBatch handler",
    world: "sluice:pipeline/handler",
    feature: "handler",
    add: |linker: &mut Linker<GuestState>| {
        Handler::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |s| s)
    },
};

/// A foreachBatch sink backed by a handler component.
pub struct WasmHandlerSink {
    spec: HandlerSpec,
    label: Arc<str>,
    runtime: &'static WasmRuntime,
    pre: HandlerPre<GuestState>,
    encoded_schema: Vec<u8>,
    outputs: SharedOutputs,
    instance: Option<(Store<GuestState>, Handler)>,
}

impl WasmHandlerSink {
    /// Loads the module, instantiates it and calls `init` with the batch schema.
    pub fn new(
        spec: HandlerSpec,
        query: &str,
        schema: SchemaRef,
        outputs: SharedOutputs,
    ) -> Result<Self> {
        let label: Arc<str> = format!(
            "query '{query}' foreachBatch (module {})",
            spec.module.display()
        )
        .into();
        let (runtime, instance_pre) = prepare(&spec.module, &spec.limits, &label, &LINK)?;
        let pre = HandlerPre::new(instance_pre).map_err(|e| world_mismatch(&label, &LINK, e))?;
        let mut sink = WasmHandlerSink {
            encoded_schema: abi::encode_schema(&schema),
            spec,
            label,
            runtime,
            pre,
            outputs,
            instance: None,
        };
        sink.instantiate()?;
        Ok(sink)
    }

    fn wasm_err(&self, message: String) -> Error {
        Error::Wasm {
            module: self.label.to_string(),
            message,
        }
    }

    fn instantiate(&mut self) -> Result<()> {
        let grants = Grants {
            outputs: self.outputs.clone(),
            directory: self.spec.directory.clone(),
            allow_hosts: self.spec.allow_hosts.clone(),
            schemas: SchemaCache::default(),
        };
        let config = self
            .spec
            .config
            .resolve(&format!("{}: config", self.label))?;
        let (store, instance, ()) = super::start_guest(
            self.runtime.engine(),
            self.label.clone(),
            &self.spec.limits,
            Some(grants),
            "the handler",
            |store| self.pre.instantiate(store),
            |instance: &Handler, store| {
                instance.sluice_pipeline_batch_handler().call_init(
                    store,
                    &config,
                    &self.encoded_schema,
                )
            },
        )?;
        self.instance = Some((store, instance));
        Ok(())
    }
}

impl Sink for WasmHandlerSink {
    fn description(&self) -> String {
        format!("ForeachBatchSink[{}]", self.spec.module.display())
    }

    fn add_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        // The handler sees the micro-batch as one batch, as Spark's foreachBatch sees one DataFrame.
        let batch = match batches {
            [one] => one.clone(),
            many => arrow_select::concat::concat_batches(schema, many)
                .map_err(|e| Error::data("assembling the batch for foreachBatch", e))?,
        };
        if self.instance.is_none() {
            self.instantiate()?;
        }
        let limits = self.spec.limits.clone();
        let Some((store, instance)) = self.instance.as_mut() else {
            return Err(self.wasm_err("no instance".into()));
        };
        begin_call(store, &limits)?;
        store.data_mut().emit_budget = super::EmitBudget::for_call(
            &limits,
            batch.num_rows() as u64,
            batch.get_array_memory_size() as u64,
        );
        let result = with_guest_batch(&batch, |b| {
            instance
                .sluice_pipeline_batch_handler()
                .call_handle(&mut *store, batch_id, b)
        })?;
        // A refused file write or request fails the call even if the guest went on.
        let refused = store.data_mut().emit_error.take();
        match (result, refused) {
            (Ok(Ok(())), None) => Ok(batch.num_rows() as u64),
            (Ok(_), Some(why)) => {
                self.outputs.discard_staged();
                Err(self.wasm_err(format!("{why} (batch {batch_id})")))
            }
            (Ok(Err(msg)), None) => {
                self.outputs.discard_staged();
                Err(self.wasm_err(format!(
                    "returned an error for batch {batch_id}: {}",
                    super::guest_text(&msg)
                )))
            }
            (Err(trap), refused) => {
                let why = refused.unwrap_or_else(|| explain(&trap, store.data(), &limits));
                self.instance = None;
                self.outputs.discard_staged();
                Err(self.wasm_err(format!("{why} (batch {batch_id})")))
            }
        }
    }
}
