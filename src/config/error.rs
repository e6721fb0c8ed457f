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

    /// `file:line:column` of byte offset `at`, for messages that point at a second place.
    pub fn location(&self, at: usize) -> String {
        let (line, column) = line_col(&self.text, at);
        format!("{}:{line}:{column}", self.path.display())
    }

    /// A toml/serde error from this file, with the key path worked out from its span.
    pub fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let at = err.span().map_or(0, |s| s.start);
        let message = err.message().trim_end().to_string();
        self.error_at(at, key_path_at(&self.text, at), message)
    }
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

/// The dotted key path at byte offset `at`: the nearest `[table]` header above it, plus the
/// key on its own line (if the offset is inside a `key = value` line).
///
/// This reads the text rather than the parse tree because serde errors carry only a span; it
/// covers the layouts people write (`[program.x]` then `key = value`). Inside a multi-line
/// inline value it names the table, which still points the user at the right place.
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
