//! The page's pictures as inline SVG: the runs timeline, the state and task graphs (positions
//! from [`super::layout`]) and the escalation gauge. Hover text is an SVG `<title>`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::html::{clip, duration, esc, state_color};
use super::layout::layered;
use super::{RunBar, Task};
use crate::history::Transitions;
use crate::runner::clock::iso_utc;

const LABEL_W: f64 = 210.0;
const PLOT_W: f64 = 1100.0;
const LANE_H: f64 = 16.0;
const AXIS_H: f64 = 22.0;

/// One lane per branch, one `<rect class="run …">` per run.
pub fn timeline(lanes: &[(&str, Vec<&RunBar>)], now: i64) -> String {
    let t0 = lanes.iter().flat_map(|(_, v)| v.iter().map(|r| r.started)).min().unwrap_or(now);
    let t1 =
        lanes.iter().flat_map(|(_, v)| v.iter().map(|r| r.finished.unwrap_or(now).max(r.started))).max().unwrap_or(now);
    let span = (t1 - t0).max(1) as f64;
    let x = |t: i64| LABEL_W + (t - t0) as f64 / span * PLOT_W;
    let height = AXIS_H + lanes.len() as f64 * LANE_H + 6.0;
    let width = LABEL_W + PLOT_W + 20.0;
    let mut o = String::with_capacity(lanes.len() * 200 + 4096);
    let _ = writeln!(
        o,
        "<svg id=\"timeline-svg\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"runs timeline\">"
    );
    for i in 0..=4 {
        let t = t0 + (span * f64::from(i) / 4.0) as i64;
        let tx = x(t);
        let _ = writeln!(
            o,
            "<line x1=\"{tx:.1}\" y1=\"{AXIS_H}\" x2=\"{tx:.1}\" y2=\"{height}\" stroke=\"#e5e7eb\"/><text x=\"{tx:.1}\" y=\"14\" text-anchor=\"{}\">{}</text>",
            match i {
                0 => "start",
                4 => "end",
                _ => "middle",
            },
            iso_utc(t)
        );
    }
    for (i, (branch, bars)) in lanes.iter().enumerate() {
        let y = AXIS_H + i as f64 * LANE_H;
        let _ = writeln!(
            o,
            "<g class=\"lane\"><text x=\"4\" y=\"{:.1}\"><title>{}</title>{}</text>",
            y + 11.5,
            esc(branch),
            esc(&clip(branch, 30))
        );
        for r in bars {
            let x0 = x(r.started);
            let w = (x(r.finished.unwrap_or(now).max(r.started)) - x0).max(2.0);
            let mut title = format!("run {}", r.run_id.as_deref().unwrap_or("(no id)"));
            let _ = write!(title, " · runner {}", r.runner.as_deref().unwrap_or("(unknown)"));
            let _ = write!(
                title,
                " · {} → {}",
                r.origin.as_deref().unwrap_or("?"),
                r.outcome.as_deref().unwrap_or(r.result.as_str())
            );
            let _ = write!(title, " · {}", r.result.as_str());
            match r.finished {
                Some(f) => {
                    let _ = write!(title, " · {}", duration((f - r.started).max(0) as u64 * 1000));
                }
                None => {
                    let _ = write!(title, " · running for {}", duration((now - r.started).max(0) as u64 * 1000));
                }
            }
            let _ = write!(title, " · started {}", iso_utc(r.started));
            if let Some(e) = &r.error {
                let _ = write!(title, " · error: {}", clip(e, 300));
            }
            let _ = writeln!(
                o,
                "<rect class=\"run {}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"2\"><title>{}</title></rect>",
                r.result.as_str(),
                y + 3.0,
                LANE_H - 5.0,
                esc(&title)
            );
        }
        o.push_str("</g>\n");
    }
    o.push_str("</svg>\n");
    o
}

/// A node of a drawn graph.
pub struct Node {
    pub label: String,
    pub fill: String,
    pub title: String,
}

/// An edge of a drawn graph.
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub label: Option<String>,
    pub class: &'static str,
    pub title: String,
}

const NODE_H: f64 = 26.0;
const ROW_GAP: f64 = 22.0;
const COL_GAP: f64 = 70.0;

