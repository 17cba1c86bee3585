//! Dependencies between tasks, decided purely: a head carrying `dwp-depends-on: <branch>[:<state>]`
//! (repeatable) is not actionable until each named branch's head is in the named state (`done` by
//! default); `dwp-depends-on: a:failed` runs only if `a` failed (a fallback path). A dependency
//! that has ended elsewhere (a terminal state other than the one wanted) can never be met: the
//! task goes to `blocked` with the reason. A missing branch is a notice on the task; a cycle is a
//! notice too, and never loops the planner (nothing here recurses).

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved, Trailer};

/// One `dwp-depends-on` value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    pub branch: String,
    /// The state the dependency must reach (default `done`).
    pub state: String,
}

/// All `dwp-depends-on` values of a head; malformed ones are returned as errors (notices).
pub fn dependencies(trailers: &[Trailer]) -> (Vec<Dependency>, Vec<String>) {
    let mut deps = Vec::new();
    let mut bad = Vec::new();
    for t in trailers.iter().filter(|t| t.key == Key::DependsOn.as_str().as_bytes()) {
        let v = t.value_lossy().trim().to_owned();
        let (branch, state) = match v.rsplit_once(':') {
            Some((b, s)) => (b.to_owned(), s.to_owned()),
            None => (v.clone(), Reserved::Done.as_str().to_owned()),
        };
        let branch_ok = !branch.is_empty()
            && gix::validate::reference::name_partial(format!("refs/heads/{branch}").as_str().into()).is_ok();
        if !branch_ok || crate::protocol::State::parse(&state).is_err() {
            bad.push(v);
            continue;
        }
        deps.push(Dependency { branch, state });
    }
    (deps, bad)
}

/// What the board says about a branch a task depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepHead {
    Missing,
    /// Its head's state (None: no or an invalid state).
    State(Option<String>),
}

/// States from which a task does not move on by itself.
fn terminal(state: &str) -> bool {
    [Reserved::Done, Reserved::Failed, Reserved::Canceled].iter().any(|r| r.as_str() == state)
}

/// What the dependencies of one head say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepVerdict {
    /// No dependencies, or all met.
    Met,
    /// Some are not there yet: wait (silently).
    Waiting(Vec<Dependency>),
    /// One can never be met: block the task with this reason.
    Unmeetable(String),
    /// One names a branch that does not exist: a notice, and wait.
    Missing(Vec<String>),
}

pub fn verdict(deps: &[Dependency], heads: &BTreeMap<String, DepHead>) -> DepVerdict {
    let mut waiting = Vec::new();
    let mut missing = Vec::new();
    for d in deps {
        match heads.get(&d.branch).unwrap_or(&DepHead::Missing) {
            DepHead::Missing => missing.push(d.branch.clone()),
            DepHead::State(Some(s)) if *s == d.state => {}
            DepHead::State(Some(s)) if terminal(s) => {
                return DepVerdict::Unmeetable(format!(
                    "dependency {} ended in {s}, not {}: it can never be met",
                    d.branch, d.state
                ));
            }
            DepHead::State(_) => waiting.push(d.clone()),
        }
    }
    if !missing.is_empty() {
        DepVerdict::Missing(missing)
    } else if waiting.is_empty() {
        DepVerdict::Met
    } else {
        DepVerdict::Waiting(waiting)
    }
}

/// The cycles among the heads' dependencies (each as its branches, sorted, once).
pub fn cycles(edges: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components, iteratively.
    let nodes: Vec<&String> = edges.keys().collect();
    let index_of: BTreeMap<&String, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let n = nodes.len();
    let (mut index, mut low, mut on) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next, mut out) = (Vec::new(), 0usize, Vec::new());
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on[v] = true;
            }
            let succ: Vec<usize> = edges[nodes[v]].iter().filter_map(|w| index_of.get(w).copied()).collect();
            if *child < succ.len() {
                let w = succ[*child];
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = BTreeSet::new();
                while let Some(w) = stack.pop() {
                    on[w] = false;
                    comp.insert(nodes[w].clone());
                    if w == v {
                        break;
                    }
                }
                let self_loop = edges[nodes[v]].contains(nodes[v]);
                if comp.len() > 1 || self_loop {
                    out.push(comp.into_iter().collect());
                }
            }
        }
    }
    out
}

