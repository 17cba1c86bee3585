//! `git baton policy` and `git baton policy check` against real repositories: exit codes, the
//! `--json` shape, and the trusted ref as the only source of the policy when it is set.

mod common;

use common::TestRepo;
use serde_json::{json, Value};

const POLICY: &str = r#"[defaults]
timeout = "1h"
lease = "5m"
env.pass = ["AWS_*"]

[states.build]
timeout = "2h"
env.pass = ["GITHUB_TOKEN"]
"#;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn policy_json(r: &TestRepo, args: &[&str]) -> Value {
    let mut all = vec!["policy", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&r.baton_ok(&all)).expect("one JSON object")
}

fn repo_with_policy(text: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(".dwp/policy.toml", text);
    r.commit_all("policy");
    r
}

#[test]
fn check_accepts_a_valid_file_and_names_it() {
    let r = repo_with_policy(POLICY);
    assert_eq!(r.baton_ok(&["policy", "check"]), "ok: .dwp/policy.toml\n");
    r.write("other.toml", "[states.review]\nlease = \"10m\"\n");
    assert_eq!(r.baton_ok(&["policy", "check", "other.toml"]), "ok: other.toml\n");
    // From a subdirectory, the default is still the file at the top of the working tree.
    r.write("sub/x", "");
    let out = r.baton_cmd(&["policy", "check"]).current_dir(r.path.join("sub")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn check_refuses_an_invalid_file_with_one_line() {
    let r = TestRepo::new();
    r.write(".dwp/policy.toml", "[defaults]\ntimeout = \"1h\"\ntmeout = \"2h\"\n");
    let out = r.baton(&["policy", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr(&out),
        "git-baton: error: .dwp/policy.toml:3: defaults.tmeout: unknown key (known: timeout, lease, max_lease, clock_skew, env, log, retry, classify, loop, dlq, breaker, tier, gate, notify, budget, concurrency, worktree, accept, agent)\n"
    );

    r.write("bad.toml", "[states.build]\n\ntimeout = \"5x\"\n");
    let out = r.baton(&["policy", "check", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("git-baton: error: bad.toml:3: states.build.timeout: invalid duration \"5x\""));

    r.write("syntax.toml", "[defaults]\ntimeout = \n");
    let out = r.baton(&["policy", "check", "syntax.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("git-baton: error: syntax.toml:2: invalid TOML"), "{}", stderr(&out));
}

#[test]
fn check_exit_codes_for_missing_files_and_usage() {
    let r = TestRepo::new();
    // Nothing at the default place: nothing to check, the built-ins apply.
    assert_eq!(r.baton_ok(&["policy", "check"]), "ok: no .dwp/policy.toml\n");
    let out = r.baton(&["policy", "check", "missing.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("git-baton: error: cannot read missing.toml: "), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert_eq!(r.baton(&["policy", "check", "a", "b"]).status.code(), Some(2));
    assert_eq!(r.baton(&["policy", "--json", "check"]).status.code(), Some(2));
    assert_eq!(r.baton(&["policy", "--state", "../x"]).status.code(), Some(2));
}

#[test]
fn json_shows_effective_values_and_their_origins() {
    let r = repo_with_policy(POLICY);
    let head = r.head("HEAD");
    let mut v = policy_json(&r, &["--state", "build"]);
    let failure = v.as_object_mut().unwrap().remove("failure").unwrap();
    assert_eq!(failure["retry_logic"], json!({"value": 2, "from": "built-in"}));
    assert_eq!(failure["breaker"], json!({"value": "build", "from": "built-in"}));
    assert_eq!(failure["dlq_retry_after"], json!({"value": null, "from": "built-in"}));
    assert_eq!(failure.as_object().unwrap().len(), 21);
    let humans = v.as_object_mut().unwrap().remove("humans").unwrap();
    assert_eq!(humans["tier"], json!({"value": "autonomous", "from": "built-in"}));
    assert_eq!(humans["gate_approvers"], json!({"value": ["*"], "from": "built-in"}));
    assert_eq!(humans.as_object().unwrap().len(), 16);
    assert_eq!(
        v,
        json!({
            "source": "HEAD",
            "trusted": false,
            "commit": head,
            "policy_file": true,
            "state": "build",
            "timeout": {"value": 7200, "from": ".dwp/policy.toml:7 [states.build]"},
            "lease": {"value": 300, "from": ".dwp/policy.toml:3 [defaults]"},
            "log_max_bytes": {"value": 10485760, "from": "built-in"},
            "env_pass": [
                {"value": "AWS_*", "from": ".dwp/policy.toml:4 [defaults]"},
                {"value": "GITHUB_TOKEN", "from": ".dwp/policy.toml:8 [states.build]"}
            ],
            "max_lease": {"value": 86400, "from": "built-in"},
            "clock_skew": {"value": 300, "from": "built-in"},
            "agent_next": {"value": null, "from": "built-in"},
            "states": ["build"]
        })
    );
    // Without --state: what a state without its own table gets.
    let v = policy_json(&r, &[]);
    assert_eq!(v["state"], Value::Null);
    assert_eq!(v["timeout"], json!({"value": 3600, "from": ".dwp/policy.toml:2 [defaults]"}));
    assert_eq!(v["env_pass"].as_array().unwrap().len(), 1);

    let text = r.baton_ok(&["policy", "--state", "build"]);
    assert!(text.contains("timeout               2h"), "{text}");
    assert!(text.contains("retry.logic           2"), "{text}");
    assert!(text.contains(".dwp/policy.toml:8 [states.build]"), "{text}");
}

#[test]
fn without_a_policy_file_the_built_ins_apply() {
    let r = TestRepo::new();
    // Unborn HEAD: nothing to read.
    let v = policy_json(&r, &[]);
    assert_eq!((v["commit"].clone(), v["policy_file"].clone()), (Value::Null, json!(false)));
    r.write("README", "x\n");
    r.commit_all("init");
    let v = policy_json(&r, &["--state", "build"]);
    assert_eq!(v["policy_file"], json!(false));
    assert_eq!(v["timeout"], json!({"value": 3600, "from": "built-in"}));
    assert_eq!(v["lease"], json!({"value": 300, "from": "built-in"}));
    assert_eq!(v["env_pass"], json!([]));
    assert_eq!(v["states"], json!([]));
    let out = r.baton(&["policy"]);
    assert!(stderr(&out).contains("built-in values apply"), "{}", stderr(&out));
}

#[test]
fn a_broken_policy_is_one_line_and_exit_1() {
    let r = repo_with_policy("[states.build]\nlease = \"8d\"\n");
    let out = r.baton(&["policy"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(".dwp/policy.toml:2: states.build.lease: 8d is more than the maximum of 7d"), "{err}");
}

#[test]
fn the_trusted_ref_alone_decides_the_policy() {
    let r = repo_with_policy(POLICY);
    let main = r.head("main");
    r.git(&["checkout", "-q", "-b", "task"]);
    r.write(".dwp/policy.toml", "[states.build]\ntimeout = \"30d\"\nenv.pass = [\"*\"]\n");
    r.commit_all("agent lifts its own limits");

    // Without a trusted ref, HEAD's (the task's) policy is what applies.
    let v = policy_json(&r, &["--state", "build"]);
    assert_eq!(v["timeout"]["value"], json!(30 * 86400));

    r.git(&["config", "baton.trustedRef", "main"]);
    let v = policy_json(&r, &["--state", "build"]);
    assert_eq!(v["source"], json!("refs/heads/main"));
    assert_eq!((v["trusted"].clone(), v["commit"].clone()), (json!(true), json!(main)));
    assert_eq!(v["timeout"], json!({"value": 7200, "from": ".dwp/policy.toml:7 [states.build]"}));
    let pass: Vec<&str> = v["env_pass"].as_array().unwrap().iter().map(|p| p["value"].as_str().unwrap()).collect();
    assert_eq!(pass, ["AWS_*", "GITHUB_TOKEN"]);
    let out = r.baton(&["policy"]);
    assert!(stderr(&out).contains("refs/heads/main"), "{}", stderr(&out));

    // A broken policy on the task branch changes nothing either.
    r.write(".dwp/policy.toml", "this is not toml [");
    r.commit_all("broken");
    assert_eq!(policy_json(&r, &["--state", "build"])["timeout"]["value"], json!(7200));

    // The flag beats the config.
    r.git(&["branch", "lax", "task~1"]);
    let v = policy_json(&r, &["--trusted-ref", "lax", "--state", "build"]);
    assert_eq!((v["source"].clone(), v["timeout"]["value"].clone()), (json!("refs/heads/lax"), json!(30 * 86400)));
}

#[test]
fn a_missing_trusted_ref_is_an_error_not_a_fallback() {
    let r = repo_with_policy(POLICY);
    r.git(&["config", "baton.trustedRef", "nope"]);
    let out = r.baton(&["policy"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("refs/heads/nope") && err.contains("does not exist"), "{err}");
    let out = r.baton(&["policy", "--trusted-ref", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("refs/heads/other"), "{}", stderr(&out));
}
