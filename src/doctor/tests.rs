use super::*;

fn good() -> Facts {
    Facts {
        repository: Some(Ok("/r/.git".into())),
        git: Some(Ok((2, 47, 3))),
        identity: Some(Ok("A <a@example.com>".into())),
        source: Some(SourceFact::Trusted { read: "refs/heads/main".into(), commit: "0123456789ab".into() }),
        handler_tree: Some("refs/heads/main".into()),
        handlers: vec![HandlerFact {
            path: ".dwp/command/build".into(),
            executable: true,
            symlink: false,
            head: b"#!/b".to_vec(),
        }],
        uncommitted: vec![],
        invalid_states: vec![],
        policy: None,
        scratch: Some((10, 1, 0, 0)),
        hooks: Some(HooksFact { client_installed: 2, client_total: 2, server_installed: 0, bare: false }),
        remotes: vec![RemoteFact { name: "origin".into(), reached: Ok(()), required: false }],
        aynig_worktrees: vec![],
    }
}

/// The one line of `check` whose verdict is not ok (or the only line), for the table below.
fn line(checks: &[Check], name: &str) -> Check {
    let lines: Vec<&Check> = checks.iter().filter(|c| c.check == name).collect();
    assert!(!lines.is_empty(), "no {name} line in {checks:?}");
    (*lines.iter().find(|c| c.verdict != Verdict::Ok).unwrap_or(&lines[0])).clone()
}

#[test]
fn a_sound_setup_is_all_ok() {
    let checks = judge(&good());
    assert!(checks.iter().all(|c| c.verdict == Verdict::Ok && c.fix.is_none()), "{checks:#?}");
    assert!(!failed(&checks));
    for name in
        ["repository", "git", "identity", "handler-source", "handler", "state", "policy", "scratch", "hooks", "remote"]
    {
        line(&checks, name);
    }
}

#[test]
fn each_problem_gets_its_verdict_and_a_fix_naming_it() {
    type Case = (&'static str, fn(&mut Facts), &'static str, Verdict, &'static str);
    let cases: Vec<Case> = vec![
        ("git too old", |f| f.git = Some(Ok((2, 30, 1))), "git", Verdict::Warn, "2.30.1"),
        ("no git", |f| f.git = Some(Err("cannot run git: not found".into())), "git", Verdict::Fail, "not found"),
        (
            "no identity",
            |f| f.identity = Some(Err("Author identity unknown".into())),
            "identity",
            Verdict::Fail,
            "identity unknown",
        ),
        ("task source", |f| f.source = Some(SourceFact::Task), "handler-source", Verdict::Warn, "own commit"),
        (
            "trusted ref missing",
            |f| f.source = Some(SourceFact::Broken("the trusted ref refs/heads/x does not exist".into())),
            "handler-source",
            Verdict::Fail,
            "refs/heads/x",
        ),
        (
            "not executable",
            |f| f.handlers[0].executable = false,
            "handler",
            Verdict::Fail,
            ".dwp/command/build in refs/heads/main is not executable",
        ),
        ("no shebang", |f| f.handlers[0].head = b"echo".to_vec(), "handler", Verdict::Fail, "#!"),
        ("no handlers", |f| f.handlers.clear(), "handler", Verdict::Warn, "no handlers"),
        (
            "uncommitted handler",
            |f| f.uncommitted.push((".dwp/command/new".into(), Uncommitted::New)),
            "handler",
            Verdict::Warn,
            ".dwp/command/new is in the working tree but not in refs/heads/main",
        ),
        (
            "changed handler",
            |f| f.uncommitted.push((".dwp/command/build".into(), Uncommitted::Changed)),
            "handler",
            Verdict::Warn,
            "differs from refs/heads/main's",
        ),
        (
            "invalid state",
            |f| f.invalid_states.push(("task/a".into(), "no/pe".into())),
            "state",
            Verdict::Warn,
            "task/a",
        ),
        (
            "policy error",
            |f| f.policy = Some(Err(".dwp/policy.toml: unknown key x".into())),
            "policy",
            Verdict::Fail,
            "unknown key x",
        ),
        ("big scratch", |f| f.scratch = Some((2 << 30, 9, 0, 0)), "scratch", Verdict::Warn, "2.0 GiB"),
        (
            "some hooks",
            |f| f.hooks = Some(HooksFact { client_installed: 1, client_total: 2, ..HooksFact::default() }),
            "hooks",
            Verdict::Warn,
            "1 of 2",
        ),
        (
            "remote down",
            |f| f.remotes[0].reached = Err("no answer within 5.0s".into()),
            "remote",
            Verdict::Warn,
            "origin is not reachable",
        ),
        (
            "required remote down",
            |f| {
                f.remotes[0].reached = Err("no answer".into());
                f.remotes[0].required = true;
            },
            "remote",
            Verdict::Fail,
            "origin",
        ),
        (
            "aynig leftovers",
            |f| f.aynig_worktrees.push(("task/x".into(), "/r/.worktrees/task-x".into())),
            "aynig-worktrees",
            Verdict::Warn,
            "task/x",
        ),
    ];
    for (what, change, name, verdict, names) in cases {
        let mut f = good();
        change(&mut f);
        let checks = judge(&f);
        let l = line(&checks, name);
        assert_eq!(l.verdict, verdict, "{what}: {l:?}");
        assert!(l.detail.contains(names), "{what}: {:?} does not name {names:?}", l.detail);
        assert!(l.fix.is_some(), "{what}: no fix");
        assert_eq!(failed(&checks), verdict == Verdict::Fail, "{what}");
        let others_ok = checks.iter().filter(|c| c.check != name).all(|c| c.verdict == Verdict::Ok);
        assert!(others_ok, "{what}: only {name} changes: {checks:#?}");
    }
    let mut f = good();
    f.aynig_worktrees.push(("b".into(), "p".into()));
    assert_eq!(line(&judge(&f), "aynig-worktrees").fix.as_deref(), Some("git baton migrate-aynig"));
}

#[test]
fn no_repository_is_one_failure_and_nothing_else_is_judged() {
    let f =
        Facts { repository: Some(Err("not a git repository".into())), git: Some(Ok((2, 47, 0))), ..Facts::default() };
    let checks = judge(&f);
    assert_eq!(checks.iter().map(|c| c.check).collect::<Vec<_>>(), ["repository", "git"]);
    assert!(failed(&checks));
}

#[test]
fn git_versions_are_read_like_git_prints_them() {
    let cases = [
        ("git version 2.47.3\n", Some((2, 47, 3))),
        ("git version 2.39.2.windows.1", Some((2, 39, 2))),
        ("git version 2.39.5 (Apple Git-154)", Some((2, 39, 5))),
        ("git version 3.0", Some((3, 0, 0))),
        ("hg 6", None),
        ("git version x", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_git_version(text), want, "{text:?}");
    }
}

#[test]
fn binaries_need_no_shebang() {
    let mut f = good();
    f.handlers[0].head = b"\x7fELF".to_vec();
    assert_eq!(line(&judge(&f), "handler").verdict, Verdict::Ok);
}
