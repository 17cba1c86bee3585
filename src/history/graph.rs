//! The observed state machine: transitions between states with how often each was taken, drawn
//! as Mermaid (`stateDiagram-v2`) or Graphviz dot.
//!
//! Edges: the origin state of every finished run to its outcome (failures and `stalled`
//! included), and the state a person moved a branch from to the state they sent or resumed. The
//! first state of a branch (no state before it) is not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::runs::{EventKind, Record};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transitions {
    counts: BTreeMap<(String, String), u64>,
}

impl Transitions {
    pub fn add(&mut self, record: &Record) {
        let edge = match record {
            Record::Run(r) => r.origin.as_ref().zip(r.outcome.as_ref()),
            Record::Event(e)
                if matches!(e.kind, EventKind::Send | EventKind::Resume | EventKind::Join | EventKind::Escalation) =>
            {
                e.previous.as_ref().zip(e.state.as_ref())
            }
            Record::Event(_) => None,
        };
        if let Some((from, to)) = edge {
            *self.counts.entry((from.clone(), to.clone())).or_default() += 1;
        }
    }

    /// Edges with counts, sorted by (from, to).
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.counts.iter().map(|((a, b), n)| (a.as_str(), b.as_str(), *n))
    }

    /// `stateDiagram-v2` with one `A --> B: N` line per edge. A state whose name is not a plain
    /// Mermaid identifier (`.` or `-` in it) is declared once as `state "name" as sN`.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        let states = self.states();
        let mut ids: BTreeMap<&str, String> = BTreeMap::new();
        let mut n = 0;
        for &name in &states {
            let plain = name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
            let id = if plain {
                name.to_owned()
            } else {
                // An alias no state is called.
                let id = loop {
                    let id = format!("s{n}");
                    n += 1;
                    if !states.contains(id.as_str()) {
                        break id;
                    }
                };
                let _ = writeln!(out, "    state \"{name}\" as {id}");
                id
            };
            ids.insert(name, id);
        }
        for (a, b, n) in self.edges() {
            let _ = writeln!(out, "    {} --> {}: {n}", ids[a], ids[b]);
        }
        out
    }

    /// `digraph baton { "A" -> "B" [label="N"]; }` (state names never hold `"` or `\`).
    pub fn dot(&self) -> String {
        let mut out = String::from("digraph baton {\n    rankdir=LR;\n");
        for name in self.states() {
            let _ = writeln!(out, "    \"{name}\";");
        }
        for (a, b, n) in self.edges() {
            let _ = writeln!(out, "    \"{a}\" -> \"{b}\" [label=\"{n}\"];");
        }
        out.push_str("}\n");
        out
    }

    fn states(&self) -> BTreeSet<&str> {
        self.counts.keys().flat_map(|(a, b)| [a.as_str(), b.as_str()]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::runs::{Event, Fold};
    use crate::protocol::trailers::parse;
    use crate::repo::{CommitInfo, ObjectId};

    fn records(msgs: &[&str]) -> Vec<Record> {
        let mut fold = Fold::new(false);
        let mut out = Vec::new();
        let mut parent: Option<ObjectId> = None;
        for (i, m) in msgs.iter().enumerate() {
            let id = ObjectId::from_hex(format!("{:040x}", i + 1).as_bytes()).unwrap();
            let c = CommitInfo {
                id,
                tree: ObjectId::empty_tree(gix::hash::Kind::Sha1),
                parents: parent.into_iter().collect(),
                message: m.as_bytes().to_vec(),
                trailers: parse(m.as_bytes()),
                committer_time: i as i64,
                author: "A <a@x>".into(),
            };
            fold.push(&c, true, &mut out);
            parent = Some(id);
        }
        fold.finish(&mut out);
        out
    }

    const CLAIM_BUILD: &str = "c\n\ndwp-origin-state: build\ndwp-run-id: r\ndwp-state: working\n";

    #[test]
    fn runs_and_sends_become_counted_edges() {
        let recs = records(&[
            "s\n\ndwp-state: build\n",
            CLAIM_BUILD,
            "f\n\ndwp-run-id: r\ndwp-error: x\ndwp-state: failed\n",
            "s\n\ndwp-state: build\n",
            CLAIM_BUILD,
            "ok\n\ndwp-state: code-review\n",
            "s\n\ndwp-state: build\n",
            CLAIM_BUILD,
        ]);
        let mut t = Transitions::default();
        recs.iter().for_each(|r| t.add(r));
        let edges: Vec<_> = t.edges().collect();
        assert_eq!(
            edges,
            [("build", "code-review", 1), ("build", "failed", 1), ("code-review", "build", 1), ("failed", "build", 1),]
        );
        assert_eq!(
            t.mermaid(),
            "stateDiagram-v2\n    state \"code-review\" as s0\n    build --> s0: 1\n    build --> failed: 1\n    s0 --> build: 1\n    failed --> build: 1\n"
        );
        let dot = t.dot();
        assert!(dot.starts_with("digraph baton {\n"));
        assert!(dot.contains("    \"build\" -> \"code-review\" [label=\"1\"];\n"));
        assert!(dot.ends_with("}\n"));
    }

    #[test]
    fn other_events_are_not_edges() {
        let mut t = Transitions::default();
        t.add(&Record::Event(Event {
            kind: EventKind::Invalid,
            commit: ObjectId::null(gix::hash::Kind::Sha1),
            time: 0,
            previous: Some("a".into()),
            state: Some("../x".into()),
            author: String::new(),
            resumed_from: None,
            run_id: None,
            failure: None,
            visible: true,
            escalated: false,
        }));
        assert_eq!(t.edges().count(), 0);
        assert_eq!(t.mermaid(), "stateDiagram-v2\n");
    }
}
