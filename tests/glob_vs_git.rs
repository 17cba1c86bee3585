//! `--branch GLOB` matches exactly the branches `git branch --list GLOB` lists: the same
//! wildmatch rules (gix's port of git's), differential on tricky patterns and names.

mod common;

use std::collections::BTreeSet;

use common::{json_lines, TestRepo};

const NAMES: &[&str] = &[
    "main",
    "tasks",
    "task/a1",
    "task/a/b",
    "task/b/c",
    "task-1",
    "task-12",
    "task-x",
    "tusk",
    "x]",
    "x]y",
    "a]b",
    "a-b",
    "a.b",
    "abc",
    "axxbyyc",
    "UPPER",
    "über",
    "1st",
    "x!y",
    "fix/{a}",
    "deep/er/still/c",
];

const PATTERNS: &[&str] = &[
    "*",
    "tasks",
    "task/*",
    "task*",
    "task/**",
    "**/b",
    "*/*/c",
    "*/c",
    "t?sk",
    "t?sk*",
    "task-[0-9]",
    "task-[0-9]*",
    "task-[!0-9]",
    "task-[^0-9]",
    "task-[a-z]",
    "[",
    "task/[",
    "*[",
    "x[]]",
    "x[]]*",
    "x[!]]*",
    "[]a]*",
    "[a-]*",
    "[z-a]*",
    "[[:digit:]]*",
    "[[:alpha:]]*",
    "[[:upper:]]*",
    "[[:bogus:]]*",
    "\\x*",
    "x\\]",
    "a*b*c",
    "*a*a*a*a*a*a*a*a*b",
    "?",
    "????",
    "?ber",
    "??ber",
    "ü*",
    "x!*",
    "fix/{a}",
    "fix/{*",
    "*.*",
    "[.-]*",
    "nothing-matches",
];

#[test]
fn branch_globs_match_what_git_branch_list_matches() {
    let r = TestRepo::new();
    r.commit_all("root");
    for n in NAMES {
        if *n != "main" {
            r.git(&["branch", n]);
        }
    }
    let mut disagreements = Vec::new();
    for p in PATTERNS {
        let by_git: BTreeSet<String> =
            r.git(&["branch", "--list", "--format=%(refname:short)", p]).lines().map(str::to_owned).collect();
        let ours: BTreeSet<String> = json_lines(&r.baton_ok(&["status", "--json", "--branch", p]))
            .iter()
            .map(|row| row["branch"].as_str().unwrap().to_owned())
            .collect();
        if by_git != ours {
            disagreements.push(format!("{p:?}: git {by_git:?}, git-baton {ours:?}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // The comparison is not vacuous: patterns that match several names and none.
    let count = |p: &str| r.git(&["branch", "--list", p]).lines().count();
    assert_eq!(count("task/*"), 3);
    assert_eq!(count("["), 0);
    assert_eq!(count("x[]]"), 1);
}
