//! What a guest writes to stderr, kept for its error messages: the last few KiB only.
//!
//! A Python or JavaScript guest reports an uncaught exception by printing it (the traceback)
//! and aborting, so the abort's trap alone tells a user nothing. Each instance's stderr is a
//! [`StderrTail`]: writes always succeed (a chatty guest cannot fill it, nor make the host
//! hold more than [`TAIL`] bytes), and a failed call's message ends with what was written
//! since the call began.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How many of the last bytes written are kept.
pub const TAIL: usize = 4096;

/// The tail of one guest instance's stderr (cloned handles share it).
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(TAIL)..];
        let over = (tail.len() + bytes.len()).saturating_sub(TAIL);
        tail.drain(..over);
        tail.extend(bytes);
    }

    /// What was written since the last `take`, as text (lossy), trimmed.
    pub fn take(&self) -> String {
        let mut tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bytes: Vec<u8> = tail.drain(..).collect();
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(TAIL)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_bytes_are_kept() {
        let tail = StderrTail::default();
        tail.push(&vec![b'a'; TAIL]);
        tail.push(b"Traceback: boom\n");
        let text = tail.take();
        assert_eq!(text.len(), TAIL - 1);
        assert!(text.ends_with("Traceback: boom"));
        assert_eq!(tail.take(), "");
    }
}
