//! The two-pass history walk behind `log`, `metrics` and `graph`, against git's own answer:
//! with and without a commit-graph, keeping all, some or none of the commit objects pass 1 read,
//! long enough for pass 2's reader threads, and cut by `--since`.

mod common;

use common::TestRepo;
use git_baton::protocol::StateRead;
use git_baton::repo::walk::HistoryWalk;
use git_baton::repo::Repo;

const N: usize = 3000;

/// A linear history of N commits at times 1,000,000 + i; every third has a `dwp-state`.
fn long_history() -> TestRepo {
    let r = TestRepo::new();
    let mut stream = String::new();
    for i in 0..N {
        let msg = match i % 3 {
            0 => format!("send {i}\n\nbody {i}\n\nReviewed-by: X\ndwp-state: s{}\n", i % 7),
            1 => format!("work {i}\n"),
            _ => format!("more {i}\n\nSigned-off-by: A <a@x>\n"),
        };
        let who = if i % 2 == 0 { "Ann <ann@x>" } else { "Bob <bob@x>" };
        let t = 1_000_000 + i;
        stream += &format!(
            "commit refs/heads/main\nauthor {who} {t} +0000\ncommitter {who} {t} +0000\ndata {}\n{msg}\n",
            msg.len()
        );
    }
    stream += "done\n";
    r.git_bytes(&["fast-import", "--quiet", "--done"], stream.as_bytes());
    r
}

/// `(id, time, author, dwp-state)` oldest first, as git reads them.
fn git_view(r: &TestRepo) -> Vec<(String, i64, String, String)> {
    r.git(&[
        "log",
        "--first-parent",
        "--reverse",
        "--format=%H %ct %an <%ae>%x09%(trailers:key=dwp-state,valueonly,separator=)",
        "main",
    ])
    .lines()
    .map(|l| {
        let (head, state) = l.split_once('\t').unwrap();
        let mut parts = head.splitn(3, ' ');
        let id = parts.next().unwrap().to_owned();
        let time = parts.next().unwrap().parse().unwrap();
        (id, time, parts.next().unwrap().to_owned(), state.to_owned())
    })
    .collect()
}

/// `(id, time, author, dwp-state, visible)` as the walk hands them out.
fn baton_view(r: &TestRepo, walk: &mut HistoryWalk<'_>) -> Vec<(String, i64, String, String, bool)> {
    let repo = Repo::discover(&r.path).unwrap();
    let tip = repo.resolve_commit("main").unwrap();
    let walked = repo.history_ids(tip, walk).unwrap();
    let mut out = Vec::new();
    repo.for_each_oldest_first(walked, |c, visible| {
        assert!(c.message.is_empty(), "the walk hands out commits without messages");
        let state = match c.state() {
            StateRead::Valid(s) => s.to_string(),
            _ => String::new(),
        };
        out.push((c.id.to_string(), c.committer_time, c.author.clone(), state, visible));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn walk_hands_out_every_commit_oldest_first_like_git() {
    let r = long_history();
    let want = git_view(&r);
    assert_eq!(want.len(), N);
    // No commit-graph; one that holds only the oldest 1,501 commits (a stale graph: the newer
    // ones are read from objects); one that holds everything.
    for graph in ["none", "stale", "full"] {
        match graph {
            "stale" => {
                r.git_bytes(&["commit-graph", "write", "--stdin-commits"], format!("{}\n", want[1500].0).as_bytes());
            }
            "full" => {
                r.git(&["commit-graph", "write", "--reachable"]);
            }
            _ => {}
        }
        for keep in [0, 20_000, usize::MAX] {
            let got = baton_view(&r, &mut HistoryWalk { keep_bytes: keep, ..HistoryWalk::default() });
            let got: Vec<_> = got
                .into_iter()
                .map(|(id, t, a, s, visible)| {
                    assert!(visible);
                    (id, t, a, s)
                })
                .collect();
            assert_eq!(got, want, "graph={graph} keep={keep}");
        }
    }
}

#[test]
fn since_cuts_the_walk_after_the_newest_state_commit_before_it() {
    let r = long_history();
    let want = git_view(&r);
    // Commits 2003 and 2002 (oldest first) have no state, 2001 has one: from 2003 on is visible,
    // 2002 and 2001 are context.
    let since = want[2003].1;
    for graph in [false, true] {
        if graph {
            r.git(&["commit-graph", "write", "--reachable"]);
        }
        let got = baton_view(&r, &mut HistoryWalk { since: Some(since), ..HistoryWalk::default() });
        let ids: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        let want_ids: Vec<&str> = want[2001..].iter().map(|w| w.0.as_str()).collect();
        assert_eq!(ids, want_ids, "graph={graph}");
        let visible: Vec<bool> = got.iter().map(|g| g.4).collect();
        assert_eq!(visible[..2], [false, false]);
        assert!(visible[2..].iter().all(|v| *v));
        assert_eq!(got[0].3, "s6", "the context starts at a state commit");
    }
}

/// Walks of several branches share a `seen` set: a branch's walk ends where an earlier one went,
/// after the context back to a state commit.
#[test]
fn seen_commits_end_a_later_walk() {
    let r = long_history();
    let want = git_view(&r);
    r.git(&["branch", "side", &want[2500].0]);
    let mut seen = std::collections::HashSet::new();
    let side = {
        let repo = Repo::discover(&r.path).unwrap();
        let tip = repo.resolve_commit("side").unwrap();
        let walk = &mut HistoryWalk { seen: Some(&mut seen), ..HistoryWalk::default() };
        repo.history_ids(tip, walk).unwrap().ids.len()
    };
    assert_eq!(side, 2501);
    let main = baton_view(&r, &mut HistoryWalk { seen: Some(&mut seen), ..HistoryWalk::default() });
    let fresh = main.iter().filter(|g| g.4).count();
    assert_eq!(fresh, N - 2501);
    // 2500 is seen (no state): context back to 2499, a state commit.
    assert_eq!(main.len(), N - 2499);
}
