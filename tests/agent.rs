//! The agent handler end to end: `git baton agent` run by real runner ticks (`git baton run`) in
//! real repositories, with a scripted fake agent as `BATON_AGENT_CMD` (no network).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{count, has, repo_with, run_json, tick_until, TestRepo, BATON};

/// The fake agent: keyed by `$BATON_BRANCH`, it records its stdin, `$BATON_PROMPT_FILE` and its
/// working directory per call (`<branch>.<n>.*` in `dir`), then does what the branch asks.
fn fake_agent(dir: &Path) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
d='{d}'
n=$(cat "$d/$BATON_BRANCH.n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$d/$BATON_BRANCH.n"
cat > "$d/$BATON_BRANCH.$n.stdin"
cp "$BATON_PROMPT_FILE" "$d/$BATON_BRANCH.$n.file"
pwd > "$d/$BATON_BRANCH.$n.pwd"
case "$BATON_BRANCH" in
  ok|next-*) echo work > work.txt; printf 'COMPLETED: wrote work.txt\n\nAll good.\n' ;;
  flaky) if [ "$n" -eq 1 ]; then echo 'FAILED: the tests do not compile'; echo 'error[E0425]: cannot find x';
         else echo fixed > fix.txt; echo 'COMPLETED: fixed it'; fi ;;
  ask) echo partial > partial.txt; printf 'BLOCKED: Which database should I use?\nPostgres or SQLite?\n' ;;
  garbage) echo g > g.txt; echo 'Sure! I did it.' ;;
  json) echo j > j.txt
        printf '%s\n' '{{"type":"result","is_error":false,"result":"COMPLETED: json mode","total_cost_usd":0.0421,"usage":{{"input_tokens":1000,"output_tokens":234}}}}' ;;
  slow|slow-*) sleep 60 & echo $! > "$d/$BATON_BRANCH.pid"; wait ;;
  crash) echo 'rate limited' >&2; exit 75 ;;
  *) echo "FAILED: no script for $BATON_BRANCH" ;;
esac
"#,
        d = dir.display()
    );
    let path = dir.join("fake-agent");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A handler that runs `git baton agent` with the fake agent (and these extra lines first).
fn handler(agent: &Path, extra: &str, args: &str) -> String {
    format!("#!/bin/sh\n{extra}export BATON_AGENT_CMD='{}'\nexec '{BATON}' agent {args}\n", agent.display())
}

const POLICY: &str = "[defaults]\nretry.logic = 1\nretry.timeout = 0\nretry.transient = 0\nretry.backoff = \"1s\"\n\n\
    [states.work]\nagent.next = \"review\"\n\n[states.work-short]\ntimeout = \"2s\"\n";

struct Setup {
    r: TestRepo,
    calls: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let calls = tempfile::tempdir().unwrap();
        let agent = fake_agent(calls.path());
        let work = handler(&agent, "", "");
        let quick = handler(&agent, "", "--next shipped");
        let slow = handler(&agent, "export BATON_AGENT_TIMEOUT=1s\n", "");
        let report = handler(&agent, "", "--json");
        let children = calls.path().join("children.json");
        let join = handler(&agent, &format!("export BATON_CHILDREN_JSON='{}'\n", children.display()), "");
        let r = repo_with(&[
            (".dwp/command/work", &work),
            (".dwp/command/quick", &quick),
            (".dwp/command/slow", &slow),
            (".dwp/command/join", &join),
            (".dwp/command/work-short", &work),
            (".dwp/command/report", &report),
            (".dwp/policy.toml", POLICY),
        ]);
        Setup { r, calls }
    }

    fn task(&self, branch: &str, state: &str, body: &str) {
        self.r.git(&["branch", branch, "main"]);
        self.r.baton_ok(&["send", "--branch", branch, state, "-m", body]);
    }

    /// What the fake agent recorded of its `n`th call for `branch` (`stdin`, `file`, `pwd`).
    fn call(&self, branch: &str, n: u32, what: &str) -> String {
        std::fs::read_to_string(self.calls.path().join(format!("{branch}.{n}.{what}"))).unwrap_or_default()
    }

    fn calls_of(&self, branch: &str) -> u32 {
        std::fs::read_to_string(self.calls.path().join(format!("{branch}.n")))
            .map(|n| n.trim().parse().unwrap())
            .unwrap_or(0)
    }

    fn message(&self, rev: &str) -> String {
        self.r.git(&["log", "-1", "--format=%B", rev])
    }
}

const ENVELOPE: &str = "## Task: T-1\n\nGoal: write work.txt\n\nAcceptance Criteria:\n- work.txt exists\n\n\
    Inputs:\n- README — the project\n\nStop Conditions:\n- the disk is full\n";

