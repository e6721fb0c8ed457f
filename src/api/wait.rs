//! Waiting for a verb's work: `start`, `stop` and `restart` answer once each program has
//! settled (as the lifecycle's [`settle`] rule says), bounded by its own startsecs +
//! stopwaitsecs.

use std::time::Instant;

use super::control::{Handle, error};
use super::protocol::{ActionResult, ErrorKind, Response};
use crate::lifecycle::settle::{self, Awaited, Progress, Settled};
use crate::supervisor::{Command, ProgramView, Snapshot, VerbError};

impl Handle {
    /// Sends `command(names)`, then waits for each accepted program to settle as `wait` says.
    /// Programs are followed by name: a reload may move them.
    pub(super) async fn command_and_wait(
        &self,
        command: impl FnOnce(Vec<String>) -> Command,
        names: Vec<String>,
        wait: Wait,
    ) -> Response {
        let answers = match self.send(command(names.clone())).await {
            Ok(a) => a,
            Err(e) => return error(ErrorKind::ShuttingDown, e.to_string()),
        };
        let mut snapshot = self.snapshot.clone();
        let mut pending: Vec<(&String, Result<u64, VerbError>)> = names.iter().zip(answers).collect();
        let find = |s: &Snapshot, name: &str| s.programs.iter().position(|p| p.name == name);
        let limit = {
            let s = snapshot.borrow();
            let found = names.iter().filter_map(|n| s.programs.get(find(&s, n)?));
            found.map(|p| p.settle_within).max().unwrap_or_default()
        };
        let deadline = crate::deadline::after_tokio(tokio::time::Instant::now(), limit);
        let mut results: Vec<Option<ActionResult>> = vec![None; pending.len()];
        loop {
            {
                let s = snapshot.borrow_and_update();
                for (slot, (name, answer)) in results.iter_mut().zip(&mut pending) {
                    if slot.is_none()
                        && let Some(p) = find(&s, name).and_then(|i| s.programs.get(i))
                    {
                        *slot = outcome(p, answer, wait);
                    }
                }
            }
            if results.iter().all(Option::is_some) {
                break;
            }
            match tokio::time::timeout_at(deadline, snapshot.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let s = snapshot.borrow();
        let results = results
            .into_iter()
            .zip(&names)
            .filter_map(|(r, name)| {
                let p = s.programs.get(find(&s, name)?)?;
                Some(r.unwrap_or_else(|| ActionResult {
                    name: p.full_name(),
                    ok: false,
                    message: "timed out waiting for the program to settle".into(),
                    state: p.state,
                }))
            })
            .collect();
        Response::Actions { results }
    }
}

/// What an action waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Nothing: the answer is the result.
    No,
    /// As the lifecycle says ([`settle::settled`]).
    For(Awaited),
}

/// The result for one program if its action is done, else `None`.
fn outcome(p: &ProgramView, answer: &Result<u64, VerbError>, wait: Wait) -> Option<ActionResult> {
    let result = |ok: bool, message: String| Some(ActionResult { name: p.full_name(), ok, message, state: p.state });
    let spawns_before = match answer {
        Err(e) => return result(false, e.to_string()),
        Ok(n) => *n,
    };
    let Wait::For(awaited) = wait else { return result(true, "signalled".into()) };
    let progress =
        Progress { state: p.state, spawns: p.spawns, restart_pending: p.restart_pending, survivors: &p.survivors };
    match (settle::settled(progress, spawns_before, awaited)?, awaited) {
        (Settled::Done, Awaited::Stopped) => result(true, "stopped".into()),
        (Settled::Done, Awaited::Started) => result(true, "started".into()),
        (Settled::LeftSurvivors, Awaited::Stopped) => result(false, survivors(&p.survivors)),
        (Settled::LeftSurvivors, Awaited::Started) => {
            result(false, format!("started, but the old process: {}", survivors(&p.survivors)))
        }
        (Settled::Failed, _) => {
            result(false, format!("{}: {}", p.state, super::status::status(p, Instant::now()).description))
        }
    }
}

/// What a stop that could not end a program's tree says: its pids.
fn survivors(pids: &[i32]) -> String {
    let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
    format!("still alive after SIGKILL: pid {}", pids.join(", "))
}