/// Lay out and draw a graph, left to right. `id` names the `<svg>` (and its arrow marker).
pub fn graph(id: &str, nodes: &[Node], edges: &[Edge]) -> String {
    let pairs: Vec<(usize, usize)> = edges.iter().map(|e| (e.from, e.to)).collect();
    let placed = layered(nodes.len(), &pairs);
    let layers = placed.iter().map(|p| p.layer + 1).max().unwrap_or(0);
    let rows = placed.iter().map(|p| p.order + 1).max().unwrap_or(0);
    let label = |n: &Node| clip(&n.label, 36);
    let node_w = |n: &Node| 16.0 + 6.6 * label(n).chars().count() as f64;
    let mut col_w = vec![0.0f64; layers];
    for (n, p) in nodes.iter().zip(&placed) {
        col_w[p.layer] = col_w[p.layer].max(node_w(n));
    }
    let mut col_x = vec![10.0f64; layers];
    for l in 1..layers {
        col_x[l] = col_x[l - 1] + col_w[l - 1] + COL_GAP;
    }
    let pos = |i: usize| {
        let p = placed[i];
        (col_x[p.layer], 14.0 + p.order as f64 * (NODE_H + ROW_GAP))
    };
    let width = col_x.last().copied().unwrap_or(10.0) + col_w.last().copied().unwrap_or(0.0) + 20.0;
    let height = 14.0 + rows as f64 * (NODE_H + ROW_GAP) + 40.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\">\n<defs><marker id=\"{id}-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6b7280\"/></marker></defs>"
    );
    for e in edges {
        let ((ax, ay), (bx, by)) = (pos(e.from), pos(e.to));
        let (aw, bw) = (node_w(&nodes[e.from]), node_w(&nodes[e.to]));
        let (path, lx, ly) = if e.from == e.to {
            let (cx, top) = (ax + aw / 2.0, ay);
            (
                format!(
                    "M{:.1},{top:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{top:.1}",
                    cx - 8.0,
                    cx - 22.0,
                    top - 22.0,
                    cx + 22.0,
                    top - 22.0,
                    cx + 8.0
                ),
                cx,
                top - 16.0,
            )
        } else if placed[e.to].layer > placed[e.from].layer {
            let (x1, y1, x2, y2) = (ax + aw, ay + NODE_H / 2.0, bx, by + NODE_H / 2.0);
            let mid = (x1 + x2) / 2.0;
            (format!("M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}"), mid, (y1 + y2) / 2.0 - 3.0)
        } else {
            // A back edge (or one within a layer): under the nodes, bottom to bottom.
            let (x1, y1, x2, y2) = (ax + aw / 2.0, ay + NODE_H, bx + bw / 2.0, by + NODE_H);
            let dip = y1.max(y2) + 26.0;
            (format!("M{x1:.1},{y1:.1} C{x1:.1},{dip:.1} {x2:.1},{dip:.1} {x2:.1},{y2:.1}"), (x1 + x2) / 2.0, dip - 2.0)
        };
        let _ = write!(
            o,
            "<g class=\"edge-g\"><title>{}</title><path class=\"edge {}\" d=\"{path}\" marker-end=\"url(#{id}-arrow)\"/>",
            esc(&e.title),
            e.class
        );
        if let Some(l) = &e.label {
            let _ = write!(
                o,
                "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" fill=\"#374151\">{}</text>",
                esc(l)
            );
        }
        o.push_str("</g>\n");
    }
    for (i, n) in nodes.iter().enumerate() {
        let (x, y) = pos(i);
        let _ = writeln!(
            o,
            "<g class=\"node\"><title>{}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{NODE_H}\" rx=\"5\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            esc(&n.title),
            node_w(n),
            n.fill,
            x + 8.0,
            y + 17.0,
            esc(&label(n))
        );
    }
    o.push_str("</svg>\n");
    o
}

/// The state machine as it ran: states as nodes, transitions with their counts.
pub fn state_graph(t: &Transitions, max_nodes: usize) -> String {
    let mut weight: BTreeMap<&str, u64> = BTreeMap::new();
    for (a, b, n) in t.edges() {
        *weight.entry(a).or_default() += n;
        *weight.entry(b).or_default() += n;
    }
    if weight.is_empty() {
        return "<p class=\"note\">No transitions in the selected history.</p>\n".to_owned();
    }
    let mut note = String::new();
    let mut keep: Vec<(&str, u64)> = weight.into_iter().collect();
    if keep.len() > max_nodes {
        keep.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        note = format!(
            "<p class=\"note limit\">Showing the {max_nodes} busiest of {} states (<code>git baton graph</code> draws them all).</p>\n",
            keep.len()
        );
        keep.truncate(max_nodes);
    }
    let names: BTreeSet<&str> = keep.into_iter().map(|(s, _)| s).collect();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let nodes: Vec<Node> = names
        .iter()
        .map(|s| Node { label: (*s).to_owned(), fill: state_color(Some(s)), title: format!("state {s}") })
        .collect();
    let edges: Vec<Edge> = t
        .edges()
        .filter_map(|(a, b, n)| {
            Some(Edge {
                from: *index.get(a)?,
                to: *index.get(b)?,
                label: Some(n.to_string()),
                class: "state",
                title: format!("{a} → {b}: {n}"),
            })
        })
        .collect();
    note + &graph("state-graph", &nodes, &edges)
}

