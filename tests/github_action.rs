//! The GitHub Actions step (action.yml + scripts/action-step.sh), run without GitHub by
//! examples/github-actions/simulate.sh against a bare "origin" and a workspace clone checked out
//! on the pushed branch, as actions/checkout leaves it.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::BATON;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const PLAN: &str = "#!/bin/sh\nset -e\necho \"plan $BATON_RUN_ID\" >> \"$LEDGER\"\necho 'the plan' > plan.md\ngit add plan.md\ngit commit -q -m 'plan: written' -m 'dwp-state: build'\n";
const BUILD: &str = "#!/bin/sh\nset -e\necho \"build $BATON_RUN_ID\" >> \"$LEDGER\"\necho built > out.txt\ngit add out.txt\ngit commit -q -m 'build: out.txt' -m 'dwp-state: done'\n";
/// Fails, and tries to smuggle a workflow command into the job log through its output.
const EXPLODE: &str = "#!/bin/sh\necho 'about to fail'\necho '::error::injected by the handler'\nexit 3\n";

/// A bare origin with handlers on `main`, task branches pushed to it, and a workspace clone.
struct Board {
    dir: tempfile::TempDir,
    origin: PathBuf,
    seed: PathBuf,
    workspace: PathBuf,
    ledger: PathBuf,
}

/// What one simulated job left behind.
struct Job {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    summary: String,
    outputs: HashMap<String, String>,
}

impl Board {
    fn new(handlers: &[(&str, &str)], tasks: &[(&str, &str)]) -> Board {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin.git");
        let b = Board {
            seed: dir.path().join("seed"),
            workspace: dir.path().join("workspace"),
            ledger: dir.path().join("ledger"),
            origin,
            dir,
        };
        b.git(b.dir.path(), &["init", "-q", "--bare", "-b", "main", b.origin.to_str().unwrap()]);
        b.git(b.dir.path(), &["clone", "-q", b.origin.to_str().unwrap(), "seed"]);
        for (state, script) in handlers {
            let p = b.seed.join(".dwp/command").join(state);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // One failed run is what these tests count: no retries.
        std::fs::create_dir_all(b.seed.join(".dwp")).unwrap();
        std::fs::write(b.seed.join(common::NO_RETRIES.0), common::NO_RETRIES.1).unwrap();
        b.git(&b.seed, &["add", "-A"]);
        b.git(&b.seed, &["commit", "-q", "--allow-empty", "-m", "handlers"]);
        b.git(&b.seed, &["push", "-q", "origin", "main"]);
        for (branch, state) in tasks {
            b.git(&b.seed, &["branch", branch, "main"]);
            let out = b
                .cmd(BATON, &b.seed, &["send", "--branch", branch, state, "-m", &format!("task {branch}")])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            b.git(&b.seed, &["push", "-q", "origin", branch]);
        }
        // actions/checkout on a push: a full clone with the pushed branch checked out.
        b.git(b.dir.path(), &["clone", "-q", b.origin.to_str().unwrap(), "workspace"]);
        if let Some((branch, _)) = tasks.first() {
            b.git(&b.workspace, &["checkout", "-q", branch]);
        }
        b
    }

    fn cmd(&self, program: &str, dir: &Path, args: &[&str]) -> Command {
        common::command_in(self.dir.path(), program, dir, args)
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        common::git_in(self.dir.path(), dir, args)
    }

    /// The state of a branch on origin, read by git.
    fn state(&self, branch: &str) -> String {
        let out = self.git(&self.origin, &["log", "-1", "--format=%(trailers:key=dwp-state,valueonly)", branch]);
        out.lines().next().unwrap_or("").to_owned()
    }

    /// Run the action through simulate.sh with these inputs (`name=value`), the way a runner
    /// would: no git identity configured, the binary found on PATH.
    fn run_job(&self, inputs: &[&str]) -> Job {
        let sim = self.dir.path().join("sim");
        std::fs::create_dir_all(&sim).unwrap();
        let summary = sim.join("summary.md");
        let output = sim.join("output");
        std::fs::write(&summary, "").unwrap();
        std::fs::write(&output, "").unwrap();
        let bin_dir = Path::new(BATON).parent().unwrap();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let script = format!("{ROOT}/examples/github-actions/simulate.sh");
        let mut cmd = self.cmd("bash", &self.workspace, &[&script]);
        cmd.arg("pass-env=LEDGER")
            .args(inputs)
            .env("PATH", path)
            .env("TMPDIR", &sim)
            .env("LEDGER", &self.ledger)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_OUTPUT", &output)
            .env_remove("GITHUB_WORKSPACE")
            .env_remove("RUNNER_TEMP")
            .env_remove("GIT_AUTHOR_NAME")
            .env_remove("GIT_AUTHOR_EMAIL")
            .env_remove("GIT_COMMITTER_NAME")
            .env_remove("GIT_COMMITTER_EMAIL")
            .env_remove("EMAIL");
        let out = cmd.output().unwrap();
        let outputs = std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Job {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            summary: std::fs::read_to_string(&summary).unwrap(),
            outputs,
        }
    }
}

impl Job {
    fn output(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no output {name}: {:?}\n{}", self.outputs, self.stderr))
    }

