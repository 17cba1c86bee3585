//! Table tests of the policy file: every key, every error with its line, precedence.

use super::*;

fn parse(text: &str) -> Policy {
    Policy::parse(text, POLICY_PATH).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> PolicyError {
    Policy::parse(text, POLICY_PATH).expect_err(text)
}

const FULL: &str = r#"# a comment
[defaults]
timeout = "1h"
lease = "5m"
log.max_bytes = 10485760
env.pass = ["OPENAI_API_KEY", "AWS_*"]

[states.build]
timeout = "2h"
env.pass = ["GITHUB_TOKEN", "AWS_*"]
log = { max_bytes = "512KiB" }

[states.review.env]
pass = ["X?"]
"#;

#[test]
fn every_key_parses() {
    let p = parse(FULL);
    let d = p.defaults();
    assert_eq!(d.timeout.as_ref().map(|v| v.get_ref().0), Some(3600));
    assert_eq!(d.lease.as_ref().map(|v| v.get_ref().0), Some(300));
    assert_eq!(d.log.max_bytes.as_ref().map(|v| v.get_ref().0), Some(10 << 20));
    let pass: Vec<&str> = d.env.pass.as_ref().unwrap().get_ref().iter().map(PassName::as_str).collect();
    assert_eq!(pass, ["OPENAI_API_KEY", "AWS_*"]);
    let b = p.state("build").unwrap();
    assert_eq!(b.timeout.as_ref().map(|v| p.line_of(v.span())), Some(9));
    assert_eq!(b.log.max_bytes.as_ref().map(|v| v.get_ref().0), Some(512 << 10));
    assert!(b.lease.is_none());
    assert_eq!(p.states().collect::<Vec<_>>(), ["build", "review"]);
    assert!(p.state("deploy").is_none());
}

#[test]
fn empty_and_absent_policies_are_the_built_ins() {
    for p in [parse(""), parse("# nothing\n"), parse("[defaults]\n[states]\n"), Policy::default()] {
        let e = p.effective("build", &Base::default());
        assert_eq!(e.timeout, Resolved::built_in(3600));
        assert_eq!(e.lease, Resolved::built_in(300));
        assert_eq!(e.log_max_bytes, Resolved::built_in(10 << 20));
        assert!(e.env_pass.is_empty());
    }
}

#[test]
fn state_beats_defaults_beats_command_line_beats_built_in() {
    let p = parse(FULL);
    let base = Base {
        timeout: Resolved::command_line(60),
        lease: Resolved::command_line(120),
        env_pass: vec!["AWS_*".into(), "CLI_VAR".into()],
        ..Base::default()
    };
    let st = |line| Origin::State { state: "build".into(), line };
    let e = p.effective("build", &base);
    assert_eq!(e.timeout, Resolved { value: 7200, from: st(9) });
    assert_eq!(e.lease, Resolved { value: 300, from: Origin::Defaults { line: 4 } });
    assert_eq!(e.log_max_bytes, Resolved { value: 512 << 10, from: st(11) });
    let pass: Vec<(&str, String)> = e.env_pass.iter().map(|p| (p.value.as_str(), p.from.to_string())).collect();
    assert_eq!(
        pass,
        [
            ("AWS_*", "command line".to_owned()),
            ("CLI_VAR", "command line".to_owned()),
            ("OPENAI_API_KEY", ".dwp/policy.toml:6 [defaults]".to_owned()),
            ("GITHUB_TOKEN", ".dwp/policy.toml:10 [states.build]".to_owned()),
        ]
    );
    assert_eq!(e.pass_names(), ["AWS_*", "CLI_VAR", "OPENAI_API_KEY", "GITHUB_TOKEN"]);

    // A state without a table gets [defaults], then the command line, then the built-ins.
    let e = p.effective("deploy", &base);
    assert_eq!(e.timeout, Resolved { value: 3600, from: Origin::Defaults { line: 3 } });
    let e = parse("[defaults]\nlease = \"1m\"\n").effective("deploy", &base);
    assert_eq!(e.timeout, Resolved::command_line(60));
    assert_eq!(e.lease.from.to_string(), ".dwp/policy.toml:2 [defaults]");
    assert_eq!(e.log_max_bytes, Resolved::built_in(10 << 20));
    // A sub-table only in the state: env.pass of the state unites with the command line's.
    let e = p.effective("review", &Base::default());
    assert_eq!(e.pass_names(), ["OPENAI_API_KEY", "AWS_*", "X?"]);
    assert_eq!(e.env_pass[2].from.to_string(), ".dwp/policy.toml:14 [states.review]");
}

#[test]
fn origins_serialise_as_one_string() {
    let e = parse("[states.\"a.b\"]\ntimeout = \"1m\"\n").effective("a.b", &Base::default());
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["timeout"], serde_json::json!({"value": 60, "from": ".dwp/policy.toml:2 [states.\"a.b\"]"}));
    assert_eq!(json["lease"], serde_json::json!({"value": 300, "from": "built-in"}));
    assert_eq!(json["env_pass"], serde_json::json!([]));
    assert_eq!(Origin::CommandLine.to_string(), "command line");
}

