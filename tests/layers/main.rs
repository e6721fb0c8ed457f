//! The library's modules form layers without cycles: each top-level module under `src/` may
//! name (`crate::x`) only modules of a lower layer, as the map at the top of `src/lib.rs`
//! draws them. A new edge that points up or sideways fails here with the file that made it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of the library, by layer, lowest first. A module may use those of
/// lower layers only; modules in one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["deadline", "config"],
    &["process", "output", "gpu"],
    &["probe", "logging"],
    &["lifecycle"],
    &["events"],
    &["supervisor", "single"],
    &["metrics"],
    &["api"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules named by `crate::NAME` paths in `text`, including the grouped
/// `use crate::{a::X, b};` form. Comments count too: a doc link upward is a dependency of the
/// reader, if not of the compiler.
fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            found.extend(inner.split(',').map(|p| ident(p.trim())).filter(|s| !s.is_empty()));
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut unknown = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        if first == "bin" || first == "lib.rs" {
            continue; // the binaries sit above everything
        }
        let module = first.trim_end_matches(".rs").to_string();
        if layer_of(&module).is_none() {
            unknown.insert(module.clone());
        }
        for used in uses(&std::fs::read_to_string(&file).unwrap()) {
            if used != module {
                edges.entry((module.clone(), used)).or_insert_with(|| rel.to_path_buf());
            }
        }
    }
    assert!(unknown.is_empty(), "modules missing from LAYERS (and from lib.rs's map): {unknown:?}");
    let wrong: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| match (layer_of(from), layer_of(to)) {
            (Some(a), Some(b)) => b >= a,
            _ => true,
        })
        .map(|((from, to), file)| format!("{from} -> {to} (in src/{})", file.display()))
        .collect();
    assert!(wrong.is_empty(), "uses that point up or sideways:\n  {}", wrong.join("\n  "));
}

#[test]
fn the_map_in_lib_rs_names_every_module_and_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    let layered: BTreeSet<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    assert_eq!(declared, layered, "lib.rs's modules and LAYERS differ");
    let map: String = lib.lines().skip_while(|l| !l.starts_with("//! Layers, lowest first")).take(4).collect();
    let at = |m: &str| map.find(&format!("`{m}`")).unwrap_or_else(|| panic!("lib.rs's layer map lacks `{m}`"));
    for pair in LAYERS.windows(2) {
        assert!(at(pair[0][0]) < at(pair[1][0]), "lib.rs draws {} above {}", pair[0][0], pair[1][0]);
    }
}

#[test]
fn the_check_sees_grouped_and_plain_paths() {
    let text = "use crate::{config::X, output};\nlet a = crate::gpu::Gpus::new();";
    let found: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(found, ["config", "gpu", "output"]);
}
