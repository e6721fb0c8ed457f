//! `${VAR}` and `${VAR:-default}` expansion from supd's own environment.
//!
//! Only the braced forms expand, so `$HOME` inside a `sh -c` command stays for the shell.
//! `$${` writes a literal `${`.

/// Why `${…}` could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${` without its `}`.
    #[error("unterminated `${{` in {0:?}")]
    Unterminated(String),
    /// `${…}` holds something other than a variable name.
    #[error("`${{{0}}}` is not a variable name (letters, digits and _)")]
    NotAName(String),
    /// The variable is unset (or empty) and has no default.
    #[error("environment variable {0} is not set (write ${{{0}:-default}} for a fallback)")]
    Unset(String),
}

/// Expands `${VAR}` / `${VAR:-default}` in `input`, looking names up with `lookup`.
///
/// Errors: an unset variable without a default, a `${…}` that is not a name, or an
/// unterminated `${`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body_and_rest) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_and_rest.find('}') else {
            return Err(ExpandError::Unterminated(input.to_string()));
        };
        let body = &body_and_rest[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ExpandError::NotAName(body.to_string()));
        }
        match (lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(ExpandError::Unset(name.to_string())),
        }
        rest = &body_and_rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces supervisord's `%(process_num)s`, `%(process_num)d` and `%(process_num)0Nd` (zero
/// padded to N digits) with `num`, for the copies of a program with `numprocs`.
pub fn process_num(input: &str, num: u32) -> String {
    percent_fields(input, false, |name, width| (name == "process_num").then(|| format!("{num:0width$}")))
}

/// Replaces supervisord's (Python's) `%(NAME)s`, `%(NAME)d` and `%(NAME)0Nd` fields in `input`
/// with `field(NAME, N)`, or keeps a field as written where that gives `None`. With `escapes`,
/// `%%` is a literal `%` (supervisord.conf); without, it stays as it is (supd's TOML).
pub fn percent_fields(input: &str, escapes: bool, mut field: impl FnMut(&str, usize) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('%').filter(|_| escapes) {
            out.push('%');
            rest = tail;
            continue;
        }
        // `(NAME)`, then the conversion: `s`, `d`, or a width then `d`.
        let parsed = after.strip_prefix('(').and_then(|a| a.split_once(')')).and_then(|(name, tail)| {
            let spec = tail.find(['s', 'd']).filter(|&i| tail[..i].bytes().all(|b| b.is_ascii_digit()))?;
            Some((name, tail[..spec].parse().unwrap_or(0), &tail[spec + 1..]))
        });
        let Some((name, width, tail)) = parsed else {
            out.push('%');
            rest = after;
            continue;
        };
        match field(name, width) {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[at..rest.len() - tail.len()]),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("3002".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_default_and_literal_forms() {
        assert_eq!(expand("serve --port ${PORT}", env).as_deref(), Ok("serve --port 3002"));
        assert_eq!(expand("${HOST:-0.0.0.0}:${PORT}", env).as_deref(), Ok("0.0.0.0:3002"));
        assert_eq!(expand("${EMPTY:-x}", env).as_deref(), Ok("x"), "empty counts as unset, like sh's :-");
        assert_eq!(expand("echo $HOME $${PORT}", env).as_deref(), Ok("echo $HOME ${PORT}"));
    }

    #[test]
    fn process_num_takes_supervisords_forms() {
        assert_eq!(super::process_num("w%(process_num)s --port 80%(process_num)02d", 3), "w3 --port 8003");
        assert_eq!(super::process_num("%(process_num)d %(process_num)x", 7), "7 %(process_num)x");
    }

    #[test]
    fn unset_and_malformed_are_errors() {
        assert!(expand("${NOPE}", env).unwrap_err().to_string().contains("NOPE is not set"));
        assert!(expand("${PORT", env).unwrap_err().to_string().contains("unterminated"));
        assert!(expand("${A B}", env).is_err());
    }
}
