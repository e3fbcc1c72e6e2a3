//! Dependencies between plugins: semver ranges over the installed set, with missing,
//! unsatisfied and circular dependencies named, and dependents protected on uninstall and
//! upgrade.

use semver::{Version, VersionReq};
use std::collections::{BTreeMap, HashMap};

/// A plugin as the resolver sees it: id, version and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub version: Version,
    pub dependencies: BTreeMap<String, VersionReq>,
}

impl Node {
    pub fn from_manifest(m: &secflow_manifest::Manifest) -> Node {
        Node {
            id: m.id.to_string(),
            version: m.version.clone(),
            dependencies: m
                .dependencies
                .iter()
                .map(|(id, req)| (id.to_string(), req.clone()))
                .collect(),
        }
    }
}

/// Checks that adding `candidate` to `installed` (replacing the installed plugin of the same
/// id, for an upgrade) leaves every dependency satisfied and the graph acyclic. Returns every
/// problem, each a sentence that says what to do.
pub fn check_install(installed: &[Node], candidate: &Node) -> Result<(), Vec<String>> {
    let mut graph: HashMap<&str, &Node> = installed.iter().map(|n| (n.id.as_str(), n)).collect();
    graph.insert(candidate.id.as_str(), candidate);
    let mut problems = Vec::new();
    for (dep, req) in &candidate.dependencies {
        match graph.get(dep.as_str()) {
            None => problems.push(format!(
                "{} {} needs {dep} {req}, which is not installed; install {dep} first",
                candidate.id, candidate.version
            )),
            Some(n) if !req.matches(&n.version) => problems.push(format!(
                "{} {} needs {dep} {req}, but {dep} {} is installed; install a matching version of {dep}",
                candidate.id, candidate.version, n.version
            )),
            Some(_) => {}
        }
    }
    for n in installed.iter().filter(|n| n.id != candidate.id) {
        if let Some(req) = n.dependencies.get(&candidate.id)
            && !req.matches(&candidate.version)
        {
            problems.push(format!(
                "{} {} needs {} {req}; {} would break it (upgrade or uninstall {} first)",
                n.id, n.version, candidate.id, candidate.version, n.id
            ));
        }
    }
    if let Some(cycle) = find_cycle(&graph, &candidate.id) {
        problems.push(format!("dependency cycle: {}", cycle.join(" -> ")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Checks that removing `id` breaks no installed plugin.
pub fn check_uninstall(installed: &[Node], id: &str) -> Result<(), Vec<String>> {
    let problems: Vec<String> = installed
        .iter()
        .filter(|n| n.id != id)
        .filter_map(|n| {
            n.dependencies.get(id).map(|req| {
                format!(
                    "{} {} depends on {id} {req}; uninstall {} first",
                    n.id, n.version, n.id
                )
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The order in which to install `nodes` together so that each one's dependencies come
/// first (indices into `nodes`). Dependencies outside the set are left to [`check_install`].
pub fn install_order(nodes: &[Node]) -> Result<Vec<usize>, String> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit(
        i: usize,
        nodes: &[Node],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), String> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut names: Vec<&str> = path[start..]
                    .iter()
                    .map(|&p| nodes[p].id.as_str())
                    .collect();
                names.push(&nodes[i].id);
                return Err(format!("dependency cycle: {}", names.join(" -> ")));
            }
            _ => {}
        }
        state[i] = 1;
        path.push(i);
        for dep in nodes[i].dependencies.keys() {
            if let Some(&j) = index.get(dep.as_str()) {
                visit(j, nodes, index, state, path, order)?;
            }
        }
        path.pop();
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    let mut state = vec![0u8; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    for i in 0..nodes.len() {
        visit(i, nodes, &index, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// A cycle through `start`, as ids from `start` back to it.
fn find_cycle(graph: &HashMap<&str, &Node>, start: &str) -> Option<Vec<String>> {
    fn dfs(
        graph: &HashMap<&str, &Node>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut std::collections::HashSet<String>,
    ) -> bool {
        let Some(node) = graph.get(at) else {
            return false;
        };
        for dep in node.dependencies.keys() {
            if dep == start {
                path.push(dep.clone());
                return true;
            }
            if seen.insert(dep.clone()) {
                path.push(dep.clone());
                if dfs(graph, dep, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = std::collections::HashSet::new();
    dfs(graph, start, start, &mut path, &mut seen).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, version: &str, deps: &[(&str, &str)]) -> Node {
        Node {
            id: id.into(),
            version: version.parse().unwrap(),
            dependencies: deps
                .iter()
                .map(|(d, r)| (d.to_string(), r.parse().unwrap()))
                .collect(),
        }
    }

    #[test]
    fn satisfied_dependencies_pass() {
        let installed = [node("base", "1.4.0", &[])];
        check_install(&installed, &node("app", "1.0.0", &[("base", "^1.2")])).unwrap();
    }

    #[test]
    fn missing_and_unsatisfied_dependencies_are_named() {
        let installed = [node("base", "2.0.0", &[])];
        let err = check_install(
            &installed,
            &node("app", "1.0.0", &[("base", "^1"), ("extra", ">=0.3")]),
        )
        .unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(err[0].contains("base 2.0.0 is installed"), "{err:?}");
        assert!(
            err[1].contains("extra >=0.3, which is not installed"),
            "{err:?}"
        );
    }

    #[test]
    fn dependency_cycles_are_reported_with_the_path() {
        let installed = [
            node("b", "1.0.0", &[("c", "^1")]),
            node("c", "1.0.0", &[("a", "^1")]),
        ];
        let err = check_install(&installed, &node("a", "1.0.0", &[("b", "^1")])).unwrap_err();
        assert_eq!(err, ["dependency cycle: a -> b -> c -> a"]);

        let set = [
            node("x", "1.0.0", &[("y", "*")]),
            node("y", "1.0.0", &[("x", "*")]),
        ];
        let err = install_order(&set).unwrap_err();
        assert_eq!(err, "dependency cycle: x -> y -> x");
    }

    #[test]
    fn install_order_puts_dependencies_first() {
        let set = [
            node("app", "1.0.0", &[("mid", "*")]),
            node("mid", "1.0.0", &[("base", "*")]),
            node("base", "1.0.0", &[]),
        ];
        assert_eq!(install_order(&set).unwrap(), [2, 1, 0]);
    }

    #[test]
    fn upgrades_and_uninstalls_that_break_dependents_are_refused() {
        let installed = [
            node("base", "1.0.0", &[]),
            node("app", "1.0.0", &[("base", "^1")]),
        ];
        let err = check_install(&installed, &node("base", "2.0.0", &[])).unwrap_err();
        assert!(err[0].contains("app 1.0.0 needs base ^1; 2.0.0 would break it"));
        check_install(&installed, &node("base", "1.1.0", &[])).unwrap();
        let err = check_uninstall(&installed, "base").unwrap_err();
        assert!(err[0].contains("uninstall app first"), "{err:?}");
        check_uninstall(&installed, "app").unwrap();
    }
}
