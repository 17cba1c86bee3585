//! `git baton report` on real repositories (the real binary, the real `git`): the page is parsed
//! with an HTML parser (html5ever through `scraper`) and its structure checked — a row per task,
//! the inbox, one timeline bar per run, the graphs, the metrics, hostile text escaped — and then
//! opened in headless Chromium (Debian's `chromium`): no console errors, the filter from the URL
//! hides the other rows, a screenshot lands under target/. `watch --report` rewrites the page.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_json, TestRepo, NO_RETRIES};
use scraper::{ElementRef, Html, Selector};

/// A branch name and a subject no page may run as markup.
const EVIL_BRANCH: &str = "evil/<script>alert(\"b\")</script>&x='1'";
const EVIL_SUBJECT: &str = "<img src=x onerror=alert(1)> & </td></tr><b>bold";

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("selector {s}: {e:?}"))
}

fn text(e: ElementRef<'_>) -> String {
    e.text().collect::<String>()
}

/// Commit `message` on top of `branch` with plain git (no git-baton), returning the id.
fn commit_on(r: &TestRepo, branch: &str, message: &str) -> String {
    let file = r.home().join("message");
    std::fs::write(&file, message).unwrap();
    let id = r.git(&["commit-tree", &format!("{branch}^{{tree}}"), "-p", branch, "-F", file.to_str().unwrap()]);
    let id = id.trim().to_owned();
    r.git(&["update-ref", &format!("refs/heads/{branch}"), &id]);
    id
}

/// The board the tests draw: tasks in different states, runs that succeeded and failed (one with
/// markup in its error), a gate waiting for an approval, a task waiting for a person with a
/// hostile subject, a parent with a child, a dependency, and a hostile branch name.
fn board() -> TestRepo {
    let r = TestRepo::new();
    r.write("README", "project\n");
    r.handler(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\necho built > out.txt\ngit add out.txt\ngit commit -q -m built -m 'dwp-cost: 0.5\ndwp-state: review'\n",
    );
    r.handler(".dwp/command/review", "#!/bin/sh\ngit commit -q --allow-empty -m reviewed -m 'dwp-state: done'\n");
    r.handler(".dwp/command/explode", "#!/bin/sh\necho '<script>alert(2)</script> went wrong' >&2\nexit 1\n");
    r.handler(".dwp/command/deploy", "#!/bin/sh\ngit commit -q --allow-empty -m shipped -m 'dwp-state: done'\n");
    r.write(NO_RETRIES.0, &format!("{}[states.deploy]\ntier = \"gate\"\n", NO_RETRIES.1));
    r.commit_all("handlers");
    let send = |branch: &str, state: &str, extra: &[&str]| {
        r.git(&["branch", branch, "main"]);
        let mut args = vec!["send", "--branch", branch, state, "-m", "do the task"];
        args.extend(extra);
        r.baton_ok(&args);
    };
    send("task/ok", "build", &[]);
    send("task/bad", "explode", &[]);
    send("task/gate", "deploy", &[]);
    send("task/ask", "waiting", &["--subject", EVIL_SUBJECT]);
    send(EVIL_BRANCH, "plan", &[]);
    // A parent and the child it spawned (the child's first state commit names its parent), and
    // a task that waits for task/ok.
    send("epic", "plan", &[]);
    r.git(&["branch", "epic-child", "epic"]);
    commit_on(&r, "epic-child", "child\n\ndo a part\n\ndwp-parent: epic\ndwp-state: plan\n");
    r.git(&["branch", "task/ui", "main"]);
    commit_on(&r, "task/ui", "ui\n\nafter the api\n\ndwp-depends-on: task/ok\ndwp-state: plan\n");
    // A run on the hostile branch whose failure record (written by hand, as another runner
    // might) carries markup in its error.
    commit_on(&r, EVIL_BRANCH, "claim\n\ndwp-origin-state: plan\ndwp-run-id: evil-run\ndwp-runner-id: <b>r</b>\ndwp-lease-seconds: 60\ndwp-state: working\n");
    commit_on(&r, EVIL_BRANCH, "failed\n\ndwp-origin-state: plan\ndwp-run-id: evil-run\ndwp-exit-code: 1\ndwp-error: <script>alert(2)</script> went wrong\ndwp-state: failed\n");
    // build -> review -> done on task/ok; explode fails; the gate is not claimed.
    for _ in 0..3 {
        run_json(&r, &["--branch", "task/*"]);
    }
    assert_eq!(r.state_of("task/ok"), "done");
    assert_eq!(r.state_of("task/bad"), "failed");
    assert_eq!(r.state_of("task/gate"), "deploy");
    r
}

