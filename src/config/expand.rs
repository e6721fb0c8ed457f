//! `${VAR}` and `${VAR:-default}` expansion from supd's own environment.
//!
//! Only the braced forms expand, so `$HOME` inside a `sh -c` command stays for the shell.
//! `$${` writes a literal `${`.

/// Expands `${VAR}` / `${VAR:-default}` in `input`, looking names up with `lookup`.
///
/// Errors: an unset variable without a default, or an unterminated `${`, as a message.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
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
            return Err(format!("unterminated `${{` in {input:?}"));
        };
        let body = &body_and_rest[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{body}}}` is not a variable name (letters, digits and _)"));
        }
        match (lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write ${{{name}:-default}} for a fallback)"
                ));
            }
        }
        rest = &body_and_rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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
    fn unset_and_malformed_are_errors() {
        assert!(expand("${NOPE}", env).unwrap_err().contains("NOPE is not set"));
        assert!(expand("${PORT", env).unwrap_err().contains("unterminated"));
        assert!(expand("${A B}", env).is_err());
    }
}
