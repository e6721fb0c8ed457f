//! Resolving `depends_on`: every name must exist, `healthy` needs a healthcheck, and there
//! must be no cycle.

use std::collections::BTreeMap;

use toml::Spanned;

use super::error::ConfigError;
use super::raw::{Condition, RawDependsOn};
use super::{Dependency, ProgramConfig};

/// A dependency as written, with where it was written.
pub(super) struct Written<'a> {
    pub error: Box<dyn Fn(usize, String) -> ConfigError + 'a>,
    pub deps: Vec<(Spanned<String>, Condition)>,
}

/// The entries of a `depends_on`, in the order written.
pub(super) fn entries(raw: &RawDependsOn) -> Vec<(Spanned<String>, Condition)> {
    match raw {
        RawDependsOn::List(names) => names.iter().map(|n| (n.clone(), Condition::Started)).collect(),
        RawDependsOn::Table(table) => table.iter().map(|(n, c)| (n.clone(), *c)).collect(),
    }
}

/// Checks every program's dependencies against `programs` and fills `depends_on` in.
pub(super) fn resolve(
    programs: &mut [ProgramConfig],
    written: &BTreeMap<String, Written<'_>>,
) -> Result<(), ConfigError> {
    let index: BTreeMap<String, usize> = programs.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
    for (name, w) in written {
        let Some(&me) = index.get(name) else { continue };
        for (dep, condition) in &w.deps {
            let at = dep.span().start;
            let Some(&target) = index.get(dep.get_ref()) else {
                return Err((w.error)(at, format!("no program named {:?} is defined", dep.get_ref())));
            };
            if target == me {
                return Err((w.error)(at, "a program cannot depend on itself".into()));
            }
            if *condition == Condition::Healthy && programs[target].healthcheck.is_none() {
                return Err((w.error)(
                    at,
                    format!(
                        "{:?} has no [program.{}.healthcheck], so it can never be healthy",
                        dep.get_ref(),
                        dep.get_ref()
                    ),
                ));
            }
            programs[me].depends_on.push(Dependency { program: dep.get_ref().clone(), condition: *condition });
        }
    }
    for (name, w) in written {
        if let Some(cycle) = cycle_from(programs, &index, name) {
            let at = w.deps.iter().find(|(d, _)| cycle.get(1) == Some(d.get_ref())).map_or(0, |(d, _)| d.span().start);
            return Err((w.error)(at, format!("dependency cycle: {}", cycle.join(" -> "))));
        }
    }
    Ok(())
}

/// A dependency path from `start` back to itself, if there is one.
fn cycle_from(programs: &[ProgramConfig], index: &BTreeMap<String, usize>, start: &str) -> Option<Vec<String>> {
    fn walk(programs: &[ProgramConfig], index: &BTreeMap<String, usize>, start: &str, path: &mut Vec<String>) -> bool {
        let Some(&i) = path.last().and_then(|n| index.get(n)) else { return false };
        for dep in &programs[i].depends_on {
            if dep.program == start {
                path.push(dep.program.clone());
                return true;
            }
            if path.contains(&dep.program) {
                continue;
            }
            path.push(dep.program.clone());
            if walk(programs, index, start, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(programs, index, start, &mut path).then_some(path)
}

/// Each program's depth in the dependency graph: 0 for one that depends on nothing, else one
/// more than its deepest dependency. Start order rises with it, stop order falls.
pub fn ranks(programs: &[ProgramConfig]) -> Vec<u32> {
    let index: BTreeMap<&str, usize> = programs.iter().enumerate().map(|(i, p)| (p.name.as_str(), i)).collect();
    let mut rank = vec![0u32; programs.len()];
    // Acyclic (checked at load), so len rounds of relaxation settle every rank.
    for _ in 0..programs.len() {
        let mut changed = false;
        for (i, p) in programs.iter().enumerate() {
            let r = p.depends_on.iter().filter_map(|d| index.get(d.program.as_str())).map(|&j| rank[j] + 1).max();
            if let Some(r) = r
                && r > rank[i]
            {
                rank[i] = r;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    rank
}