/// `git baton report -o FILE ARGS…` in `r`; the parsed page.
fn report(r: &TestRepo, args: &[&str]) -> (PathBuf, Html) {
    let path = r.home().join("out").join("report.html");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut all = vec!["report", "-o", path.to_str().unwrap()];
    all.extend(args);
    r.baton_ok(&all);
    let page = std::fs::read_to_string(&path).unwrap();
    (path, Html::parse_document(&page))
}

/// Branch → state of the board's rows.
fn board_rows(doc: &Html) -> Vec<(String, String)> {
    doc.select(&sel("#board-table tbody tr.task"))
        .map(|tr| {
            let branch = text(tr.select(&sel("td.branch")).next().expect("branch cell"));
            (branch, tr.value().attr("data-state").unwrap_or("").to_owned())
        })
        .collect()
}

#[test]
fn the_page_shows_the_board_inbox_runs_graphs_and_metrics() {
    let r = board();
    let (path, doc) = report(&r, &["--json"]);

    // The board: one row per task (main carries no state and is no task), with its state.
    let mut rows = board_rows(&doc);
    rows.sort();
    let want: Vec<(String, String)> = [
        ("epic", "plan"),
        ("epic-child", "plan"),
        (EVIL_BRANCH, "failed"),
        ("task/ask", "waiting"),
        ("task/bad", "failed"),
        ("task/gate", "deploy"),
        ("task/ok", "done"),
        ("task/ui", "plan"),
    ]
    .iter()
    .map(|(b, s)| (b.to_string(), s.to_string()))
    .collect();
    let mut want = want;
    want.sort();
    assert_eq!(rows, want);
    // The child names its parent; the dependant names its dependency; task/ok shows its spend.
    let row_of = |branch: &str| {
        doc.select(&sel("#board-table tbody tr.task"))
            .find(|tr| text(tr.select(&sel("td.branch")).next().unwrap()) == branch)
            .unwrap_or_else(|| panic!("no row for {branch}"))
    };
    let cells = |branch: &str| row_of(branch).select(&sel("td")).map(text).collect::<Vec<_>>();
    assert_eq!(cells("epic-child")[6], "epic");
    assert_eq!(cells("task/ui")[7], "task/ok");
    assert!(
        cells("task/ok")[5].contains("2 runs") && cells("task/ok")[5].contains("cost 0.5"),
        "{:?}",
        cells("task/ok")
    );

    // The inbox: the gate, the waiting task and the dead letter the failure became, each with the
    // command that answers it.
    let items: Vec<(String, String, String)> = doc
        .select(&sel("#inbox-table tbody tr.item"))
        .map(|tr| {
            let td: Vec<String> = tr.select(&sel("td")).map(text).collect();
            (td[0].clone(), td[1].clone(), text(tr.select(&sel("code.command")).next().unwrap()))
        })
        .collect();
    assert_eq!(items.len(), 3, "{items:?}");
    let dead = items.iter().find(|i| i.0 == "dead-letter").expect("a dead letter");
    assert!(dead.1 == "task/bad" && dead.2.starts_with("git baton dlq retry task/bad"), "{dead:?}");
    let gate = items.iter().find(|i| i.0 == "gate").expect("a gate item");
    assert_eq!(gate.1, "task/gate");
    assert!(gate.2.starts_with("git baton approve task/gate"), "{gate:?}");
    let ask = items.iter().find(|i| i.0 == "waiting").expect("a waiting item");
    assert!(ask.2.starts_with("git baton send --branch task/ask"), "{ask:?}");

    // The timeline: one bar per run, as `git baton metrics` counts them, the failure in red with
    // its error in the hover text.
    let metrics: serde_json::Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json"])).unwrap();
    let bars: Vec<ElementRef> = doc.select(&sel("#timeline-svg rect.run")).collect();
    assert_eq!(bars.len() as u64, metrics["runs"].as_u64().unwrap());
    assert_eq!(bars.len(), 4, "build, review, explode, and the hand-written one");
    let failed: Vec<&ElementRef> = bars.iter().filter(|b| b.value().classes().any(|c| c == "failed")).collect();
    assert_eq!(failed.len(), 2);
    let hovers: Vec<String> =
        failed.iter().map(|b| text(b.select(&sel("title")).next().expect("hover title"))).collect();
    assert!(hovers.iter().any(|h| h.contains("explode → failed") && h.contains("runner ")), "{hovers:?}");
    let evil = hovers.iter().find(|h| h.starts_with("run evil-run")).expect("the hand-written run");
    assert!(
        evil.contains("runner <b>r</b>") && evil.contains("error: <script>alert(2)</script> went wrong"),
        "as text: {evil}"
    );
    let lanes: Vec<String> = doc.select(&sel("#timeline-svg g.lane > text > title")).map(text).collect();
    assert_eq!(lanes.len(), 3, "{lanes:?}");
    assert!(lanes.contains(&"task/ok".to_owned()) && lanes.contains(&EVIL_BRANCH.to_owned()), "{lanes:?}");

    // The graphs: states with counted transitions; the tree and the dependency.
    let states: Vec<String> = doc.select(&sel("#state-graph g.node > title")).map(text).collect();
    for s in ["state build", "state review", "state done", "state explode", "state failed"] {
        assert!(states.contains(&s.to_owned()), "{s} in {states:?}");
    }
    let edges: Vec<String> = doc.select(&sel("#state-graph g.edge-g > title")).map(text).collect();
    assert!(edges.contains(&"build → review: 1".to_owned()), "{edges:?}");
    let tree: Vec<String> = doc.select(&sel("#task-graph g.edge-g > title")).map(text).collect();
    assert!(tree.contains(&"epic is the parent of epic-child".to_owned()), "{tree:?}");
    assert!(tree.contains(&"task/ui depends on task/ok being done".to_owned()), "{tree:?}");
    assert_eq!(doc.select(&sel("#task-graph path.edge.dep")).count(), 1);

    // Metrics: a row per state, the escalation gauge with its healthy band.
    let metric_states: Vec<String> = doc.select(&sel("#metrics-table tbody tr td:first-child")).map(text).collect();
    assert_eq!(metric_states, ["build", "explode", "plan", "review"]);
    assert_eq!(doc.select(&sel("#escalation-gauge rect.healthy-band")).count(), 1);

    // Hostile text is text: the only script is the page's own, nothing carries an event handler,
    // and the names read back exactly.
    assert_eq!(doc.select(&sel("script")).count(), 1);
    assert_eq!(doc.select(&sel("img")).count(), 0);
    for e in doc.select(&sel("*")) {
        assert!(!e.value().attrs().any(|(k, _)| k.starts_with("on")), "an event handler attribute on {:?}", e.value());
    }
    assert!(text(row_of("task/ask")).contains("waiting"));
    let summaries: Vec<String> = doc.select(&sel("#inbox-table tbody tr.item td:nth-child(5)")).map(text).collect();
    assert!(summaries.iter().any(|s| s == EVIL_SUBJECT), "{summaries:?}");
    // Every row has the same cells (a `</td></tr>` in a subject closed nothing).
    for tr in doc.select(&sel("#inbox-table tbody tr")) {
        assert_eq!(tr.select(&sel("td")).count(), 6);
    }

    // --json says what was written; no temporary file is left next to it.
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("report.html")]);
}

