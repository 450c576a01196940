//! Scale-out: one query run by several `sluice` processes, each a **member** of a Kafka
//! consumer group (`[query.cluster]`, `sluice run --member NAME`).
//!
//! The group protocol decides which member owns which input partition; everything else is
//! the checkpoint's. Each owned partition is a **task**: an ordinary micro-batch query over
//! that one partition with a checkpoint of its own, `partitions/<topic>-<p>/` under the
//! shared `checkpointLocation`, so a partition's offsets, state and Kafka transactional id
//! move with it and a hand-over is the recovery any query runs after a crash. See
//! ARCHITECTURE.md, "Scale-out".
//!
//! - [`membership`]: the group consumer and its rebalance callbacks;
//! - [`ownership`]: the owners log of a partition and the fence on its checkpoint;
//! - this module: the member's thread, its tasks, and what it tells observers
//!   (`members/<member>` in the checkpoint, the query's status and progress).
//!
//! The member thread owns the group consumer and polls it; the callbacks start and stop
//! tasks on that thread. Each task runs on threads of its own (a runner that claims the
//! partition and waits, and the query's). A stop request stops every task after its batch
//! in flight, then leaves the group, so the others take the partitions over at once.

mod membership;
pub mod ownership;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::connectors::kafka::source::Subscription;
use crate::error::{Error, Result};
use crate::pipeline::{ClusterSpec, QuerySpec, SourceSpec};
use crate::progress::QueryMonitor;
use crate::query::{ProgressLog, StopSignal, StreamingQuery, TaskContext};
use crate::storage::Location;
use membership::Membership;
use ownership::Ownership;

/// One input partition: the unit a member owns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What `members/<member>` in the checkpoint says of one member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The member's name.
    pub member: String,
    /// The consumer group.
    pub group: String,
    /// Its process id.
    pub pid: u32,
    /// When this was written (RFC 3339); rewritten every few seconds while it runs.
    pub updated_at: String,
    /// Whether it left the group (a graceful stop) or failed.
    pub ended: Option<String>,
    /// The partitions it owns now.
    pub partitions: Vec<PartitionStatus>,
}

/// One owned partition in a [`MemberStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    /// `topic-partition`.
    pub partition: String,
    /// Its owner epoch (`owners/<epoch>`), once claimed.
    pub owner_epoch: Option<u64>,
    /// Where its task is.
    pub state: TaskState,
    /// Batches this member committed for it.
    pub batches: u64,
    /// The last batch id it committed.
    pub last_batch_id: Option<u64>,
}

/// Where a partition's task is, in a [`PartitionStatus`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum TaskState {
    /// Assigned; the claim is not written yet.
    Starting,
    /// Claimed (an owner entry of this member's) and running its query.
    Running,
    /// Its task ended with an error; it is restarted later.
    Retrying,
}

impl MemberStatus {
    /// The partitions this member claimed and runs now, as its entry says (none once it
    /// ended).
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.partitions
            .iter()
            .filter(|p| self.ended.is_none() && p.state == TaskState::Running)
            .map(|p| p.partition.as_str())
    }
}

/// How often a running member rewrites its `members/<member>` entry.
const STATUS_EVERY: Duration = Duration::from_secs(2);
/// How many times one partition's task may fail (without committing a batch in between)
/// before the member gives up and fails.
const MAX_TASK_FAILURES: u32 = 5;

/// Every member's entry in the checkpoint at `root`, by member name.
pub fn members(root: &std::path::Path) -> Result<Vec<MemberStatus>> {
    let dir = Location::parse(root)?.join("members");
    let mut out = Vec::new();
    for name in dir.children()? {
        let at = dir.join(&name);
        if let Some(bytes) = at.read()? {
            match serde_json::from_slice::<MemberStatus>(&bytes) {
                Ok(s) => out.push(s),
                Err(e) => {
                    warn!(entry = %at.to_path_buf().display(), error = %e, "unreadable member entry")
                }
            }
        }
    }
    out.sort_by(|a, b| a.member.cmp(&b.member));
    Ok(out)
}