#[test]
fn errors_name_file_line_and_key() {
    let cases: &[(&str, usize, Option<&str>, &str)] = &[
        (
            "[defaults]\ntimeout = \"5x\"\n",
            2,
            Some("defaults.timeout"),
            "invalid duration \"5x\": use a number followed by s, m, h or d",
        ),
        (
            "\n\n[defaults]\ntmeout = \"1h\"\n",
            4,
            Some("defaults.tmeout"),
            "unknown key (known: timeout, lease, max_lease, clock_skew, env, log, retry, classify, loop, dlq, breaker, tier, gate, notify, budget, concurrency, worktree, accept, agent)",
        ),
        ("[states.build]\n\n\n\n\n\ntimeout = \"5x\"\n", 7, Some("states.build.timeout"), "invalid duration \"5x\""),
        (
            "[states.build]\nlease = \"1h\"\nretries = 3\n",
            3,
            Some("states.build.retries"),
            "unknown key (known: timeout, lease, max_lease, clock_skew, env, log, retry, classify, loop, dlq, breaker, tier, gate, notify, budget, concurrency, worktree, accept, agent)",
        ),
        ("[defaults]\nenv.pas = [\"X\"]\n", 2, Some("defaults.env.pas"), "unknown key (known: pass)"),
        ("[defaults.log]\nmax = 1\n", 2, Some("defaults.log.max"), "unknown key (known: max_bytes)"),
        ("[default]\ntimeout = \"1h\"\n", 1, Some("default"), "unknown key (known: defaults, states)"),
        ("top = 1\n", 1, Some("top"), "unknown key (known: defaults, states)"),
        ("[states.\"../x\"]\ntimeout = \"1h\"\n", 1, Some("states.\"../x\""), "not a valid state: state name \"../x\""),
        ("[states.\"\"]\n", 1, Some("states.\"\""), "not a valid state: state name is empty"),
        (
            "[defaults]\ntimeout = 5\n",
            2,
            Some("defaults.timeout"),
            "invalid type: integer `5`, expected a duration string",
        ),
        ("[defaults]\nlease = \"0s\"\n", 2, Some("defaults.lease"), "must be more than zero"),
        ("[defaults]\ntimeout = \"31d\"\n", 2, Some("defaults.timeout"), "31d is more than the maximum of 30d"),
        (
            "[defaults]\ntimeout = \"30d\"\n[states.x]\nlease = \"8d\"\n",
            4,
            Some("states.x.lease"),
            "8d is more than the maximum of 7d",
        ),
        (
            "[defaults]\nlog.max_bytes = 0\n",
            2,
            Some("defaults.log.max_bytes"),
            "invalid size 0: must be more than zero",
        ),
        ("[defaults]\nlog.max_bytes = -1\n", 2, Some("defaults.log.max_bytes"), "must be more than zero"),
        ("[defaults]\nlog.max_bytes = \"10MB\"\n", 2, Some("defaults.log.max_bytes"), "invalid size \"10MB\""),
        ("[defaults]\nlog.max_bytes = 1.5\n", 2, Some("defaults.log.max_bytes"), "invalid type: floating point"),
        (
            "[defaults]\nenv.pass = [\"OK\",\n  \"NOT-OK\"]\n",
            3,
            Some("defaults.env.pass[1]"),
            "\"NOT-OK\" is not an environment variable name",
        ),
        ("[defaults]\nenv.pass = [\"\"]\n", 2, Some("defaults.env.pass[0]"), "empty environment variable name"),
        (
            "[defaults]\nenv.pass = \"X\"\n",
            2,
            Some("defaults.env.pass"),
            "invalid type: string \"X\", expected a sequence",
        ),
        ("[defaults]\nenv = 1\n", 2, Some("defaults.env"), "expected a table"),
        ("[states]\nbuild = 1\n", 2, Some("states.build"), "expected a table"),
        ("[defaults]\n[defaults.timeout]\nx = 1\n", 2, Some("defaults.timeout"), "invalid type: map"),
        ("[defaults]\ntimeout = \"1h\"\ntimeout = \"2h\"\n", 3, None, "invalid TOML: duplicate key"),
        ("[defaults]\nlease = \"5m\"\n\ntimeout = \n", 4, None, "invalid TOML:"),
        ("[defaults\n", 1, None, "invalid TOML:"),
        ("[defaults]\nlog = { max_bytes = \"x\" }\n", 2, Some("defaults.log.max_bytes"), "invalid size \"x\""),
    ];
    for (text, line, key, msg) in cases {
        let e = err(text);
        assert_eq!((e.line, e.key.as_deref()), (Some(*line), *key), "{text:?}: {e}");
        assert!(e.message.contains(msg), "{text:?}: {e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        assert_eq!(e.file, POLICY_PATH);
    }
    let e = err("[defaults]\ntimeout = \"5x\"\n");
    assert_eq!(
        e.to_string(),
        ".dwp/policy.toml:2: defaults.timeout: invalid duration \"5x\": use a number followed by s, m, h or d"
    );
}

#[test]
fn friendly_rewrites_only_unknown_fields() {
    assert_eq!(friendly("unknown field `x`, expected `a`"), "unknown key (known: a)");
    assert_eq!(friendly("unknown field `x`, there are no fields"), "unknown key (this table takes no keys)");
    assert_eq!(friendly("something else"), "something else");
}

const FAILURE: &str = r#"[defaults]
retry.transient = 5
retry.backoff = "2s"
retry.factor = 1.5
classify.transient_exit_codes = [69, 70]
loop.hard = 4
breaker = "anthropic"

[states.build]
retry = { logic = 0, max_delay = "1m" }
dlq.retry_after = "10m"
breaker.threshold = 2
breaker.cooldown = "1m"
"#;

#[test]
fn failure_keys_resolve_per_state() {
    let p = parse(FAILURE);
    let f = p.effective("build", &Base::default()).failure;
    let st = |line| Origin::State { state: "build".into(), line };
    assert_eq!(f.retry_transient, Resolved { value: 5, from: Origin::Defaults { line: 2 } });
    assert_eq!(f.retry_logic, Resolved { value: 0, from: st(10) });
    assert_eq!(f.retry_timeout, Resolved::built_in(2));
    assert_eq!(f.retry_backoff.value, 2);
    assert_eq!(f.retry_factor.value, Factor(1500));
    assert_eq!(f.retry_max_delay.value, 60);
    assert_eq!(f.transient_exit_codes.value, [69, 70]);
    assert_eq!(f.loop_hard.value, 4);
    assert_eq!(f.loop_soft, Resolved::built_in(3));
    assert_eq!(f.dlq_retry_after.value, Some(600));
    // The name comes from [defaults], the table's keys from the state: both forms mix.
    assert_eq!(f.breaker.value, "anthropic");
    assert_eq!(f.breaker_threshold, Resolved { value: 2, from: st(12) });
    assert_eq!(f.breaker_cooldown.value, 60);
    assert_eq!(f.breaker_window, Resolved::built_in(60));
    // Without a breaker name a state has its own breaker.
    let own = parse("").effective("review", &Base::default()).failure;
    assert_eq!(own.breaker.value, "review");
    assert_eq!(own, FailurePolicy::built_in("review"));
}

#[test]
fn failure_key_errors_name_file_line_and_key() {
    let cases = [
        ("[defaults]\nretry.logic = -1\n", 2, "defaults.retry.logic", "-1"),
        ("[defaults]\nretry.transient = 101\n", 2, "defaults.retry.transient", "maximum of 100"),
        ("[defaults]\nretry.backoff = \"soon\"\n", 2, "defaults.retry.backoff", "invalid duration"),
        ("[defaults]\nretry.factor = 0.5\n", 2, "defaults.retry.factor", "from 1 to 10"),
        ("[defaults]\nretry.tries = 1\n", 2, "defaults.retry.tries", "unknown key"),
        ("[states.b]\nclassify.auth_exit_codes = [0]\n", 2, "states.b.classify.auth_exit_codes", "0 is success"),
        ("[states.b]\nclassify.auth_exit_codes = [256]\n", 2, "states.b.classify.auth_exit_codes[0]", "256"),
        ("[defaults]\nloop.hard = 0\n", 2, "defaults.loop.hard", "at least 1"),
        ("[defaults]\nbreaker = \"../x\"\n", 2, "defaults.breaker", "invalid breaker name"),
        ("[defaults]\nbreaker.threshold = 0\n", 2, "defaults.breaker.threshold", "at least 1"),
        ("[defaults]\nbreaker.colour = 1\n", 2, "defaults.breaker.colour", "unknown key"),
        ("[defaults]\ndlq.sweep = \"0s\"\n", 2, "defaults.dlq.sweep", "more than zero"),
    ];
    for (text, line, key, message) in cases {
        let e = err(text);
        assert_eq!(e.line, Some(line), "{text}: {e}");
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
    }
}

#[test]
fn humans_keys_resolve_and_refuse_bad_values() {
    let p = parse(
        "[defaults]\nnotify = [\"state-scripts/notify/webhook\"]\nbudget.runs = 5\n\n[states.deploy]\ntier = \"gate\"\ngate.approvers = [\"lead@example.com\"]\ngate.require_signed = true\ngate.timeout = \"24h\"\ngate.default = \"B\"\nbudget.cost = 20.5\nconcurrency = { group = \"heavy\", max = 2 }\nworktree.keep = [\"target/\"]\naccept = { checks = [\"cargo test\"], timeout = \"5m\" }\n",
    );
    let h = p.effective("deploy", &Base::default()).humans;
    assert_eq!(h.tier.value, Tier::Gate);
    assert!(h.may_approve("lead@example.com") && !h.may_approve("x@example.com"));
    assert!(h.gate_require_signed.value);
    assert_eq!(h.gate_timeout.value, Some(86_400));
    assert_eq!(h.gate_default.value, GateDefault::Option('B'));
    assert_eq!(h.gate_on_reject, Resolved::built_in("canceled".to_owned()));
    assert_eq!(h.notify.value, ["state-scripts/notify/webhook"]);
    assert_eq!(h.budget_runs.value, Some(5));
    assert_eq!(h.budget_cost.value, Some(Money(20_500_000)));
    assert_eq!((h.concurrency_group.value.as_deref(), h.concurrency_max.value), (Some("heavy"), Some(2)));
    assert_eq!(h.worktree_keep.value, ["target/"]);
    assert_eq!(h.accept.value, ["cargo test"]);
    assert_eq!(h.accept_timeout.value, 300);
    let plain = p.effective("build", &Base::default()).humans;
    assert_eq!(plain.tier.value, Tier::Autonomous);
    assert_eq!(
        parse("[defaults]\naccept = [\"true\"]\n").effective("x", &Base::default()).humans.accept_timeout.value,
        600
    );

    for (text, key, message) in [
        ("[defaults]\ntier = \"manual\"\n", "defaults.tier", "unknown variant"),
        ("[defaults]\ngate.default = \"maybe\"\n", "defaults.gate.default", "invalid gate.default"),
        ("[defaults]\nbudget.runs = -2\n", "defaults.budget.runs", "-2"),
        ("[defaults]\nbudget.cost = -1.5\n", "defaults.budget.cost", "0 or more"),
        ("[defaults]\nconcurrency.max = 0\n", "defaults.concurrency.max", "at least 1"),
        ("[defaults]\nworktree.keep = [\"../x\"]\n", "defaults.worktree.keep", "without '..'"),
        ("[defaults]\naccept = [\"\"]\n", "defaults.accept", "an empty check"),
        ("[defaults]\naccept = 3\n", "defaults.accept", "a list of check commands"),
        ("[defaults]\nnotify = [\" \"]\n", "defaults.notify", "an empty entry"),
    ] {
        let e = err(text);
        assert_eq!(e.line, Some(2), "{text}: {e}");
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
    }
}