#[test]
fn since_and_branch_select_and_bad_input_writes_nothing() {
    let r = board();
    let (_, doc) = report(&r, &["--branch", "task/b*"]);
    assert_eq!(board_rows(&doc), [("task/bad".to_owned(), "failed".to_owned())]);
    assert_eq!(doc.select(&sel("#timeline-svg rect.run")).count(), 1);
    // Every run of the fixture is in the past: none since a far date.
    let (_, doc) = report(&r, &["--since", "2999-01-01"]);
    assert_eq!(doc.select(&sel("#timeline-svg rect.run")).count(), 0);
    assert_eq!(board_rows(&doc).len(), 8, "the board is always the current one");

    let out = r.home().join("bad.html");
    let cases: [(Vec<&str>, i32, bool); 3] = [
        (vec!["report", "-o", out.to_str().unwrap(), "--since", "yesterday-ish"], 2, true),
        (vec!["report", "--json"], 2, false),
        (vec!["report", "-o", "/nonexistent/dir/report.html"], 1, true),
    ];
    for (args, code, one_line) in cases {
        let o = r.baton(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!one_line || err.trim().lines().count() == 1, "one line: {err}");
        assert!(o.stdout.is_empty() && !out.exists());
    }
    // Without -o the page goes to stdout.
    let page = r.baton_ok(&["report", "--branch", "epic"]);
    let doc = Html::parse_document(&page);
    assert_eq!(board_rows(&doc), [("epic".to_owned(), "plan".to_owned())]);
}

