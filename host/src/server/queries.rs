//! The queries `sluice serve` runs, and what it keeps on disk so a restarted server resumes
//! them:
//!
//! ```text
//! <data>/pipelines/<id>.toml    the pipeline text as posted
//! <data>/pipelines/<id>.json    where its relative paths resolve, its queries, which of them
//!                               were stopped on request, and module swaps since
//! <data>/checkpoints/<query>/   the checkpoint of a query whose pipeline names none
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::pipeline::{Pipeline, QuerySpec};
use crate::progress::{QueryProgress, QueryStatus, Totals};
use crate::query::{StepInfo, StreamingQuery};
use crate::registry::Registry;

/// What the server remembers about a posted pipeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PipelineRecord {
    /// Relative paths in the pipeline resolve against this directory.
    base: PathBuf,
    /// Its queries, by name.
    queries: Vec<String>,
    /// Queries stopped through the API: not resumed on restart.
    stopped: Vec<String>,
    /// Module swaps since it was posted: query → step → module reference.
    swaps: BTreeMap<String, BTreeMap<String, String>>,
}

struct Served {
    handle: StreamingQuery,
    /// What the query is made of, for the dashboard's plan graph.
    plan: serde_json::Value,
    pipeline: String,
    /// How the query ended, set by its thread as it ends.
    end: Arc<QueryEnd>,
}

/// Set once by a query's thread when it ends; a stop request waits on it.
#[derive(Default)]
struct QueryEnd {
    /// `Some(error)` once ended: `None` inside if it stopped cleanly.
    outcome: Mutex<Option<Option<String>>>,
    ended: std::sync::Condvar,
}

impl QueryEnd {
    fn set(&self, error: Option<String>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        self.ended.notify_all();
    }

    fn exception(&self) -> Option<String> {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .flatten()
    }

    fn wait(&self) {
        let guard = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        let _ended = self
            .ended
            .wait_while(guard, |o| o.is_none())
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// A query as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryInfo {
    /// The query's name.
    pub name: String,
    /// Its id (stable across restarts: it lives in the checkpoint).
    pub id: String,
    /// This run's id.
    pub run_id: String,
    /// Whether its thread is still running.
    pub is_active: bool,
    /// Spark's status fields.
    #[serde(flatten)]
    pub status: QueryStatus,
    /// Why it ended, if it failed.
    pub exception: Option<String>,
    /// The last committed batch.
    pub last_batch_id: Option<u64>,
    /// Its transform steps and the modules they run.
    pub steps: Vec<StepView>,
    /// Its inputs, how they are combined, operators and sink ([`QuerySpec::plan_view`]).
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
}

/// A transform step as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    /// The step's name.
    pub name: String,
    /// The module as named (reference or path).
    pub module: String,
    /// `sha256:<hex>` of the module running now.
    pub digest: String,
}

impl From<StepInfo> for StepView {
    fn from(s: StepInfo) -> Self {
        StepView {
            name: s.name,
            module: s.module,
            digest: s.digest,
        }
    }
}

/// Per-query figures for `/metrics`.
pub struct QueryMetrics {
    /// The query's name.
    pub name: String,
    /// Its last progress record.
    pub last: Option<QueryProgress>,
    /// Counters over its run.
    pub totals: Totals,
}

/// The server's queries.
pub struct QueryTable {
    data_dir: PathBuf,
    registry: Registry,
    served: Mutex<BTreeMap<String, Served>>,
    /// Serialises changes to the pipeline records.
    records: Mutex<()>,
}

impl QueryTable {
    /// Opens the table (nothing runs until [`QueryTable::resume_all`] or a create).
    pub fn open(data_dir: PathBuf, registry: Registry) -> Result<QueryTable> {
        let dir = data_dir.join("pipelines");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        Ok(QueryTable {
            data_dir,
            registry,
            served: Mutex::new(BTreeMap::new()),
            records: Mutex::new(()),
        })
    }

