//! Turning raw program output into passthrough lines: `name | line` (or a `log_prefix`
//! template), or one JSON object per line.

use std::sync::Arc;
use std::time::SystemTime;

use super::MAX_LINE;

/// How one program stream's lines are written to supd's stdout/stderr.
#[derive(Debug, Clone)]
pub struct Framer {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A fixed prefix.
    Fixed(Arc<[u8]>),
    /// A `log_prefix` with `{time}` in it, rendered once per chunk read.
    Timed { template: String, name: String, stream: &'static str },
    /// `{"time":…,"program":…,"stream":…,"line":…}`.
    Json { program: String, stream: &'static str },
}

impl Framer {
    /// The framer for `stream` (`"stdout"` or `"stderr"`) of program `name`. `template` is its
    /// `log_prefix` (`None`: the name padded to `width`, then ` | `).
    pub fn new(name: &str, stream: &'static str, template: Option<&str>, json: bool, width: usize) -> Framer {
        let kind = match (json, template) {
            (true, _) => Kind::Json { program: name.to_string(), stream },
            (false, None) => Kind::Fixed(Arc::from(format!("{name:<width$} | ").as_bytes())),
            (false, Some(t)) if t.contains("{time}") => {
                Kind::Timed { template: t.to_string(), name: name.to_string(), stream }
            }
            (false, Some(t)) => {
                Kind::Fixed(Arc::from(t.replace("{name}", name).replace("{stream}", stream).as_bytes()))
            }
        };
        Framer { kind }
    }

    /// Frames every complete line of `data` (the first joined to `pending`) into the returned
    /// buffer and keeps the unfinished tail in `pending`, cut into `MAX_LINE` pieces when it
    /// grows that long. `at` stamps `{time}` and JSON lines.
    pub fn frame(&self, pending: &mut Vec<u8>, data: &[u8], at: SystemTime) -> Vec<u8> {
        let mut out = Vec::new();
        self.frame_into(&mut out, pending, data, at, usize::MAX);
        out
    }

    /// [`Framer::frame`] appending to `out`, stopping after the line that brings `out` to `max`
    /// bytes or more; returns how much of `data` it used (at least one line, so a caller that
    /// empties `out` and calls again with the rest always gets on). The unfinished tail goes to
    /// `pending` only once all of `data` is used. The bound keeps memory in check however short
    /// the lines: an empty line becomes a whole prefix, or a whole JSON object.
    pub fn frame_into(
        &self,
        out: &mut Vec<u8>,
        pending: &mut Vec<u8>,
        data: &[u8],
        at: SystemTime,
        max: usize,
    ) -> usize {
        if let Kind::Fixed(prefix) = &self.kind {
            return fixed(out, prefix, pending, data, max);
        }
        out.reserve((data.len() + data.len() / 8).min(max));
        let time = || humantime::format_rfc3339_micros(at).to_string();
        let prefix: Option<Vec<u8>> = match &self.kind {
            Kind::Timed { template, name, stream } => Some(
                template.replace("{time}", &time()).replace("{name}", name).replace("{stream}", stream).into_bytes(),
            ),
            _ => None,
        };
        let json_time = matches!(self.kind, Kind::Json { .. }).then(time);
        let mut emit = |a: &[u8], b: &[u8]| {
            match &self.kind {
                Kind::Fixed(p) => line(out, p, a, b),
                Kind::Timed { .. } => line(out, prefix.as_deref().unwrap_or_default(), a, b),
                Kind::Json { program, stream } => {
                    let mut text = String::from_utf8_lossy(a).into_owned();
                    text.push_str(&String::from_utf8_lossy(b));
                    let obj = JsonLine { time: json_time.as_deref().unwrap_or(""), program, stream, line: &text };
                    let _ = serde_json::to_writer(&mut *out, &obj);
                    out.push(b'\n');
                }
            }
            out.len() >= max
        };
        split(pending, data, &mut emit)
    }

    /// The last, unfinished line at EOF, as a line of its own.
    pub fn finish(&self, pending: &mut Vec<u8>, at: SystemTime) -> Vec<u8> {
        if pending.is_empty() {
            return Vec::new();
        }
        let mut data = std::mem::take(pending);
        data.push(b'\n');
        self.frame(pending, &data, at)
    }
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    program: &'a str,
    stream: &'a str,
    line: &'a str,
}

/// The common case, `name | line`, without per-line dispatch (see [`Framer::frame_into`]).
fn fixed(out: &mut Vec<u8>, prefix: &[u8], pending: &mut Vec<u8>, data: &[u8], max: usize) -> usize {
    out.reserve((data.len() + pending.len() + data.len() / 8 + prefix.len()).min(max));
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', data) {
        if out.len() >= max {
            return start;
        }
        // Most lines are copied in one piece: the prefix, then line and newline.
        if pending.is_empty() {
            out.extend_from_slice(prefix);
            out.extend_from_slice(&data[start..=i]);
        } else {
            line(out, prefix, pending, &data[start..i]);
            pending.clear();
        }
        start = i + 1;
    }
    split(pending, &data[start..], &mut |a, b| {
        line(out, prefix, a, b);
        false
    });
    data.len()
}

fn line(out: &mut Vec<u8>, prefix: &[u8], a: &[u8], b: &[u8]) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out.push(b'\n');
}

