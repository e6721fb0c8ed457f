//! `[supervisor]` and `[gpu]`, each written in one file at most → supd's own settings.

use std::path::PathBuf;

use nix::unistd::Group;
use toml::Spanned;

use super::program::log_file;
use crate::config::error::{ConfigError, Source};
use crate::config::expand::expand;
use crate::config::raw::{RawFile, RawSupervisor};
use crate::config::{DEFAULT_HTTP, DEFAULT_SOCKET, RpcCredentials, RpcListener, SupervisorConfig};

/// `[supervisor]` may be written in one file only.
pub(super) fn single_supervisor(
    files: &[(Source, RawFile)],
) -> Result<Option<(&Source, &Spanned<RawSupervisor>)>, ConfigError> {
    let mut found: Option<(&Source, &Spanned<RawSupervisor>)> = None;
    for (source, raw) in files {
        if let Some(sup) = &raw.supervisor {
            if let Some((first, first_sup)) = found {
                return Err(source.error_at(
                    sup.span().start,
                    "supervisor",
                    format!(
                        "[supervisor] is already set at {}; keep it in one file",
                        first.location(first_sup.span().start)
                    ),
                ));
            }
            found = Some((source, sup));
        }
    }
    Ok(found)
}

/// `[gpu]`, written in one file at most.
pub(super) fn gpu_config(files: &[(Source, RawFile)]) -> Result<crate::config::GpuConfig, ConfigError> {
    let mut found: Option<(&Source, &Spanned<crate::config::raw::RawGpu>)> = None;
    for (source, raw) in files {
        if let Some(gpu) = &raw.gpu {
            if let Some((first, first_gpu)) = found {
                let there = first.location(first_gpu.span().start);
                return Err(source.error_at(gpu.span().start, "gpu", format!("[gpu] is already set at {there}")));
            }
            found = Some((source, gpu));
        }
    }
    let defaults = crate::config::GpuConfig::default();
    Ok(crate::config::GpuConfig {
        interval: found.and_then(|(_, g)| g.get_ref().interval).map_or(defaults.interval, |s| s.0),
    })
}

pub(super) fn supervisor(raw: Option<(&Source, &Spanned<RawSupervisor>)>) -> Result<SupervisorConfig, ConfigError> {
    let empty = RawSupervisor::default();
    let (source, sup) = match raw {
        Some((source, sup)) => (Some(source), sup.get_ref()),
        None => (None, &empty),
    };
    let error = |at: usize, key: &str, message: String| match source {
        Some(s) => s.error_at(at, key, message),
        None => ConfigError::Read { path: PathBuf::new(), source: std::io::Error::other(message) },
    };
    let http = match &sup.http {
        None => Some(DEFAULT_HTTP.parse().map_err(|_| error(0, "supervisor.http", "bad default".into()))?),
        Some(h) if h.get_ref().is_empty() => None,
        Some(h) => Some(h.get_ref().parse().map_err(|e| {
            error(
                h.span().start,
                "supervisor.http",
                format!("expected an address like \"0.0.0.0:9001\" or \"\" for none ({e})"),
            )
        })?),
    };
    let rpc = rpc_listener(sup, &error)?;
    let socket_group = match &sup.socket_group {
        None => None,
        Some(g) => match Group::from_name(g.get_ref()) {
            Ok(Some(group)) => Some((group.name, group.gid.as_raw())),
            _ => {
                return Err(error(
                    g.span().start,
                    "supervisor.socket_group",
                    format!("no group named {:?} in /etc/group", g.get_ref()),
                ));
            }
        },
    };
    let logfile = match (&sup.logfile, source) {
        (Some(path), Some(src)) if path.get_ref() != "NONE" => {
            let no_env = |v: &str, at: usize, k: &str| {
                expand(v, |n| std::env::var(n).ok()).map_err(|e| src.error_at(at, k, e.to_string()))
            };
            let file = log_file(src, "supervisor.logfile", path, (sup.logfile_maxbytes, sup.logfile_backups), &no_env)?;
            // `/dev/stdout` and the like (see `std_stream`): supd's own log stays on its stderr,
            // which `docker logs` shows beside stdout, rather than a second writer of fd 1.
            crate::config::std_stream(&file.path).is_none().then_some(file)
        }
        _ => None,
    };
    let cgroup = match sup.cgroup.as_ref().map(|c| (c.get_ref().as_str(), c.span().start)) {
        None | Some(("auto", _)) => crate::config::CgroupSetting::Auto,
        Some(("off", _)) => crate::config::CgroupSetting::Off,
        Some((path, _)) if path.starts_with('/') => crate::config::CgroupSetting::Path(PathBuf::from(path)),
        Some((other, at)) => {
            return Err(error(
                at,
                "supervisor.cgroup",
                format!("expected \"auto\", \"off\" or the absolute path of a cgroup2 directory, not {other:?}"),
            ));
        }
    };
    Ok(SupervisorConfig {
        cgroup,
        logfile,
        socket: PathBuf::from(sup.socket.as_deref().unwrap_or(DEFAULT_SOCKET)),
        socket_mode: sup.socket_mode.map_or(0o600, |m| m.0),
        socket_group,
        http,
        http_tails: sup.http_tails.unwrap_or(false),
        rpc,
        log_format: sup.log_format.unwrap_or_default(),
        log_level: sup.log_level.unwrap_or_default(),
        minfds: sup.minfds.map(|l| l.0),
        minprocs: sup.minprocs.map(|l| l.0),
    })
}

