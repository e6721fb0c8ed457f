//! supctl under the name `supervisorctl` (a link or a copy): supervisorctl 4.3.0's command line,
//! so Ansible's and Salt's supervisorctl modules and old scripts work in an image without
//! Python. Its options come first (`-c FILE`, `-s URL`, `-u USER`, `-p PASSWORD`), then the
//! verb; the server is `-s`, else `serverurl` in `[supervisorctl]` of the config file (`-c`,
//! else the first of supervisorctl's search paths that exists), else supd's own socket (where
//! supervisorctl would try `http://localhost:9001`). supctl speaks to supd's control socket,
//! so the URL must be `unix://`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The config files supervisorctl looks for, in its order, when `-c` is not given.
const SEARCH_PATHS: &[&str] =
    &["supervisord.conf", "etc/supervisord.conf", "/etc/supervisord.conf", "/etc/supervisor/supervisord.conf"];

/// Whether supctl was started as `supervisorctl`.
pub fn invoked_as(argv0: &OsString) -> bool {
    Path::new(argv0).file_name().is_some_and(|n| n == "supervisorctl")
}

/// supctl's arguments for supervisorctl's `args` (without argv[0]). Errors: what is not
/// supported, for people (`-i`, an `http://` server), or a config file that cannot be read.
pub fn translate(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut args = args.into_iter().peekable();
    let (mut config, mut server): (Option<PathBuf>, Option<String>) = (None, None);
    while let Some(arg) = args.peek().and_then(|a| a.to_str()).map(str::to_string) {
        if !arg.starts_with('-') {
            break;
        }
        args.next();
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next().and_then(|v| v.into_string().ok()));
        match flag.as_str() {
            "-c" | "--configuration" => config = value().map(PathBuf::from),
            "-s" | "--serverurl" => server = value(),
            // The control socket is guarded by its permissions, not by a password.
            "-u" | "--username" | "-p" | "--password" | "-r" | "--history-file" => {
                value();
            }
            "-i" | "--interactive" => return Err("interactive mode is not supported; give a verb".into()),
            "-h" | "--help" | "-?" => return Ok(vec!["--help".into()]),
            other => return Err(format!("option {other} not recognized")),
        }
    }
    let mut out: Vec<OsString> = Vec::new();
    if let Some(server) = server.map_or_else(|| serverurl(config.as_deref()), |s| Ok(Some(s)))? {
        let Some(socket) = server.strip_prefix("unix://") else {
            return Err(format!("{server}: supctl speaks to supd's unix socket only (serverurl=unix:///…)"));
        };
        out.extend(["-s".into(), socket.into()]);
    }
    out.push("--supervisorctl".into());
    let verb = args.next();
    match verb.as_ref().and_then(|v| v.to_str()) {
        None => return Err("interactive mode is not supported; give a verb".into()),
        Some("reload") => out.push("restart-all".into()),
        Some(verb @ ("tail" | "maintail")) => {
            out.push(verb.into());
            let after_verb = out.len();
            // supervisorctl's `-1600` is a byte count, and 1600 bytes the default.
            let (mut bytes, mut follow) = (None, false);
            for arg in args.by_ref() {
                match arg.to_str().and_then(|a| a.strip_prefix('-')).filter(|n| n.parse::<u64>().is_ok()) {
                    Some(n) => bytes = Some(n.to_string()),
                    None => {
                        follow |= arg == "-f";
                        out.push(arg);
                    }
                }
            }
            if let Some(n) = bytes.or_else(|| (!follow).then(|| "1600".to_string())) {
                out.splice(after_verb..after_verb, ["-c".into(), n.into()]);
            }
        }
        Some(_) => out.extend(verb),
    }
    out.extend(args);
    Ok(out)
}

/// `serverurl` of `[supervisorctl]` in `config`, or in the first config file of supervisorctl's
/// search paths; `None` when there is none. Errors: the file cannot be read.
fn serverurl(config: Option<&Path>) -> Result<Option<String>, String> {
    let found = config.map(Path::to_path_buf).or_else(|| {
        let here = std::env::current_exe().ok()?.parent()?.parent()?.to_path_buf();
        let near = [here.join("etc/supervisord.conf"), here.join("supervisord.conf")];
        near.into_iter().chain(SEARCH_PATHS.iter().map(PathBuf::from)).find(|p| p.is_file())
    });
    let Some(path) = found else { return Ok(None) };
    let ini = ini::Ini::load_from_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let url = ini.section(Some("supervisorctl")).and_then(|s| s.get("serverurl"));
    Ok(url.map(|u| u.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn options_and_verbs_become_supctls() {
        let got = translate(args("-s unix:///run/x.sock -u u -p p status web")).unwrap_or_default();
        assert_eq!(got, args("-s /run/x.sock --supervisorctl status web"));
        let got = translate(args("--serverurl=unix:///a.sock tail -100 web stderr")).unwrap_or_default();
        assert_eq!(got, args("-s /a.sock --supervisorctl tail -c 100 web stderr"));
        let got = translate(args("-s unix:///a.sock tail -f web")).unwrap_or_default();
        assert_eq!(got, args("-s /a.sock --supervisorctl tail -f web"));
        let got = translate(args("-s unix:///a.sock tail web")).unwrap_or_default();
        assert_eq!(got, args("-s /a.sock --supervisorctl tail -c 1600 web"));
        // Without -s (and no config file in reach), supd's own socket: no -s given to supctl.
        let got = translate(args("-c /dev/null tail -100 web")).unwrap_or_default();
        assert_eq!(got, args("--supervisorctl tail -c 100 web"));
        let got = translate(args("-s unix:///a.sock reload")).unwrap_or_default();
        assert_eq!(got, args("-s /a.sock --supervisorctl restart-all"));
        assert!(translate(args("-s http://127.0.0.1:9001 status")).unwrap_err().contains("unix socket only"));
        assert_eq!(
            translate(args("-s unix:///a.sock fg web")).unwrap_or_default(),
            args("-s /a.sock --supervisorctl fg web")
        );
        let got = translate(args("-c /no/such/file status")).unwrap_err();
        assert!(got.contains("/no/such/file"), "{got}");
    }
}
