//! What a checkpoint records of a query's inputs, so it is never resumed by a pipeline
//! reading something else.

use crate::pipeline::{InputSpec, SourceSpec};

/// What the checkpoint's metadata records of an input, so a checkpoint is never resumed by a
/// pipeline reading something else. The one-input form keeps the bare source identity that
/// checkpoints written before named inputs hold.
pub(super) fn input_identity(input: &InputSpec) -> String {
    let source = source_identity(&input.source);
    if input.name == "source" {
        source
    } else {
        format!("{}={source}", input.name)
    }
}

fn source_identity(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::File(f) => format!("{}:{}", f.format.name(), f.path.display()),
        SourceSpec::Rate(_) => "rate".into(),
        SourceSpec::RateMicroBatch(_) => "rate-micro-batch".into(),
        SourceSpec::Nexmark(_) => "nexmark".into(),
        SourceSpec::Socket(s) => format!("socket:{}:{}", s.host, s.port),
        // Not the bootstrap servers: the same topics behind another address are the same data.
        SourceSpec::Kafka(k) => format!("kafka:{:?}", k.subscription),
    }
}