/// `cluster.json` at the checkpoint's root: which group's checkpoint it is.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct ClusterMetadata {
    group: String,
    query: String,
}

/// Starts this process as a member of the query's group; the handle behaves as a query's
/// (status, progress, stop, termination). Problems found before joining (no broker, a
/// checkpoint of another group) are returned here.
pub(crate) fn start_member(
    spec: QuerySpec,
    progress_log: Option<ProgressLog>,
    on_end: impl FnOnce(&str, &Result<()>) + Send + 'static,
) -> Result<StreamingQuery> {
    let cluster = spec
        .cluster
        .clone()
        .ok_or_else(|| internal("no [query.cluster]"))?;
    let root = spec
        .checkpoint_location
        .clone()
        .ok_or_else(|| internal("a clustered query without checkpointLocation"))?;
    let SourceSpec::Kafka(kafka) = &spec.inputs[0].source else {
        return Err(internal("a clustered query whose input is not Kafka"));
    };
    let Subscription::Topics(topics) = &kafka.subscription else {
        return Err(internal("a clustered query that does not subscribe"));
    };
    let member = cluster.member_name();
    check_cluster_metadata(&root, &cluster, &spec.name)?;
    let monitor = Arc::new(QueryMonitor::default());
    let tasks = Arc::new(Mutex::new(Tasks {
        member: member.clone(),
        spec: spec.clone(),
        root: root.clone(),
        progress_log,
        monitor: monitor.clone(),
        owned: BTreeSet::new(),
        running: BTreeMap::new(),
        retry: BTreeMap::new(),
        failure: None,
        leaving: false,
        changed: true,
    }));
    let membership = Membership::join(kafka, &cluster, &member, topics, tasks.clone())?;
    let stop = Arc::new(StopSignal::default());
    let run_id = uuid::Uuid::new_v4().to_string();
    let id = format!("{}/{member}", cluster.group);
    info!(query = %spec.name, group = %cluster.group, member = %member, checkpoint = %root.display(), "joining the consumer group");
    monitor.set_status(
        &format!("member '{member}' of group '{}': joining", cluster.group),
        false,
        false,
    );
    let members_dir = Location::parse(&root)?.join("members");
    members_dir.create_dir_all()?;
    let status_at = members_dir.join(&member);
    let run = MemberRun {
        cluster,
        member,
        tasks,
        membership: Some(membership),
        stop: stop.clone(),
        status_at,
    };
    let name = spec.name.clone();
    let thread_monitor = monitor.clone();
    let thread = std::thread::Builder::new()
        .name(format!("member-{name}"))
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.run()))
                .unwrap_or_else(|_| Err(internal("the member thread panicked")));
            thread_monitor.set_finished(&result);
            if let Err(e) = &result {
                error!(query = %spec.name, error = %e, "member failed");
            }
            on_end(&spec.name, &result);
            result
        })
        .map_err(|e| Error::io("starting the member thread", root.clone(), e))?;
    Ok(StreamingQuery::from_member(
        name, id, run_id, stop, monitor, thread,
    ))
}

fn internal(what: &str) -> Error {
    Error::Server(format!(
        "internal error (a bug in Sluice, please report it): {what}"
    ))
}

/// Refuses a checkpoint that another group's query wrote (two groups would each own every
/// partition).
fn check_cluster_metadata(
    root: &std::path::Path,
    cluster: &ClusterSpec,
    query: &str,
) -> Result<()> {
    let dir = Location::parse(root)?;
    dir.create_dir_all()?;
    let at = dir.join("cluster.json");
    let mine = ClusterMetadata {
        group: cluster.group.clone(),
        query: query.to_owned(),
    };
    let bytes = serde_json::to_vec(&mine).map_err(|e| Error::data("writing cluster.json", e))?;
    if at.create(bytes)? {
        return Ok(());
    }
    let theirs: ClusterMetadata = at
        .read()?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Error::Checkpoint {
            path: at.to_path_buf(),
            message: "cluster.json is corrupt".into(),
        })?;
    if theirs.group != mine.group {
        return Err(Error::Checkpoint {
            path: root.to_path_buf(),
            message: format!(
                "it belongs to consumer group '{}', but this pipeline's cluster.group is '{}'; two groups would each run every partition — use one group or another checkpointLocation",
                theirs.group, mine.group
            ),
        });
    }
    Ok(())
}