/// `git baton watch ARGS…` with debug logs; (success, how often the report was rewritten).
fn watch(r: &TestRepo, args: &[&str]) -> usize {
    let mut all = vec!["watch"];
    all.extend(args);
    let out = r.baton_cmd(&all).env("RUST_LOG", "git_baton=debug").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    err.lines().filter(|l| l.contains("report rewritten")).count()
}

#[test]
fn watch_rewrites_the_report_when_something_changed() {
    let r = board();
    r.git(&["branch", "task/more", "main"]);
    r.baton_ok(&["send", "--branch", "task/more", "build", "-m", "more"]);
    let path = r.home().join("site").join("index.html");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = path.to_str().unwrap();
    let rewrites = watch(&r, &["--interval", "0.2", "--max-ticks", "4", "--report", file, "--branch", "task/more"]);
    assert_eq!(r.state_of("task/more"), "done");
    assert!(rewrites >= 2, "written at the start and after the handlers answered: {rewrites}");
    let doc = Html::parse_document(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(board_rows(&doc), [("task/more".to_owned(), "done".to_owned())], "the page shows the last state");
    assert_eq!(doc.select(&sel("#timeline-svg rect.run")).count(), 2);
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("index.html")], "no temporary file left");
    // Nothing moves: written once when the watch starts, never again.
    let rewrites = watch(&r, &["--interval", "0.1", "--max-ticks", "4", "--report", file, "--branch", "task/more"]);
    assert_eq!(rewrites, 1);
    assert!(r.baton(&["watch", "--max-ticks", "1", "--report", "/"]).status.code() == Some(2));
}

// --- headless Chromium -------------------------------------------------------------------------

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(name))
            .find(|p| p.is_file());
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Run headless Chromium on `url` with `args`, its own profile, and a time limit; (stdout,
/// stderr).
fn browse(chrome: &Path, profile: &Path, url: &str, args: &[&str]) -> (String, String) {
    let out_file = profile.join("stdout");
    let err_file = profile.join("stderr");
    let mut child = Command::new(chrome)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", profile.join("profile").display()),
        ])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 90 s: {}", std::fs::read_to_string(&err_file).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (std::fs::read_to_string(&out_file).unwrap(), std::fs::read_to_string(&err_file).unwrap())
}

/// Console messages and uncaught errors in Chromium's log.
fn console_problems(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect()
}

