//! Several queries in one process (Spark's `StreamingQueryManager`): start them, stop them
//! all gracefully, wait for any or all to end.

use std::sync::mpsc::{Receiver, Sender, channel};

use tracing::warn;

use crate::error::Result;
use crate::pipeline::{OnQueryFailure, Pipeline, QuerySpec};
use crate::query::{ProgressLog, StreamingQuery};

/// How a query ended, as reported to the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// The query's name.
    pub query: String,
    /// The error text if it failed.
    pub error: Option<String>,
}

/// Owns the running queries of a process.
pub struct QueryManager {
    queries: Vec<StreamingQuery>,
    ended_tx: Sender<Termination>,
    ended_rx: Receiver<Termination>,
    progress_log: Option<ProgressLog>,
}

impl QueryManager {
    /// An empty manager; `progress_log` receives every query's progress as JSON lines.
    pub fn new(progress_log: Option<ProgressLog>) -> Self {
        let (ended_tx, ended_rx) = channel();
        QueryManager {
            queries: Vec::new(),
            ended_tx,
            ended_rx,
            progress_log,
        }
    }

    /// Starts every query of a pipeline. If one cannot start, those already started are
    /// stopped gracefully and the error is returned.
    pub fn start_pipeline(pipeline: &Pipeline, progress_log: Option<ProgressLog>) -> Result<Self> {
        let mut manager = QueryManager::new(progress_log);
        for spec in &pipeline.queries {
            if let Err(e) = manager.start(spec.clone()) {
                manager.stop_all();
                manager.await_all(OnQueryFailure::Continue);
                return Err(e);
            }
        }
        Ok(manager)
    }

    /// Starts one query.
    pub fn start(&mut self, spec: QuerySpec) -> Result<()> {
        let tx = self.ended_tx.clone();
        let on_end = move |name: &str, result: &Result<()>| {
            let _ = tx.send(Termination {
                query: name.to_owned(),
                error: result.as_ref().err().map(|e| e.to_string()),
            });
        };
        // A clustered query runs as a member of its consumer group: a task per partition
        // the group gives this process, each an ordinary query underneath.
        let query = if spec.cluster.is_some() {
            crate::cluster::start_member(spec, self.progress_log.clone(), on_end)?
        } else {
            StreamingQuery::start(spec, self.progress_log.clone(), on_end)?
        };
        self.queries.push(query);
        Ok(())
    }

    /// The running (and ended) queries.
    pub fn queries(&self) -> &[StreamingQuery] {
        &self.queries
    }

    /// Asks every query to stop after its batch in flight.
    pub fn stop_all(&self) {
        for q in &self.queries {
            q.stop();
        }
    }

    /// Blocks until some query ends (Spark's `awaitAnyTermination`).
    pub fn await_any_termination(&self) -> Option<Termination> {
        self.ended_rx.recv().ok()
    }

    /// Waits until every query has ended, applying the pipeline's failure policy as they do,
    /// and returns each query's outcome in start order.
    pub fn await_all(mut self, policy: OnQueryFailure) -> Vec<(String, Result<()>)> {
        // Every query sends exactly one termination, whenever it ended.
        let mut remaining = self.queries.len();
        while remaining > 0 {
            let Some(t) = self.await_any_termination() else {
                break;
            };
            remaining -= 1;
            if t.error.is_some() && policy == OnQueryFailure::StopAll {
                warn!(query = %t.query, "query failed and the pipeline says onQueryFailure = \"stopAll\"; stopping the others");
                self.stop_all();
            }
        }
        self.queries
            .iter_mut()
            .map(|q| (q.name().to_owned(), q.await_termination()))
            .collect()
    }
}
