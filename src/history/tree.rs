//! The parent/child tree of tasks: a child branch names its parent with `dwp-parent` (written by
//! `git baton spawn`). Pure: the caller finds each branch's parent; this orders the forest,
//! detects parent loops and missing parents, and draws it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One task as the tree needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub branch: String,
    /// The head's state (None without a valid `dwp-state`).
    pub state: Option<String>,
    /// The branch its `dwp-parent` names (None for a root).
    pub parent: Option<String>,
    pub correlation_id: Option<String>,
    pub role: Option<String>,
    /// A short note drawn after the state (e.g. `join 2/3 done`, `lease runner-1`).
    pub note: Option<String>,
}

/// A node placed in the forest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placed<'a> {
    #[serde(flatten)]
    pub node: &'a Node,
    /// 0 for a root.
    pub depth: usize,
    /// Why a node with a `dwp-parent` is drawn as a root: `missing` (no such branch) or `loop`
    /// (its parents lead back to it).
    pub orphan: Option<&'static str>,
    /// Whether it is the last of its siblings (drawing only).
    #[serde(skip)]
    pub last: bool,
    /// For each ancestor level above this node, whether that ancestor was a last sibling (drawing
    /// only).
    #[serde(skip)]
    pub rails: Vec<bool>,
}

/// Orders `nodes` depth-first (roots and siblings by branch name). Only families are kept unless
/// `singles`: a branch with neither parent nor children is left out. With `root`, only that
/// branch and its descendants. Never loops: a parent chain that returns to itself is cut at the
/// node whose parent closes the loop, which becomes a root marked `loop`.
pub fn forest<'a>(nodes: &'a [Node], root: Option<&str>, singles: bool) -> Vec<Placed<'a>> {
    let by_name: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.branch.as_str(), n)).collect();
    // Which parent links are in a loop: follow each chain, at most nodes.len() steps.
    let mut in_loop: BTreeSet<&str> = BTreeSet::new();
    for n in nodes {
        let mut seen: Vec<&str> = vec![n.branch.as_str()];
        let mut at = n;
        while let Some(p) = at.parent.as_deref().and_then(|p| by_name.get(p)) {
            if let Some(i) = seen.iter().position(|s| *s == p.branch) {
                in_loop.extend(seen[i..].iter().copied());
                break;
            }
            seen.push(p.branch.as_str());
            at = p;
        }
    }
    // The loop is cut at its smallest branch name: that node is drawn as a root.
    let mut cut: BTreeSet<&str> = BTreeSet::new();
    for n in &in_loop {
        let mut members = vec![*n];
        let mut at = by_name[n];
        while let Some(p) = at.parent.as_deref() {
            if p == *n || members.len() > in_loop.len() {
                break;
            }
            members.push(p);
            at = by_name[p];
        }
        if let Some(min) = members.iter().min() {
            cut.insert(min);
        }
    }
    let orphan = |n: &Node| -> Option<&'static str> {
        match n.parent.as_deref() {
            None => None,
            Some(_) if cut.contains(n.branch.as_str()) => Some("loop"),
            Some(p) if !by_name.contains_key(p) => Some("missing"),
            Some(_) => None,
        }
    };
    let mut children: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
    for n in nodes {
        if let (Some(p), None) = (n.parent.as_deref(), orphan(n)) {
            children.entry(p).or_default().push(n);
        }
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| a.branch.cmp(&b.branch));
    }
    let mut roots: Vec<&Node> = match root {
        Some(r) => by_name.get(r).copied().into_iter().collect(),
        None => nodes
            .iter()
            .filter(|n| n.parent.is_none() || orphan(n).is_some())
            .filter(|n| singles || n.parent.is_some() || children.contains_key(n.branch.as_str()))
            .collect(),
    };
    roots.sort_by(|a, b| a.branch.cmp(&b.branch));
    let mut out = Vec::new();
    let count = roots.len();
    // Iterative depth-first walk: (node, depth, last, rails).
    let mut stack: Vec<(&Node, usize, bool, Vec<bool>)> =
        roots.into_iter().enumerate().rev().map(|(i, n)| (n, 0, i + 1 == count, Vec::new())).collect();
    while let Some((n, depth, last, rails)) = stack.pop() {
        if let Some(kids) = children.get(n.branch.as_str()) {
            let mut below = rails.clone();
            if depth > 0 {
                below.push(last);
            }
            for (i, k) in kids.iter().enumerate().rev() {
                stack.push((k, depth + 1, i + 1 == kids.len(), below.clone()));
            }
        }
        out.push(Placed { node: n, depth, orphan: if depth == 0 { orphan(n) } else { None }, last, rails });
    }
    out
}

/// The rails drawn before a placed node's name (`├── `, `│   └── `; empty for a root).
pub fn rails(p: &Placed<'_>) -> String {
    let mut s = String::new();
    if p.depth > 0 {
        for &ancestor_last in &p.rails {
            s.push_str(if ancestor_last { "    " } else { "│   " });
        }
        s.push_str(if p.last { "└── " } else { "├── " });
    }
    s
}

