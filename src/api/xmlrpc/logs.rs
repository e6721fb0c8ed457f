//! supervisord's log methods: a program's log (`readProcess*Log`, `tailProcess*Log`) and
//! supd's own (`readLog`, supervisorctl's `maintail`), from the last 64 KiB kept or the log
//! file, read off the event loop and bounded to 1 MiB an answer; and the other way, a
//! program's stdin (`sendProcessStdin`, what `supervisorctl fg` sends).

use dxr::Value;

use super::fault::{Code, Fault};

/// `tailProcess*Log(name, offset, length)`, supervisord's `tailFile`: up to `length` bytes of
/// the log file from `offset`; when more than that has been written since, the last `length`
/// bytes and the overflow flag. Answers `[bytes, next offset, overflow]`, and `['', 0, false]`
/// for a stream without a log file, as supervisord does.
pub(super) async fn tail_log(log: &crate::output::StreamLog, offset: i32, length: i32) -> Value {
    let path = log.file.as_ref().map(|f| f.path.clone());
    let (offset, length) = (u64::try_from(offset).unwrap_or(0), u64::try_from(length).unwrap_or(0).min(1 << 20));
    let read = tokio::task::spawn_blocking(move || -> Option<(Vec<u8>, u64, bool)> {
        use std::io::{Read, Seek};
        let mut file = std::fs::File::open(path?).ok()?;
        let size = file.metadata().ok()?.len();
        let (start, overflow) = if size > offset.saturating_add(length) {
            (size.saturating_sub(length), true)
        } else {
            (offset.min(size), false)
        };
        file.seek(std::io::SeekFrom::Start(start)).ok()?;
        let mut out = Vec::new();
        file.take(size - start).read_to_end(&mut out).ok()?;
        Some((out, size, overflow))
    });
    let (bytes, next, overflow) = read.await.ok().flatten().unwrap_or((Vec::new(), 0, false));
    Value::Array(vec![
        Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        Value::Integer(i32::try_from(next).unwrap_or(i32::MAX)),
        Value::Boolean(overflow),
    ])
}

/// `readProcess*Log(name, offset, length)`: a negative offset reads the last `-offset` bytes
/// (from the 64 KiB kept, or the log file); a non-negative one reads `length` bytes of the log
/// file from there (all to its end when `length` is 0). Errors: `NO_FILE` for a file read of a
/// stream without a log file.
pub(super) async fn read_log(log: &crate::output::StreamLog, offset: i32, length: i32) -> Result<String, Fault> {
    let tail = std::sync::Arc::clone(&log.tail);
    let path = log.file.as_ref().map(|f| f.path.clone());
    let (offset, length) = (i64::from(offset), u64::try_from(length).unwrap_or(0));
    let read = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Fault> {
        if offset < 0 {
            return Ok(tail.last_bytes(usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX)));
        }
        let Some(path) = path else { return Err(Fault::new(Code::NoFile, "")) };
        use std::io::{Read, Seek};
        let mut file = std::fs::File::open(&path).map_err(|_| Fault::new(Code::NoFile, path.display().to_string()))?;
        let _ = file.seek(std::io::SeekFrom::Start(offset.unsigned_abs()));
        let mut out = Vec::new();
        // At most 1 MiB per call, however much is asked for: answers stay bounded.
        let most = if length == 0 { 1 << 20 } else { length.min(1 << 20) };
        let _ = file.take(most).read_to_end(&mut out);
        Ok(out)
    });
    let bytes = read.await.map_err(|_| Fault::new(Code::Failed, "cannot read the log"))??;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `sendProcessStdin(name, chars)`. Errors: `NOT_RUNNING` without a process, `NO_FILE` for one
/// whose stdin is not a pipe (`stdin_pipe`) or that closed it, `FAILED` for one that took
/// nothing for 5 s.
pub(super) async fn send_stdin(p: &crate::supervisor::ProgramView, bytes: &[u8]) -> Result<(), Fault> {
    use crate::process::stdin::StdinError;
    let name = p.full_name();
    p.write_stdin(bytes).await.map_err(|e| match e {
        StdinError::NotRunning => Fault::new(Code::NotRunning, name),
        StdinError::Write(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            Fault::new(Code::Failed, format!("{name}: {e}"))
        }
        StdinError::NotAPipe | StdinError::Write(_) => Fault::new(Code::NoFile, name),
    })
}