/// `rpc`, `rpc_username` and `rpc_password`: XML-RPC over TCP. Off unless `rpc` is set; a
/// listener on anything but loopback must have credentials (it can stop every program), and a
/// user name goes with a password. Errors: a bad address, a half-given pair of credentials, a
/// non-loopback address without them, a `{SHA}` password that is not 40 hex digits.
fn rpc_listener(
    sup: &RawSupervisor,
    error: &impl Fn(usize, &str, String) -> ConfigError,
) -> Result<Option<RpcListener>, ConfigError> {
    let Some(addr) = sup.rpc.as_ref().filter(|a| !a.get_ref().is_empty()) else { return Ok(None) };
    let at = addr.span().start;
    let parsed: std::net::SocketAddr = addr.get_ref().parse().map_err(|e| {
        error(at, "supervisor.rpc", format!("expected an address like \"127.0.0.1:9002\" or \"\" for none ({e})"))
    })?;
    let credentials = match (&sup.rpc_username, &sup.rpc_password) {
        (None, None) => None,
        (Some(u), Some(p)) => Some(RpcCredentials {
            username: u.get_ref().clone(),
            password_sha1: password_sha1(p.get_ref())
                .ok_or_else(|| error(p.span().start, "supervisor.rpc_password", "{SHA} needs 40 hex digits".into()))?,
        }),
        (Some(u), None) => return Err(error(u.span().start, "supervisor.rpc_username", "needs rpc_password".into())),
        (None, Some(p)) => return Err(error(p.span().start, "supervisor.rpc_password", "needs rpc_username".into())),
    };
    if credentials.is_none() && !parsed.ip().is_loopback() {
        return Err(error(
            at,
            "supervisor.rpc",
            format!("{parsed} is reachable from outside: set rpc_username and rpc_password, or listen on 127.0.0.1"),
        ));
    }
    Ok(Some(RpcListener { addr: parsed, credentials }))
}

/// The SHA-1 digest of `password`: given as `{SHA}` and 40 hex digits (supervisord's form), or
/// of the plain text. `None`: a `{SHA}` form that is not 40 hex digits.
fn password_sha1(password: &str) -> Option<[u8; 20]> {
    use sha1::Digest;
    let Some(hex) = password.strip_prefix("{SHA}") else {
        return Some(sha1::Sha1::digest(password.as_bytes()).into());
    };
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect::<Option<_>>()?;
    bytes.try_into().ok()
}
