//! `git baton tree` and `status --tree`: the parent/child tree of tasks from `dwp-parent`.

mod common;

use common::{repo_with, TestRepo};
use serde_json::Value;

const DONE: &str = "#!/bin/sh\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n";

/// A child task as `spawn` leaves it: a state commit naming its parent, on a branch made from it.
fn child(r: &TestRepo, name: &str, parent: &str, state: &str) {
    r.git(&["branch", name, parent]);
    r.baton_ok(&[
        "send",
        "--branch",
        name,
        state,
        "--trailer",
        &format!("dwp-parent: {parent}"),
        "--trailer",
        "dwp-correlation-id: fan-1",
    ]);
}

fn tree_json(r: &TestRepo, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["tree", "--json"];
    all.extend(args);
    r.baton_ok(&all).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn children_stay_under_their_parent_after_their_handlers_answer() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    r.git(&["branch", "sup", "main"]);
    r.baton_ok(&["send", "--branch", "sup", "waiting"]);
    child(&r, "w-b", "sup", "build");
    child(&r, "w-a", "sup", "build");
    child(&r, "w-a-1", "w-a", "hold");
    r.git(&["branch", "loner", "main"]);
    r.baton_ok(&["send", "--branch", "loner", "hold"]);
    // A task started from a child's current head is not that child's child.
    r.git(&["branch", "later", "w-a-1"]);
    r.baton_ok(&["send", "--branch", "later", "hold"]);
    // The runner claims and the handler answers: the heads no longer carry dwp-parent.
    r.baton_ok(&["run"]);
    assert_eq!(r.state_of("w-a"), "done");
    assert!(r.trailer_of("w-a", "dwp-parent").is_none());

    assert_eq!(
        r.baton_ok(&["tree"]),
        "sup            waiting\n├── w-a        done\n│   └── w-a-1  hold\n└── w-b        done\n"
    );
    let nodes = tree_json(&r, &[]);
    let got: Vec<(String, u64, Option<String>)> = nodes
        .iter()
        .map(|n| {
            (
                n["branch"].as_str().unwrap().to_owned(),
                n["depth"].as_u64().unwrap(),
                n["parent"].as_str().map(Into::into),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("sup".into(), 0, None),
            ("w-a".into(), 1, Some("sup".into())),
            ("w-a-1".into(), 2, Some("w-a".into())),
            ("w-b".into(), 1, Some("sup".into())),
        ]
    );
    assert_eq!(nodes[1]["correlation_id"], "fan-1");
    // A subtree; every task with --all (loner and later are roots of their own).
    let sub: Vec<String> = tree_json(&r, &["w-a"]).iter().map(|n| n["branch"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sub, ["w-a", "w-a-1"]);
    let all: Vec<String> = tree_json(&r, &["--all"]).iter().map(|n| n["branch"].as_str().unwrap().to_owned()).collect();
    assert_eq!(all, ["later", "loner", "main", "sup", "w-a", "w-a-1", "w-b"]);

    // status --tree orders the board the same way and draws the rails.
    let status = r.baton_ok(&["status", "--tree"]);
    let order: Vec<&str> = status
        .lines()
        .skip(1)
        .map(|l| l.split("  ").find(|w| !w.trim().is_empty() && w.trim() != "│").unwrap().trim())
        .collect();
    assert_eq!(order, ["later", "loner", "main", "sup", "├── w-a", "└── w-a-1", "└── w-b"]);
    assert!(status.contains("\n│   └── w-a-1  "), "{status}");
    assert!(status.lines().nth(1).unwrap().starts_with("later   "), "{status}");
}

#[test]
fn a_missing_parent_or_a_loop_is_said_and_an_unknown_branch_refused() {
    let r = repo_with(&[]);
    r.git(&["branch", "a", "main"]);
    r.baton_ok(&["send", "--branch", "a", "hold", "--trailer", "dwp-parent: b"]);
    r.git(&["branch", "b", "main"]);
    r.baton_ok(&["send", "--branch", "b", "hold", "--trailer", "dwp-parent: a"]);
    r.git(&["branch", "c", "main"]);
    r.baton_ok(&["send", "--branch", "c", "hold", "--trailer", "dwp-parent: gone"]);
    let out = r.baton_ok(&["tree"]);
    assert!(out.contains("a      hold  (dwp-parent b loops back)"), "{out}");
    assert!(out.contains("└── b  hold"), "{out}");
    assert!(out.contains("c      hold  (parent gone is gone)"), "{out}");
    let out = r.baton(&["tree", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "git-baton: error: no branch named \"nope\"");
}

#[test]
fn no_families_prints_nothing_on_stdout() {
    let r = repo_with(&[]);
    let out = r.baton(&["tree"]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b""[..]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no parent/child tasks"));
    assert_eq!(r.baton_ok(&["tree", "--json"]), "");
}

#[test]
fn a_parent_waiting_on_a_join_says_how_far_its_children_are() {
    const PLAN: &str = "#!/bin/sh\nset -e\ngit baton spawn kid-a ok -m a\ngit baton spawn kid-b hold -m b\ngit baton join --then merge -m wait\n";
    const OK: &str = "#!/bin/sh\ngit commit -q --allow-empty -m did -m 'dwp-state: done'\n";
    let r = repo_with(&[(".dwp/command/plan", PLAN), (".dwp/command/ok", OK)]);
    r.git(&["branch", "sup", "main"]);
    r.baton_ok(&["send", "--branch", "sup", "plan"]);
    let bin = std::path::Path::new(common::BATON).parent().unwrap().display().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap());
    let tick = |r: &TestRepo| {
        let out = r.baton_cmd(&["run"]).env("PATH", &path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    tick(&r);
    assert_eq!(r.state_of("sup"), "waiting");
    assert_eq!(r.baton_ok(&["tree"]), "sup        waiting  join all: 0/2 done\n├── kid-a  ok\n└── kid-b  hold\n");
    tick(&r);
    let drawn = r.baton_ok(&["tree", "sup"]);
    assert!(drawn.starts_with("sup        waiting  join all: 1/2 done\n├── kid-a  done"), "{drawn}");
    let json = tree_json(&r, &[]);
    assert_eq!(json[0]["note"], "join all: 1/2 done");
    assert_eq!(json[1]["role"], Value::Null);
}

#[test]
fn answered_children_stay_under_their_parent_after_main_moves_on_and_branches_off_main_are_no_ones_children() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    r.git(&["branch", "sup", "main"]);
    r.baton_ok(&["send", "--branch", "sup", "waiting"]);
    child(&r, "kid", "sup", "build");
    r.baton_ok(&["run"]);
    assert!(r.trailer_of("kid", "dwp-parent").is_none());
    // main moves on after the family was made, one of its commits naming a parent.
    r.git(&["commit", "-q", "--allow-empty", "-m", "from a task", "-m", "dwp-parent: sup"]);
    for i in 0..30 {
        r.git(&["commit", "-q", "--allow-empty", "-m", &format!("main {i}")]);
    }
    // A branch started from main now is nobody's child, though main's history names a parent.
    r.git(&["branch", "feature", "main"]);
    r.baton_ok(&["send", "--branch", "feature", "hold"]);
    let got: Vec<(String, Option<String>)> = tree_json(&r, &["--all"])
        .iter()
        .map(|n| (n["branch"].as_str().unwrap().to_owned(), n["parent"].as_str().map(Into::into)))
        .collect();
    assert!(got.contains(&("kid".into(), Some("sup".into()))), "{got:?}");
    assert!(got.contains(&("feature".into(), None)), "{got:?}");
    assert!(got.contains(&("main".into(), None)), "{got:?}");
}
