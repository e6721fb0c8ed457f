//! A program's stdin pipe (`stdin_pipe = true`, and every program of a supervisord.conf, as
//! supervisord gives each one): what XML-RPC's `sendProcessStdin` and `supctl fg` write to.

use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::Mutex;

/// How long one write may wait for the program to take it: a program that does not read its
/// stdin fills the pipe (64 KiB), and the writer is answered with an error, never held.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The write end of one process's stdin. Writers take turns, so two writes never interleave.
#[derive(Debug)]
pub struct Stdin(Mutex<pipe::Sender>);

impl Stdin {
    /// Wraps the write end `fd`. Errors: it cannot be registered with the event loop.
    pub fn new(fd: OwnedFd) -> std::io::Result<Stdin> {
        Ok(Stdin(Mutex::new(pipe::Sender::from_owned_fd(fd)?)))
    }

    /// Writes all of `bytes`. Errors: the program closed its stdin or exited (`BrokenPipe`),
    /// or did not take them within 5 s (`TimedOut`; part may have been written).
    pub async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let write = async { self.0.lock().await.write_all(bytes).await };
        tokio::time::timeout(WRITE_TIMEOUT, write).await.unwrap_or_else(|_| {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the program took no input for 5 s"))
        })
    }
}

/// Why nothing could be written to a program's stdin.
#[derive(Debug, thiserror::Error)]
pub enum StdinError {
    /// It has no process.
    #[error("not running")]
    NotRunning,
    /// Its stdin is /dev/null.
    #[error("its stdin is not a pipe (set stdin_pipe = true)")]
    NotAPipe,
    /// The write failed (the program closed its stdin, or took nothing for 5 s).
    #[error(transparent)]
    Write(#[from] std::io::Error),
}
