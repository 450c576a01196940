//! Kafka: a source reading assigned partitions with offsets in the checkpoint, and a sink (at-least-once, or exactly-once through transactions), with what both share to reach a cluster.

pub mod client;
pub mod sink;
pub mod source;
