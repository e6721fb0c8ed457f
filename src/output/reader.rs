//! One program pipe read by a thread of its own (the `splice` and `flood` threads): it waits
//! with poll(2), and under a flood it lets output gather in a 1 MiB pipe before the next read,
//! so each read carries hundreds of kilobytes instead of the program's last 4 KiB write and
//! the thread wakes a few thousand times per gigabyte, not a quarter of a million (measured in
//! bench/logs.py). A program that writes a line now and then is never delayed: the pause
//! follows only a large read, and it is shorter than a 1 GiB/s program needs to fill the
//! pipe, so it never blocks the program either.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The pipe size asked for (Linux's default `pipe-max-size`).
pub const PIPE_SIZE: usize = 1 << 20;
/// A read at least this large means the program is writing in bulk.
const BULK: usize = 4096;
/// How long to let a bulk writer's output gather in the pipe before the next read.
const COALESCE: Duration = Duration::from_micros(250);

/// The read end of a program's stdout or stderr pipe, owned by one thread.
#[derive(Debug)]
pub struct PipeReader {
    fd: OwnedFd,
    /// Whether the pipe holds 1 MiB: with the default 64 KiB a pause could fill it, so there
    /// are none.
    grown: bool,
}

impl PipeReader {
    /// Takes the pipe and grows it to 1 MiB where the system allows.
    pub fn new(fd: OwnedFd) -> PipeReader {
        let grown = grow(fd.as_fd());
        PipeReader { fd, grown }
    }

    /// The descriptor, for splice(2).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Waits until the pipe has data or its write end is closed; false on an error.
    pub fn wait(&self) -> bool {
        loop {
            // No timeout: the thread that calls this exists to wait for this pipe.
            match self.poll(-1) {
                Ok(revents) => return revents & (libc::POLLIN | libc::POLLHUP) != 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Waits up to `timeout` for data (or the end); whether there is some to read now.
    pub fn wait_for(&self, timeout: Duration) -> bool {
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        self.poll(ms).is_ok_and(|revents| revents & libc::POLLIN != 0)
    }

    /// Whether every holder of the write end has closed it (POLLHUP), asked without waiting.
    pub fn hung_up(&self) -> bool {
        self.poll(0).is_ok_and(|revents| revents & libc::POLLHUP != 0)
    }

    /// poll(2) on the pipe for input, up to `timeout_ms` (-1: no limit); the events it
    /// returned (none when the time ran out).
    fn poll(&self, timeout_ms: libc::c_int) -> io::Result<libc::c_short> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, timeout_ms) } {
            n if n < 0 => Err(io::Error::last_os_error()),
            0 => Ok(0),
            _ => Ok(pfd.revents),
        }
    }

    /// Reads what the pipe holds, up to `buf`'s spare capacity, appending it to `buf`.
    /// `Ok(0)` is the end of the stream; `Interrupted` and `WouldBlock` mean try again.
    pub fn read(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        // SAFETY: reads into the vector's spare capacity, at most its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        // SAFETY: read(2) initialised the first n bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(n)
    }

    /// Pauses after a read of `got` bytes out of `asked` when the program writes in bulk and
    /// the read did not find the pipe half full (then the program outpaces supd, and the next
    /// read has plenty without a pause).
    pub fn pace(&self, got: usize, asked: usize) {
        if self.grown && (BULK..asked / 2).contains(&got) {
            std::thread::sleep(COALESCE);
        }
    }
}

impl AsRawFd for PipeReader {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Grows a pipe to [`PIPE_SIZE`]; false when refused (a lowered `pipe-max-size`, or the
/// user's pipe-buffer quota spent).
fn grow(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_SETPIPE_SZ on a pipe we own; it only changes the pipe's capacity.
    let size = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
    usize::try_from(size).is_ok_and(|s| s >= PIPE_SIZE)
}

/// Whether a failed read or splice should just be tried again.
pub fn retryable(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock)
}