/// Tasks that have a parent, a child, a dependency or a dependant, with those edges.
pub fn task_graph(tasks: &[Task], max_nodes: usize) -> String {
    let mut edges_by_name: Vec<(String, String, Option<String>, &'static str)> = Vec::new();
    for t in tasks {
        if let Some(p) = &t.parent {
            edges_by_name.push((p.clone(), t.branch.clone(), None, "tree"));
        }
        for d in &t.depends_on {
            let label = (d.state != "done").then(|| d.state.clone());
            edges_by_name.push((d.branch.clone(), t.branch.clone(), label, "dep"));
        }
    }
    if edges_by_name.is_empty() {
        return "<p class=\"note\">No task has a parent (<code>dwp-parent</code>) or a dependency (<code>dwp-depends-on</code>).</p>\n".to_owned();
    }
    let states: BTreeMap<&str, Option<&str>> = tasks.iter().map(|t| (t.branch.as_str(), t.state.as_deref())).collect();
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for (a, b, _, _) in &edges_by_name {
        names.insert(a);
        names.insert(b);
    }
    let mut note = String::new();
    if names.len() > max_nodes {
        note = format!(
            "<p class=\"note limit\">Showing {max_nodes} of {} tasks in trees and dependencies, by branch name (<code>git baton graph --tasks</code> draws them all).</p>\n",
            names.len()
        );
        names = names.into_iter().take(max_nodes).collect();
    }
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let nodes: Vec<Node> = names
        .iter()
        .map(|b| {
            let state = states.get(b).copied().flatten();
            let label = match (states.get(b), state) {
                (_, Some(s)) => format!("{b} ({s})"),
                (None, _) => format!("{b} (missing)"),
                (Some(_), None) => (*b).to_owned(),
            };
            Node { label: label.clone(), fill: state_color(state), title: label }
        })
        .collect();
    let edges: Vec<Edge> = edges_by_name
        .iter()
        .filter_map(|(a, b, label, class)| {
            let title = match *class {
                "tree" => format!("{a} is the parent of {b}"),
                _ => format!("{b} depends on {a} being {}", label.as_deref().unwrap_or("done")),
            };
            Some(Edge {
                from: *index.get(a.as_str())?,
                to: *index.get(b.as_str())?,
                label: label.clone(),
                class,
                title,
            })
        })
        .collect();
    note + &graph("task-graph", &nodes, &edges)
}

/// The escalation rate on a 0–40 % scale with the healthy band (10–15 %) marked.
pub fn escalation_gauge(rate: Option<f64>) -> String {
    let (w, x0) = (600.0, 10.0);
    let x = |p: f64| x0 + p.clamp(0.0, 40.0) / 40.0 * w;
    let mut o = format!(
        "<svg id=\"escalation-gauge\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"52\" viewBox=\"0 0 {} 52\" role=\"img\" aria-label=\"escalation rate\">\n<rect x=\"{x0}\" y=\"12\" width=\"{w}\" height=\"14\" fill=\"#f3f4f6\" stroke=\"#d1d5db\"/>\n<rect class=\"healthy-band\" x=\"{:.1}\" y=\"12\" width=\"{:.1}\" height=\"14\" fill=\"#86efac\"><title>healthy: 10–15 %</title></rect>\n<text x=\"{:.1}\" y=\"9\" text-anchor=\"middle\">healthy 10–15 %</text>\n",
        w + 2.0 * x0,
        w + 2.0 * x0,
        x(10.0),
        x(15.0) - x(10.0),
        x(12.5)
    );
    for p in [0, 10, 20, 30, 40] {
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"40\" text-anchor=\"middle\" fill=\"#6b7280\">{p}%</text>",
            x(f64::from(p))
        );
    }
    if let Some(r) = rate {
        let p = r * 100.0;
        let _ = writeln!(
            o,
            "<line class=\"rate\" x1=\"{0:.1}\" y1=\"8\" x2=\"{0:.1}\" y2=\"30\" stroke=\"#111827\" stroke-width=\"3\"><title>escalation rate {p:.1}%</title></line><text x=\"{0:.1}\" y=\"50\" text-anchor=\"middle\" font-weight=\"bold\">{p:.1}%</text>",
            x(p)
        );
    }
    o.push_str("</svg>\n");
    o
}
