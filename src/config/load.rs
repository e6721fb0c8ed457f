//! Finding and parsing config files: a file, or a directory of `*.toml` read in name order,
//! plus `[supervisor] include` globs relative to the including file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Source};
use super::raw::RawFile;
use super::{Config, resolve};

/// Reads, validates and resolves the config at `path` (a file or a directory) for `machine`:
/// `${VAR}` expanded from supd's environment, users and groups looked up, and the machine's
/// GPUs given out. The [`Config`] that comes out is final: nothing edits it later.
///
/// Errors: unreadable files, TOML or schema errors, and resolution errors (unknown user,
/// missing program in a group, duplicates, unset variables), each with its place; GPU
/// requests the machine cannot meet.
pub fn load(path: &Path, machine: &super::Machine) -> Result<Config, ConfigError> {
    let (files, notes) = read_all(path)?;
    let mut config = resolve::resolve(&files, |name| std::env::var(name).ok(), machine)?;
    config.notes = notes;
    Ok(config)
}

/// One config file, parsed, with its text for error places.
pub(super) type ParsedFile = (Source, RawFile);

/// Whether `text` is a supervisord INI config rather than supd TOML: it has a section header
/// only supervisord writes (`[program:x]`, `[supervisord]` …; TOML's would be `[program.x]`).
pub fn is_supervisord_ini(text: &str) -> bool {
    const HEADERS: [&str; 10] = [
        "[supervisord]",
        "[program:",
        "[group:",
        "[include]",
        "[unix_http_server]",
        "[inet_http_server]",
        "[supervisorctl]",
        "[rpcinterface:",
        "[eventlistener:",
        "[fcgi-program:",
    ];
    text.lines().map(str::trim_start).any(|l| HEADERS.iter().any(|h| l.starts_with(h)))
}

/// Every file that makes up the config at `path`, parsed, in the order read, and what a
/// supervisord INI among them had that supd does not carry. An INI config is read as the TOML
/// `supctl convert` would write (its `[include]` files with it); it cannot be mixed with TOML.
pub(super) fn read_all(path: &Path) -> Result<(Vec<ParsedFile>, Vec<String>), ConfigError> {
    let mut queue = roots(path)?;
    queue.reverse();
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    let mut notes = Vec::new();
    while let Some(file) = queue.pop() {
        let canonical = file.canonicalize().map_err(|source| ConfigError::Read { path: file.clone(), source })?;
        if !seen.insert(canonical) {
            continue;
        }
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read { path: file.clone(), source })?;
        let source = if is_supervisord_ini(&text) {
            if !files.is_empty() || !queue.is_empty() {
                let why = "a supervisord INI config cannot be mixed with TOML files; give it alone to -c";
                return Err(ConfigError::Read { path: file, source: std::io::Error::other(why) });
            }
            let converted = super::ini::convert(&file)
                .map_err(|e| ConfigError::Read { path: file.clone(), source: std::io::Error::other(e.to_string()) })?;
            notes = converted.warnings;
            // Places in errors are in the TOML it reads as (`supctl convert FILE` prints it).
            let mut shown = file.into_os_string();
            shown.push(" (read as TOML)");
            Source { path: PathBuf::from(shown), text: converted.toml }
        } else {
            Source { path: file, text }
        };
        let raw: RawFile = source.parse()?;
        let mut included = includes(&source, &raw)?;
        included.reverse();
        queue.extend(included);
        files.push((source, raw));
    }
    Ok((files, notes))
}

fn roots(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_err = |source| ConfigError::Read { path: path.to_path_buf(), source };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(read_err)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(read_err(std::io::Error::other("the directory holds no *.toml file")));
    }
    Ok(files)
}

/// The files named by `[supervisor] include`, each glob's matches in name order. A pattern
/// with no wildcard must name an existing file; a wildcard may match nothing.
fn includes(source: &Source, raw: &RawFile) -> Result<Vec<PathBuf>, ConfigError> {
    let Some(sup) = &raw.supervisor else { return Ok(Vec::new()) };
    let base = source.path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for pattern in &sup.get_ref().include {
        let at = pattern.span().start;
        let full = base.join(pattern.get_ref());
        let full = full.to_string_lossy();
        let paths = glob::glob(&full)
            .map_err(|e| source.error_at(at, "supervisor.include", format!("bad glob {full:?}: {e}")))?;
        let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
        matched.sort();
        let literal = !pattern.get_ref().contains(['*', '?', '[']);
        if matched.is_empty() && literal {
            return Err(source.error_at(at, "supervisor.include", format!("{full} does not exist")));
        }
        out.extend(matched);
    }
    Ok(out)
}
