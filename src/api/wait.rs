//! Waiting for a verb's work: `start`, `stop` and `restart` answer once each program has
//! settled (as the lifecycle's [`settle`] rule says), bounded by its own startsecs +
//! stopwaitsecs. supctl's JSON answers and XML-RPC's return values are both made from the
//! [`VerbOutcome`]s here.

use std::time::Instant;

use super::control::{Handle, SupervisorGone, error};
use super::protocol::{ActionFault, ActionResult, ErrorKind, Response};
use crate::lifecycle::Refusal;
use crate::lifecycle::settle::{self, Awaited, Progress, Settled};
use crate::supervisor::{Command, ProgramView, Snapshot, VerbError};

/// How a verb ended for one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum VerbOutcome {
    /// The program did not take it.
    Refused(VerbError),
    /// Taken, and nothing to wait for (a signal).
    Done,
    /// Taken, and the program has settled so.
    Settled(Settled),
    /// Taken, and the program did not settle within its own time limit.
    TimedOut,
}

impl Handle {
    /// Sends `command(names)`, then waits for each accepted program to settle as `wait` says.
    /// Programs are followed by name (a reload may move them); one a reload removed meanwhile
    /// is left out. Errors: the supervisor is gone.
    pub(super) async fn verb_and_wait(
        &self,
        command: impl FnOnce(Vec<String>) -> Command,
        names: Vec<String>,
        wait: Wait,
    ) -> Result<Vec<(ProgramView, VerbOutcome)>, SupervisorGone> {
        let answers = self.send(command(names.clone())).await?;
        let mut snapshot = self.snapshot.clone();
        let find = |s: &Snapshot, name: &str| s.programs.iter().position(|p| p.name == name);
        let limit = {
            let s = snapshot.borrow();
            let found = names.iter().filter_map(|n| s.programs.get(find(&s, n)?));
            found.map(|p| p.settle_within).max().unwrap_or_default()
        };
        let deadline = crate::deadline::after_tokio(tokio::time::Instant::now(), limit);
        // Each program's view is kept as it was when it settled; results come in the order
        // programs settled, as supervisord's group methods return them.
        let mut outcomes: Vec<Option<(ProgramView, VerbOutcome)>> = vec![None; answers.len()];
        let mut order = Vec::with_capacity(answers.len());
        loop {
            {
                let s = snapshot.borrow_and_update();
                for (k, ((slot, name), answer)) in outcomes.iter_mut().zip(&names).zip(&answers).enumerate() {
                    if slot.is_none()
                        && let Some(p) = find(&s, name).and_then(|i| s.programs.get(i))
                    {
                        *slot = outcome(p, answer, wait).map(|o| (p.clone(), o));
                        if slot.is_some() {
                            order.push((k, Instant::now()));
                        }
                    }
                }
            }
            if outcomes.iter().all(Option::is_some) {
                break;
            }
            match tokio::time::timeout_at(deadline, snapshot.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let s = snapshot.borrow();
        let timed_out = |name: &String| Some((s.programs.get(find(&s, name)?)?.clone(), VerbOutcome::TimedOut));
        let mut order = in_settling_order(order);
        let unsettled: Vec<usize> = (0..names.len()).filter(|k| !order.contains(k)).collect();
        order.extend(unsettled);
        Ok(order.into_iter().filter_map(|k| outcomes.get_mut(k)?.take().or_else(|| timed_out(names.get(k)?))).collect())
    }

    /// [`Handle::verb_and_wait`], answered as supctl's JSON.
    pub(super) async fn command_and_wait(
        &self,
        command: impl FnOnce(Vec<String>) -> Command,
        names: Vec<String>,
        wait: Wait,
    ) -> Response {
        match self.verb_and_wait(command, names, wait).await {
            Ok(outcomes) => Response::Actions { results: outcomes.iter().map(|(p, o)| result(p, o, wait)).collect() },
            Err(e) => error(ErrorKind::ShuttingDown, e.to_string()),
        }
    }
}

/// Programs that settled at the same moment (within [`AT_ONCE`] of each other, as two
/// processes stopped by one signal do) keep the order they were named in; later ones come
/// after, in the order they settled, as supervisord's group methods report them.
const AT_ONCE: std::time::Duration = std::time::Duration::from_millis(50);

/// The indices of `settled` (index, when), settlings within [`AT_ONCE`] of the previous one
/// ordered by index.
fn in_settling_order(settled: Vec<(usize, Instant)>) -> Vec<usize> {
    let mut out = Vec::with_capacity(settled.len());
    let mut batch: Vec<usize> = Vec::new();
    let mut last: Option<Instant> = None;
    for (k, at) in settled {
        if last.is_some_and(|l| at.saturating_duration_since(l) > AT_ONCE) {
            batch.sort_unstable();
            out.append(&mut batch);
        }
        batch.push(k);
        last = Some(at);
    }
    batch.sort_unstable();
    out.append(&mut batch);
    out
}

/// What an action waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Nothing: the answer is the result.
    No,
    /// As the lifecycle says ([`settle::settled`]).
    For(Awaited),
}

/// How the verb answered `answer` has ended for `p`, or `None` while it is under way.
fn outcome(p: &ProgramView, answer: &Result<u64, VerbError>, wait: Wait) -> Option<VerbOutcome> {
    let spawns_before = match answer {
        Err(e) => return Some(VerbOutcome::Refused(e.clone())),
        Ok(n) => *n,
    };
    let Wait::For(awaited) = wait else { return Some(VerbOutcome::Done) };
    let progress =
        Progress { state: p.state, spawns: p.spawns, restart_pending: p.restart_pending, survivors: &p.survivors };
    settle::settled(progress, spawns_before, awaited).map(VerbOutcome::Settled)
}

/// supctl's line for `outcome` of a verb on `p`.
fn result(p: &ProgramView, outcome: &VerbOutcome, wait: Wait) -> ActionResult {
    let failed = |fault: ActionFault, message: String| ActionResult {
        name: p.full_name(),
        ok: false,
        message,
        state: Some(p.state),
        fault: Some(fault),
        detail: None,
    };
    let result = |ok: bool, message: String| {
        if ok {
            ActionResult { name: p.full_name(), ok, message, state: Some(p.state), fault: None, detail: None }
        } else {
            failed(ActionFault::Failed, message)
        }
    };
    match (outcome, wait) {
        (VerbOutcome::Refused(e), _) => failed(
            match e {
                VerbError::NoSuchProgram => ActionFault::NoSuchProgram,
                VerbError::Refused(Refusal::AlreadyStarted) => ActionFault::AlreadyStarted,
                VerbError::Refused(Refusal::NotRunning) => ActionFault::NotRunning,
                _ => ActionFault::Failed,
            },
            e.to_string(),
        ),
        (VerbOutcome::Done, _) | (_, Wait::No) => result(true, "signalled".into()),
        (VerbOutcome::TimedOut, _) => result(false, "timed out waiting for the program to settle".into()),
        (VerbOutcome::Settled(Settled::Done), Wait::For(Awaited::Stopped)) => result(true, "stopped".into()),
        (VerbOutcome::Settled(Settled::Done), Wait::For(Awaited::Started)) => result(true, "started".into()),
        (VerbOutcome::Settled(Settled::LeftSurvivors), Wait::For(Awaited::Stopped)) => {
            result(false, survivors(&p.survivors))
        }
        (VerbOutcome::Settled(Settled::LeftSurvivors), Wait::For(Awaited::Started)) => {
            result(false, format!("started, but the old process: {}", survivors(&p.survivors)))
        }
        (VerbOutcome::Settled(Settled::Failed), Wait::For(awaited)) => {
            let detail = format!("{}: {}", p.state, super::status::status(p, Instant::now()).description);
            let mut r = if awaited == Awaited::Started {
                // supervisorctl's words and exit codes for the fault supervisord would answer.
                match StartFailure::of(p) {
                    StartFailure::NoFile => failed(ActionFault::Failed, "no such file".into()),
                    StartFailure::NotExecutable => failed(ActionFault::Failed, "file is not executable".into()),
                    StartFailure::SpawnError => failed(ActionFault::StartFailed, "spawn error".into()),
                }
            } else {
                failed(ActionFault::Failed, detail.clone())
            };
            r.detail = Some(detail);
            r
        }
    }
}

/// How a start failed, in supervisord's terms (its fault for the start, supervisorctl's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartFailure {
    /// The command does not exist (`NO_FILE`: `no such file`).
    NoFile,
    /// The command is not executable (`NOT_EXECUTABLE`: `file is not executable`).
    NotExecutable,
    /// Any other spawn error, or an exit before `startsecs` (`SPAWN_ERROR`: `spawn error`).
    SpawnError,
}

impl StartFailure {
    /// The failure of `p`'s last start, from its error.
    pub(super) fn of(p: &ProgramView) -> StartFailure {
        let error = p.error.as_deref().unwrap_or("");
        if error.contains("command not found") {
            StartFailure::NoFile
        } else if error.contains("not executable") {
            StartFailure::NotExecutable
        } else {
            StartFailure::SpawnError
        }
    }
}

/// What a stop that could not end a program's tree says: its pids.
pub(super) fn survivors(pids: &[i32]) -> String {
    let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
    format!("still alive after SIGKILL: pid {}", pids.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_settled_at_once_keep_their_order_and_later_ones_follow() {
        let t = Instant::now();
        let ms = |n| t + std::time::Duration::from_millis(n);
        assert_eq!(in_settling_order(vec![(1, ms(0)), (0, ms(3))]), [0, 1]);
        assert_eq!(in_settling_order(vec![(2, ms(0)), (0, ms(900)), (1, ms(920))]), [2, 0, 1]);
        assert_eq!(in_settling_order(vec![(1, ms(0)), (0, ms(500))]), [1, 0]);
    }
}
