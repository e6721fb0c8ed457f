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
        self.frame_into(&mut out, pending, data, at);
        out
    }

    /// [`Framer::frame`] appending to `out`, so a caller can reuse one buffer.
    pub fn frame_into(&self, out: &mut Vec<u8>, pending: &mut Vec<u8>, data: &[u8], at: SystemTime) {
        if let Kind::Fixed(prefix) = &self.kind {
            return fixed(out, prefix, pending, data);
        }
        out.reserve(data.len() + data.len() / 8);
        let time = || humantime::format_rfc3339_micros(at).to_string();
        let prefix: Option<Vec<u8>> = match &self.kind {
            Kind::Timed { template, name, stream } => Some(
                template.replace("{time}", &time()).replace("{name}", name).replace("{stream}", stream).into_bytes(),
            ),
            _ => None,
        };
        let json_time = matches!(self.kind, Kind::Json { .. }).then(time);
        let mut emit = |a: &[u8], b: &[u8]| match &self.kind {
            Kind::Fixed(p) => line(out, p, a, b),
            Kind::Timed { .. } => line(out, prefix.as_deref().unwrap_or_default(), a, b),
            Kind::Json { program, stream } => {
                let mut text = String::from_utf8_lossy(a).into_owned();
                text.push_str(&String::from_utf8_lossy(b));
                let obj = JsonLine { time: json_time.as_deref().unwrap_or(""), program, stream, line: &text };
                let _ = serde_json::to_writer(&mut *out, &obj);
                out.push(b'\n');
            }
        };
        split(pending, data, &mut emit);
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

/// The common case, `name | line`, without per-line dispatch, into room reserved at once.
fn fixed(out: &mut Vec<u8>, prefix: &[u8], pending: &mut Vec<u8>, data: &[u8]) {
    let lines = memchr::memchr_iter(b'\n', data).count();
    out.reserve(data.len() + pending.len() + (lines + 1) * prefix.len() + MAX_LINE / 1024);
    let mut rest = data;
    if let Some(i) = memchr::memchr(b'\n', rest)
        && !pending.is_empty()
    {
        line(out, prefix, pending, &rest[..i]);
        pending.clear();
        rest = &rest[i + 1..];
    }
    // Every complete line left is copied in one piece: the prefix, then line and newline.
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', rest) {
        out.extend_from_slice(prefix);
        out.extend_from_slice(&rest[start..=i]);
        start = i + 1;
    }
    split(pending, &rest[start..], &mut |a, b| line(out, prefix, a, b));
}

fn line(out: &mut Vec<u8>, prefix: &[u8], a: &[u8], b: &[u8]) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out.push(b'\n');
}

/// Calls `emit(first, second)` for every complete line (without its newline; the line is
/// `first` then `second`), then for each `MAX_LINE` piece of a longer unfinished one.
fn split(pending: &mut Vec<u8>, data: &[u8], emit: &mut dyn FnMut(&[u8], &[u8])) {
    let mut rest = data;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        emit(pending, &rest[..i]);
        pending.clear();
        rest = &rest[i + 1..];
    }
    pending.extend_from_slice(rest);
    while pending.len() >= MAX_LINE {
        let piece: Vec<u8> = pending.drain(..MAX_LINE).collect();
        emit(&piece, &[]);
    }
    if pending.is_empty() && pending.capacity() > 4096 {
        *pending = Vec::new();
    }
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