#[test]
fn the_page_works_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPED the_page_works_in_headless_chromium: no chromium on PATH and it could  !!!\n\
             !!! not be installed here (.ci/run installs Debian's `chromium` when it can).      !!!\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    };
    let r = board();
    let (path, _) = report(&r, &[]);
    let url = format!("file://{}", path.display());
    let scratch = tempfile::tempdir().unwrap();

    // The scan for console errors sees one when there is one.
    let broken = scratch.path().join("broken.html");
    std::fs::write(&broken, "<!DOCTYPE html><html><body><script>thisIsNotDefined();</script></body></html>").unwrap();
    let p = scratch.path().join("p0");
    std::fs::create_dir(&p).unwrap();
    let (_, err) = browse(&chrome, &p, &format!("file://{}", broken.display()), &["--dump-dom"]);
    assert!(!console_problems(&err).is_empty(), "the console scan must see a deliberate error:\n{err}");

    // The filter in the URL is applied on load: only task/bad's row stays visible.
    let p = scratch.path().join("p1");
    std::fs::create_dir(&p).unwrap();
    let (dom, err) = browse(&chrome, &p, &format!("{url}#filter=task%2Fbad"), &["--dump-dom"]);
    assert_eq!(console_problems(&err), Vec::<&str>::new(), "console errors:\n{err}");
    let doc = Html::parse_document(&dom);
    let rows: Vec<(String, bool)> = doc
        .select(&sel("#board-table tbody tr.task"))
        .map(|tr| (text(tr.select(&sel("td.branch")).next().unwrap()), tr.value().attr("hidden").is_some()))
        .collect();
    assert_eq!(rows.len(), 8, "{rows:?}");
    let visible: Vec<&str> = rows.iter().filter(|(_, hidden)| !hidden).map(|(b, _)| b.as_str()).collect();
    assert_eq!(visible, ["task/bad"], "{rows:?}");
    assert_eq!(text(doc.select(&sel("#shown")).next().unwrap()), "1");
    // ?q= works too, and filters the inbox as well.
    let p = scratch.path().join("p2");
    std::fs::create_dir(&p).unwrap();
    let (dom, err) = browse(&chrome, &p, &format!("{url}?q=gate"), &["--dump-dom"]);
    assert_eq!(console_problems(&err), Vec::<&str>::new(), "console errors:\n{err}");
    let doc = Html::parse_document(&dom);
    let shown = |s: &str| doc.select(&sel(s)).filter(|tr| tr.value().attr("hidden").is_none()).count();
    assert_eq!(shown("#board-table tbody tr"), 1);
    assert_eq!(shown("#inbox-table tbody tr"), 1);

    // A screenshot, for people and for the README.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let p = scratch.path().join("p3");
    std::fs::create_dir(&p).unwrap();
    let (_, err) = browse(
        &chrome,
        &p,
        &url,
        &[&format!("--screenshot={}", shot.display()), "--window-size=1400,1000", "--hide-scrollbars"],
    );
    assert_eq!(console_problems(&err), Vec::<&str>::new(), "console errors:\n{err}");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}\n{err}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());
}