    fn served(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Served>> {
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.data_dir.join("pipelines").join(format!("{id}.json"))
    }

    fn read_record(&self, id: &str) -> Result<PipelineRecord> {
        let path = self.record_path(id);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
            path,
            message: format!("corrupt pipeline record: {e}"),
        })
    }

    fn update_record(&self, id: &str, change: impl FnOnce(&mut PipelineRecord)) -> Result<()> {
        let _guard = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = self.read_record(id)?;
        change(&mut record);
        self.write_record(id, &record)
    }

    fn write_record(&self, id: &str, record: &PipelineRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).unwrap_or_default();
        write_atomic(&self.record_path(id), &json)
    }

    /// Drops query `name` from stored pipeline `id`, and the pipeline with its last query: a
    /// query started again and again (stop, start) must not leave a record behind each time.
    fn forget(&self, id: &str, name: &str) {
        let _guard = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(mut record) = self.read_record(id) else {
            return;
        };
        record.queries.retain(|q| q != name);
        record.stopped.retain(|q| q != name);
        record.swaps.remove(name);
        let outcome = if record.queries.is_empty() {
            let toml = self.data_dir.join("pipelines").join(format!("{id}.toml"));
            std::fs::remove_file(self.record_path(id))
                .and_then(|()| std::fs::remove_file(&toml))
                .map_err(|e| Error::io("removing", toml, e))
        } else {
            self.write_record(id, &record)
        };
        if let Err(e) = outcome {
            warn!(pipeline = %id, error = %e, "could not drop a replaced query from its stored pipeline");
        }
    }

    /// Parses a posted pipeline (TOML text; `base` anchors relative paths), applies recorded
    /// swaps and the server's default checkpoint location.
    fn parse(&self, text: &str, base: &Path, record: &PipelineRecord) -> Result<Pipeline> {
        let mut pipeline =
            Pipeline::parse_with_registry(text, &base.join("pipeline.toml"), Some(&self.registry))?;
        pipeline.check_modules(crate::registry::check_module_file)?;
        for q in &mut pipeline.queries {
            if q.cluster.is_some() {
                // A member needs its own name and a checkpoint the other machines reach; the
                // server's API and page do not show members yet.
                return Err(Error::Server(format!(
                    "query '{}' has a [query.cluster] table: run clustered queries with `sluice run --member NAME` on each machine; `sluice serve` does not run members yet",
                    q.name
                )));
            }
            if q.checkpoint_location.is_none() {
                q.checkpoint_location = Some(self.data_dir.join("checkpoints").join(&q.name));
            }
            if let Some(swaps) = record.swaps.get(&q.name) {
                for t in q.steps_mut() {
                    if let Some(reference) = swaps.get(&t.name) {
                        let m = self.registry.resolve(reference)?;
                        t.module = m.path;
                        t.module_ref = Some(reference.clone());
                    }
                }
            }
        }
        Ok(pipeline)
    }

    fn start(&self, spec: QuerySpec, pipeline: &str) -> Result<()> {
        let plan = spec.plan_view();
        let end = Arc::new(QueryEnd::default());
        let on_end = end.clone();
        let name = spec.name.clone();
        let handle = StreamingQuery::start(spec, None, move |_, result| {
            on_end.set(result.as_ref().err().map(|e| e.to_string()));
        })?;
        self.served().insert(
            name,
            Served {
                handle,
                plan,
                pipeline: pipeline.to_owned(),
                end,
            },
        );
        Ok(())
    }

    /// Starts the queries of a posted pipeline. Names must not clash with a query the server
    /// holds (running or ended: stop and forget it first).
    pub fn create(&self, text: &str, base: Option<PathBuf>) -> Result<Vec<QueryInfo>> {
        let base = base.unwrap_or_else(|| self.data_dir.clone());
        let pipeline = self.parse(text, &base, &PipelineRecord::default())?;
        {
            let served = self.served();
            for q in &pipeline.queries {
                if let Some(s) = served.get(&q.name)
                    && !s.handle.is_finished()
                {
                    return Err(Error::Server(format!(
                        "a query named '{}' is already running; stop it first or choose another name",
                        q.name
                    )));
                }
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.data_dir.join("pipelines");
        write_atomic(&dir.join(format!("{id}.toml")), text.as_bytes())?;
        let record = PipelineRecord {
            base,
            queries: pipeline.queries.iter().map(|q| q.name.clone()).collect(),
            ..Default::default()
        };
        self.write_record(&id, &record)?;
        let names: Vec<String> = record.queries.clone();
        for spec in pipeline.queries {
            // Replace an ended query of the same name; its old pipeline no longer holds it.
            let replaced = self.served().remove(&spec.name);
            if let Some(old) = replaced {
                self.forget(&old.pipeline, &spec.name);
            }
            if let Err(e) = self.start(spec, &id) {
                // Nothing of this pipeline keeps running, and it is not resumed later.
                for n in &names {
                    if let Some(s) = self.served().get(n) {
                        s.handle.stop();
                    }
                }
                let _ = std::fs::remove_file(self.record_path(&id));
                let _ = std::fs::remove_file(dir.join(format!("{id}.toml")));
                return Err(e);
            }
        }
        Ok(names.iter().filter_map(|n| self.info(n).ok()).collect())
    }

    /// Starts every stored pipeline's queries that were not stopped on request.
    pub fn resume_all(&self) {
        let dir = self.data_dir.join("pipelines");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect();
        ids.sort();
        for id in ids {
            let resumed = (|| -> Result<()> {
                let record = self.read_record(&id)?;
                let toml_path = dir.join(format!("{id}.toml"));
                let text = std::fs::read_to_string(&toml_path)
                    .map_err(|e| Error::io("reading", &toml_path, e))?;
                let pipeline = self.parse(&text, &record.base, &record)?;
                for spec in pipeline.queries {
                    if record.stopped.contains(&spec.name) {
                        continue;
                    }
                    info!(query = %spec.name, "resuming query from its checkpoint");
                    self.start(spec, &id)?;
                }
                Ok(())
            })();
            if let Err(e) = resumed {
                error!(pipeline = %id, error = %e, "could not resume a stored pipeline");
            }
        }
    }

    /// One query's status.
    pub fn info(&self, name: &str) -> Result<QueryInfo> {
        let served = self.served();
        let s = served.get(name).ok_or_else(|| not_found(name))?;
        let h = &s.handle;
        Ok(QueryInfo {
            name: h.name().to_owned(),
            id: h.id().to_owned(),
            run_id: h.run_id().to_owned(),
            is_active: !h.is_finished(),
            status: h.monitor().status(),
            exception: s.end.exception(),
            last_batch_id: h.monitor().last_progress().map(|p| p.batch_id),
            steps: h.steps().into_iter().map(StepView::from).collect(),
            plan: s.plan.clone(),
        })
    }

    /// Every query's status.
    pub fn list(&self) -> Vec<QueryInfo> {
        let names: Vec<String> = self.served().keys().cloned().collect();
        names.iter().filter_map(|n| self.info(n).ok()).collect()
    }

    /// The last and recent progress records of a query.
    pub fn progress(&self, name: &str) -> Result<(Option<QueryProgress>, Vec<QueryProgress>)> {
        let served = self.served();
        let s = served.get(name).ok_or_else(|| not_found(name))?;
        let m = s.handle.monitor();
        Ok((m.last_progress(), m.recent_progress()))
    }

    /// Figures of every query for `/metrics`.
    pub fn metrics(&self) -> Vec<QueryMetrics> {
        self.served()
            .values()
            .map(|s| QueryMetrics {
                name: s.handle.name().to_owned(),
                last: s.handle.monitor().last_progress(),
                totals: s.handle.monitor().totals(),
            })
            .collect()
    }

    /// Stops a query gracefully (its batch in flight commits) and waits for it to end; a
    /// restarted server does not resume it.
    pub fn stop(&self, name: &str) -> Result<QueryInfo> {
        let pipeline = {
            let served = self.served();
            let s = served.get(name).ok_or_else(|| not_found(name))?;
            s.handle.stop();
            s.pipeline.clone()
        };
        self.update_record(&pipeline, |r| {
            if !r.stopped.iter().any(|n| n == name) {
                r.stopped.push(name.to_owned());
            }
        })?;
        // Wait outside the lock: other requests go on meanwhile.
        let end = self.served().get(name).map(|s| s.end.clone());
        if let Some(end) = end {
            end.wait();
        }
        self.info(name)
    }

    /// Swaps step `step` of query `name` to the module `reference` from the next batch on,
    /// and records the swap so a restarted server keeps it.
    pub fn swap(&self, name: &str, step: &str, reference: &str) -> Result<StepView> {
        let module = self.registry.resolve(reference)?;
        let pipeline = {
            let served = self.served();
            let s = served.get(name).ok_or_else(|| not_found(name))?;
            if s.handle.is_finished() {
                return Err(Error::Server(format!(
                    "query '{name}' is not running; a swap applies to a running query"
                )));
            }
            s.handle
                .swap_step(step, module.path, Some(reference.to_owned()))?;
            s.pipeline.clone()
        };
        self.update_record(&pipeline, |r| {
            r.swaps
                .entry(name.to_owned())
                .or_default()
                .insert(step.to_owned(), reference.to_owned());
        })?;
        info!(
            query = name,
            step,
            module = reference,
            "swap requested; applies at the next batch boundary"
        );
        Ok(StepView {
            name: step.to_owned(),
            module: reference.to_owned(),
            digest: module.digest,
        })
    }

    /// The running query that uses the module with `digest`, if any.
    pub fn using(&self, digest: &str) -> Option<String> {
        self.served()
            .values()
            .filter(|s| !s.handle.is_finished())
            .find(|s| s.handle.steps().iter().any(|st| st.digest == digest))
            .map(|s| s.handle.name().to_owned())
    }

    /// Stops every query gracefully and waits for them (server shutdown; they resume on the
    /// next start).
    pub fn shutdown(&self) {
        let mut served = std::mem::take(&mut *self.served());
        for s in served.values() {
            s.handle.stop();
        }
        for (name, s) in served.iter_mut() {
            if let Err(e) = s.handle.await_termination() {
                warn!(query = %name, error = %e, "query ended with an error while stopping");
            }
        }
    }
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("no query named '{name}'"))
}
