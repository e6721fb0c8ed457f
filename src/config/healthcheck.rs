//! Resolving `[program.NAME.healthcheck]`: one probe, its address checked now so that a bad
//! URL is a config error with its place rather than a failure at run time.

use std::time::Duration;

use toml::Spanned;

use super::error::{ConfigError, Source};
use super::raw::{ExpectStatus, RawHealthcheck};
use super::{Healthcheck, Probe};

/// Resolves a healthcheck. `key` is its dotted path; `expand` expands `${VAR}`.
pub(super) fn resolve(
    source: &Source,
    key: &str,
    raw: &Spanned<RawHealthcheck>,
    expand: &dyn Fn(&str, usize, &str) -> Result<String, ConfigError>,
) -> Result<Healthcheck, ConfigError> {
    let at = raw.span().start;
    let raw = raw.get_ref();
    let probe = match (&raw.http, &raw.tcp, &raw.exec) {
        (Some(url), None, None) => http(source, key, url, raw, expand)?,
        (None, Some(addr), None) => {
            let text = expand(addr.get_ref(), addr.span().start, &format!("{key}.tcp"))?;
            let (host, port) = host_port(&text, None)
                .ok_or_else(|| source.error_at(addr.span().start, format!("{key}.tcp"), "expected \"host:port\""))?;
            Probe::Tcp { host, port }
        }
        (None, None, Some(cmd)) => Probe::Exec {
            command: cmd.0.iter().map(|a| expand(a, at, &format!("{key}.exec"))).collect::<Result<_, _>>()?,
        },
        _ => return Err(source.error_at(at, key, "set exactly one of http, tcp or exec")),
    };
    if !matches!(probe, Probe::Http { .. }) && (!raw.headers.is_empty() || raw.expect_status.is_some()) {
        return Err(source.error_at(at, key, "headers and expect_status apply to http probes only"));
    }
    let secs = |v: Option<super::value::ConfigDuration>, default: u64| v.map_or(Duration::from_secs(default), |s| s.0);
    let check = Healthcheck {
        probe,
        interval: secs(raw.interval, 10),
        timeout: secs(raw.timeout, 2),
        start_period: secs(raw.start_period, 0),
        start_interval: secs(raw.start_interval, 1),
        retries: raw.retries.map_or(3, |c| c.0),
        success_threshold: raw.success_threshold.map_or(1, |c| c.0),
        on_unhealthy: raw.on_unhealthy.unwrap_or_default(),
    };
    if check.interval.is_zero() || check.start_interval.is_zero() || check.timeout.is_zero() {
        return Err(source.error_at(at, key, "interval, start_interval and timeout must be more than 0"));
    }
    if check.retries == 0 || check.success_threshold == 0 {
        return Err(source.error_at(at, key, "retries and success_threshold must be at least 1"));
    }
    Ok(check)
}

fn http(
    source: &Source,
    key: &str,
    url: &Spanned<String>,
    raw: &RawHealthcheck,
    expand: &dyn Fn(&str, usize, &str) -> Result<String, ConfigError>,
) -> Result<Probe, ConfigError> {
    let at = url.span().start;
    let key_url = format!("{key}.http");
    let text = expand(url.get_ref(), at, &key_url)?;
    let bad = |why: &str| source.error_at(at, &key_url, format!("{why}: {text:?}"));
    let uri: hyper::Uri = text.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("https probes are not supported; probe the plain-HTTP port")),
        _ => return Err(bad("expected an http:// URL")),
    }
    let authority = uri.authority().ok_or_else(|| bad("the URL has no host"))?;
    let (host, port) = (authority.host().trim_matches(['[', ']']).to_string(), authority.port_u16().unwrap_or(80));
    let path = uri.path_and_query().map_or("/".to_string(), |p| p.as_str().to_string());
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let k = format!("{key}.headers");
        hyper::header::HeaderName::from_bytes(name.get_ref().as_bytes())
            .map_err(|_| source.error_at(name.span().start, &k, format!("not a header name: {:?}", name.get_ref())))?;
        let v = expand(value.get_ref(), value.span().start, &k)?;
        hyper::header::HeaderValue::from_str(&v)
            .map_err(|_| source.error_at(value.span().start, &k, format!("not a header value: {v:?}")))?;
        headers.push((name.get_ref().clone(), v));
    }
    let expect_status = match &raw.expect_status {
        None => Vec::new(),
        Some(s) => {
            let codes = match s.get_ref() {
                ExpectStatus::One(c) => vec![*c],
                ExpectStatus::Many(c) => c.clone(),
            };
            if codes.is_empty() || codes.iter().any(|c| !(100..=599).contains(c)) {
                return Err(source.error_at(
                    s.span().start,
                    format!("{key}.expect_status"),
                    "HTTP statuses are 100 to 599",
                ));
            }
            codes
        }
    };
    Ok(Probe::Http { url: text.clone(), host, port, authority: authority.to_string(), path, headers, expect_status })
}

/// Splits `host:port` (`[::1]:80` for IPv6); `default_port` when the port is left out.
fn host_port(text: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p.parse().ok()?),
        _ => (text, default_port?),
    };
    let host = host.trim_matches(['[', ']']);
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_forms() {
        assert_eq!(host_port("127.0.0.1:9500", None), Some(("127.0.0.1".into(), 9500)));
        assert_eq!(host_port("[::1]:80", None), Some(("::1".into(), 80)));
        assert_eq!(host_port("localhost", None), None);
        assert_eq!(host_port(":80", None), None);
        assert_eq!(host_port("db:x", None), None);
    }
}
