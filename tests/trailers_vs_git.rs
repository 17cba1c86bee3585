//! Differential tests: git-baton's trailer parser against `git log --format=%(trailers:only,unfold)`.
//! Thousands of random messages from a palette of tricky lines, written as real commits with
//! `git fast-import`, read back by git (the oracle), by the library parser and by the binary.

mod common;

use common::{Rng, TestRepo};
use git_baton::protocol::trailers::{format_git, parse};

const PALETTE: &[&[u8]] = &[
    b"Signed-off-by: A U Thor <author@example.com>",
    b"Signed-off-by:no-space",
    b"(cherry picked from commit 0123456789abcdef0123456789abcdef01234567)",
    b"dwp-state: review",
    b"dwp-state: ../etc",
    b"DWP-State: upper",
    b"Key: value",
    b"Key:value",
    b"Key :  spaced value  ",
    b"Key\t: tabbed",
    b"Key  \t  : many",
    b"key-with-dash: x",
    b"Key Word: two words",
    b"Key= equals",
    b"K\xc3\xa9y: accented key",
    b":starts with colon",
    b"-: dash key",
    b"Key:",
    b"Key: ",
    b"Key: value: with colon",
    b"Co-authored-by: Someone <s@example.com>",
    b"Reviewed-by: R <r@example.com>",
    b"  continued with spaces",
    b"\tcontinued with tab",
    b" ",
    b"",
    b"",
    b"",
    b"   ",
    b"\t",
    b"\r",
    b"# comment",
    b"#",
    b"# Key: commented trailer",
    b"# ------------------------ >8 ------------------------",
    b"Conflicts:",
    b"\tpath/file.c",
    b"---",
    b"--- a/file",
    b"plain text line",
    b"another line of body text",
    b"http://example.com: not a key",
    b"Key: crlf value\r",
    b"Key: \xff\xfe invalid utf8",
    b"\xc3( broken",
    b"\x0bKey: vertical tab",
    b"Key:\x0cformfeed",
    b" \x0b",
    b"A-very-long-key-name-1234567890: v",
    b"x",
    b"Title: like a trailer",
    b"Key: value # not a comment",
    b"Key:\tvalue",
    b"Key",
];

fn random_message(rng: &mut Rng) -> Vec<u8> {
    let mut msg = Vec::new();
    for _ in 0..rng.below(3) {
        msg.extend_from_slice(if rng.below(2) == 0 { b"\n" } else { b"  \n" });
    }
    let lines = 1 + rng.below(12);
    let crlf = rng.below(8) == 0;
    for i in 0..lines {
        let line = PALETTE[rng.below(PALETTE.len())];
        msg.extend_from_slice(line);
        if i + 1 < lines || rng.below(4) != 0 {
            msg.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
    }
    if rng.below(20) == 0 {
        // A NUL in the middle: git reads the message as a C string.
        let at = rng.below(msg.len() + 1);
        msg.insert(at, 0);
    }
    msg
}

/// Write the messages as a linear chain of commits with fast-import; return their ids in order.
fn write_commits(repo: &TestRepo, messages: &[Vec<u8>]) -> Vec<String> {
    let mut stream = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        stream.extend_from_slice(format!("commit refs/heads/main\nmark :{}\n", i + 1).as_bytes());
        stream.extend_from_slice(b"committer T <t@example.com> 1700000000 +0000\n");
        stream.extend_from_slice(format!("data {}\n", m.len()).as_bytes());
        stream.extend_from_slice(m);
        stream.extend_from_slice(b"\n");
    }
    let marks = repo.dir.path().join("marks");
    let marks_arg = format!("--export-marks={}", marks.display());
    repo.git_bytes(&["fast-import", "--quiet", &marks_arg], &stream);
    let text = std::fs::read_to_string(marks).unwrap();
    let mut ids = vec![String::new(); messages.len()];
    for line in text.lines() {
        let (mark, id) = line.split_once(' ').unwrap();
        let n: usize = mark.trim_start_matches(':').parse().unwrap();
        ids[n - 1] = id.to_owned();
    }
    ids
}

