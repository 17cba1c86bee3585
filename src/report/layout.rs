//! A layered ("Sugiyama-style") graph layout, pure and small: cycles are broken by reversing the
//! back edges a depth-first search finds, nodes go to layers by longest path from the sources,
//! and the order inside each layer is improved by a few barycenter sweeps (down and up).
//!
//! Why not a crate: `layout-rs` (the one Rust crate that lays out and renders graphs) takes DOT
//! text and writes a whole SVG document in its own style; the report needs its own markup inside
//! the page (a `<title>` per node and edge for hover, classes and state colours, text escaped
//! by the one escaper the page trusts, branch names being hostile input) and only the positions.
//! The graphs drawn here are small (states; a capped task tree), so the textbook algorithm is
//! enough, and it is deterministic and tested below.

/// Where a node goes: its layer (column, left to right) and its rank inside the layer (top to
/// bottom).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub layer: usize,
    pub order: usize,
}

/// Lay out `n` nodes joined by directed `edges` (indices below `n`; self-loops and duplicates
/// allowed). Deterministic: the same input gives the same layout.
pub fn layered(n: usize, edges: &[(usize, usize)]) -> Vec<Placed> {
    if n == 0 {
        return Vec::new();
    }
    let forward = acyclic(n, edges);
    let layer = longest_path(n, &forward);
    let layers = layer.iter().copied().max().unwrap_or(0) + 1;
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for v in 0..n {
        rows[layer[v]].push(v);
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &forward {
        preds[b].push(a);
        succs[a].push(b);
    }
    let mut pos = vec![0usize; n];
    let set_pos = |rows: &Vec<Vec<usize>>, pos: &mut Vec<usize>| {
        for row in rows {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i;
            }
        }
    };
    set_pos(&rows, &mut pos);
    let mut best = rows.clone();
    let mut best_crossings = crossings_of(&forward, &layer, &pos);
    for sweep in 0..8 {
        let down = sweep % 2 == 0;
        let order: Vec<usize> =
            if down { (1..layers).collect() } else { (0..layers.saturating_sub(1)).rev().collect() };
        for l in order {
            let neighbours = if down { &preds } else { &succs };
            let mut keyed: Vec<(f64, usize, usize)> = rows[l]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    let key = if ns.is_empty() {
                        pos[v] as f64
                    } else {
                        ns.iter().map(|&u| pos[u] as f64).sum::<f64>() / ns.len() as f64
                    };
                    (key, pos[v], v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            rows[l] = keyed.into_iter().map(|(_, _, v)| v).collect();
            for (i, &v) in rows[l].iter().enumerate() {
                pos[v] = i;
            }
        }
        let c = crossings_of(&forward, &layer, &pos);
        if c < best_crossings {
            best_crossings = c;
            best = rows.clone();
        }
    }
    let mut placed = vec![Placed { layer: 0, order: 0 }; n];
    for (l, row) in best.iter().enumerate() {
        for (i, &v) in row.iter().enumerate() {
            placed[v] = Placed { layer: l, order: i };
        }
    }
    placed
}

/// The edges with every back edge of a depth-first search (in index order) reversed and
/// self-loops dropped: what remains has no cycle.
fn acyclic(n: usize, edges: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a != b && a < n && b < n {
            out_edges[a].push(b);
        }
    }
    // 0 unvisited, 1 on the stack, 2 done.
    let mut mark = vec![0u8; n];
    let mut forward = Vec::new();
    for root in 0..n {
        if mark[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = 1;
        while let Some(&mut (v, ref mut i)) = stack.last_mut() {
            if let Some(&w) = out_edges[v].get(*i) {
                *i += 1;
                match mark[w] {
                    0 => {
                        forward.push((v, w));
                        mark[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => forward.push((w, v)),
                    _ => forward.push((v, w)),
                }
            } else {
                mark[v] = 2;
                stack.pop();
            }
        }
    }
    forward.sort_unstable();
    forward.dedup();
    forward
}

/// Layer of each node: the length of the longest path reaching it (sources at 0).
fn longest_path(n: usize, forward: &[(usize, usize)]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in forward {
        indegree[b] += 1;
        succs[a].push(b);
    }
    let mut layer = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).rev().collect();
    while let Some(v) = ready.pop() {
        for &w in &succs[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                ready.push(w);
            }
        }
    }
    layer
}

/// Crossings between edges of adjacent layers (edges spanning more layers are not counted).
fn crossings_of(forward: &[(usize, usize)], layer: &[usize], pos: &[usize]) -> usize {
    let mut by_layer: std::collections::BTreeMap<usize, Vec<(usize, usize)>> = Default::default();
    for &(a, b) in forward.iter().filter(|(a, b)| layer[*b] == layer[*a] + 1) {
        by_layer.entry(layer[a]).or_default().push((pos[a], pos[b]));
    }
    let mut c = 0;
    for spans in by_layer.values() {
        for (i, x) in spans.iter().enumerate() {
            c += spans[i + 1..].iter().filter(|y| (x.0 < y.0 && x.1 > y.1) || (x.0 > y.0 && x.1 < y.1)).count();
        }
    }
    c
}

/// Crossings of a finished layout (for tests and for the page's note).
pub fn crossings(placed: &[Placed], edges: &[(usize, usize)]) -> usize {
    let layer: Vec<usize> = placed.iter().map(|p| p.layer).collect();
    let pos: Vec<usize> = placed.iter().map(|p| p.order).collect();
    let forward: Vec<(usize, usize)> = edges.iter().copied().filter(|(a, b)| layer[*b] == layer[*a] + 1).collect();
    crossings_of(&forward, &layer, &pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(p: &[Placed]) -> Vec<usize> {
        p.iter().map(|p| p.layer).collect()
    }

    #[test]
    fn layers_are_longest_paths_and_cycles_are_broken() {
        // (nodes, edges, expected layers)
        type Case = (usize, &'static [(usize, usize)], &'static [usize]);
        let cases: &[Case] = &[
            (0, &[], &[]),
            (1, &[(0, 0)], &[0]),
            (3, &[(0, 1), (1, 2)], &[0, 1, 2]),
            // A shortcut does not pull the end forward: longest path.
            (3, &[(0, 1), (1, 2), (0, 2)], &[0, 1, 2]),
            // build -> review -> build: the back edge is reversed, two layers.
            (2, &[(0, 1), (1, 0)], &[0, 1]),
            // A cycle of three with an entry: still a chain.
            (4, &[(3, 0), (0, 1), (1, 2), (2, 0)], &[1, 2, 3, 0]),
            // Disconnected nodes sit in layer 0.
            (3, &[(1, 2)], &[0, 0, 1]),
        ];
        for (i, (n, edges, want)) in cases.iter().enumerate() {
            assert_eq!(layers(&layered(*n, edges)), *want, "case {i}");
        }
    }

    #[test]
    fn orders_are_a_permutation_per_layer_and_barycenters_untangle() {
        // Two sources each with its own child, listed crossed: 0->3, 1->2.
        let edges = [(0, 3), (1, 2)];
        let p = layered(4, &edges);
        assert_eq!(crossings(&p, &edges), 0, "{p:?}");
        // A bigger tangle: a complete bipartite core plus parallel pairs listed in reverse.
        let edges: Vec<(usize, usize)> = (0..6).map(|i| (i, 11 - i)).collect();
        let p = layered(12, &edges);
        assert_eq!(crossings(&p, &edges), 0);
        for l in 0..2 {
            let mut orders: Vec<usize> = p.iter().filter(|x| x.layer == l).map(|x| x.order).collect();
            orders.sort_unstable();
            assert_eq!(orders, (0..6).collect::<Vec<_>>());
        }
    }

    #[test]
    fn large_graphs_and_long_chains_do_not_recurse() {
        let edges: Vec<(usize, usize)> = (0..5000).map(|i| (i, (i + 1) % 5000)).collect();
        let p = layered(5000, &edges);
        assert_eq!(p.iter().map(|x| x.layer).max(), Some(4999));
    }
}
