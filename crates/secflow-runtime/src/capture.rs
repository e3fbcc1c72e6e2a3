//! A plugin's stdout and stderr, captured in host memory up to a cap.
//!
//! wasmtime's `MemoryOutputPipe` refuses a write past its capacity, but a plugin that ignores
//! the error is then cut silently, and the kept text ends mid-line. Here a write past the cap
//! is a violation: it is recorded (`log-limit`, naming the stream), the write traps so the
//! flood stops at once, and what is kept ends on a line boundary followed by a marker line
//! saying it was cut.

use crate::guard::{Guard, HostViolation};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// One captured stream of one invocation (or detect session).
#[derive(Clone)]
pub struct CapturedOutput {
    name: &'static str,
    inner: Arc<Mutex<Captured>>,
    guard: Guard,
}

#[derive(Debug, Default)]
struct Captured {
    buf: Vec<u8>,
    cap: usize,
    /// Bytes the plugin tried to write, kept or not.
    attempted: u64,
    cut: bool,
}

impl std::fmt::Debug for CapturedOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturedOutput")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The text that replaces everything after the last complete line of a cut stream.
pub fn cut_marker(name: &str, cap: usize) -> String {
    format!("[secflow: {name} cut here: the plugin wrote more than its {cap}-byte limit]")
}

impl CapturedOutput {
    pub fn new(name: &'static str, cap: u64, guard: Guard) -> CapturedOutput {
        CapturedOutput {
            name,
            inner: Arc::new(Mutex::new(Captured {
                cap: usize::try_from(cap).unwrap_or(usize::MAX),
                ..Captured::default()
            })),
            guard,
        }
    }

    /// Appends what fits; past the cap records the violation and fails the write (the
    /// stream trait methods call this; public for the fuzz target).
    pub fn accept(&self, bytes: &[u8]) -> Result<(), String> {
        let mut c = self.inner.lock().unwrap();
        c.attempted = c.attempted.saturating_add(bytes.len() as u64);
        let room = c.cap.saturating_sub(c.buf.len());
        if bytes.len() <= room {
            c.buf.extend_from_slice(bytes);
            return Ok(());
        }
        c.buf.extend_from_slice(&bytes[..room]);
        c.cut = true;
        let limit = c.cap as u64;
        drop(c);
        self.guard.violate(HostViolation::Capture {
            stream: self.name,
            limit,
        });
        Err(format!(
            "{} is full: the plugin wrote more than {limit} bytes",
            self.name
        ))
    }

    /// Bytes the plugin tried to write so far.
    pub fn attempted(&self) -> u64 {
        self.inner.lock().unwrap().attempted
    }

    /// The kept text from byte `from` on, as lines; a cut stream ends at its last complete
    /// line and a marker. Returns the lines and the offset to continue from.
    pub fn lines_since(&self, from: usize) -> (Vec<String>, usize) {
        let c = self.inner.lock().unwrap();
        let from = from.min(c.buf.len());
        let mut new = &c.buf[from..];
        if c.cut {
            let end = new.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            new = &new[..end];
        }
        let text = String::from_utf8_lossy(new);
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if c.cut && from < c.buf.len() {
            lines.push(cut_marker(self.name, c.cap));
        }
        (lines, c.buf.len())
    }

    /// Everything kept, as text (for panic messages).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.inner.lock().unwrap().buf).into_owned()
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.accept(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::format_err!("{e}")))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always offer a write: a write past the cap is the violation we want to see,
        // rather than a stream that looks closed and a plugin that silently stops logging.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.accept(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_a_violation_and_the_kept_text_ends_on_a_line() {
        let guard = Guard::default();
        let out = CapturedOutput::new("stdout", 16, guard.clone());
        out.accept(b"line one\n").unwrap();
        let err = out.accept(b"line two is long\n").unwrap_err();
        assert!(err.contains("more than 16 bytes"), "{err}");
        assert_eq!(
            guard.first_violation(),
            Some(HostViolation::Capture {
                stream: "stdout",
                limit: 16
            })
        );
        let (lines, next) = out.lines_since(0);
        assert_eq!(lines, ["line one".to_string(), cut_marker("stdout", 16)]);
        assert_eq!(next, 16);
        assert_eq!(out.attempted(), 26);
    }

    #[test]
    fn lines_are_handed_out_once() {
        let out = CapturedOutput::new("stderr", 1024, Guard::default());
        out.accept(b"a\nb\n").unwrap();
        let (first, next) = out.lines_since(0);
        assert_eq!(first, ["a", "b"]);
        out.accept(b"c\n").unwrap();
        let (second, _) = out.lines_since(next);
        assert_eq!(second, ["c"]);
    }
}
