//! Running one program's probes: a task per process, alive while it is STARTING or RUNNING.
//! Each probe is bounded by `timeout`, so a hanging endpoint never holds anything up; probes
//! of different programs run concurrently, and none wakes supd between its intervals.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::ProbeOutcome;
use crate::config::{Probe, ProgramConfig};
use crate::process::reaper::Waiters;
use crate::process::{signal as sig, spawn};

/// A probe result on its way to the supervisor, tagged with the process it is about.
#[derive(Debug)]
pub struct Report {
    /// The supervisor's key for the program instance probed (stable across reloads).
    pub program: u64,
    /// Which spawn of it was probed (results for an earlier process are dropped).
    pub spawn: u64,
    /// The result.
    pub outcome: ProbeOutcome,
}

/// Starts probing spawn `spawn` of the program keyed `program` (which must have a healthcheck).
/// The task runs until aborted or the supervisor is gone.
pub fn start(
    program: u64,
    spawn: u64,
    cfg: Arc<ProgramConfig>,
    reports: mpsc::Sender<Report>,
    waiters: Waiters,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(check) = cfg.healthcheck.as_ref() else { return };
        let started = Instant::now();
        let mut passed = false;
        loop {
            // Docker: start_interval while in start_period and nothing has passed yet.
            let starting = !passed && started.elapsed() < check.start_period;
            tokio::time::sleep(if starting { check.start_interval } else { check.interval }).await;
            let at = Instant::now();
            let result = match tokio::time::timeout(check.timeout, once(&cfg, &check.probe, &waiters)).await {
                Ok(result) => result,
                Err(_) => Err(format!("timed out after {}", humantime::format_duration(check.timeout))),
            };
            passed |= result.is_ok();
            let (ok, message) = match result {
                Ok(m) => (true, m),
                Err(m) => (false, m),
            };
            let outcome = ProbeOutcome { ok, message, latency: at.elapsed(), at };
            if reports.send(Report { program, spawn, outcome }).await.is_err() {
                return;
            }
        }
    })
}

/// One probe: `Ok(what happened)` if it passed, `Err(what happened)` if not.
async fn once(cfg: &ProgramConfig, probe: &Probe, waiters: &Waiters) -> Result<String, String> {
    match probe {
        Probe::Http { host, port, authority, path, headers, expect_status, .. } => {
            http(host, *port, authority, path, headers, expect_status).await
        }
        Probe::Tcp { host, port } => match TcpStream::connect((host.as_str(), *port)).await {
            Ok(_) => Ok("connected".into()),
            Err(e) => Err(format!("connect {host}:{port}: {e}")),
        },
        Probe::Exec { command } => exec(cfg, command, waiters).await,
    }
}

async fn http(
    host: &str,
    port: u16,
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    expect: &[u16],
) -> Result<String, String> {
    let stream = TcpStream::connect((host, port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("http: {e}"))?;
    let mut req = hyper::Request::get(path).header(HOST, authority).header(USER_AGENT, "supd-probe");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| format!("bad request: {e}"))?;
    // The connection is driven here, not in a task of its own, so a timeout drops all of it.
    // Only the status line and headers are read: a huge body is never buffered.
    let send = sender.send_request(req);
    tokio::pin!(conn, send);
    let resp = tokio::select! {
        resp = &mut send => resp,
        // A server may answer and close at once, so the connection can end in the same poll
        // that delivers the response: the response decides, not the order of the two.
        ended = &mut conn => match ended {
            Ok(()) => send.await,
            Err(e) => return Err(format!("http: {e}")),
        },
    }
    .map_err(|e| format!("http: {e}"))?;
    let code = resp.status().as_u16();
    let ok = if expect.is_empty() { (200..400).contains(&code) } else { expect.contains(&code) };
    if ok { Ok(format!("HTTP {code}")) } else { Err(format!("HTTP {code}")) }
}

async fn exec(cfg: &ProgramConfig, command: &[String], waiters: &Waiters) -> Result<String, String> {
    let pid = spawn::spawn_probe(cfg, command).map_err(|e| e.to_string())?;
    // Registered before any await, so the reaper (on this same thread) cannot miss the exit.
    let exited = waiters.register(pid);
    let guard = KillGroupOnDrop(pid);
    let status = exited.await.map_err(|_| "the probe's exit was lost".to_string())?;
    std::mem::forget(guard);
    match status {
        crate::process::ExitStatus::Code(0) => Ok("exit status 0".into()),
        other => Err(other.to_string()),
    }
}

/// Kills an exec probe's whole process group if the probe is dropped unfinished (timed out).
struct KillGroupOnDrop(i32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = sig::send(self.0, nix::sys::signal::Signal::SIGKILL, true);
    }
}