fn lock(tasks: &Mutex<Tasks>) -> MutexGuard<'_, Tasks> {
    tasks.lock().unwrap_or_else(|p| p.into_inner())
}

/// The member's thread: polls the group, looks after the tasks, publishes its status.
struct MemberRun {
    cluster: ClusterSpec,
    member: String,
    tasks: Arc<Mutex<Tasks>>,
    membership: Option<Membership>,
    stop: Arc<StopSignal>,
    status_at: Location,
}

impl MemberRun {
    fn run(mut self) -> Result<()> {
        let mut published = Instant::now() - STATUS_EVERY;
        let outcome = loop {
            if self.stop.is_requested() {
                break Ok(());
            }
            if let Some(m) = &self.membership {
                m.poll(Duration::from_millis(100));
            }
            let mut tasks = lock(&self.tasks);
            tasks.reap();
            tasks.retry_due();
            if let Some(e) = tasks.failure.take() {
                break Err(e);
            }
            if tasks.changed || published.elapsed() >= STATUS_EVERY {
                tasks.changed = false;
                let status = tasks.status(&self.cluster, None);
                tasks
                    .monitor
                    .set_status(&describe(&status), !status.partitions.is_empty(), false);
                drop(tasks);
                self.publish(&status);
                published = Instant::now();
            }
        };
        // Every task's batch in flight commits, then the group is told: the others take the
        // partitions over at once, not after the session timeout.
        {
            let mut tasks = lock(&self.tasks);
            tasks.leaving = true;
            tasks.stop_all();
        }
        if let Some(m) = self.membership.take() {
            m.leave();
        }
        let mut tasks = lock(&self.tasks);
        tasks.owned.clear();
        let ended = match &outcome {
            Ok(()) => "left the group".to_owned(),
            Err(e) => format!("failed: {e}"),
        };
        let status = tasks.status(&self.cluster, Some(ended));
        drop(tasks);
        self.publish(&status);
        info!(member = %self.member, group = %self.cluster.group, "left the consumer group");
        outcome
    }

    fn publish(&self, status: &MemberStatus) {
        let result = serde_json::to_vec_pretty(status)
            .map_err(|e| Error::data("writing the member entry", e))
            .and_then(|bytes| self.status_at.write(bytes));
        if let Err(e) = result {
            // Observers see a stale entry; the work goes on.
            warn!(member = %self.member, error = %e, "could not write the member's entry in the checkpoint");
        }
    }
}

/// The member's status line: its group and partitions.
fn describe(status: &MemberStatus) -> String {
    let parts: Vec<&str> = status
        .partitions
        .iter()
        .map(|p| p.partition.as_str())
        .collect();
    format!(
        "member '{}' of group '{}': {} partition{}{}",
        status.member,
        status.group,
        parts.len(),
        if parts.len() == 1 { "" } else { "s" },
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    )
}

/// One partition's task: a runner thread that claims the partition, then runs its query.
struct Task {
    stop: Arc<StopSignal>,
    monitor: Arc<QueryMonitor>,
    epoch: Arc<Mutex<Option<u64>>>,
    thread: JoinHandle<Result<()>>,
}

/// The member's tasks, changed by the group's callbacks and by the member thread.
pub(crate) struct Tasks {
    member: String,
    spec: QuerySpec,
    root: PathBuf,
    progress_log: Option<ProgressLog>,
    monitor: Arc<QueryMonitor>,
    /// What the group assigned to this member.
    owned: BTreeSet<Partition>,
    running: BTreeMap<Partition, Task>,
    /// Owned partitions whose task ended with an error: failures so far, when to restart.
    retry: BTreeMap<Partition, (u32, Instant)>,
    /// A task failed too often: the member fails with this.
    failure: Option<Error>,
    /// Stopping: assignments start nothing.
    leaving: bool,
    /// The status changed since it was last published.
    changed: bool,
}