/// A big board (300 branches, written by one `git fast-import` stream) is read on several
/// threads and cut on the page: every run is counted, the timeline shows the 60 branches with the
/// newest runs and says so, and a child that shares its parent's history draws only its own runs.
#[test]
fn a_big_board_is_cut_and_says_so() {
    let r = TestRepo::new();
    let mut s = String::new();
    let mut mark = 0;
    let mut commit = |s: &mut String, branch: &str, t: u64, msg: &str, from: Option<String>| {
        mark += 1;
        s.push_str(&format!(
            "commit refs/heads/{branch}\nmark :{mark}\ncommitter B <b@x> {t} +0000\ndata {}\n{msg}\n",
            msg.len()
        ));
        if let Some(f) = from {
            s.push_str(&format!("from {f}\n"));
        }
        s.push('\n');
        mark
    };
    let root = commit(&mut s, "main", 1_700_000_000, "root\n", None);
    let mut runs = 0;
    for b in 0..300u64 {
        let branch = format!("t/{b:03}");
        let t = 1_700_000_100 + b * 100;
        commit(&mut s, &branch, t, "send\n\ndwp-state: build\n", Some(format!(":{root}")));
        for k in 0..2u64 {
            runs += 1;
            let claim = format!(
                "claim\n\ndwp-origin-state: build\ndwp-run-id: r-{b}-{k}\ndwp-runner-id: x\ndwp-state: working\n"
            );
            commit(&mut s, &branch, t + 10 * k + 1, &claim, None);
            let next = if k == 1 && b % 3 == 0 { "done" } else { "build" };
            commit(&mut s, &branch, t + 10 * k + 5, &format!("answer\n\ndwp-state: {next}\n"), None);
        }
    }
    // A child spawned from t/299's head, with one run of its own.
    let child = "t/299-child";
    s.push_str(&format!("reset refs/heads/{child}\nfrom refs/heads/t/299\n\n"));
    commit(&mut s, child, 1_800_000_000, "child\n\ndwp-parent: t/299\ndwp-state: build\n", None);
    commit(
        &mut s,
        child,
        1_800_000_001,
        "claim\n\ndwp-origin-state: build\ndwp-run-id: r-child\ndwp-state: working\n",
        None,
    );
    commit(&mut s, child, 1_800_000_009, "answer\n\ndwp-state: done\n", None);
    runs += 1;
    s.push_str("done\n");
    r.git_bytes(&["fast-import", "--quiet", "--done"], s.as_bytes());

    let (_, doc) = report(&r, &[]);
    assert_eq!(board_rows(&doc).len(), 301);
    let metrics: serde_json::Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json"])).unwrap();
    assert_eq!(metrics["runs"], runs);
    let summary = text(doc.select(&sel("#summary p")).next().unwrap());
    assert!(summary.contains(&format!("{runs} runs")), "{summary}");
    let lanes: Vec<String> = doc.select(&sel("#timeline-svg g.lane > text > title")).map(text).collect();
    assert_eq!(lanes.len(), 60);
    assert_eq!(lanes[0], child, "the newest runs first");
    assert_eq!(lanes[1], "t/299");
    let child_bars = doc.select(&sel("#timeline-svg g.lane")).next().unwrap().select(&sel("rect.run")).count();
    assert_eq!(child_bars, 1, "the parent's runs stay in the parent's lane");
    assert_eq!(
        doc.select(&sel("#timeline-svg rect.run")).count(),
        119,
        "the child's run and 2 for each of 59 branches"
    );
    let note = text(doc.select(&sel("#timeline p.note")).next().unwrap());
    assert!(note.contains(&format!("119 of {runs} runs on 60 of 301 branches")) && note.contains("cut"), "{note}");
    let tree: Vec<String> = doc.select(&sel("#task-graph g.edge-g > title")).map(text).collect();
    assert_eq!(tree, [format!("t/299 is the parent of {child}")]);
}

/// The fan-out pattern example (`examples/patterns/fan-out.sh`: a parent spawns six children and
/// joins them), then its report: a row per task, the tree parent → child for each child, one bar
/// per run as `git baton log` reads them.
#[test]
fn the_fan_out_example_reports_its_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, scratch) = (tmp.path().join("home"), tmp.path().join("tmp"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/patterns/fan-out.sh");
    let out = common::command_in(&home, "bash", tmp.path(), &[script])
        .env("GIT_BATON", common::BATON)
        .env("TMPDIR", &scratch)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let repo = stdout
        .lines()
        .find_map(|l| l.strip_prefix("== repository: "))
        .and_then(|rest| rest.split(' ').next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no repository path:\n{stdout}"));
    let page = tmp.path().join("report.html");
    let out =
        common::command_in(&home, common::BATON, &repo, &["report", "-o", page.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = Html::parse_document(&std::fs::read_to_string(&page).unwrap());
    let modules = ["auth", "billing", "cache", "mailer", "search", "storage"];
    let rows: std::collections::BTreeMap<String, String> = board_rows(&doc).into_iter().collect();
    assert_eq!(rows.get("docs").map(String::as_str), Some("done"), "{rows:?}");
    for m in modules {
        assert_eq!(rows.get(&format!("docs-{m}")).map(String::as_str), Some("done"), "{rows:?}");
    }
    let mut tree: Vec<String> = doc.select(&sel("#task-graph g.edge-g > title")).map(text).collect();
    tree.sort();
    let want: Vec<String> = modules.iter().map(|m| format!("docs is the parent of docs-{m}")).collect();
    assert_eq!(tree, want);
    let log = common::command_in(&home, common::BATON, &repo, &["log", "--all", "--json"]).output().unwrap();
    let runs = String::from_utf8_lossy(&log.stdout).lines().filter(|l| l.contains("\"kind\":\"run\"")).count();
    assert!(runs >= 8, "plan, six documents, synthesize: {runs}");
    assert_eq!(doc.select(&sel("#timeline-svg rect.run")).count(), runs);
}
