//! supd's own settings written in a supervisord.conf, so that one INI file can keep them: a
//! `[supd]` section (the `[supervisor]` keys supervisord has no word for, such as `http`, and
//! `gpu_interval` for `[gpu] interval`) and `supd_`-prefixed program keys (`supd_depends_on`,
//! `supd_required`, `supd_gpu`, `supd_healthcheck_http` …). supervisord 4.3.0 ignores both,
//! so the same file still runs under it.

use toml::{Table, Value};

/// `text` as TOML reads it when it is one TOML value (`true`, `30`, `["a", "b"]`,
/// `{ db = "healthy" }`), else as a string (`5s`, `http://127.0.0.1:3002/health`,
/// `0.0.0.0:9001`, `0660`).
pub(super) fn value(text: &str) -> Value {
    let text = text.trim();
    match toml::from_str::<Table>(&format!("v = {text}")) {
        Ok(mut parsed) if parsed.len() == 1 => parsed.remove("v").unwrap_or_else(|| Value::String(text.into())),
        _ => Value::String(text.into()),
    }
}

/// Carries `supd_KEY = text` into program `table`: `supd_healthcheck_K` as `K` of its
/// `[healthcheck]`, `supd_depends_on` also written `db, cache:healthy`, any other as `KEY`.
/// A key supd does not know is an error of the TOML read after this (with its key path).
pub(super) fn program_key(table: &mut Table, key: &str, text: &str) {
    let key = key.strip_prefix("supd_").unwrap_or(key);
    if let Some(probe_key) = key.strip_prefix("healthcheck_") {
        let probe = table.entry("healthcheck").or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(probe) = probe {
            probe.insert(probe_key.into(), value(text));
        }
        return;
    }
    let carried = match (key, value(text)) {
        ("depends_on", Value::String(list)) => depends_on(&list),
        (_, v) => v,
    };
    table.insert(key.into(), carried);
}

/// `db, cache:healthy`: each program with its condition (`started` when none is given).
fn depends_on(list: &str) -> Value {
    let mut conditions = Table::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, condition) = item.split_once(':').unwrap_or((item, "started"));
        conditions.insert(name.trim().into(), Value::String(condition.trim().into()));
    }
    Value::Table(conditions)
}

/// Carries one key of `[supd]`: `gpu_interval` into `gpu` (as `interval`), any other into
/// `supervisor`.
pub(super) fn section_key(supervisor: &mut Table, gpu: &mut Table, key: &str, text: &str) {
    match key {
        "gpu_interval" => gpu.insert("interval".into(), value(text)),
        _ => supervisor.insert(key.into(), value(text)),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_toml_where_they_can_be_and_text_otherwise() {
        assert_eq!(value("true"), Value::Boolean(true));
        assert_eq!(value(" 30 "), Value::Integer(30));
        assert_eq!(value("5s"), Value::String("5s".into()));
        assert_eq!(value("0660"), Value::String("0660".into()));
        assert_eq!(value("0.0.0.0:9001"), Value::String("0.0.0.0:9001".into()));
        assert!(matches!(value(r#"{ db = "healthy" }"#), Value::Table(_)));
        assert_eq!(value("1\nw = 2"), Value::String("1\nw = 2".into()));
    }

    #[test]
    fn program_keys_land_where_supd_reads_them() {
        let mut t = Table::new();
        program_key(&mut t, "supd_healthcheck_http", "http://127.0.0.1:3002/health");
        program_key(&mut t, "supd_healthcheck_retries", "3");
        program_key(&mut t, "supd_depends_on", "db, cache:healthy");
        program_key(&mut t, "supd_required", "true");
        let text = toml::to_string(&t).unwrap_or_default();
        assert!(text.contains("required = true"), "{text}");
        assert!(text.contains("[depends_on]\ndb = \"started\"\ncache = \"healthy\""), "{text}");
        assert!(text.contains("[healthcheck]\nhttp = \"http://127.0.0.1:3002/health\"\nretries = 3"), "{text}");
    }
}
