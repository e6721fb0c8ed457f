//! `PROCESS_LOG_STDOUT` and `PROCESS_LOG_STDERR`: a program's output as events, for programs
//! with `stdout_events_enabled` / `stderr_events_enabled` (supervisord's keys).

use bytes::Bytes;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tracing::debug;

use super::Bus;
#[cfg(doc)]
use crate::output::Tail;

/// One stream of one spawned process whose output goes out as events.
#[derive(Debug, Clone)]
pub struct OutputEvents {
    /// The program's name.
    pub process: String,
    /// Its group's name.
    pub group: String,
    /// The process's pid.
    pub pid: i32,
    /// `stdout` or `stderr`: supervisord's `channel`.
    pub channel: &'static str,
}

impl OutputEvents {
    /// The event's name.
    fn name(&self) -> &'static str {
        if self.channel == "stderr" { "PROCESS_LOG_STDERR" } else { "PROCESS_LOG_STDOUT" }
    }

    /// supervisord's payload: `processname:web groupname:web pid:12 channel:stdout`, a
    /// newline, then the output (invalid UTF-8 replaced).
    fn payload(&self, chunk: &[u8]) -> String {
        format!(
            "processname:{} groupname:{} pid:{} channel:{}\n{}",
            self.process,
            self.group,
            self.pid,
            self.channel,
            String::from_utf8_lossy(chunk)
        )
    }

    /// Publishes each chunk of `chunks` (from [`Tail::subscribe`], taken before the stream's
    /// reader started, so that nothing is missed) until `reader` (the stream's forwarding task)
    /// ends; returns the task, which ends after `reader` (so waiting for it waits for both).
    /// A chunk the bus could not keep up with is lost, with a debug line.
    pub fn follow(self, bus: &Bus, mut chunks: Receiver<Bytes>, mut reader: JoinHandle<()>) -> JoinHandle<()> {
        let bus = bus.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut reader => break,
                    chunk = chunks.recv() => match chunk {
                        Ok(chunk) => bus.publish(self.name(), self.payload(&chunk)),
                        Err(RecvError::Lagged(n)) => debug!("{}: {n} chunks of output sent as no event", self.process),
                        Err(RecvError::Closed) => break,
                    },
                }
            }
            // What the reader passed on before it ended.
            while let Ok(chunk) = chunks.try_recv() {
                bus.publish(self.name(), self.payload(&chunk));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_supervisords() {
        let e = OutputEvents { process: "web".into(), group: "core".into(), pid: 12, channel: "stderr" };
        assert_eq!(e.name(), "PROCESS_LOG_STDERR");
        assert_eq!(e.payload(b"oops\n"), "processname:web groupname:core pid:12 channel:stderr\noops\n");
    }
}
