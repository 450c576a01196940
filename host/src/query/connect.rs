//! Which connector serves each source and sink a pipeline names: the one place that turns a
//! parsed spec into a running [`Source`] or [`Sink`]. It sits with the plan, above both the
//! connectors and the trait modules, so neither names the other's types.

use crate::connectors::{
    cassandra, console, elasticsearch, file, kafka, memory, nexmark, postgres, rate, socket,
};
use crate::error::Result;
use crate::pipeline::{SinkSpec, SourceSpec};
use crate::sink::outputs::SharedOutputs;
use crate::sink::{Blackhole, Sink, SinkContext};
use crate::source::{Source, SourceContext};

/// Builds the source a pipeline asks for.
pub fn open_source(spec: &SourceSpec, ctx: SourceContext) -> Result<Box<dyn Source>> {
    Ok(match spec {
        SourceSpec::File(f) => Box::new(file::source::FileSource::open(f.clone(), ctx)?),
        SourceSpec::Rate(r) => Box::new(rate::source::RateSource::open(*r, ctx)?),
        SourceSpec::RateMicroBatch(r) => Box::new(rate::source::RateMicroBatchSource::new(*r)),
        SourceSpec::Socket(s) => Box::new(socket::source::SocketSource::connect(s.clone())?),
        SourceSpec::Kafka(k) => Box::new(kafka::source::KafkaSource::open(k.clone(), ctx)?),
        SourceSpec::Nexmark(n) => {
            Box::new(nexmark::source::NexmarkSource::new(*n, ctx.parallelism))
        }
    })
}

/// Builds the sink a pipeline asks for.
pub fn open_sink(spec: &SinkSpec, ctx: &SinkContext) -> Result<Box<dyn Sink>> {
    Ok(match spec {
        SinkSpec::Console(c) => {
            Box::new(console::sink::ConsoleSink::stdout(c.num_rows, c.truncate))
        }
        SinkSpec::Memory { table } => {
            Box::new(memory::sink::MemorySink::new(table, ctx.output_mode))
        }
        SinkSpec::File(f) => Box::new(file::sink::FileSink::open(f.clone(), ctx.parallelism)?),
        SinkSpec::Blackhole => Box::new(Blackhole),
        SinkSpec::Kafka(k) => Box::new(kafka::sink::KafkaSink::open(
            k.clone(),
            &ctx.query_id,
            ctx.output_name.is_none().then_some(&ctx.schema),
        )?),
        SinkSpec::Postgres(p) => Box::new(postgres::sink::PostgresSink::open(
            p.clone(),
            &ctx.query_id,
            match &ctx.output_name {
                None => postgres::sink::Rows::Of(ctx.schema.clone()),
                Some(name) => postgres::sink::Rows::Output(name.clone()),
            },
        )?),
        SinkSpec::Cassandra(c) => Box::new(cassandra::sink::CassandraSink::open(
            c.clone(),
            ctx.output_name.is_none().then_some(&ctx.schema),
        )?),
        SinkSpec::Elasticsearch(e) => Box::new(elasticsearch::sink::ElasticsearchSink::open(
            e.clone(),
            &ctx.query_id,
            ctx.output_name.as_deref(),
            ctx.outputs.clone(),
        )?),
        SinkSpec::ForeachBatch(h) => Box::new(crate::wasm::handler::WasmHandlerSink::new(
            h.clone(),
            &ctx.query,
            ctx.schema.clone(),
            ctx.outputs.clone(),
        )?),
    })
}

/// Opens every named output of a query (`[query.outputs.NAME]`).
pub fn open_outputs(specs: &[(String, SinkSpec)], ctx: &SinkContext) -> Result<SharedOutputs> {
    let mut sinks = Vec::with_capacity(specs.len());
    for (name, spec) in specs {
        let ctx = SinkContext {
            output_name: Some(name.clone()),
            ..ctx.clone()
        };
        sinks.push((name.clone(), open_sink(spec, &ctx)?));
    }
    Ok(SharedOutputs::new(sinks))
}
