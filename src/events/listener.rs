//! One event listener process and supervisord's protocol with it: the listener writes
//! `READY\n` on its stdout; supd writes one header line and the payload on its stdin
//! (`ver:3.0 server:supervisor serial:N pool:NAME poolserial:N eventname:E len:N\n`); the
//! listener answers `RESULT 2\nOK` (done) or `RESULT 4\nFAIL` (the event goes back to the head
//! of its queue), then is READY again. Events wait in a queue of `buffer_size`; past that the
//! oldest is dropped with a warning.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use super::{Bus, Notification, subscribes, tick, wants_ticks};
use crate::config::ListenerConfig;

/// The longest protocol line read (`READY`, `RESULT N`); longer ones are not the protocol.
const MAX_LINE: u64 = 256;
/// The longest result body read (supervisord's listeners answer `OK` or `FAIL`).
const MAX_RESULT: usize = 64 * 1024;
/// How long writing one event to a listener may take before it is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the protocol stands with the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Started or answered; waits for `READY`.
    Acknowledged,
    /// Said `READY`: the next event may go.
    Ready,
    /// Has an event and works on it; waits for its `RESULT`.
    Busy(Arc<Notification>),
}

/// Serves events to the listener process of pool `pool` (its program name) through `stdin`
/// and `stdout` until it exits or closes them.
pub fn attach(pool: String, cfg: ListenerConfig, stdin: OwnedFd, stdout: OwnedFd, bus: &Bus) {
    let events = bus.subscribe();
    let ticks = wants_ticks(&cfg.events).then(|| tick::subscribe(bus));
    tokio::spawn(async move {
        let _ticks = ticks;
        let (Ok(stdin), Ok(stdout)) = (pipe::Sender::from_owned_fd(stdin), pipe::Receiver::from_owned_fd(stdout))
        else {
            warn!("event listener {pool}: cannot use its pipes");
            return;
        };
        // Its stdout is read by a task of its own, so that waiting for an answer and waiting for
        // an event never cut a read short.
        let (said_tx, said) = tokio::sync::mpsc::channel(4);
        tokio::spawn(read_answers(BufReader::new(stdout), said_tx));
        Listener { pool, cfg, stdin, queue: VecDeque::new(), pool_serial: 0 }.run(events, said).await;
    });
}

/// What the listener said on its stdout.
#[derive(Debug)]
enum Said {
    /// `READY`.
    Ready,
    /// `RESULT N` and its N bytes.
    Result(Vec<u8>),
    /// A line that is not the protocol.
    Other(String),
}

/// Reads what the listener says until it closes its stdout (or the protocol task is gone).
async fn read_answers(mut stdout: BufReader<pipe::Receiver>, said: tokio::sync::mpsc::Sender<Said>) {
    loop {
        let mut line = String::new();
        match (&mut stdout).take(MAX_LINE).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = line.trim_end_matches('\n');
        let message = if line == "READY" {
            Said::Ready
        } else if let Some(len) = line.strip_prefix("RESULT ").and_then(|n| n.trim().parse::<usize>().ok()) {
            let mut body = vec![0u8; len.min(MAX_RESULT)];
            if stdout.read_exact(&mut body).await.is_err() {
                return;
            }
            Said::Result(body)
        } else {
            Said::Other(line.to_string())
        };
        if said.send(message).await.is_err() {
            return;
        }
    }
}

struct Listener {
    pool: String,
    cfg: ListenerConfig,
    stdin: pipe::Sender,
    queue: VecDeque<Arc<Notification>>,
    pool_serial: u64,
}

impl Listener {
    async fn run(
        mut self,
        mut events: tokio::sync::broadcast::Receiver<Arc<Notification>>,
        mut said: tokio::sync::mpsc::Receiver<Said>,
    ) {
        let mut phase = Phase::Acknowledged;
        loop {
            if phase == Phase::Ready
                && let Some(event) = self.queue.pop_front()
            {
                if let Err(e) = self.send(&event).await {
                    debug!("event listener {}: {e}", self.pool);
                    return;
                }
                phase = Phase::Busy(event);
            }
            tokio::select! {
                message = said.recv() => match message {
                    None => return, // it exited or closed its stdout
                    Some(message) => phase = self.answer(message, phase),
                },
                event = events.recv() => match event {
                    Ok(event) if subscribes(&self.cfg.events, event.name) => self.enqueue(event),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => warn!("event listener {}: {n} events lost (supd could not keep up)", self.pool),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// Where the protocol stands after the listener said `message` in `phase`.
    fn answer(&mut self, message: Said, phase: Phase) -> Phase {
        match (message, phase) {
            (Said::Ready, Phase::Acknowledged) => Phase::Ready,
            (Said::Result(body), Phase::Busy(event)) => {
                if body != b"OK" {
                    // supervisord: anything but OK is a failure, and the event is sent again.
                    debug!("event listener {}: {} failed; it goes again", self.pool, event.name);
                    self.queue.push_front(event);
                }
                Phase::Acknowledged
            }
            (Said::Other(line), phase) => {
                // supervisord logs what a listener writes outside the protocol, and goes on.
                debug!("event listener {}: {line:?} is not the protocol; ignored", self.pool);
                phase
            }
            (message, phase) => {
                debug!("event listener {}: {message:?} out of turn; ignored", self.pool);
                phase
            }
        }
    }

    /// Queues `event`, dropping the oldest beyond `buffer_size` (supervisord does the same).
    fn enqueue(&mut self, event: Arc<Notification>) {
        if self.queue.len() >= self.cfg.buffer_size
            && let Some(dropped) = self.queue.pop_front()
        {
            warn!(
                "event listener {}: its buffer of {} is full; dropped {} (serial {})",
                self.pool, self.cfg.buffer_size, dropped.name, dropped.serial
            );
        }
        self.queue.push_back(event);
    }

    /// Writes `event` with its header to the listener's stdin.
    async fn send(&mut self, event: &Notification) -> std::io::Result<()> {
        self.pool_serial = self.pool_serial.wrapping_add(1);
        let text = format!(
            "ver:3.0 server:supervisor serial:{} pool:{} poolserial:{} eventname:{} len:{}\n{}",
            event.serial,
            self.pool,
            self.pool_serial,
            event.name,
            event.payload.len(),
            event.payload
        );
        tokio::time::timeout(WRITE_TIMEOUT, self.stdin.write_all(text.as_bytes()))
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("it took no event for 5 s")))
    }
}
