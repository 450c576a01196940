//! `[query.cluster]`: a query run by several `sluice` processes as members of a Kafka
//! consumer group (see ARCHITECTURE.md, "Scale-out"), and what such a query may contain.

use super::*;

/// `[query.cluster]`: the consumer group whose members share the query's input partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// `group`: the Kafka consumer group the members join.
    pub group: String,
    /// `sessionTimeout`: how long the broker keeps a silent member's partitions (default 10 s).
    pub session_timeout: Duration,
    /// `keyedBy`: the columns the input topic's records are partitioned by; a stateful
    /// operator's keys must include them.
    pub keyed_by: Vec<String>,
    /// This process's name in the group (`sluice run --member`); `None`: `<host>-<pid>`.
    pub member: Option<String>,
}

impl ClusterSpec {
    /// The member name this process uses: the one given, or `<host>-<pid>`.
    pub fn member_name(&self) -> String {
        self.member.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "sluice".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// The keys `[query.cluster]` knows.
const CLUSTER_KEYS: &[&str] = &["group", "sessionTimeout", "keyedBy"];

pub(super) fn parse_cluster(ctx: &Ctx, query: &str, node: &Spanned<Node>) -> Option<ClusterSpec> {
    let mut c = TableReader::new(ctx, Some(query), "cluster", node)?;
    let group = c.required_string(
        "group",
        "name the consumer group the members join, e.g. group = \"clicks-by-user\"",
    );
    if let Some(g) = &group
        && g.trim().is_empty()
    {
        c.error_here("group", "must not be empty".to_owned());
    }
    let session_timeout = c
        .duration("sessionTimeout")
        .unwrap_or(Duration::from_secs(10));
    if !(Duration::from_secs(1)..=Duration::from_secs(30 * 60)).contains(&session_timeout) {
        c.error_here(
            "sessionTimeout",
            format!(
                "{session_timeout:?} is outside 1 second .. 30 minutes; a member silent this long loses its partitions"
            ),
        );
    }
    let keyed_by = c.string_list("keyedBy").unwrap_or_default();
    c.finish(CLUSTER_KEYS);
    Some(ClusterSpec {
        group: group?,
        session_timeout,
        keyed_by,
        member: None,
    })
}

/// What a clustered query may contain; each problem is `(key, message)`.
///
/// - one Kafka input read with `subscribe` (the group assigns its partitions; a pattern or
///   an explicit assignment would fight it);
/// - a micro-batch trigger (a continuous query has no batches to fence);
/// - a Kafka, console or blackhole sink and no named outputs (a file or memory sink, a
///   PostgreSQL sink or a handler's outputs would need one log per partition, not built);
/// - a `checkpointLocation` every member reaches;
/// - stateful operators only over keys that include `keyedBy`: state is kept per input
///   partition, which is right only when each key's records are on one partition.
pub(super) struct ClusterQuery<'a> {
    pub cluster: &'a ClusterSpec,
    pub inputs: &'a [InputSpec],
    pub combine: &'a Combine,
    pub trigger: Option<Trigger>,
    pub sink: &'a SinkSpec,
    pub outputs: &'a [(String, SinkSpec)],
    pub checkpoint: bool,
    pub dedup: Option<&'a DedupSpec>,
    pub aggregate: Option<&'a AggregateSpec>,
    pub processor: Option<&'a crate::operators::processor::ProcessorSpec>,
}

impl ClusterQuery<'_> {
    pub(super) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut say = |key: &str, message: String| out.push((key.to_owned(), message));
        match (self.inputs, self.combine) {
            ([only], Combine::Single) => match &only.source {
                SourceSpec::Kafka(k) => {
                    if !matches!(k.subscription, crate::connectors::kafka::source::Subscription::Topics(_)) {
                        say(
                            "source.subscribe",
                            "a clustered query reads with subscribe = \"topic\": the consumer group assigns the partitions, which subscribePattern or assign would fight".to_owned(),
                        );
                    }
                }
                other => say(
                    "source.format",
                    format!(
                        "a clustered query reads Kafka (the consumer group shares its partitions out); {} has no partitions to share",
                        other.description()
                    ),
                ),
            },
            _ => say(
                "inputs",
                "a clustered query has one Kafka input; several inputs (a union or a join) are not shared out by partition yet".to_owned(),
            ),
        }
        match self.trigger {
            Some(Trigger::Continuous(_)) => say(
                "trigger",
                "a clustered query runs micro-batches (each member fences its partitions batch by batch); use processingTime or the default trigger".to_owned(),
            ),
            Some(Trigger::Once | Trigger::AvailableNow) => say(
                "trigger",
                "a member runs until it is stopped (the group hands its partitions to others as members come and go); use processingTime or the default trigger".to_owned(),
            ),
            _ => {}
        }
        if !matches!(
            self.sink,
            SinkSpec::Kafka(_) | SinkSpec::Console(_) | SinkSpec::Blackhole
        ) {
            say(
                "sink.format",
                format!(
                    "a clustered query writes to Kafka (a transactional id per input partition makes it exactly-once across members) or the console; {} keeps one log per query, which members would share",
                    self.sink.description()
                ),
            );
        }
        if let Some((name, _)) = self.outputs.first() {
            say(
                &format!("outputs.{name}"),
                "a clustered query has no named outputs (they keep one log per query, which members would share)".to_owned(),
            );
        }
        if !self.checkpoint {
            say(
                "checkpointLocation",
                "a clustered query needs a checkpointLocation every member reaches (a shared directory or s3://...): a partition's offsets and state move with it".to_owned(),
            );
        }
        let keyed = &self.cluster.keyed_by;
        let mut stateful = |key: &str, what: &str, keys: &[String]| {
            if keyed.is_empty() {
                say(
                    "cluster.keyedBy",
                    format!(
                        "{what} keeps state per input partition, which is right only if the topic is partitioned by its key: say by which columns with keyedBy = [\"...\"] (they must be among its keys)"
                    ),
                );
            } else if let Some(missing) = keyed.iter().find(|k| !keys.contains(k)) {
                say(
                    key,
                    format!(
                        "{what} keys on [{}], which does not include '{missing}' (cluster.keyedBy): its state is kept per input partition, so a key whose records are on several partitions would be counted apart; repartition the input through a Kafka topic keyed by these columns first",
                        keys.join(", ")
                    ),
                );
            }
        };
        // dropDuplicates without columns keys on every column, keyedBy's among them.
        if let Some(d) = self.dedup
            && (!d.columns.is_empty() || keyed.is_empty())
        {
            stateful("dropDuplicates.columns", "dropDuplicates", &d.columns);
        }
        if let Some(a) = self.aggregate {
            stateful("aggregate.groupBy", "the aggregate", &a.group_by);
        }
        if let Some(p) = self.processor {
            stateful("processor.key", "the processor", &p.key);
        }
        out
    }
}