    /// Table rows of the step summary that name this branch.
    fn rows<'a>(&'a self, branch: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let cell = format!("| <code>{branch}</code> |");
        self.summary.lines().filter(move |l| l.starts_with('|') && l.contains(&cell))
    }
}

/// One push, one job: the two-step task goes plan -> build -> done on origin within the job
/// (the keep-ticking loop; a GITHUB_TOKEN push would start no second run), the failing handler
/// gets an `::error` annotation, the summary has a Markdown table, `failed=1` is an output, and
/// without fail-on-error the step passes.
#[test]
fn one_job_ticks_until_idle_and_reports() {
    let b = Board::new(
        &[("plan", PLAN), ("build", BUILD), ("explode", EXPLODE)],
        &[("task/ok", "plan"), ("task/bad", "explode")],
    );
    let job = b.run_job(&[]);
    assert_eq!(job.code, Some(0), "{}\n{}", job.stdout, job.stderr);

    assert_eq!(b.state("task/ok"), "done", "both steps ran in one job:\n{}", job.stderr);
    assert_eq!(b.state("task/bad"), "failed");
    let ledger = std::fs::read_to_string(&b.ledger).unwrap();
    let steps: Vec<&str> = ledger.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(steps, ["plan", "build"], "each handler exactly once");
    let files = b.git(&b.origin, &["ls-tree", "--name-only", "task/ok"]);
    assert!(files.lines().any(|f| f == "out.txt"), "{files}");

    // Ticks: plan (+ explode), build, then an idle one that ends the loop.
    assert_eq!(job.output("ticks"), "3");
    assert_eq!(job.output("capped"), "false");
    assert_eq!(job.output("failed"), "1");
    assert_eq!(job.output("errors"), "0");
    assert_eq!(job.output("succeeded"), "2");
    assert_eq!(job.output("claimed"), "3");
    let events = std::fs::read_to_string(job.output("events")).unwrap();
    assert_eq!(events.lines().filter(|l| l.contains("\"action\":\"succeeded\"")).count(), 2, "{events}");

    // The annotation for the failed handler, and its log without live workflow commands.
    let error = job
        .stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no ::error in\n{}", job.stdout));
    assert!(
        error.starts_with(
            "::error title=git-baton%3A task/bad failed in explode::task/bad: the handler for 'explode' failed"
        ),
        "{error}"
    );
    assert!(error.contains("'failed'"), "{error}");
    assert_eq!(job.stdout.lines().filter(|l| l.starts_with("::error ")).count(), 1, "{}", job.stdout);
    let lines: Vec<&str> = job.stdout.lines().collect();
    let stop = lines.iter().position(|l| l.starts_with("::stop-commands::")).expect("log tail is fenced");
    let token = lines[stop].trim_start_matches("::stop-commands::");
    let resume = lines.iter().position(|l| *l == format!("::{token}::")).expect("commands resumed");
    let fenced = &lines[stop + 1..resume];
    assert!(fenced.contains(&"about to fail") && fenced.contains(&"::error::injected by the handler"), "{fenced:?}");
    assert!(!job.stdout.contains("::warning"), "{}", job.stdout);

    // The step summary: a Markdown table with a row per outcome, and the branches afterwards.
    let s = &job.summary;
    assert!(s.contains("### git-baton: 3 ticks on <code>origin</code>"), "{s}");
    assert!(
        s.contains("| Tick | Branch | Action | State | Next state | Exit | Duration | Commit | Error |\n|---:|"),
        "{s}"
    );
    let ok: Vec<&str> = job.rows("task/ok").collect();
    assert_eq!(ok.len(), 3, "plan, build, and the final board:\n{s}");
    assert!(ok[0].starts_with("| 1 | <code>task/ok</code> | succeeded | plan | build | 0 |"), "{}", ok[0]);
    assert!(ok[1].starts_with("| 2 | <code>task/ok</code> | succeeded | build | done | 0 |"), "{}", ok[1]);
    assert!(ok[2].starts_with("| <code>task/ok</code> | done |"), "{}", ok[2]);
    let bad: Vec<&str> = job.rows("task/bad").collect();
    assert!(bad[0].starts_with("| 1 | <code>task/bad</code> | **failed** | explode | failed | 3 |"), "{}", bad[0]);
    assert!(bad[1].starts_with("| <code>task/bad</code> | failed |"), "{}", bad[1]);
    // The transitions of the job as a Mermaid flowchart GitHub renders: a node per state, an
    // edge per (state, next state) with its count.
    let fence = s.find("```mermaid\nflowchart LR\n").unwrap_or_else(|| panic!("no Mermaid block:\n{s}"));
    let block = &s[fence..];
    let block = &block[..block[3..].find("```").expect("closed fence") + 6];
    let want = "```mermaid\nflowchart LR\n    s0[\"build\"]\n    s1[\"done\"]\n    s2[\"explode\"]\n    s3[\"failed\"]\n    s4[\"plan\"]\n    s0 -->|1| s1\n    s2 -->|1| s3\n    s4 -->|1| s0\n```";
    assert_eq!(block, want, "{s}");

    // No identity was configured: the bot's, set in the repository config, signed everything.
    let authors = b.git(&b.origin, &["log", "--format=%an <%ae>", "main..task/ok"]);
    let mut authors: Vec<&str> = authors.lines().collect();
    assert_eq!(authors.pop(), Some("Test Author <author@example.com>"), "the task itself");
    assert!(!authors.is_empty());
    for a in authors {
        assert_eq!(a, "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>");
    }

    // A push that finds nothing to do: one idle tick, an empty table, nothing failed.
    let again = b.run_job(&["fail-on-error=true"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.output("ticks"), "1");
    assert_eq!(again.output("failed"), "0");
    assert!(again.summary.contains("Nothing was actionable."), "{}", again.summary);
    assert!(!again.summary.contains("```mermaid"), "no transitions, no diagram: {}", again.summary);
}

/// `fail-on-error: true` turns a failed handler into a failed step (with its outputs written).
#[test]
fn fail_on_error_fails_the_step() {
    let b = Board::new(&[("explode", EXPLODE)], &[("task/bad", "explode")]);
    let job = b.run_job(&["fail-on-error=true"]);
    assert_eq!(job.code, Some(1), "{}\n{}", job.stdout, job.stderr);
    assert_eq!(job.output("failed"), "1");
    assert!(job.stdout.contains("::error title=git-baton::1 handler(s) failed"), "{}", job.stdout);
    assert_eq!(b.state("task/bad"), "failed");
}

/// `max-ticks` caps the loop: the task stops half-way, `capped=true`, and a warning says so.
#[test]
fn max_ticks_caps_the_loop() {
    let b = Board::new(&[("plan", PLAN), ("build", BUILD)], &[("task/ok", "plan")]);
    let job = b.run_job(&["max-ticks=1", "branch=task/*"]);
    assert_eq!(job.code, Some(0), "{}", job.stderr);
    assert_eq!(b.state("task/ok"), "build");
    assert_eq!(job.output("ticks"), "1");
    assert_eq!(job.output("capped"), "true");
    assert!(job.stdout.contains("::warning title=git-baton::stopped after max-ticks=1"), "{}", job.stdout);
    assert!(job.summary.contains("[!WARNING]"), "{}", job.summary);
    let lease = b.git(&b.origin, &["log", "-1", "--format=%(trailers:key=dwp-lease-seconds,valueonly)", "task/ok^"]);
    assert_eq!(lease.trim(), "3900", "default lease: the timeout (3600) + 300");
    let next = b.run_job(&["branch=task/*"]);
    assert_eq!(b.state("task/ok"), "done");
    assert_eq!(next.output("capped"), "false");
}

/// The branch input selects: a glob that does not match leaves the task alone.
#[test]
fn branch_globs_select() {
    let b = Board::new(&[("plan", PLAN), ("build", BUILD)], &[("task/ok", "plan"), ("other/x", "plan")]);
    let job = b.run_job(&["branch=nothing/* task/*"]);
    assert_eq!(job.code, Some(0), "{}", job.stderr);
    assert_eq!(b.state("task/ok"), "done");
    assert_eq!(b.state("other/x"), "plan");
    assert_eq!(job.rows("other/x").count(), 0, "{}", job.summary);
}

/// A runner that cannot run (the remote is gone) fails the step even without fail-on-error; a
/// bad input is a usage error.
#[test]
fn runner_failures_and_bad_inputs_fail_the_step() {
    let b = Board::new(&[("plan", PLAN)], &[("task/ok", "plan")]);
    let bad = b.run_job(&["max-ticks=0"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(
        bad.stdout.contains("::error title=git-baton::input max-ticks must be a positive whole number"),
        "{}",
        bad.stdout
    );

    b.git(&b.workspace, &["remote", "set-url", "origin", "/nonexistent/origin.git"]);
    let job = b.run_job(&[]);
    assert_eq!(job.code, Some(1), "{}", job.stderr);
    assert!(
        job.stdout.contains("::error title=git-baton::git-baton run stopped with exit status 1 in tick 1"),
        "{}",
        job.stdout
    );
    assert!(job.stderr.contains("git-baton: error: fetching origin"), "{}", job.stderr);
    assert_eq!(b.state("task/ok"), "plan");
}

/// Facts about action.yml and the example workflows, read by python3 (PyYAML when installed, a
/// structural line check otherwise).
#[test]
fn action_yml_is_a_composite_action_wired_to_the_script() {
    let check = r#"
import json, re, sys
root = sys.argv[1]
action_text = open(root + "/action.yml").read()
script = open(root + "/scripts/action-step.sh").read()
read_vars = sorted(set(re.findall(r"\$\{?(INPUT_[A-Z_]+)", script)))
try:
    import yaml
except ImportError:
    print(json.dumps({"yaml": False, "composite": bool(re.search(r"^runs:\n  using: composite$", action_text, re.M)),
                      "runs_script": 'scripts/action-step.sh"' in action_text,
                      "missing_env": [v for v in read_vars if "\n        " + v + ": ${{ inputs." not in action_text]}))
    sys.exit(0)
action = yaml.safe_load(action_text)
steps = action["runs"]["steps"]
tick = next(s for s in steps if s.get("id") == "tick")
declared = set(action["inputs"])
used = set(re.findall(r"inputs\.([a-z0-9-]+)", action_text))
workflows = {}
for name in ("baton.yml", "poll.yml", "baton-app-token.yml"):
    w = yaml.safe_load(open(root + "/examples/github-actions/" + name))
    on = w.get("on", w.get(True))
    job = next(iter(w["jobs"].values()))
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    baton = next(s for s in job["steps"] if s.get("uses", "").endswith("/git-baton@main"))
    workflows[name] = {"on": sorted(on), "group": w["concurrency"]["group"], "cancel": w["concurrency"]["cancel-in-progress"],
                       "fetch_depth": checkout["with"]["fetch-depth"], "inputs_ok": set(baton.get("with", {})) <= declared,
                       "contents": w["permissions"]["contents"],
                       "report_artifact": any("git baton report -o" in s.get("run", "") for s in job["steps"])
                           and any(s.get("uses", "").startswith("actions/upload-artifact@") and "baton-report.html" in s["with"]["path"]
                                   and s.get("if") == "always()" for s in job["steps"]),
                       "branches_ignore": ((on.get("push") or {}) if isinstance(on, dict) else {}).get("branches-ignore")}
print(json.dumps({
    "yaml": True,
    "composite": action["runs"]["using"] == "composite",
    "runs_script": tick["run"].strip() == 'exec bash "$GITHUB_ACTION_PATH/scripts/action-step.sh"' and tick["shell"] == "bash",
    "missing_env": [v for v in read_vars if v not in tick["env"]],
    "undeclared": sorted(used - declared),
    "unused": sorted(declared - used),
    "outputs_from_tick": all(o["value"].startswith("${{ steps.tick.outputs.") for o in action["outputs"].values()),
    "install_uses_cargo": any("cargo install --locked --force --path \"$GITHUB_ACTION_PATH\"" in s.get("run", "") for s in steps),
    "cache": [s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/cache@")],
    "shells": sorted({s.get("shell", "") for s in steps if "run" in s}),
    "workflows": workflows,
}, default=sorted))
"#;
    let out = Command::new("python3").arg("-c").arg(check).arg(ROOT).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(facts["composite"], true, "{facts}");
    assert_eq!(facts["runs_script"], true, "{facts}");
    assert_eq!(facts["missing_env"], serde_json::json!([]), "every INPUT_ the script reads is mapped: {facts}");
    if facts["yaml"] == false {
        eprintln!("PyYAML not installed: only a structural check of action.yml");
        return;
    }
    assert_eq!(facts["undeclared"], serde_json::json!([]), "{facts}");
    assert_eq!(facts["unused"], serde_json::json!([]), "{facts}");
    assert_eq!(facts["outputs_from_tick"], true, "{facts}");
    assert_eq!(facts["install_uses_cargo"], true, "{facts}");
    assert!(facts["cache"][0].as_str().unwrap().contains("~/.cargo/registry"), "{facts}");
    assert_eq!(facts["shells"], serde_json::json!(["bash"]), "{facts}");
    let w = &facts["workflows"]["baton.yml"];
    assert_eq!(w["on"], serde_json::json!(["push", "workflow_dispatch"]), "{w}");
    assert_eq!(w["branches_ignore"], serde_json::json!(["main"]), "{w}");
    assert_eq!(w["group"], "baton-${{ github.ref }}", "{w}");
    assert_eq!(w["cancel"], false, "{w}");
    assert_eq!(w["report_artifact"], true, "the HTML report is uploaded as an artifact: {w}");
    assert_eq!(w["contents"], "write", "{w}");
    for (name, w) in facts["workflows"].as_object().unwrap() {
        assert_eq!(w["fetch_depth"], 0, "{name}: {w}");
        assert_eq!(w["inputs_ok"], true, "{name} passes only declared inputs: {w}");
    }
    assert_eq!(facts["workflows"]["poll.yml"]["on"], serde_json::json!(["schedule", "workflow_dispatch"]));
}

/// Cancelling the job: GitHub signals the step's entry process (action.yml `exec`s the script),
/// the script passes the signal on to git-baton, which gives the handler `grace` seconds, kills
/// it and pushes its failure; no further tick starts and the summary is still written.
#[test]
fn cancellation_is_forwarded_and_recorded() {
    let pid_dir = tempfile::tempdir().unwrap();
    let slow = format!("#!/bin/sh\necho $$ > {}/pid\nsleep 60\n", pid_dir.path().display());
    let b = Board::new(&[("slow", &slow)], &[("task/slow", "slow")]);
    let sim = b.dir.path().join("sim");
    std::fs::create_dir_all(&sim).unwrap();
    let (summary, output) = (sim.join("summary.md"), sim.join("output"));
    let bin_dir = Path::new(BATON).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let script = format!("{ROOT}/scripts/action-step.sh");
    let started = std::time::Instant::now();
    let child = b
        .cmd("bash", &b.workspace, &[&script])
        .env("PATH", path)
        .env("RUNNER_TEMP", &sim)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output)
        .env("INPUT_GRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while !pid_dir.path().join("pid").exists() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the handler never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(b.state("task/slow"), "working");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "stopped within the grace period");
    assert!(stdout.contains("::warning title=git-baton::stopped by SIGINT in tick 1"), "{stdout}");
    assert!(stdout.contains("::error title=git-baton%3A task/slow failed in slow::"), "{stdout}");
    assert_eq!(b.state("task/slow"), "failed", "the failure was pushed:\n{stderr}");
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert!(outputs.lines().any(|l| l == "failed=1") && outputs.lines().any(|l| l == "ticks=1"), "{outputs}");
    assert!(std::fs::read_to_string(&summary).unwrap().contains("| 1 | <code>task/slow</code> | **failed** | slow |"));
    let handler: i32 = std::fs::read_to_string(pid_dir.path().join("pid")).unwrap().trim().parse().unwrap();
    // SAFETY: probing (signal 0) the handler this test started.
    assert_ne!(unsafe { libc::kill(handler, 0) }, 0, "the handler was killed");
}