#[test]
fn completed_commits_the_changes_and_names_the_next_state() {
    let s = Setup::new();
    s.task("ok", "work", ENVELOPE);
    s.task("next-flag", "quick", "ship it");
    s.r.handler(".dwp/command/plain", &handler(&fake_agent(s.calls.path()), "", ""));
    s.r.commit_all("plain handler");
    s.task("next-default", "plain", "do it");
    let events = run_json(&s.r, &[]);
    assert_eq!(count(&events, "ok", "succeeded"), 1, "{events:#?}");
    // The policy's agent.next for `work`; the wrapper's --next over nothing; else done.
    assert_eq!(s.r.state_of("ok"), "review");
    assert_eq!(s.r.state_of("next-flag"), "shipped");
    assert_eq!(s.r.state_of("next-default"), "done");
    // The answer: the agent's summary and details, every change committed, nothing of ours.
    assert_eq!(s.message("ok"), "wrote work.txt\n\nAll good.\n\ndwp-state: review\n\n");
    assert_eq!(s.r.git(&["show", "ok:work.txt"]), "work\n");
    let files = s.r.git(&["ls-tree", "-r", "--name-only", "ok"]);
    assert!(!files.contains("prompt") && !files.contains("reply"), "{files}");
    assert_eq!(s.r.git(&["rev-list", "--count", "main..ok"]).trim(), "3", "send, claim, answer");
    // The prompt: on stdin and in BATON_PROMPT_FILE, the same; the envelope and the contract.
    let prompt = s.call("ok", 1, "stdin");
    assert_eq!(prompt, s.call("ok", 1, "file"));
    for want in [
        "branch `ok` (step `work`)",
        "## Goal (task T-1)\n\nwrite work.txt\n",
        "## Acceptance criteria (all must hold)\n\n- work.txt exists\n",
        "## Inputs\n\n- README — the project\n",
        "- the disk is full\n",
        "COMPLETED: <one line",
    ] {
        assert!(prompt.contains(want), "{want:?} not in\n{prompt}");
    }
    // It ran in the run's worktree, not in the user's checkout.
    let pwd = s.call("ok", 1, "pwd");
    assert!(pwd.contains("/baton/worktrees/"), "{pwd}");
}

#[test]
fn failed_is_retried_and_the_second_prompt_holds_the_first_failure() {
    let s = Setup::new();
    s.task("flaky", "work", "make the tests compile");
    let events = tick_until(&s.r, "flaky", Duration::from_secs(30), |st| st == "review");
    assert_eq!(count(&events, "flaky", "retrying"), 1, "{events:#?}");
    assert_eq!(s.calls_of("flaky"), 2);
    let retry = s.r.git(&["log", "--format=%H", "--grep=^baton: retry work", "flaky"]);
    let retry = retry.lines().next().expect("a retry commit");
    assert_eq!(s.r.trailer_of(retry, "dwp-error-type").as_deref(), Some("logic"));
    let second = s.call("flaky", 2, "stdin");
    for want in [
        "This is attempt 2 of 2.",
        "## Task\n\nmake the tests compile\n",
        "## The previous attempt (attempt 1) failed",
        "Error (logic): handler exited with status 1",
        "FAILED: the tests do not compile",
        "git-baton agent: the agent FAILED: the tests do not compile",
    ] {
        assert!(second.contains(want), "{want:?} not in\n{second}");
    }
    assert!(!s.call("flaky", 1, "stdin").contains("previous attempt"));
    assert_eq!(s.r.git(&["show", "flaky:fix.txt"]), "fixed\n");
}

#[test]
fn blocked_asks_a_person_with_a_decision_card() {
    let s = Setup::new();
    s.task("ask", "work", "store the data");
    let events = run_json(&s.r, &[]);
    assert!(has(&events, "ask", "succeeded"), "{events:#?}");
    assert_eq!(s.r.state_of("ask"), "blocked");
    assert_eq!(s.r.trailer_of("ask", "dwp-escalation").as_deref(), Some("agent"));
    let msg = s.message("ask");
    assert!(msg.starts_with("blocked: Which database should I use?\n"), "{msg}");
    assert!(msg.contains("    Postgres or SQLite?"), "{msg}");
    assert!(msg.contains("## Decision required\n\nContext: the coding agent running work on ask stopped to ask: Which database should I use?"), "{msg}");
    assert!(msg.contains("A. Answer and run work again — git baton send --branch ask work"), "{msg}");
    // The partial work is kept for the person; the inbox lists the task.
    assert_eq!(s.r.git(&["show", "ask:partial.txt"]), "partial\n");
    let inbox = s.r.baton(&["inbox", "--json"]);
    assert_eq!(inbox.status.code(), Some(3), "something waits for a person");
    let item: serde_json::Value = serde_json::from_slice(&inbox.stdout).unwrap();
    assert_eq!((item["kind"].as_str(), item["branch"].as_str()), (Some("blocked"), Some("ask")), "{item}");
}

