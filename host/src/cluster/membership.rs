//! A member's seat in the consumer group: one Kafka consumer that joins the group, is given
//! partitions by the group protocol, and reads nothing from them.
//!
//! The consumer only exists for its assignment. Every partition is paused as it is assigned
//! (the tasks read their partitions with consumers of their own, at offsets from the
//! checkpoint), and nothing is ever committed to the group. Its rebalance callbacks run on
//! the thread that polls it — the member's — and hand the changes to [`super::Tasks`]: a
//! revoked partition's task is stopped (its batch in flight commits) before the callback
//! returns, so the group gives the partition on only after its last batch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use tracing::{debug, warn};

use super::{Partition, Tasks};
use crate::connectors::kafka::source::KafkaSourceSpec;
use crate::error::{Error, Result};
use crate::pipeline::ClusterSpec;

/// The group consumer's callbacks.
pub(super) struct GroupContext {
    tasks: Arc<Mutex<Tasks>>,
}

// librdkafka's log lines go to `tracing` as every other client's do (rust-rdkafka's default).
impl ClientContext for GroupContext {}

fn partitions(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements()
        .iter()
        .map(|e| Partition {
            topic: e.topic().to_owned(),
            partition: e.partition(),
        })
        .collect()
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let lost = consumer.assignment_lost();
            super::lock(&self.tasks).revoke(&partitions(tpl), lost);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                // Nothing is read through this consumer: its partitions stay paused.
                if let Err(e) = consumer.pause(tpl) {
                    debug!(error = %e, "pausing the group consumer's partitions");
                }
                super::lock(&self.tasks).assign(&partitions(tpl));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                warn!(error = %e, "consumer group rebalance failed; the group retries")
            }
        }
    }
}

/// The member's consumer, subscribed to the query's topics in the query's group.
pub(super) struct Membership {
    consumer: BaseConsumer<GroupContext>,
}

impl Membership {
    /// Joins `cluster.group` (the assignment arrives through the callbacks while polled).
    pub(super) fn join(
        kafka: &KafkaSourceSpec,
        cluster: &ClusterSpec,
        member: &str,
        topics: &[String],
        tasks: Arc<Mutex<Tasks>>,
    ) -> Result<Membership> {
        let failed = |message: String| Error::Source {
            source_name: format!("consumer group '{}'", cluster.group),
            message,
        };
        let options = crate::connectors::kafka::client::resolve(&kafka.client_options)?;
        crate::connectors::kafka::client::check_reachable(
            &kafka.bootstrap_servers,
            &options,
            kafka.connect_timeout,
        )
        .map_err(failed)?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &kafka.bootstrap_servers)
            .set("group.id", &cluster.group)
            .set("client.id", format!("sluice-member-{member}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Paused from assignment on; these bound what a fetch in the moment before the
            // pause could hold.
            .set("queued.max.messages.kbytes", "64")
            .set("max.partition.fetch.bytes", "65536");
        let kip848 = options
            .iter()
            .any(|(k, v)| k == "group.protocol" && v.eq_ignore_ascii_case("consumer"));
        if !kip848 {
            // The classic protocol: the session is the client's to set, and cooperative-sticky
            // moves only the partitions that must move. (KIP-848's broker decides both.)
            let session = cluster.session_timeout.as_millis().to_string();
            let heartbeat = (cluster.session_timeout / 5).max(Duration::from_millis(100));
            config
                .set("session.timeout.ms", session)
                .set("heartbeat.interval.ms", heartbeat.as_millis().to_string())
                .set("partition.assignment.strategy", "cooperative-sticky");
        }
        for (k, v) in &options {
            if crate::connectors::kafka::client::is_connection_option(k) || k.starts_with("group.")
            {
                config.set(k, v);
            }
        }
        let consumer: BaseConsumer<GroupContext> = config
            .create_with_context(GroupContext { tasks })
            .map_err(|e| failed(format!("creating the group consumer: {e}")))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| failed(format!("subscribing to {}: {e}", topics.join(", "))))?;
        Ok(Membership { consumer })
    }

    /// Serves the group's callbacks (rebalances) for up to `timeout`.
    pub(super) fn poll(&self, timeout: Duration) {
        // Paused partitions deliver nothing; an error event is librdkafka's to retry.
        if let Some(Err(e)) = self.consumer.poll(timeout) {
            debug!(error = %e, "group consumer event");
        }
    }

    /// Leaves the group: the revocation runs through the callbacks (stopping the tasks
    /// still running), and the others are given this member's partitions at once instead of
    /// after the session timeout.
    pub(super) fn leave(self) {
        self.consumer.unsubscribe();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            self.poll(Duration::from_millis(50));
            if self.consumer.assignment().map_or(true, |a| a.count() == 0) {
                break;
            }
        }
        // Dropping the consumer closes it, which sends LeaveGroup.
    }
}
