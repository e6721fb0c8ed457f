//! Config errors: every one names the file, and where it can, the line, column and key.

use std::path::PathBuf;

/// A configuration that cannot be used. supd starts nothing and exits 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Something the user wrote is wrong at a known place.
    #[error("{}:{line}:{column}: {key}: {message}", file.display())]
    Invalid {
        /// The file that holds the mistake.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The dotted key path, e.g. `program.web.startsecs`.
        key: String,
        /// What was expected, and how to fix it.
        message: String,
    },
    /// The programs ask for more GPUs than this machine has, or for ones it does not have
    /// (the message names the programs).
    #[error("gpu: {0}")]
    Gpus(String),
}

/// One config file's text, kept so that byte spans can be turned into line:column and key.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where the text came from.
    pub path: PathBuf,
    /// The whole file.
    pub text: String,
}

impl Source {
    /// An [`ConfigError::Invalid`] at byte offset `at`, with `key` as the dotted key path.
    pub fn error_at(&self, at: usize, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(&self.text, at);
        ConfigError::Invalid { file: self.path.clone(), line, column, key: key.into(), message: message.into() }
    }

    /// Where `name` is written in the table at byte offset `table_at`: in its `[kind.name]`
    /// header, or before the `{` of `name = { … }`; `table_at` itself when it cannot be found.
    pub fn name_at(&self, table_at: usize, name: &str) -> usize {
        let at = floor_char_boundary(&self.text, table_at.min(self.text.len()));
        let line_start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[at..].find('\n').map_or(self.text.len(), |i| at + i);
        let line = &self.text[line_start..line_end];
        let found = if self.text[at..].starts_with('[') { line.rfind(name) } else { line.find(name) };
        found.map_or(at, |i| line_start + i)
    }

    /// `file:line:column` of byte offset `at`, for messages that point at a second place.
    pub fn location(&self, at: usize) -> String {
        let (line, column) = line_col(&self.text, at);
        format!("{}:{line}:{column}", self.path.display())
    }

    /// Parses this file's text into `T`. Errors: a TOML syntax error (its key path read from
    /// the text around it), or a value of the wrong shape, with its exact key path (from
    /// `serde_path_to_error`, so keys in inline tables are named too).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let document = toml::Deserializer::parse(&self.text).map_err(|e| self.toml_error(&e, None))?;
        serde_path_to_error::deserialize(document).map_err(|e| {
            let key = key_path(e.path());
            self.toml_error(e.inner(), Some(key).filter(|k| !k.is_empty()))
        })
    }

    /// A toml/serde error from this file at its span, under `key` (or, without one, the key
    /// path worked out from the text around the span).
    fn toml_error(&self, err: &toml::de::Error, key: Option<String>) -> ConfigError {
        let at = err.span().map_or(0, |s| s.start);
        let message = err.message().trim_end().to_string();
        self.error_at(at, key.unwrap_or_else(|| key_path_at(&self.text, at)), message)
    }
}

/// A dotted key path (`program.web.healthcheck.interval`, `program.web.exitcodes[1]`) from
/// the path serde took, without the segments `toml::Spanned` adds inside a value.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Map { key } if key.starts_with("$__serde_spanned") => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            // A key serde could not capture (a `Spanned` map key): the path names its table,
            // and line:column points at the key itself.
            Segment::Unknown => {}
        }
    }
    out
}

/// 1-based line and character column of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = floor_char_boundary(text, at.min(text.len()));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The dotted key path at byte offset `at`, for a TOML syntax error (there is no parse tree
/// to take it from): the nearest `[table]` header above it, plus the key on its own line (if
/// the offset is inside a `key = value` line).
fn key_path_at(text: &str, at: usize) -> String {
    let at = floor_char_boundary(text, at.min(text.len()));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.starts_with('[') {
        return line.trim_matches(|c| c == '[' || c == ']').trim().to_string();
    }
    let key = line.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string());
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (Some(t), None) => t,
        (None, Some(k)) => k,
        (None, None) => "(top level)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_names_table_and_key() {
        let text = "[supervisor]\nuser = \"dev\"\n\n[program.web]\ncommand = \"x\"\nstartsecs = \"abc\"\n";
        let at = text.find("\"abc\"").unwrap_or(0);
        assert_eq!(key_path_at(text, at), "program.web.startsecs");
        assert_eq!(line_col(text, at), (6, 13));
    }

    #[test]
    fn key_path_on_header_is_the_table() {
        let text = "[program.web]\n";
        assert_eq!(key_path_at(text, 0), "program.web");
    }
}