/// Calls `emit(first, second)` for the complete lines of `data` (without the newline; the line
/// is `first` then `second`, `first` being `pending` for the first line) until `emit` says the
/// output is full; returns how much of `data` it used. When that is all of it, the unfinished
/// tail joins `pending`, and each `MAX_LINE` piece of a longer one is emitted.
fn split(pending: &mut Vec<u8>, data: &[u8], emit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> usize {
    let mut used = 0;
    while let Some(i) = memchr::memchr(b'\n', &data[used..]) {
        let full = emit(pending, &data[used..used + i]);
        pending.clear();
        used += i + 1;
        if full {
            return used;
        }
    }
    pending.extend_from_slice(&data[used..]);
    while pending.len() >= MAX_LINE {
        let piece: Vec<u8> = pending.drain(..MAX_LINE).collect();
        emit(&piece, &[]);
    }
    if pending.is_empty() && pending.capacity() > 4096 {
        *pending = Vec::new();
    }
    data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn frames_lines_and_keeps_partial_tail() {
        let f = Framer::new("p", "stdout", None, false, 1);
        let mut pending = Vec::new();
        assert_eq!(f.frame(&mut pending, b"one\ntw", at()), b"p | one\n");
        assert_eq!(pending, b"tw");
        assert_eq!(f.frame(&mut pending, b"o\nthree\n", at()), b"p | two\np | three\n");
        assert!(pending.is_empty());
        assert_eq!(f.frame(&mut pending, b"last", at()), b"");
        assert_eq!(f.finish(&mut pending, at()), b"p | last\n");
    }

    #[test]
    fn framing_stops_at_the_bound_and_goes_on_where_it_stopped() {
        let fixed = Framer::new("program", "stdout", None, false, 1);
        let json = Framer::new("program", "stdout", None, true, 0);
        let data = [b"tail\n".as_slice(), &b"\n".repeat(5000), b"last\npartial"].concat();
        for f in [fixed, json] {
            let whole = f.frame(&mut b"half a ".to_vec(), &data, at());
            let (mut joined, mut rest, mut pending) = (Vec::new(), &data[..], b"half a ".to_vec());
            while !rest.is_empty() {
                let mut out = Vec::new();
                rest = &rest[f.frame_into(&mut out, &mut pending, rest, at(), 4096)..];
                assert!(out.len() < 4096 + 100, "one buffer holds {} bytes", out.len());
                joined.extend(out);
            }
            assert_eq!(joined, whole, "the pieces add up to the whole");
            assert_eq!(pending, b"partial");
        }
    }

    #[test]
    fn long_lines_are_cut_not_lost() {
        let f = Framer::new("p", "stdout", None, false, 1);
        let mut pending = Vec::new();
        let data = vec![b'x'; MAX_LINE * 2 + 10];
        let out = f.frame(&mut pending, &data, at());
        assert_eq!(out.len(), 2 * (4 + MAX_LINE + 1));
        assert_eq!(pending.len(), 10);
        let out = f.frame(&mut pending, b"y\n", at());
        assert_eq!(out, [b"p | ".as_slice(), &[b'x'; 10], b"y\n"].concat());
    }

    #[test]
    fn templates_and_json() {
        let mut pending = Vec::new();
        let f = Framer::new("web", "stderr", Some("[{stream}] {name}: "), false, 0);
        assert_eq!(f.frame(&mut pending, b"hi\n", at()), b"[stderr] web: hi\n");
        let f = Framer::new("web", "stdout", Some("{time} {name} "), false, 0);
        assert_eq!(f.frame(&mut pending, b"hi\n", at()), b"2027-01-15T08:00:00.000000Z web hi\n");
        let f = Framer::new("web", "stdout", None, true, 0);
        assert_eq!(
            String::from_utf8_lossy(&f.frame(&mut pending, b"say \"hi\"\n", at())),
            "{\"time\":\"2027-01-15T08:00:00.000000Z\",\"program\":\"web\",\"stream\":\"stdout\",\"line\":\"say \\\"hi\\\"\"}\n"
        );
    }
}