#[test]
fn a_reply_without_a_verdict_is_a_logic_failure() {
    let s = Setup::new();
    s.task("garbage", "work", "do it");
    let events = tick_until(&s.r, "garbage", Duration::from_secs(30), |st| st == "failed");
    assert_eq!(count(&events, "garbage", "retrying"), 1, "{events:#?}");
    assert_eq!(s.r.trailer_of("garbage", "dwp-error-type").as_deref(), Some("logic"));
    let msg = s.message("garbage");
    assert!(msg.contains("Sure! I did it."), "{msg}");
    assert!(msg.contains("does not start with COMPLETED:, FAILED: or BLOCKED:"), "{msg}");
    assert!(msg.contains("BATON-ERROR-TYPE: logic"), "{msg}");
    // Nothing the agent did was committed: the branch holds the runner's records only.
    let files = s.r.git(&["ls-tree", "-r", "--name-only", "garbage"]);
    assert!(!files.contains("g.txt"), "{files}");
}

#[test]
fn a_failing_agent_command_passes_its_status_on() {
    let s = Setup::new();
    s.task("crash", "work", "do it");
    let events = run_json(&s.r, &[]);
    assert!(has(&events, "crash", "failed"), "{events:#?}");
    // 75 is transient (retry.transient = 0 here: a dead letter at once).
    assert_eq!(s.r.trailer_of("crash", "dwp-error-type").as_deref(), Some("transient"));
    assert_eq!(s.r.trailer_of("crash", "dwp-exit-code").as_deref(), Some("75"));
    let msg = s.message("crash");
    assert!(msg.contains("rate limited") && msg.contains("the agent command exited with status 75"), "{msg}");
}

#[test]
fn json_output_reports_cost_and_tokens_as_budgets_read_them() {
    let s = Setup::new();
    s.task("json", "work", "do it");
    let events = run_json(&s.r, &[]);
    assert!(has(&events, "json", "succeeded"), "{events:#?}");
    assert_eq!(s.r.state_of("json"), "review");
    assert_eq!(s.r.trailer_of("json", "dwp-cost").as_deref(), Some("0.0421"));
    assert_eq!(s.r.trailer_of("json", "dwp-tokens").as_deref(), Some("1234"));
    assert!(s.message("json").starts_with("json mode\n"));
    let budget: serde_json::Value = serde_json::from_str(&s.r.baton_ok(&["budget", "json", "--json"])).unwrap();
    assert_eq!(budget["spent"]["cost"], serde_json::json!(0.0421), "{budget}");
    assert_eq!(budget["spent"]["tokens"], serde_json::json!(1234), "{budget}");

    // `git baton agent --json`: the answer as one object, the last line of the run's log.
    s.r.baton_ok(&["send", "--branch", "json", "report", "-m", "again"]);
    let events = run_json(&s.r, &[]);
    let log = common::event(&events, "json", "succeeded")["log"].as_str().unwrap().to_owned();
    let log = std::fs::read_to_string(log).unwrap();
    let answer: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"outcome": "completed", "summary": "json mode", "next_state": "done",
            "commit": s.r.head("json"), "cost": 0.0421, "tokens": 1234})
    );
}

#[test]
fn a_timeout_stops_the_agents_whole_process_group() {
    let s = Setup::new();
    s.task("slow", "slow", "take forever");
    let started = Instant::now();
    let events = run_json(&s.r, &[]);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(has(&events, "slow", "failed"), "{events:#?}");
    assert_eq!(s.r.trailer_of("slow", "dwp-error-type").as_deref(), Some("timeout"));
    assert!(s.message("slow").contains("the agent ran out of time after 1s"), "{}", s.message("slow"));
    assert_gone(&s, "slow");
}

