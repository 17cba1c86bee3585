//! The page: inline CSS, inline SVG, a few lines of vanilla JavaScript for sorting and filtering
//! (no network, no CDN). Every piece of text from the repository goes through [`esc`].

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{pick_lanes, pick_tasks, svg, Facts, Limits, Task};
use crate::runner::clock::{human_age, iso_utc};

/// Text escaped for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline have no place on the page.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A state's colour: fixed for the reserved states, a stable hue from the name for the others.
pub fn state_color(state: Option<&str>) -> String {
    let fixed = match state {
        None => "#e5e7eb",
        Some("done") => "#bbf7d0",
        Some("failed") => "#fecaca",
        Some("blocked" | "waiting") => "#fed7aa",
        Some("working") => "#bfdbfe",
        Some("stalled") => "#e9d5ff",
        Some("canceled" | "noop") => "#d1d5db",
        Some("parked") => "#fef08a",
        Some(other) => {
            // FNV-1a: the same name gets the same colour on every page.
            let h =
                other.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            return format!("hsl({},70%,88%)", h % 360);
        }
    };
    fixed.to_owned()
}

const STYLE: &str = r#"
:root{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;background:#f9fafb}
body{margin:0 auto;max-width:1400px;padding:12px 20px}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.4rem 0 .4rem;border-bottom:1px solid #d1d5db}
.meta,.note{color:#4b5563;font-size:.85rem}.note{margin:.2rem 0 .5rem}
nav a{margin-right:.8rem;font-size:.9rem}
#filter{width:28rem;max-width:100%;padding:.35rem .5rem;font-size:.95rem;border:1px solid #9ca3af;border-radius:4px}
table{border-collapse:collapse;font-size:.85rem;background:#fff}
th,td{border:1px solid #e5e7eb;padding:.2rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f4f6;cursor:pointer;user-select:none;white-space:nowrap}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.8rem;background:#f3f4f6;padding:0 .2rem;border-radius:3px;word-break:break-all}
.chip{display:inline-block;padding:.1rem .5rem;margin:.15rem;border-radius:999px;font-size:.85rem;border:1px solid #d1d5db}
.state{display:inline-block;padding:0 .35rem;border-radius:3px}
.b-warning{color:#b45309;font-weight:600}.b-exhausted{color:#b91c1c;font-weight:700}
.bar{display:inline-block;height:.6rem;background:#60a5fa;margin-right:.3rem;vertical-align:middle}
svg text{font-family:system-ui,sans-serif;font-size:11px}
.run.succeeded{fill:#16a34a}.run.failed{fill:#dc2626}.run.stalled{fill:#9333ea}.run.running{fill:#2563eb}
.edge{fill:none;stroke:#6b7280;stroke-width:1.3}.edge.dep{stroke-dasharray:5 3;stroke:#b45309}
.node rect{stroke:#6b7280}
ul.opts{margin:.1rem 0;padding-left:1.1rem}
"#;

const SCRIPT: &str = r##"
(function () {
  "use strict";
  var input = document.getElementById("filter");
  function apply(q) {
    q = (q || "").toLowerCase();
    var rows = document.querySelectorAll("table.filterable tbody tr");
    for (var i = 0; i < rows.length; i++) {
      var hit = !q || rows[i].textContent.toLowerCase().indexOf(q) >= 0;
      if (hit) { rows[i].removeAttribute("hidden"); } else { rows[i].setAttribute("hidden", ""); }
    }
    var shown = document.getElementById("shown");
    if (shown) { shown.textContent = String(document.querySelectorAll("#board-table tbody tr:not([hidden])").length); }
  }
  var q = "";
  var m = /^#filter=(.*)$/.exec(location.hash);
  if (m) { try { q = decodeURIComponent(m[1]); } catch (e) { q = m[1]; } }
  else if (window.URLSearchParams) { q = new URLSearchParams(location.search).get("q") || ""; }
  input.value = q;
  apply(q);
  input.addEventListener("input", function () {
    apply(input.value);
    try { history.replaceState(null, "", input.value ? "#filter=" + encodeURIComponent(input.value) : location.pathname + location.search); } catch (e) { /* file:// may refuse */ }
  });
  var heads = document.querySelectorAll("table.sortable th");
  Array.prototype.forEach.call(heads, function (th) {
    th.addEventListener("click", function () {
      var col = th.cellIndex, body = th.closest("table").tBodies[0];
      var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
      Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute("data-dir"); });
      th.setAttribute("data-dir", dir > 0 ? "asc" : "desc");
      var num = th.getAttribute("data-sort") === "num";
      var key = function (tr) { var c = tr.cells[col]; var v = c ? (c.getAttribute("data-v") !== null ? c.getAttribute("data-v") : c.textContent) : ""; return num ? (parseFloat(v) || 0) : v; };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) { var x = key(a), y = key(b); return dir * (num ? x - y : String(x).localeCompare(String(y))); });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"##;

/// The whole page.
pub fn page(f: &Facts, limits: Limits) -> String {
    let mut o = String::with_capacity(256 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>git-baton report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>git-baton report</h1>\n<p class=\"meta\">Generated {} from the repository's history{}.</p>\n<input id=\"filter\" type=\"search\" placeholder=\"Filter the board and the inbox: branch, state, text…\" aria-label=\"filter\">\n</header>\n<nav><a href=\"#inbox\">Inbox</a><a href=\"#board\">Board</a><a href=\"#timeline\">Runs</a><a href=\"#metrics\">Metrics</a><a href=\"#states\">States</a><a href=\"#tasks\">Tasks</a></nav>\n",
        iso_utc(f.now),
        if f.scope.is_empty() { String::new() } else { format!(" ({})", esc(&f.scope)) }
    );
    summary(&mut o, f);
    inbox(&mut o, f, limits);
    board(&mut o, f, limits);
    timeline(&mut o, f, limits);
    metrics(&mut o, f);
    o.push_str("<section id=\"states\">\n<h2>State transitions</h2>\n");
    o.push_str("<p class=\"note\">Every finished run from its state to the state it ended in, and every state a person sent, with how often (<code>git baton graph</code>). Laid out in layers (longest path, barycenter ordering).</p>\n");
    o.push_str(&svg::state_graph(&f.transitions, limits.graph_nodes));
    o.push_str("</section>\n<section id=\"tasks\">\n<h2>Task tree and dependencies</h2>\n");
    o.push_str("<p class=\"note\">Solid: parent → child (<code>dwp-parent</code>). Dashed: dependency → the task waiting for it (<code>dwp-depends-on</code>, labelled when the wanted state is not <code>done</code>).</p>\n");
    o.push_str(&svg::task_graph(&f.tasks, limits.graph_nodes));
    let _ = write!(o, "</section>\n<script>{SCRIPT}</script>\n</body>\n</html>\n");
    o
}

fn summary(o: &mut String, f: &Facts) {
    let mut counts: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for t in &f.tasks {
        *counts.entry(t.state.as_deref()).or_default() += 1;
    }
    let _ = write!(
        o,
        "<section id=\"summary\">\n<p>{} tasks, {} waiting for a person, {} runs.</p>\n<p>",
        f.tasks.len(),
        f.inbox.len(),
        f.metrics.runs
    );
    for (state, n) in counts {
        let _ = write!(
            o,
            "<span class=\"chip\" style=\"background:{}\">{} <b>{n}</b></span>",
            state_color(state),
            esc(state.unwrap_or("(no state)"))
        );
    }
    o.push_str("</p>\n</section>\n");
}

fn inbox(o: &mut String, f: &Facts, limits: Limits) {
    let _ = write!(o, "<section id=\"inbox\">\n<h2>Inbox: waits for a person ({})</h2>\n", f.inbox.len());
    if f.inbox.is_empty() {
        o.push_str("<p class=\"note\">Nothing waits for a person.</p>\n</section>\n");
        return;
    }
    if f.inbox.len() > limits.inbox {
        let _ = writeln!(
            o,
            "<p class=\"note limit\">Showing the oldest {} of {} items; <code>git baton inbox</code> lists them all.</p>",
            limits.inbox,
            f.inbox.len()
        );
    }
    o.push_str("<table id=\"inbox-table\" class=\"filterable sortable\">\n<thead><tr><th>Kind</th><th>Branch</th><th>State</th><th data-sort=\"num\">Age</th><th>What</th><th>Answer with</th></tr></thead>\n<tbody>\n");
    for i in f.inbox.iter().take(limits.inbox) {
        let _ = write!(
            o,
            "<tr class=\"item\" data-kind=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\" data-v=\"{}\">{}</td><td>{}",
            esc(&i.kind),
            esc(&i.kind),
            esc(&i.what),
            state_span(i.state.as_deref()),
            i.age_seconds,
            human_age(i.age_seconds),
            esc(&clip(&i.summary, 300)),
        );
        if !i.options.is_empty() {
            o.push_str("<ul class=\"opts\">");
            for opt in i.options.iter().take(10) {
                let _ = write!(o, "<li>{}</li>", esc(&clip(opt, 200)));
            }
            o.push_str("</ul>");
        }
        let _ = writeln!(o, "</td><td><code class=\"command\">{}</code></td></tr>", esc(&clip(&i.command, 400)));
    }
    o.push_str("</tbody>\n</table>\n</section>\n");
}

fn state_span(state: Option<&str>) -> String {
    match state {
        Some(s) => format!("<span class=\"state\" style=\"background:{}\">{}</span>", state_color(Some(s)), esc(s)),
        None => String::new(),
    }
}

fn board(o: &mut String, f: &Facts, limits: Limits) {
    let picked = pick_tasks(&f.tasks, limits.tasks);
    let _ = write!(
        o,
        "<section id=\"board\">\n<h2>Board</h2>\n<p class=\"note\"><span id=\"shown\">{}</span> of {} tasks shown.",
        picked.len(),
        f.tasks.len()
    );
    if picked.len() < f.tasks.len() {
        let _ = write!(
            o,
            " <span class=\"limit\">The board is cut at {} rows: tasks not yet done first, then the most recently moved; the state counts above cover all {} (<code>git baton status</code> lists every one).</span>",
            limits.tasks,
            f.tasks.len()
        );
    }
    o.push_str("</p>\n<table id=\"board-table\" class=\"filterable sortable\">\n<thead><tr><th>Branch</th><th>State</th><th>Lease</th><th data-sort=\"num\">Age</th><th data-sort=\"num\">Attempt</th><th data-sort=\"num\">Budget</th><th>Parent</th><th>Depends on</th></tr></thead>\n<tbody>\n");
    for &i in &picked {
        task_row(o, &f.tasks[i]);
    }
    o.push_str("</tbody>\n</table>\n</section>\n");
}

fn task_row(o: &mut String, t: &Task) {
    let state = match (&t.state, &t.invalid, &t.error) {
        (_, _, Some(e)) => format!("<span class=\"state\" title=\"{}\">unreadable</span>", esc(&clip(e, 300))),
        (Some(s), _, _) => state_span(Some(s)),
        (None, Some(bad), _) => format!("invalid: <code>{}</code>", esc(&clip(bad, 80))),
        (None, None, None) => "-".to_owned(),
    };
    let lease = match (t.lease, t.lease_left) {
        ("active", Some(s)) => format!("active, {} left", human_age(s)),
        ("expired", Some(s)) => format!("expired {} ago", human_age(-s)),
        _ => String::new(),
    };
    let lease = match &t.runner {
        Some(r) if !lease.is_empty() => format!("{lease} <code>{}</code>", esc(&clip(r, 60))),
        _ => lease,
    };
    let (budget, budget_v) = match &t.budget {
        Some(b) => {
            (format!("<span class=\"b-{}\">{}</span>", b.status, esc(&b.text)), b.percent.map_or(-1, |p| p as i64))
        }
        None => (String::new(), -1),
    };
    let deps: Vec<String> = t
        .depends_on
        .iter()
        .map(|d| {
            if d.state == "done" {
                format!("<code>{}</code>", esc(&d.branch))
            } else {
                format!("<code>{}</code>:{}", esc(&d.branch), esc(&d.state))
            }
        })
        .collect();
    let _ = writeln!(
        o,
        "<tr class=\"task\" data-state=\"{}\" style=\"background:{}\"><td class=\"branch\"><code>{}</code></td><td>{state}</td><td>{lease}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\">{}</td><td data-v=\"{budget_v}\">{budget}</td><td>{}</td><td>{}</td></tr>",
        esc(t.state.as_deref().unwrap_or("")),
        state_color(t.state.as_deref()),
        esc(&t.branch),
        t.age_seconds,
        human_age(t.age_seconds),
        t.attempt.map(|a| a.to_string()).unwrap_or_default(),
        t.parent.as_deref().map(|p| format!("<code>{}</code>", esc(p))).unwrap_or_default(),
        deps.join(" "),
    );
}

fn timeline(o: &mut String, f: &Facts, limits: Limits) {
    let total: usize = f.runs.values().map(Vec::len).sum();
    let lanes = pick_lanes(&f.runs, limits.lanes, limits.bars);
    let shown: usize = lanes.iter().map(|(_, v)| v.len()).sum();
    let branches = f.runs.values().filter(|v| !v.is_empty()).count();
    let _ = write!(o, "<section id=\"timeline\">\n<h2>Runs</h2>\n<p class=\"note\">One lane per branch, one bar per run from its claim to its end, coloured by how it ended (green succeeded, red failed, purple stalled, blue running); hover a bar for its run id, runner, duration and error. {shown} of {total} runs on {} of {branches} branches shown.", lanes.len());
    if shown < total {
        let _ = write!(
            o,
            " <span class=\"limit\">The timeline is cut: the {} branches with the newest runs, and their newest {} runs at most (<code>git baton log</code> has every run).</span>",
            limits.lanes, limits.bars
        );
    }
    o.push_str("</p>\n");
    if shown == 0 {
        o.push_str("<p class=\"note\">No runs in the selected history.</p>\n");
    } else {
        o.push_str(&svg::timeline(&lanes, f.now));
    }
    o.push_str("</section>\n");
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), duration)
}

pub use crate::runner::clock::human_duration as duration;

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn metrics(o: &mut String, f: &Facts) {
    let m = &f.metrics;
    o.push_str("<section id=\"metrics\">\n<h2>Metrics</h2>\n");
    let failed: u64 = m.states.values().map(|s| s.failed).sum();
    let _ = writeln!(
        o,
        "<p>{} runs, {} finished; failure rate <b>{}</b>; retry rate <b>{}</b> ({} runs were retries, {} of the finished ones succeeded); dead letters: {}.</p>",
        m.runs,
        m.finished,
        pct(failed, m.finished),
        pct(m.retries.runs, m.runs),
        m.retries.runs,
        m.retries.success_rate.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
        m.dead_letters.values().sum::<u64>(),
    );
    let band = m.escalation_band.unwrap_or("no decisions yet");
    let _ = writeln!(
        o,
        "<p>Escalation rate: <b>{}</b> ({} of {} decisions went to a person) — {}. The healthy band is 10–15 %.</p>",
        m.escalation_rate.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
        m.escalations,
        m.finished + m.escalation_commits,
        esc(band)
    );
    o.push_str(&svg::escalation_gauge(m.escalation_rate));
    let max_cost = m.states.values().filter_map(|s| s.cost).map(|c| c.0).max().unwrap_or(0);
    o.push_str("<table id=\"metrics-table\" class=\"sortable\">\n<thead><tr><th>State</th><th data-sort=\"num\">Runs</th><th data-sort=\"num\">Succeeded</th><th data-sort=\"num\">Failed</th><th data-sort=\"num\">Stalled</th><th data-sort=\"num\">Running</th><th data-sort=\"num\">Failure rate</th><th data-sort=\"num\">p50</th><th data-sort=\"num\">p95</th><th data-sort=\"num\">Attempts / round</th><th data-sort=\"num\">Cost</th><th data-sort=\"num\">Tokens</th></tr></thead>\n<tbody>\n");
    for (name, s) in &m.states {
        let finished = s.runs - s.running;
        let cost = match s.cost {
            Some(c) => {
                let w = if max_cost == 0 { 0 } else { (c.0 as u128 * 80 / max_cost as u128) as u64 };
                format!("<span class=\"bar\" style=\"width:{w}px\"></span>{c}")
            }
            None => "-".to_owned(),
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\" data-v=\"{}\">{cost}</td><td class=\"num\">{}</td></tr>",
            state_span(Some(name)),
            s.runs,
            s.succeeded,
            s.failed,
            s.stalled,
            s.running,
            if finished == 0 { 0.0 } else { s.failed as f64 / finished as f64 },
            pct(s.failed, finished),
            s.p50_ms.unwrap_or(0),
            ms(s.p50_ms),
            s.p95_ms.unwrap_or(0),
            ms(s.p95_ms),
            s.mean_attempts.map_or("-".to_owned(), |v| format!("{v:.2}")),
            s.cost.map_or(0, |c| c.0),
            s.tokens.map_or("-".to_owned(), |t| t.to_string()),
        );
    }
    o.push_str("</tbody>\n</table>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(esc("<script>alert('x')</script>&\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;");
        assert_eq!(esc("a\u{0}b\u{1b}c\nd"), "a\u{FFFD}b\u{FFFD}c\nd");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("ab", 3), "ab");
        assert_eq!(clip("ééé", 2), "éé…");
    }

    #[test]
    fn colours_are_stable_and_reserved_ones_fixed() {
        assert_eq!(state_color(Some("done")), "#bbf7d0");
        assert_eq!(state_color(Some("build")), state_color(Some("build")));
        assert_ne!(state_color(Some("build")), state_color(Some("review")));
        assert!(state_color(Some("build")).starts_with("hsl("));
    }
}
