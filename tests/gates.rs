//! Humans in the loop (real repositories, the real binary): gates that wait for an approval of
//! the current head, approvals that do not count (strangers, stale heads, missing signatures),
//! gate timeouts, reject and request-changes, decision cards, and bad input that writes nothing.

mod common;

use std::process::Output;

use common::{event, has, run_json, TestRepo};
use serde_json::Value;

const LEAD: &str = "lead@example.com";

/// A deploy handler that records its `BATON_*` variables and answers `done`.
const DEPLOY: &str =
    "#!/bin/sh\nset -e\nenv | grep '^BATON_' | sort > env.txt\nprintf '%s' \"$BATON_BODY\" > body.txt\n\
                      git add env.txt body.txt\n\
                      git commit -q -m deployed -m 'dwp-state: done'\n";
/// A build handler whose answer is the gated state `deploy`, with a body.
const BUILD: &str = "#!/bin/sh\nset -e\necho built >> build.txt\ngit add build.txt\n\
                     git commit -q -m built -m 'built v2; ready to ship' -m 'dwp-state: deploy'\n";

/// A repository whose `main` has the deploy/build/ship handlers and this policy file.
fn repo(policy: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write("README", "project\n");
    r.handler(".dwp/command/deploy", DEPLOY);
    r.handler(".dwp/command/ship", DEPLOY);
    r.handler(".dwp/command/build", BUILD);
    r.write(".dwp/policy.toml", policy);
    r.commit_all("handlers");
    r
}