/// The process the fake agent left in the background for `branch` is gone.
fn assert_gone(s: &Setup, branch: &str) {
    let pid = std::fs::read_to_string(s.calls.path().join(format!("{branch}.pid"))).unwrap();
    let alive = std::process::Command::new("kill")
        .args(["-0", pid.trim()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(!alive, "the agent's background sleep {pid} outlived the run");
}

/// The runner's own timeout stops `git baton agent`; the agent's process group goes with it.
#[test]
fn the_runners_timeout_stops_the_agent_too() {
    let s = Setup::new();
    s.task("slow-run", "work-short", "take forever");
    let started = Instant::now();
    let events = run_json(&s.r, &[]);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(has(&events, "slow-run", "failed"), "{events:#?}");
    assert_eq!(s.r.trailer_of("slow-run", "dwp-error-type").as_deref(), Some("timeout"));
    assert_gone(&s, "slow-run");
}

#[test]
fn the_children_of_a_join_are_in_the_prompt() {
    let s = Setup::new();
    std::fs::write(
        s.calls.path().join("children.json"),
        r#"{"parent":"ok","correlation_id":"c-9","rule":"all","children":[
            {"branch":"ok-api","state":"done","outcome":"succeeded","subject":"API ready","body":"endpoints added","cost":0.5,"head":"abc"},
            {"branch":"ok-ui","state":"failed","outcome":"failed","subject":"UI broke","body":null,"cost":null,"head":"def"}]}"#,
    )
    .unwrap();
    s.task("ok", "join", "merge the parts");
    let events = run_json(&s.r, &[]);
    assert!(has(&events, "ok", "succeeded"), "{events:#?}");
    let prompt = s.call("ok", 1, "stdin");
    for want in [
        "join rule `all`, correlation id `c-9`",
        "### `ok-api`: done (succeeded)\n\nLast commit: API ready\nHead: abc\nCost: 0.5\n\nendpoints added\n",
        "### `ok-ui`: failed\n\nLast commit: UI broke\n",
    ] {
        assert!(prompt.contains(want), "{want:?} not in\n{prompt}");
    }
}

#[test]
fn init_with_agent_installs_the_wrapper_that_runs_from_path() {
    let r = TestRepo::new();
    r.write("README", "project\n");
    r.commit_all("start");
    let bad = r.baton(&["init", "--with", "robot"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--with robot: no such handler (known: agent)"));
    assert!(!r.path.join(".dwp").exists(), "a usage error changes nothing");
    let out = r.baton_ok(&["init", "--with", "agent"]);
    assert!(out.contains(".dwp/command/agent"), "{out}");
    let wrapper = std::fs::read_to_string(r.path.join(".dwp/command/agent")).unwrap();
    assert!(wrapper.starts_with("#!/bin/sh\n") && wrapper.contains("exec git baton agent"), "{wrapper}");
    let commands = std::fs::read_to_string(r.path.join(".dwp/COMMANDS.md")).unwrap();
    assert!(commands.contains("| agent |") && commands.contains("BATON_AGENT_CMD"), "{commands}");
    assert_eq!(r.baton_ok(&["init", "--with", "agent"]).trim(), "", "re-running changes nothing");
    // Trusted mode, as init sets it up: the wrapper comes from main's tree.
    assert_eq!(r.git(&["config", "baton.trustedRef"]).trim(), "refs/heads/main");
    r.commit_all("init");

    // The installed wrapper, with `git baton` found on PATH and the agent passed by the runner.
    let bin = r.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BATON, bin.join("git-baton")).unwrap();
    let calls = tempfile::tempdir().unwrap();
    let agent = fake_agent(calls.path());
    r.git(&["branch", "ok", "main"]);
    r.baton_ok(&["send", "--branch", "ok", "agent", "-m", "do the task"]);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = r
        .baton_cmd(&["run", "--json", "--pass-env", "BATON_AGENT_*"])
        .env("PATH", path)
        .env("BATON_AGENT_CMD", &agent)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r.state_of("ok"), "done", "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(r.git(&["show", "ok:work.txt"]), "work\n");
}

#[test]
fn outside_a_handler_or_without_an_agent_it_says_what_is_missing() {
    let r = TestRepo::new();
    let out = r.baton(&["agent"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BATON_STATE is not set: git baton agent runs as a handler"), "{err}");

    // As a handler without BATON_AGENT_CMD: a usage error the runner records.
    let r = repo_with(&[(".dwp/command/work", &format!("#!/bin/sh\nexec '{BATON}' agent\n")), common::NO_RETRIES]);
    r.git(&["branch", "t1", "main"]);
    r.baton_ok(&["send", "--branch", "t1", "work", "-m", "x"]);
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "failed"), "{events:#?}");
    let msg = r.git(&["log", "-1", "--format=%B", "t1"]);
    assert!(msg.contains("BATON_AGENT_CMD is not set"), "{msg}");

    // --print-prompt needs no agent; a bad --next is refused before anything runs.
    let env = [("BATON_STATE", "work"), ("BATON_BRANCH", "t1"), ("BATON_BODY", "the body")];
    let out = r.baton_cmd(&["agent", "--print-prompt"]).envs(env).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("## Task\n\nthe body\n"));
    let out = r.baton_cmd(&["agent", "--next", "working"]).envs(env).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("written by runners only"));
}