/// git's answer for each commit, in the order given.
fn git_trailers(repo: &TestRepo, ids: &[String]) -> Vec<Vec<u8>> {
    let stdin = ids.join("\n") + "\n";
    let out = repo.git_bytes(
        &["log", "--no-walk=unsorted", "--stdin", "--format=%x01%x02%(trailers:only,unfold)%x03"],
        stdin.as_bytes(),
    );
    let mut result = Vec::new();
    for rec in out.split(|&c| c == 3) {
        if let Some(start) = rec.windows(2).position(|w| w == [1, 2]) {
            result.push(rec[start + 2..].to_vec());
        }
    }
    assert_eq!(result.len(), ids.len(), "git printed a record per commit");
    result
}

fn check(repo: &TestRepo, messages: &[Vec<u8>]) {
    let ids = write_commits(repo, messages);
    let expected = git_trailers(repo, &ids);
    let mut failures = Vec::new();
    for ((m, id), want) in messages.iter().zip(&ids).zip(&expected) {
        let got = format_git(&parse(m));
        if &got != want {
            failures.push(format!(
                "commit {id}\nmessage: {:?}\n git: {:?}\n ours: {:?}",
                String::from_utf8_lossy(m),
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} messages differ from git:\n{}",
        failures.len(),
        messages.len(),
        failures[..failures.len().min(5)].join("\n")
    );

    // The binary reads the same commits from the repository (gix, one process) and agrees too.
    let mut args = vec!["trailers"];
    args.extend(ids.iter().map(String::as_str));
    let out = repo.baton(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut want_all = Vec::new();
    for w in &expected {
        want_all.extend_from_slice(w);
        want_all.push(b'\n');
    }
    assert!(out.stdout == want_all, "git baton trailers output differs from git log");
}

#[test]
fn random_messages_are_parsed_just_like_git() {
    let repo = TestRepo::new();
    // BATON_DIFF_SEED / BATON_DIFF_COUNT widen the search locally; CI runs the fixed default.
    let seed = std::env::var("BATON_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_ba70);
    let count = std::env::var("BATON_DIFF_COUNT").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);
    let mut rng = Rng::new(seed);
    let messages: Vec<Vec<u8>> = (0..count).map(|_| random_message(&mut rng)).collect();
    check(&repo, &messages);
}

#[test]
fn named_cases_are_parsed_just_like_git() {
    let cases: &[&[u8]] = &[
        b"title only",
        b"dwp-state: in-title\n",
        b"title\n\ndwp-state: review\n",
        b"\n\n  \ntitle after blank lines\n\nKey: v\n",
        b"title\n\nKey: v\n\nbody in between\n\nOther: w\n",
        b"title\n\nbody\nSigned-off-by: A <a>\n",
        b"title\n\nw\nx\ny\nSigned-off-by: A <a>\n",
        b"title\n\nv\nw\nx\ny\nSigned-off-by: A <a>\n",
        b"title\n\n(cherry picked from commit abc)\nnot a trailer\nnot one either\n",
        b"title\n\nKey: a\n  b\n\tc\n",
        b"title\n\nKey: a\n  b\nnot\n",
        b"title\n\nKey: v\n# comment\n\n# another\n",
        b"title\n\nKey: v\n# ------------------------ >8 ------------------------\nOther: w\n",
        b"title\n\nKey: v\nConflicts:\n\ta.c\n\tb.c\n",
        b"title\n\nKey: v\n---\nOther: w\n",
        b"title\r\n\r\nKey: v\r\nOther: w\r\n",
        b"title\n \nKey: v\n",
        b"title\n\nKey : v\nKey\t:\tw\n",
        b"title\n\nKey= v\n",
        b"title\n\nK\xc3\xa9y: v\n",
        b"title\n\nKey: \xff\n",
        b"title\n\nKey: v\0\nOther: w\n",
        b"# comment title\ntitle\n\nKey: v\n",
        b"title\n\nKey:\n  folded value\n",
        b"title\n\nKey: v\n   \n",
        b"title\n\n dwp-state: indented\n",
    ];
    let repo = TestRepo::new();
    check(&repo, &cases.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
}