fn gate_policy(extra: &str) -> String {
    format!("[states.deploy]\ntier = \"gate\"\ngate.approvers = [\"{LEAD}\"]\n{extra}")
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// `git baton ARGS` as the identity `email`.
fn baton_as(r: &TestRepo, email: &str, args: &[&str]) -> Output {
    r.baton_cmd(args).env("GIT_COMMITTER_EMAIL", email).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed ({:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new task branch in `state`, sent with `args` (after `send --branch B STATE`).
fn send(r: &TestRepo, branch: &str, state: &str, args: &[&str]) -> String {
    if r.git_cmd(&["rev-parse", "--verify", "-q", branch]).output().unwrap().stdout.is_empty() {
        r.git(&["branch", branch, "main"]);
    }
    let mut all = vec!["send", "--branch", branch, state];
    all.extend(args);
    r.baton_ok(&all).trim().to_owned()
}

/// Write a commit with `message` on top of `branch` by hand (plain git), as `email` at `date`.
fn forge(r: &TestRepo, branch: &str, message: &str, email: &str, date: u64) -> String {
    let file = r.home().join("forged-message");
    std::fs::write(&file, message).unwrap();
    let out = r
        .git_cmd(&["commit-tree", &format!("{branch}^{{tree}}"), "-p", branch, "-F", file.to_str().unwrap()])
        .env("GIT_COMMITTER_EMAIL", email)
        .env("GIT_COMMITTER_DATE", format!("{date} +0000"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    r.git(&["update-ref", &format!("refs/heads/{branch}"), &id]);
    id
}

fn note_of(r: &TestRepo, branch: &str) -> String {
    let table = r.baton_ok(&["status", "--branch", branch]);
    table.lines().nth(1).unwrap_or_default().to_owned()
}

fn events_of<'a>(events: &'a [Value], branch: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["branch"] == branch).collect()
}

/// An SSH key for the lead, in git's allowed signers file, used to sign in `r`.
fn sign_as_lead(r: &TestRepo) {
    let key = r.home().join("lead_key");
    let gen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", LEAD, "-f", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = r.home().join("allowed_signers");
    std::fs::write(&allowed, format!("{LEAD} namespaces=\"git\" {}\n", public.trim())).unwrap();
    r.git(&["config", "gpg.format", "ssh"]);
    r.git(&["config", "user.signingKey", key.to_str().unwrap()]);
    r.git(&["config", "gpg.ssh.allowedSignersFile", allowed.to_str().unwrap()]);
}

const CARD: &str = "Context: v2 is built; the blue cluster is half full.\nOptions:\nA. Deploy to green\n\
                    B. Deploy to blue\nRecommended: A\nRisk: blue may run out of memory\nDefault: none\n";

/// A gated deploy waits without a word (no claim), is approved by an allowed identity with an
/// option of its decision card, then runs — and its handler learns who approved and what.
#[test]
fn a_gated_state_waits_for_an_approval_and_then_runs() {
    let r = repo(&gate_policy(""));
    let card = r.home().join("card.md");
    std::fs::write(&card, CARD).unwrap();
    let gated = send(&r, "t1", "deploy", &["-m", "ship v2", "--decision-card", card.to_str().unwrap()]);
    let body = r.git(&["log", "-1", "--format=%b", "t1"]);
    assert!(body.starts_with("ship v2\n\n## Decision required\n\nContext: v2 is built"), "{body}");

    let events = run_json(&r, &[]);
    assert!(events_of(&events, "t1").is_empty(), "a waiting gate is silent: {events:#?}");
    assert_eq!(r.head("t1"), gated);
    assert!(note_of(&r, "t1").ends_with("gate waiting"), "{}", note_of(&r, "t1"));

    let out = ok(baton_as(&r, LEAD, &["approve", "t1", "--option", "b", "-m", "blue has room now", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["parent"], gated.as_str());
    assert_eq!(v["approves"], gated.as_str());
    assert_eq!(v["approved_by"], LEAD);
    assert_eq!(v["decision"], "B");
    assert_eq!(v["state"], "deploy");
    assert_eq!(v["signed"], false);
    let approval = r.head("t1");
    assert_eq!(r.trailer_of(&approval, "dwp-approves").as_deref(), Some(gated.as_str()));
    assert_eq!(r.trailer_of(&approval, "dwp-approved-by").as_deref(), Some(LEAD));
    assert_eq!(r.trailer_of(&approval, "dwp-decision").as_deref(), Some("B"));
    assert_eq!(r.state_of(&approval), "deploy");
    assert_eq!(
        r.git(&["rev-parse", &format!("{approval}^{{tree}}")]),
        r.git(&["rev-parse", &format!("{gated}^{{tree}}")])
    );
    assert_eq!(r.git(&["log", "-1", "--format=%ce", &approval]).trim(), LEAD);
    assert!(note_of(&r, "t1").contains("approved by lead@example.com, option B"), "{}", note_of(&r, "t1"));

    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "claimed") && has(&events, "t1", "succeeded"), "{events:#?}");
    assert_eq!(r.state_of("t1"), "done");
    let env = r.git(&["show", "t1:env.txt"]);
    for want in ["BATON_APPROVED_BY=lead@example.com", "BATON_DECISION=B"] {
        assert!(env.lines().any(|l| l == want), "{want} missing: {env}");
    }
    let body = r.git(&["show", "t1:body.txt"]);
    assert!(body.starts_with("ship v2\n\n## Decision required"), "{body}");
    assert!(body.ends_with("## Approved\n\nApproved by lead@example.com, option B:\n\nblue has room now"), "{body}");
}

/// A stranger's approval is not accepted (a notice, no run), nor is an approval of a head that
/// is no longer the head (a commit came on top after approving).
#[test]
fn strangers_and_stale_approvals_do_not_count() {
    let r = repo(&gate_policy(""));
    let gated = send(&r, "t1", "deploy", &["-m", "ship v2"]);
    // `approve` refuses a stranger outright …
    let out = baton_as(&r, "intern@example.com", &["approve", "t1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("intern@example.com is not in gate.approvers") && err.lines().count() == 1, "{err}");
    assert_eq!(r.head("t1"), gated);
    // … and the runner does not count one written by hand.
    let msg = format!(
        "approve\n\nship v2\n\ndwp-approved-by: intern@example.com\ndwp-approves: {gated}\ndwp-state: deploy\n"
    );
    let forged = forge(&r, "t1", &msg, "intern@example.com", now());
    let events = run_json(&r, &[]);
    assert!(!has(&events, "t1", "claimed"), "{events:#?}");
    let notice = event(&events, "t1", "notice");
    assert!(notice["error"].as_str().unwrap().contains("intern@example.com is not in gate.approvers"), "{notice}");
    assert_eq!(r.head("t1"), forged);
    assert!(note_of(&r, "t1").contains("approval refused"), "{}", note_of(&r, "t1"));
    let inbox = String::from_utf8_lossy(&r.baton(&["inbox", "--json"]).stdout).into_owned();
    assert!(inbox.lines().any(|l| l.contains("\"kind\":\"gate\"") && l.contains("\"branch\":\"t1\"")), "{inbox}");
    // A lead's approval on top of it counts.
    ok(baton_as(&r, LEAD, &["approve", "t1"]));
    let inbox = String::from_utf8_lossy(&r.baton(&["inbox", "--json"]).stdout).into_owned();
    assert!(!inbox.contains("\"branch\":\"t1\""), "{inbox}");
    assert!(has(&run_json(&r, &[]), "t1", "succeeded"));

    // Stale: approved, then a new commit on top.
    send(&r, "t2", "deploy", &["-m", "ship v3"]);
    ok(baton_as(&r, LEAD, &["approve", "t2"]));
    let newer = send(&r, "t2", "deploy", &["-m", "ship v3, with the fix"]);
    let events = run_json(&r, &[]);
    assert!(events_of(&events, "t2").is_empty(), "{events:#?}");
    assert_eq!(r.head("t2"), newer);
    // An approval that names an older head than the one it sits on is refused with a notice.
    let old = r.head("t2~2");
    let msg = format!("approve\n\nx\n\ndwp-approved-by: {LEAD}\ndwp-approves: {old}\ndwp-state: deploy\n");
    forge(&r, "t2", &msg, LEAD, now());
    let events = run_json(&r, &[]);
    assert!(!has(&events, "t2", "claimed"));
    assert!(event(&events, "t2", "notice")["error"].as_str().unwrap().contains("not the head it sits on"));
}

/// With `gate.require_signed` and an SSH allowed-signers file, `approve --sign` passes and an
/// unsigned approval does not.
#[test]
fn signed_gates_accept_only_good_signatures() {
    if std::process::Command::new("ssh-keygen").arg("-?").output().is_err() {
        eprintln!("SKIPPED signed_gates_accept_only_good_signatures: ssh-keygen is not installed");
        return;
    }
    let r = repo(&gate_policy("gate.require_signed = true\n"));
    sign_as_lead(&r);

    let gated = send(&r, "t1", "deploy", &["-m", "ship v2"]);
    // Not signing is refused before anything is written.
    let out = baton_as(&r, LEAD, &["approve", "t1"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sign"));
    assert_eq!(r.head("t1"), gated);
    // An unsigned approval written by hand is reported and not run.
    let msg = format!("approve\n\nship v2\n\ndwp-approved-by: {LEAD}\ndwp-approves: {gated}\ndwp-state: deploy\n");
    let unsigned = forge(&r, "t1", &msg, LEAD, now());
    let events = run_json(&r, &[]);
    assert!(!has(&events, "t1", "claimed"), "{events:#?}");
    let notice = event(&events, "t1", "notice")["error"].as_str().unwrap().to_owned();
    assert!(notice.contains("not signed") && notice.contains("gate.require_signed"), "{notice}");
    assert_eq!(r.head("t1"), unsigned);
    // A signed approval passes.
    let out = ok(baton_as(&r, LEAD, &["approve", "t1", "--sign", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["signed"], true);
    assert_eq!(v["approves"], unsigned.as_str());
    r.git(&["verify-commit", v["commit"].as_str().unwrap()]);
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "succeeded"), "{events:#?}");
    assert!(r.git(&["show", "t1:env.txt"]).contains("BATON_APPROVED_BY=lead@example.com"));

    // A good signature of an allowed key on a commit by someone else does not make it theirs.
    let r = repo("[states.deploy]\ntier = \"gate\"\ngate.require_signed = true\n");
    sign_as_lead(&r);
    let gated = send(&r, "t2", "deploy", &["-m", "ship v3"]);
    let msg = format!("approve\n\nx\n\ndwp-approved-by: other@example.com\ndwp-approves: {gated}\ndwp-state: deploy\n");
    std::fs::write(r.home().join("msg"), msg).unwrap();
    let out = r
        .git_cmd(&["commit-tree", "-S", "t2^{tree}", "-p", "t2", "-F", r.home().join("msg").to_str().unwrap()])
        .env("GIT_COMMITTER_EMAIL", "other@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    r.git(&["update-ref", "refs/heads/t2", String::from_utf8_lossy(&out.stdout).trim()]);
    let events = run_json(&r, &[]);
    assert!(!has(&events, "t2", "claimed"), "{events:#?}");
    let notice = event(&events, "t2", "notice")["error"].as_str().unwrap().to_owned();
    assert!(notice.contains("signed by \"lead@example.com\", not by its committer other@example.com"), "{notice}");
}

/// `gate.timeout` + `gate.default`: an option letter becomes the runner's approval with that
/// decision (and runs at the next tick); `reject` moves the task to `gate.on_reject`.
#[test]
fn gate_timeouts_apply_the_default() {
    let policy = format!(
        // A minute: the fresh t3 must not time out on a slow machine between its send and the tick.
        "{}gate.timeout = \"60s\"\ngate.default = \"B\"\n\n[states.ship]\ntier = \"gate\"\ngate.timeout = \"60s\"\ngate.default = \"reject\"\n",
        gate_policy("")
    );
    let r = repo(&policy);
    let past = format!("{} +0000", now() - 100);
    for (branch, state) in [("t1", "deploy"), ("t2", "ship")] {
        r.git(&["branch", branch, "main"]);
        let out = r
            .baton_cmd(&["send", "--branch", branch, state, "-m", "go"])
            .env("GIT_COMMITTER_DATE", &past)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let fresh = send(&r, "t3", "deploy", &["-m", "later"]);
    assert!(note_of(&r, "t3").contains("gate waiting (default B in"), "{}", note_of(&r, "t3"));
    assert!(note_of(&r, "t1").contains("gate timed out (default B due)"), "{}", note_of(&r, "t1"));

    let events = run_json(&r, &[]);
    let t1 = event(&events, "t1", "decided");
    assert_eq!(t1["next_state"], "deploy");
    assert!(!has(&events, "t1", "claimed"));
    let approval = r.head("t1");
    assert_eq!(r.trailer_of(&approval, "dwp-approved-by").as_deref(), Some("git-baton (gate.timeout)"));
    assert_eq!(r.trailer_of(&approval, "dwp-decision").as_deref(), Some("B"));
    assert_eq!(r.trailer_of(&approval, "dwp-approves").as_deref(), Some(r.head("t1~1").as_str()));
    assert_eq!(event(&events, "t2", "decided")["next_state"], "canceled");
    assert_eq!(r.state_of("t2"), "canceled");
    assert_eq!(r.trailer_of("t2", "dwp-decision").as_deref(), Some("reject"));
    assert!(r.git(&["log", "-1", "--format=%b", "t2"]).contains("gate.default = reject"));
    assert!(events_of(&events, "t3").is_empty(), "not timed out yet: {events:#?}");
    assert_eq!(r.head("t3"), fresh);

    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "succeeded"), "{events:#?}");
    let env = r.git(&["show", "t1:env.txt"]);
    assert!(env.lines().any(|l| l == "BATON_DECISION=B"), "{env}");
    assert!(env.lines().any(|l| l == "BATON_APPROVED_BY=git-baton (gate.timeout)"), "{env}");
    assert!(events_of(&events, "t2").is_empty());
}

/// `reject` moves the task to `gate.on_reject`; `request-changes` sends it back to the state
/// whose run produced the gated work, with the gated body and a `## Changes requested` section.
#[test]
fn reject_and_request_changes_move_the_task() {
    let r = repo(&gate_policy(""));
    send(&r, "t1", "build", &["-m", "build v2"]);
    run_json(&r, &[]);
    assert_eq!(r.state_of("t1"), "deploy");
    let gated = r.head("t1");
    let out = ok(baton_as(&r, LEAD, &["request-changes", "t1", "-m", "use the blue cluster", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "build");
    assert_eq!(v["decision"], "changes");
    assert_eq!(v["parent"], gated.as_str());
    assert_eq!(r.state_of("t1"), "build");
    assert_eq!(r.trailer_of("t1", "dwp-decision").as_deref(), Some("changes"));
    let body = r.git(&["log", "-1", "--format=%b", "t1"]);
    assert!(
        body.starts_with(
            "built v2; ready to ship\n\n## Changes requested\n\nuse the blue cluster\n\nRequested by lead@example.com"
        ),
        "{body}"
    );

    // Built again, approved, then rejected after all: the approval is looked through.
    run_json(&r, &[]);
    assert_eq!(r.state_of("t1"), "deploy");
    ok(baton_as(&r, LEAD, &["approve", "t1"]));
    let out = ok(baton_as(&r, LEAD, &["reject", "t1", "-m", "not this week", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "canceled");
    assert_eq!(v["decision"], "reject");
    assert_eq!(r.state_of("t1"), "canceled");
    let body = r.git(&["log", "-1", "--format=%b", "t1"]);
    assert!(body.starts_with("## Rejected\n\nnot this week\n\nRejected by lead@example.com"), "{body}");
    assert!(run_json(&r, &[]).is_empty());

    // A deploy a person sent was produced by no run: request-changes needs gate.on_changes.
    let head = send(&r, "t2", "deploy", &["-m", "ship"]);
    let out = baton_as(&r, LEAD, &["request-changes", "t2", "-m", "again"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gate.on_changes"));
    assert_eq!(r.head("t2"), head);
    let r2 = repo(&gate_policy("gate.on_changes = \"review\"\ngate.on_reject = \"triage\"\n"));
    send(&r2, "t2", "deploy", &["-m", "ship"]);
    ok(baton_as(&r2, LEAD, &["request-changes", "t2", "-m", "again"]));
    assert_eq!(r2.state_of("t2"), "review");
    send(&r2, "t3", "deploy", &["-m", "ship"]);
    ok(baton_as(&r2, LEAD, &["reject", "t3", "-m", "no"]));
    assert_eq!(r2.state_of("t3"), "triage");
}

/// Bad input: one line on stderr, a non-zero exit, and nothing written.
#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let r = repo(&gate_policy(""));
    let card = r.home().join("card.md");
    std::fs::write(&card, CARD).unwrap();
    send(&r, "gated", "deploy", &["-m", "ship", "--decision-card", card.to_str().unwrap()]);
    send(&r, "plain", "build", &["-m", "build"]);
    send(&r, "approved", "deploy", &["-m", "ship"]);
    ok(baton_as(&r, LEAD, &["approve", "approved"]));
    r.git(&["branch", "held", "main"]);
    let lease = "baton: deploy claimed\n\ndwp-origin-state: deploy\ndwp-run-id: r1\ndwp-runner-id: h:1\n\
                 dwp-lease-seconds: 600\ndwp-state: working\n";
    forge(&r, "held", lease, "runner@example.com", now());
    let empty_card = r.home().join("bad-card.md");
    std::fs::write(&empty_card, "Context: x\nOptions:\nA. one\n").unwrap();

    let cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        ("plain", vec!["approve", "plain"], 1, "is not gated"),
        ("approved", vec!["approve", "approved"], 1, "already approved by lead@example.com"),
        ("gated", vec!["approve", "gated", "--option", "C"], 2, "option C is not on the decision card"),
        ("gated", vec!["approve", "gated", "--option", "yes"], 2, "one option letter"),
        ("gated", vec!["reject", "gated"], 2, "reject needs -m WHY"),
        ("gated", vec!["request-changes", "gated"], 2, "request-changes needs -m WHAT"),
        ("gated", vec!["reject", "gated", "-m", " "], 2, "not an empty one"),
        ("held", vec!["approve", "held"], 1, "is held by run r1"),
        ("held", vec!["reject", "held", "-m", "no"], 1, "is held by run r1"),
        ("plain", vec!["reject", "plain", "-m", "no"], 1, "waits for no decision"),
        (
            "gated",
            vec!["send", "--branch", "gated", "deploy", "--trailer", "dwp-approves: abc"],
            2,
            "written only by runners",
        ),
        (
            "gated",
            vec!["send", "--branch", "gated", "deploy", "--trailer", "DWP-Decision: A"],
            2,
            "written only by runners",
        ),
        (
            "gated",
            vec!["send", "--branch", "gated", "deploy", "--decision-card", empty_card.to_str().unwrap()],
            2,
            "Options: needs at least two options",
        ),
    ];
    for (branch, args, code, want) in cases {
        let before = r.head(branch);
        let out = baton_as(&r, LEAD, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {want:?} not in {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert_eq!(r.head(branch), before, "{args:?} wrote something");
    }
}