impl Tasks {
    /// The group gave this member `partitions`.
    fn assign(&mut self, partitions: &[Partition]) {
        if self.leaving {
            return;
        }
        for p in partitions {
            info!(member = %self.member, partition = %p, "partition assigned");
            self.owned.insert(p.clone());
            self.retry.remove(p);
            if !self.running.contains_key(p) {
                self.start(p);
            }
        }
        self.changed = true;
    }

    /// The group took `partitions` away (`lost`: this member's session had expired, so
    /// another member may own them already). Returns once their tasks stopped.
    fn revoke(&mut self, partitions: &[Partition], lost: bool) {
        let mut stopping = Vec::new();
        for p in partitions {
            if lost {
                warn!(member = %self.member, partition = %p, "partition lost (this member's session expired); stopping its task");
            } else {
                info!(member = %self.member, partition = %p, "partition revoked; its batch in flight commits first");
            }
            self.owned.remove(p);
            self.retry.remove(p);
            if let Some(task) = self.running.remove(p) {
                task.stop.request();
                stopping.push((p.clone(), task));
            }
        }
        for (p, task) in stopping {
            self.finished(&p, task);
        }
        self.changed = true;
    }

    /// Stops every task, each after its batch in flight.
    fn stop_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        for task in running.values() {
            task.stop.request();
        }
        for (p, task) in running {
            self.finished(&p, task);
        }
        self.retry.clear();
        self.changed = true;
    }

    /// Collects the tasks that ended on their own (an error, a fence).
    fn reap(&mut self) {
        let done: Vec<Partition> = self
            .running
            .iter()
            .filter(|(_, t)| t.thread.is_finished())
            .map(|(p, _)| p.clone())
            .collect();
        for p in done {
            if let Some(task) = self.running.remove(&p) {
                self.finished(&p, task);
            }
        }
    }

    /// Joins an ended (or stopping) task and decides what follows: nothing if it was asked
    /// to stop or the partition is no longer ours, a restart later otherwise.
    fn finished(&mut self, p: &Partition, task: Task) {
        let committed = task.monitor.totals().batches;
        let asked = task.stop.is_requested();
        let result = task
            .thread
            .join()
            .unwrap_or_else(|_| Err(internal("a task thread panicked")));
        self.changed = true;
        let error = match result {
            Ok(()) => {
                info!(member = %self.member, partition = %p, batches = committed, "task stopped");
                return;
            }
            Err(e) => e,
        };
        if asked || !self.owned.contains(p) {
            // Stopped while the partition was being given away: the new owner continues
            // from the last commit, whatever this one did not finish.
            warn!(member = %self.member, partition = %p, error = %error, "task ended while stopping");
            return;
        }
        // Failures in a row: a run that committed a batch starts the count again.
        let before = match self.retry.get(p) {
            Some((n, _)) if committed == 0 => *n,
            _ => 0,
        };
        if is_fenced(&error) {
            // Another member claimed it: the group moved it and this member has not heard
            // yet (a revocation follows), or it will be given back. Not a failure of ours.
            warn!(member = %self.member, partition = %p, error = %error, "partition taken over by another member");
            self.retry.insert(
                p.clone(),
                (before, Instant::now() + Duration::from_secs(10)),
            );
            return;
        }
        let failures = before + 1;
        if failures >= MAX_TASK_FAILURES {
            error!(member = %self.member, partition = %p, error = %error, "task failed {failures} times; the member gives up");
            self.failure = Some(Error::Source {
                source_name: format!("partition {p}"),
                message: format!(
                    "its task failed {failures} times in a row; the last time: {error}"
                ),
            });
            return;
        }
        let wait = Duration::from_secs(1 << failures.min(5));
        warn!(member = %self.member, partition = %p, error = %error, retry_in = ?wait, "task failed; restarting it");
        self.retry
            .insert(p.clone(), (failures, Instant::now() + wait));
    }

    /// Restarts the owned partitions whose retry time came.
    fn retry_due(&mut self) {
        if self.leaving {
            return;
        }
        let now = Instant::now();
        let due: Vec<Partition> = self
            .retry
            .iter()
            .filter(|(p, (_, at))| {
                *at <= now && self.owned.contains(*p) && !self.running.contains_key(*p)
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            self.start(&p);
        }
    }

    /// Starts `p`'s task: claim, then its query.
    fn start(&mut self, p: &Partition) {
        let stop = Arc::new(StopSignal::default());
        let monitor = Arc::new(QueryMonitor::with_parent(self.monitor.clone()));
        let epoch = Arc::new(Mutex::new(None));
        let dir = self.root.join("partitions").join(p.to_string());
        let spec = task_spec(&self.spec, p, dir.clone());
        let (member, partition) = (self.member.clone(), p.to_string());
        let (log, task_stop, task_monitor, task_epoch) = (
            self.progress_log.clone(),
            stop.clone(),
            monitor.clone(),
            epoch.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("task-{p}"))
            .spawn(move || {
                let location = Location::parse(&dir)?;
                let started = Instant::now();
                let ownership = Ownership::claim(&location, &partition, &member)?;
                *task_epoch.lock().unwrap_or_else(|p| p.into_inner()) = Some(ownership.epoch());
                if task_stop.is_requested() {
                    return Ok(());
                }
                let ctx = TaskContext {
                    fence: Arc::new(ownership),
                    stop: task_stop,
                    monitor: task_monitor,
                };
                let mut query = StreamingQuery::start_task(spec, log, ctx, |_, _| {})?;
                info!(partition = %partition, member = %member, ms = started.elapsed().as_millis() as u64, "partition claimed and its task started (state restored)");
                query.await_termination()
            });
        match spawned {
            Ok(thread) => {
                self.running.insert(
                    p.clone(),
                    Task {
                        stop,
                        monitor,
                        epoch,
                        thread,
                    },
                );
            }
            Err(e) => {
                self.failure = Some(Error::io("starting a task thread", self.root.clone(), e));
            }
        }
        self.changed = true;
    }

    /// What this member owns now.
    fn status(&self, cluster: &ClusterSpec, ended: Option<String>) -> MemberStatus {
        let mut partitions = Vec::new();
        for p in &self.owned {
            let (state, epoch, batches, last) = match self.running.get(p) {
                Some(t) => {
                    let epoch = *t.epoch.lock().unwrap_or_else(|p| p.into_inner());
                    let last = t.monitor.last_progress().map(|r| r.batch_id);
                    let state = if epoch.is_some() {
                        TaskState::Running
                    } else {
                        TaskState::Starting
                    };
                    (state, epoch, t.monitor.totals().batches, last)
                }
                None => (TaskState::Retrying, None, 0, None),
            };
            partitions.push(PartitionStatus {
                partition: p.to_string(),
                owner_epoch: epoch,
                state,
                batches,
                last_batch_id: last,
            });
        }
        MemberStatus {
            member: self.member.clone(),
            group: cluster.group.clone(),
            pid: std::process::id(),
            updated_at: crate::progress::now_rfc3339(),
            ended,
            partitions,
        }
    }
}

/// Whether `error` (or the batch error around it) says the partition was taken over.
pub fn is_fenced(error: &Error) -> bool {
    match error {
        Error::Fenced { .. } => true,
        Error::Batch { cause, .. } => is_fenced(cause),
        _ => false,
    }
}

/// The query one partition's task runs: the clustered query's, over that partition only,
/// with the partition's checkpoint.
fn task_spec(spec: &QuerySpec, p: &Partition, dir: PathBuf) -> QuerySpec {
    let mut task = spec.clone();
    task.cluster = None;
    task.name = format!("{}/{p}", spec.name);
    task.checkpoint_location = Some(dir);
    if let SourceSpec::Kafka(k) = &mut task.inputs[0].source {
        k.subscription =
            Subscription::Assign(BTreeMap::from([(p.topic.clone(), vec![p.partition])]));
    }
    task
}
