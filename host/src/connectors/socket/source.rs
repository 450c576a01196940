//! The socket source: one row per line read from a TCP connection, like Spark's `socket`
//! source. For tests and demos only: what arrived on the socket is not stored anywhere, so a
//! batch re-run after a restart cannot be replayed (the rows it had are gone and a warning
//! says so) — use files or Kafka for anything that must not lose data.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::json;
use tracing::{info, warn};

use super::SocketSpec;
use crate::error::{Error, Result};
use crate::schema::{UTC, timestamp_type};
use crate::source::{Offset, ReadLimit, Source, offset_u64};

#[derive(Default)]
struct Buffer {
    /// Global index of `lines[0]`.
    base: u64,
    lines: Vec<(String, i64)>,
}

/// Reads lines from `host:port` on a background thread.
pub struct SocketSource {
    spec: SocketSpec,
    schema: SchemaRef,
    buffer: Arc<Mutex<Buffer>>,
}

impl SocketSource {
    /// Connects and starts the reader thread.
    pub fn connect(spec: SocketSpec) -> Result<Self> {
        let addr = format!("{}:{}", spec.host, spec.port);
        let stream = TcpStream::connect(&addr).map_err(|e| Error::Source {
            source_name: format!("TextSocketSource[{addr}]"),
            message: format!("cannot connect: {e}"),
        })?;
        info!(%addr, "socket source connected");
        let buffer = Arc::new(Mutex::new(Buffer::default()));
        let shared = buffer.clone();
        std::thread::Builder::new()
            .name(format!("socket-{addr}"))
            .spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let ts = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_micros() as i64;
                    let Ok(mut b) = shared.lock() else { break };
                    b.lines.push((line, ts));
                }
            })
            .map_err(|e| Error::io("starting socket reader thread", addr.clone(), e))?;
        Ok(SocketSource {
            schema: socket_schema(&spec),
            spec,
            buffer,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Buffer>> {
        self.buffer.lock().map_err(|_| Error::Source {
            source_name: self.description(),
            message: "reader thread panicked".into(),
        })
    }
}

/// The socket source's rows: `value` (the line), and `timestamp` with `includeTimestamp`.
pub fn socket_schema(spec: &SocketSpec) -> SchemaRef {
    let mut fields = vec![Field::new("value", DataType::Utf8, false)];
    if spec.include_timestamp {
        fields.push(Field::new("timestamp", timestamp_type(), false));
    }
    Arc::new(Schema::new(fields))
}

impl Source for SocketSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn description(&self) -> String {
        format!("TextSocketSource[{}:{}]", self.spec.host, self.spec.port)
    }

    fn latest_offset(
        &mut self,
        start: Option<&Offset>,
        _limit: ReadLimit,
    ) -> Result<Option<Offset>> {
        let from = offset_u64(start, "offset").unwrap_or(0);
        let mut buf = self.lock()?;
        // A restarted query continues numbering after its checkpointed offset.
        if buf.base < from && buf.lines.is_empty() {
            buf.base = from;
        }
        let end = buf.base + buf.lines.len() as u64;
        Ok(if end > from {
            Some(json!({ "offset": end }))
        } else {
            start.cloned()
        })
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let from = offset_u64(start, "offset").unwrap_or(0);
        let to = offset_u64(Some(end), "offset").unwrap_or(from);
        let buf = self.lock()?;
        if from < buf.base {
            warn!(
                lost = buf.base.min(to) - from,
                "socket source cannot replay lines from before the restart; they are lost"
            );
        }
        let lo = from.max(buf.base) - buf.base;
        let hi = (to.max(buf.base) - buf.base).min(buf.lines.len() as u64);
        let rows = &buf.lines[lo as usize..hi.max(lo) as usize];
        let mut values = StringBuilder::new();
        let mut stamps = TimestampMicrosecondBuilder::new().with_timezone(UTC);
        for (line, ts) in rows {
            values.append_value(line);
            stamps.append_value(*ts);
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(values.finish())];
        if self.spec.include_timestamp {
            columns.push(Arc::new(stamps.finish()));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::data("building a socket batch", e))?;
        Ok(vec![batch])
    }

    fn commit(&mut self, end: &Offset) -> Result<()> {
        let to = offset_u64(Some(end), "offset").unwrap_or(0);
        let mut buf = self.lock()?;
        let drop = to.saturating_sub(buf.base).min(buf.lines.len() as u64) as usize;
        buf.lines.drain(..drop);
        buf.base += drop as u64;
        Ok(())
    }
}
