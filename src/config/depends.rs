//! Resolving `depends_on`: every name must exist, `healthy` needs a healthcheck, and there
//! must be no cycle.

use std::collections::BTreeMap;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
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
    if let Some(mut cycle) = cycle(programs, &index) {
        // Told from the program whose name comes first, whichever one the sort ran into.
        cycle.pop();
        let first = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
        cycle.rotate_left(first);
        if let Some(first) = cycle.first().cloned() {
            cycle.push(first);
        }
        // Reported where a program of the cycle names the next one (copies of a `numprocs`
        // program are not written themselves: then at the first dependency written at all,
        // which exists, as every edge of the graph was written somewhere).
        let place = cycle.windows(2).find_map(|pair| {
            let w = written.get(&pair[0])?;
            let (dep, _) = w.deps.iter().find(|(d, _)| d.get_ref() == &pair[1])?;
            Some((w, dep.span().start))
        });
        let Some((w, at)) = place.or_else(|| written.values().next().map(|w| (w, 0))) else { return Ok(()) };
        return Err((w.error)(at, format!("dependency cycle: {}", path_text(&cycle))));
    }
    Ok(())
}

/// `a -> b -> a`; a long cycle shows its first and last five steps.
fn path_text(cycle: &[String]) -> String {
    if cycle.len() <= 12 {
        return cycle.join(" -> ");
    }
    let (head, tail) = (&cycle[..5], &cycle[cycle.len() - 5..]);
    format!("{} -> … {} more … -> {}", head.join(" -> "), cycle.len() - 10, tail.join(" -> "))
}

/// The dependency graph: an edge from each program to each program it depends on.
fn graph(programs: &[ProgramConfig], index: &BTreeMap<String, usize>) -> DiGraph<(), ()> {
    let mut g = DiGraph::with_capacity(programs.len(), programs.len());
    for _ in programs {
        g.add_node(());
    }
    for (i, p) in programs.iter().enumerate() {
        for j in p.depends_on.iter().filter_map(|d| index.get(&d.program)) {
            g.add_edge(NodeIndex::new(i), NodeIndex::new(*j), ());
        }
    }
    g
}

/// A dependency cycle, as names from a program back to itself, if there is one. Linear in
/// programs plus dependencies: a topological sort finds a program on a cycle, and a
/// breadth-first walk from it finds the way back.
fn cycle(programs: &[ProgramConfig], index: &BTreeMap<String, usize>) -> Option<Vec<String>> {
    let g = graph(programs, index);
    let start = toposort(&g, None).err()?.node_id();
    let mut came_from: Vec<Option<NodeIndex>> = vec![None; programs.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for next in g.neighbors(n) {
            if next == start {
                let mut path = vec![n];
                while let Some(prev) = came_from[path[path.len() - 1].index()] {
                    path.push(prev);
                }
                path.reverse();
                path.push(start);
                return Some(path.iter().map(|n| programs[n.index()].name.clone()).collect());
            }
            if next != start && came_from[next.index()].is_none() {
                came_from[next.index()] = Some(n);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Each program's depth in the dependency graph: 0 for one that depends on nothing, else one
/// more than its deepest dependency. Start order rises with it, stop order falls.
pub fn ranks(programs: &[ProgramConfig]) -> Vec<u32> {
    let index: BTreeMap<String, usize> = programs.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
    let g = graph(programs, &index);
    let mut rank = vec![0u32; programs.len()];
    // Acyclic (checked at load). Dependencies come after their dependents in a topological
    // order, so walking it backwards ranks each dependency before whoever needs it.
    let Ok(order) = toposort(&g, None) else { return rank };
    for n in order.into_iter().rev() {
        let deepest = g.neighbors(n).map(|d| rank[d.index()].saturating_add(1)).max();
        rank[n.index()] = deepest.unwrap_or(0);
    }
    rank
}