/// The forest as text: `branch  state  note`, children under their parent with tree rails.
pub fn draw(placed: &[Placed<'_>]) -> Vec<String> {
    let labels: Vec<String> = placed.iter().map(|p| format!("{}{}", rails(p), p.node.branch)).collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let state_width = placed.iter().map(|p| p.node.state.as_deref().unwrap_or("-").chars().count()).max().unwrap_or(0);
    placed
        .iter()
        .zip(labels)
        .map(|(p, l)| {
            let pad = width - l.chars().count();
            let mut line = format!("{l}{}  {:state_width$}", " ".repeat(pad), p.node.state.as_deref().unwrap_or("-"));
            if let Some(role) = &p.node.role {
                line.push_str(&format!("  [{role}]"));
            }
            if let Some(note) = &p.node.note {
                line.push_str(&format!("  {note}"));
            }
            match (p.orphan, p.node.parent.as_deref()) {
                (Some("missing"), Some(parent)) => line.push_str(&format!("  (parent {parent} is gone)")),
                (Some("loop"), Some(parent)) => line.push_str(&format!("  (dwp-parent {parent} loops back)")),
                _ => {}
            }
            line.trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(branch: &str, state: &str, parent: Option<&str>) -> Node {
        Node {
            branch: branch.into(),
            state: Some(state.into()),
            parent: parent.map(Into::into),
            correlation_id: None,
            role: None,
            note: None,
        }
    }

    fn names(p: &[Placed<'_>]) -> Vec<(String, usize)> {
        p.iter().map(|p| (p.node.branch.clone(), p.depth)).collect()
    }

    #[test]
    fn orders_families_depth_first_by_name() {
        let nodes = vec![
            n("sup", "waiting", None),
            n("w-b", "done", Some("sup")),
            n("w-a", "working", Some("sup")),
            n("w-a-1", "done", Some("w-a")),
            n("lonely", "build", None),
        ];
        let placed = forest(&nodes, None, false);
        assert_eq!(names(&placed), vec![("sup".into(), 0), ("w-a".into(), 1), ("w-a-1".into(), 2), ("w-b".into(), 1)]);
        let with_singles = forest(&nodes, None, true);
        assert_eq!(with_singles[0].node.branch, "lonely");
        assert_eq!(with_singles.len(), 5);
    }

    #[test]
    fn draws_rails() {
        let nodes = vec![
            n("sup", "waiting", None),
            n("a", "done", Some("sup")),
            n("a1", "done", Some("a")),
            n("b", "failed", Some("sup")),
            n("b1", "done", Some("b")),
        ];
        let lines = draw(&forest(&nodes, None, false));
        assert_eq!(
            lines,
            vec![
                "sup         waiting",
                "├── a       done",
                "│   └── a1  done",
                "└── b       failed",
                "    └── b1  done",
            ]
        );
    }

    #[test]
    fn a_root_selects_a_subtree() {
        let nodes = vec![n("sup", "waiting", None), n("a", "done", Some("sup")), n("a1", "done", Some("a"))];
        assert_eq!(names(&forest(&nodes, Some("a"), false)), vec![("a".into(), 0), ("a1".into(), 1)]);
        assert!(forest(&nodes, Some("nope"), false).is_empty());
    }

    #[test]
    fn missing_parents_and_loops_become_marked_roots() {
        let nodes = vec![
            n("child", "done", Some("gone")),
            n("x", "build", Some("y")),
            n("y", "build", Some("z")),
            n("z", "build", Some("x")),
            n("self", "build", Some("self")),
        ];
        let placed = forest(&nodes, None, false);
        let got: Vec<(String, usize, Option<&str>)> =
            placed.iter().map(|p| (p.node.branch.clone(), p.depth, p.orphan)).collect();
        assert_eq!(
            got,
            vec![
                ("child".into(), 0, Some("missing")),
                ("self".into(), 0, Some("loop")),
                ("x".into(), 0, Some("loop")),
                ("z".into(), 1, None),
                ("y".into(), 2, None),
            ]
        );
        let lines = draw(&placed);
        assert!(lines[0].ends_with("(parent gone is gone)"), "{lines:?}");
        assert!(lines[2].ends_with("(dwp-parent y loops back)"), "{lines:?}");
    }

    #[test]
    fn a_thousand_children_are_one_level() {
        let mut nodes = vec![n("p", "waiting", None)];
        nodes.extend((0..1000).map(|i| n(&format!("c{i:04}"), "done", Some("p"))));
        let placed = forest(&nodes, None, false);
        assert_eq!(placed.len(), 1001);
        assert!(placed[1..].iter().all(|p| p.depth == 1));
        assert!(placed.last().unwrap().last);
    }
}