/// The priority of a head for ordering the frontier (high first).
pub fn priority_rank(trailers: &[Trailer]) -> crate::recovery::Priority {
    last_text(trailers, Key::Priority).and_then(|p| p.trim().parse().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::trailers::parse;

    fn d(b: &str, s: &str) -> Dependency {
        Dependency { branch: b.into(), state: s.into() }
    }

    #[test]
    fn dependencies_are_read_with_their_states() {
        let t = parse(b"t\n\ndwp-depends-on: api\ndwp-depends-on: db:migrated\ndwp-depends-on: x..y\ndwp-depends-on: ok:../bad\ndwp-state: build\n");
        let (deps, bad) = dependencies(&t);
        assert_eq!(deps, [d("api", "done"), d("db", "migrated")]);
        assert_eq!(bad, ["x..y", "ok:../bad"]);
    }

    #[test]
    fn verdicts() {
        let heads: BTreeMap<String, DepHead> = [
            ("done".to_owned(), DepHead::State(Some("done".into()))),
            ("busy".to_owned(), DepHead::State(Some("working".into()))),
            ("broke".to_owned(), DepHead::State(Some("failed".into()))),
            ("none".to_owned(), DepHead::State(None)),
        ]
        .into();
        assert_eq!(verdict(&[], &heads), DepVerdict::Met);
        assert_eq!(verdict(&[d("done", "done")], &heads), DepVerdict::Met);
        assert_eq!(verdict(&[d("busy", "done")], &heads), DepVerdict::Waiting(vec![d("busy", "done")]));
        assert_eq!(verdict(&[d("none", "done")], &heads), DepVerdict::Waiting(vec![d("none", "done")]));
        assert!(
            matches!(verdict(&[d("broke", "done")], &heads), DepVerdict::Unmeetable(w) if w.contains("broke ended in failed"))
        );
        assert_eq!(verdict(&[d("broke", "failed")], &heads), DepVerdict::Met, "a fallback path");
        assert!(matches!(verdict(&[d("done", "failed")], &heads), DepVerdict::Unmeetable(_)));
        assert_eq!(verdict(&[d("gone", "done"), d("busy", "done")], &heads), DepVerdict::Missing(vec!["gone".into()]));
    }

    #[test]
    fn cycles_are_found_once_without_recursion() {
        let e = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs.iter().map(|(a, bs)| (a.to_string(), bs.iter().map(|b| b.to_string()).collect())).collect()
        };
        assert!(cycles(&e(&[("a", &["b"]), ("b", &["c"]), ("c", &[])])).is_empty());
        assert_eq!(
            cycles(&e(&[("a", &["b"]), ("b", &["a"]), ("c", &["a"])])),
            [vec!["a".to_string(), "b".to_string()]]
        );
        assert_eq!(cycles(&e(&[("s", &["s"])])), [vec!["s".to_string()]]);
        // A long chain closing on itself: no stack overflow.
        let chain: BTreeMap<String, Vec<String>> =
            (0..20_000).map(|i| (format!("n{i}"), vec![format!("n{}", (i + 1) % 20_000)])).collect();
        assert_eq!(cycles(&chain).len(), 1);
        assert_eq!(cycles(&chain)[0].len(), 20_000);
    }
}

/// The task graph: branches as nodes (with their state), `dwp-depends-on` as edges from the
/// dependency to the task that waits for it (labelled with the wanted state).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskGraph {
    /// Branch → its head's state (None: no or an invalid state; missing branches are absent).
    pub nodes: BTreeMap<String, Option<String>>,
    /// (dependency, dependent, wanted state).
    pub edges: BTreeSet<(String, String, String)>,
}

impl TaskGraph {
    /// Add a head and its dependencies; branches named only as dependencies appear as nodes
    /// without a state.
    pub fn add(&mut self, branch: &str, state: Option<&str>, deps: &[Dependency]) {
        self.nodes.insert(branch.to_owned(), state.map(str::to_owned));
        for d in deps {
            self.nodes.entry(d.branch.clone()).or_insert(None);
            self.edges.insert((d.branch.clone(), branch.to_owned(), d.state.clone()));
        }
    }

    /// Keep only the branches that take part in a dependency.
    pub fn connected(mut self) -> TaskGraph {
        let used: BTreeSet<String> = self.edges.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
        self.nodes.retain(|n, _| used.contains(n));
        self
    }

    fn label(&self, branch: &str) -> String {
        match self.nodes.get(branch).and_then(|s| s.as_deref()) {
            Some(s) => format!("{branch} ({s})"),
            None => branch.to_owned(),
        }
    }

    /// A Mermaid flowchart: `flowchart LR`, nodes `nI["branch (state)"]`, edges `nI -->|state| nJ`
    /// (the label only when the wanted state is not `done`).
    pub fn mermaid(&self) -> String {
        let ids: BTreeMap<&str, usize> = self.nodes.keys().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut out = String::from("flowchart LR\n");
        for n in self.nodes.keys() {
            out.push_str(&format!("    n{}[\"{}\"]\n", ids[n.as_str()], self.label(n).replace('"', "'")));
        }
        for (a, b, s) in &self.edges {
            let label = if s == Reserved::Done.as_str() { String::new() } else { format!("|{s}|") };
            out.push_str(&format!("    n{} -->{label} n{}\n", ids[a.as_str()], ids[b.as_str()]));
        }
        out
    }

    /// Graphviz: `digraph tasks { "a (done)" -> "b (build)" [label="failed"]; }`.
    pub fn dot(&self) -> String {
        let q = |s: String| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::from("digraph tasks {\n    rankdir=LR;\n");
        for n in self.nodes.keys() {
            out.push_str(&format!("    {};\n", q(self.label(n))));
        }
        for (a, b, s) in &self.edges {
            let attr = if s == Reserved::Done.as_str() { String::new() } else { format!(" [label={}]", q(s.clone())) };
            out.push_str(&format!("    {} -> {}{attr};\n", q(self.label(a)), q(self.label(b))));
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod graph_tests {
    use super::*;

    #[test]
    fn the_task_graph_draws_dependencies() {
        let mut g = TaskGraph::default();
        g.add("api", Some("done"), &[]);
        g.add("ui", Some("build"), &[Dependency { branch: "api".into(), state: "done".into() }]);
        g.add("rescue", Some("build"), &[Dependency { branch: "api".into(), state: "failed".into() }]);
        g.add("alone", Some("build"), &[]);
        let g = g.connected();
        assert_eq!(
            g.mermaid(),
            "flowchart LR\n    n0[\"api (done)\"]\n    n1[\"rescue (build)\"]\n    n2[\"ui (build)\"]\n    n0 -->|failed| n1\n    n0 --> n2\n"
        );
        let dot = g.dot();
        assert!(dot.contains("\"api (done)\" -> \"ui (build)\";") && dot.contains("[label=\"failed\"]"), "{dot}");
        assert!(!dot.contains("alone"));
    }
}
