//! The board lists the branches git lists, each at the commit git resolves: loose refs over
//! packed ones, packed-only refs, nested names, a symbolic ref, a `.lock` file left by a writer
//! (not a branch), local and remote-tracking — differential against `git for-each-ref`.

mod common;

use std::collections::BTreeMap;

use common::{json_lines, TestRepo};

fn by_git(r: &TestRepo, prefix: &str, strip: &str) -> BTreeMap<String, String> {
    r.git(&["for-each-ref", "--format=%(refname) %(objectname)", prefix])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| !name.ends_with("/HEAD"))
        .map(|(name, id)| (name.strip_prefix(strip).unwrap().to_owned(), id.to_owned()))
        .collect()
}

fn by_baton(r: &TestRepo, args: &[&str]) -> BTreeMap<String, String> {
    json_lines(&r.baton_ok(args))
        .iter()
        .map(|row| (row["branch"].as_str().unwrap().to_owned(), row["commit"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn branches_and_heads_are_what_git_resolves() {
    let r = TestRepo::new();
    r.commit_all("one");
    let one = r.head("main");
    r.git(&["commit", "-q", "--allow-empty", "-m", "two"]);
    let two = r.head("main");
    for b in ["packed-only", "stale", "deep/a/b", "deep/c"] {
        r.git(&["branch", b, &one]);
    }
    r.git(&["pack-refs", "--all"]);
    // Loose after packing: `stale` moves (the packed line is now stale), `loose-only` is new.
    r.git(&["update-ref", "refs/heads/stale", &two]);
    r.git(&["branch", "loose-only", &two]);
    r.git(&["symbolic-ref", "refs/heads/alias", "refs/heads/loose-only"]);
    let git_dir = r.path.join(".git");
    std::fs::write(git_dir.join("refs/heads/being-written.lock"), format!("{two}\n")).unwrap();
    // A remote's tracking branches, packed and loose, with its HEAD pointer.
    r.git(&["update-ref", "refs/remotes/origin/packed", &one]);
    r.git(&["pack-refs", "--all"]);
    r.git(&["update-ref", "refs/remotes/origin/loose", &two]);
    r.git(&["symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/loose"]);
    r.git(&["config", "remote.origin.url", "/nowhere"]);

    let git = by_git(&r, "refs/heads/", "refs/heads/");
    assert_eq!(git.get("stale"), Some(&two), "the loose ref wins: {git:?}");
    assert!(git.contains_key("packed-only") && git.contains_key("alias") && !git.contains_key("being-written.lock"));
    assert_eq!(by_baton(&r, &["status", "--json"]), git);

    let mut remote = by_git(&r, "refs/remotes/origin/", "refs/remotes/");
    remote.retain(|k, _| !k.ends_with("HEAD"));
    assert_eq!(by_baton(&r, &["status", "--json", "--remote", "origin"]), remote);
    assert_eq!(remote.len(), 2, "{remote:?}");
}
