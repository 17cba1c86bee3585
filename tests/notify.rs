//! Completion notifications (real repositories, the real binary, a real HTTP server on
//! 127.0.0.1 behind the shipped webhook notifier): what is sent, exactly once across runners,
//! retried after a failure, nothing written without notifiers, remote mode.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{git_in, repo_with, task, TestRepo, BATON};
use serde_json::Value;

/// A webhook receiver: records every request body it gets and answers 200.
struct Server {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let b = b.clone();
                std::thread::spawn(move || {
                    if let Some(body) = read_request(&mut s) {
                        b.lock().unwrap().push(body);
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                    }
                });
            }
        });
        Server { url, bodies }
    }

    /// The bodies received, parsed (each must be JSON).
    fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().iter().map(|b| serde_json::from_str(b).expect("a JSON body")).collect()
    }
}

fn read_request(s: &mut TcpStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    assert!(head.starts_with("post /hook "), "{head}");
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    if head.contains("expect: 100-continue") {
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    while buf.len() < end + len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf[end..end + len]).into_owned())
}

/// The shipped webhook notifier.
fn webhook() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("state-scripts/notify/webhook").display().to_string()
}

const BUILD: &str =
    "#!/bin/sh\necho built > out.txt\ngit add out.txt\ngit commit -q -m 'built the thing' -m 'dwp-state: done'\n";
const BROKEN: &str = "#!/bin/sh\necho 'tests failed: 3 of 10'\nexit 1\n";

/// A policy that sends every notification through `notifier`, passing the webhook's URL.
fn policy(notifier: &str) -> String {
    format!(
        "[defaults]\nnotify = [{notifier:?}]\nenv.pass = [\"BATON_WEBHOOK_URL\", \"NOTIFY_DIR\"]\nretry.logic = 0\n"
    )
}

/// `git baton ARGS` with the webhook's URL in the runner's environment; asserts exit 0.
fn baton_with(r: &TestRepo, dir: &Path, url: &str, args: &[&str]) -> std::process::Output {
    let out = r.baton_cmd(args).current_dir(dir).env("BATON_WEBHOOK_URL", url).output().unwrap();
    assert!(out.status.success(), "git-baton {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn run(r: &TestRepo, url: &str) -> String {
    let out = baton_with(r, &r.path, url, &["run"]);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn records(r: &TestRepo) -> Vec<String> {
    r.git(&["for-each-ref", "--format=%(refname)", "refs/baton/"])
        .lines()
        .filter(|l| l.starts_with("refs/baton/notified"))
        .map(str::to_owned)
        .collect()
}

fn by_task<'a>(got: &'a [Value], branch: &str) -> Vec<&'a Value> {
    got.iter().filter(|b| b["baton"]["task_id"] == branch).collect()
}

/// A task reaching `done` and one becoming a dead letter each deliver one JSON object with the
/// right fields to the webhook; the next tick sends nothing again.
#[test]
fn done_and_dead_letter_reach_the_webhook_once() {
    let server = Server::start();
    let r = repo_with(&[
        (".dwp/command/build", BUILD),
        (".dwp/command/broken", BROKEN),
        (".dwp/policy.toml", &policy(&webhook())),
    ]);
    task(&r, "t1", "build");
    task(&r, "t2", "broken");
    run(&r, &server.url);
    assert_eq!(r.state_of("t1"), "done");
    assert_eq!(r.trailer_of("t2", "dwp-dead-letter").as_deref(), Some("logic"));
    let got = server.received();
    assert_eq!(got.len(), 2, "{got:#?}");

    let done = by_task(&got, "t1");
    assert_eq!(done.len(), 1, "{got:#?}");
    let n = &done[0]["baton"];
    assert_eq!(done[0]["text"], "Task t1 COMPLETED: built the thing");
    assert_eq!(n["status"], "COMPLETED");
    assert_eq!(n["state"], "done");
    assert_eq!(n["outcome"], "done");
    assert_eq!(n["summary"], "built the thing");
    assert_eq!(n["commit"], r.head("t1"));
    assert!(n["error"].is_null() && n["error_type"].is_null());
    assert_eq!(n["origin_state"], "build");
    let run_id = n["run_id"].as_str().expect("the run that answered");
    assert_eq!(r.trailer_of("t1~1", "dwp-run-id").as_deref(), Some(run_id), "the claim's run");

    let dead = by_task(&got, "t2");
    assert_eq!(dead.len(), 1, "{got:#?}");
    let n = &dead[0]["baton"];
    assert_eq!(n["status"], "FAILED");
    assert_eq!(n["state"], "failed");
    assert_eq!(n["outcome"], "dead-letter");
    assert_eq!(n["summary"], "baton: broken failed");
    assert_eq!(n["error"], "handler exited with status 1");
    assert_eq!(n["error_type"], "logic");
    assert_eq!(n["attempt"], 1);
    assert_eq!(n["commit"], r.head("t2"));
    assert_eq!(n["run_id"].as_str(), r.trailer_of("t2", "dwp-run-id").as_deref());
    assert_eq!(dead[0]["text"], "Task t2 FAILED: handler exited with status 1 (dead letter after 1 attempt)");

    // Recorded on the board, one ref per notified head; nothing is sent twice.
    let recs = records(&r);
    for b in ["t1", "t2"] {
        assert!(recs.contains(&format!("refs/baton/notified/{}", r.head(b))), "{recs:?}");
    }
    assert!(recs.contains(&"refs/baton/notified/since".to_owned()), "{recs:?}");
    run(&r, &server.url);
    let out = baton_with(&r, &r.path, &server.url, &["notify", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "nothing to notify: zero JSON lines");
    assert_eq!(server.received().len(), 2);
}

/// A notifier that fails once is retried on a later tick and delivers exactly once overall, with
/// two runners ticking at the same time (deliveries counted at the server).
#[test]
fn a_failing_notifier_is_retried_and_two_runners_deliver_exactly_once() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let flaky = dir.path().join("flaky");
    std::fs::write(
        &flaky,
        format!(
            "#!/bin/sh\necho call >> \"$NOTIFY_DIR/calls\"\n\
             if mkdir \"$NOTIFY_DIR/failed-once\" 2>/dev/null; then echo 'upstream down' >&2; exit 1; fi\n\
             exec {}\n",
            webhook()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&flaky, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = repo_with(&[(".dwp/command/build", BUILD), (".dwp/policy.toml", &policy(&flaky.display().to_string()))]);
    let tasks = ["t1", "t2", "t3", "t4"];
    for t in tasks {
        task(&r, t, "build");
    }
    let runners: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = std::process::Command::new(BATON);
            common::base_env(&mut cmd, r.home());
            cmd.current_dir(&r.path)
                .args(["watch", "--interval", "0.2", "--max-ticks", "8"])
                .env("BATON_WEBHOOK_URL", &server.url)
                .env("NOTIFY_DIR", dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut logs = String::new();
    for c in runners {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    for t in tasks {
        assert_eq!(r.state_of(t), "done", "{logs}");
    }
    let got = server.received();
    for t in tasks {
        assert_eq!(by_task(&got, t).len(), 1, "{t}: {got:#?}\n{logs}");
    }
    assert_eq!(got.len(), tasks.len(), "{got:#?}");
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert_eq!(calls.lines().count(), tasks.len() + 1, "one failed call, one per task: {logs}");
    assert!(logs.contains("not delivered, retried next tick") && logs.contains("upstream down"), "{logs}");
}

/// Without a notifier nothing is recorded; a notifier that is not there yet is one notice per
/// tick and is retried once it appears.
#[test]
fn no_notifier_writes_nothing_and_a_missing_one_waits_for_its_program() {
    let server = Server::start();
    let quiet = repo_with(&[(".dwp/command/build", BUILD)]);
    task(&quiet, "t1", "build");
    run(&quiet, &server.url);
    assert_eq!(quiet.state_of("t1"), "done");
    assert_eq!(records(&quiet), Vec::<String>::new());
    let out = baton_with(&quiet, &quiet.path, &server.url, &["notify", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "nothing to notify: zero JSON lines");
    assert_eq!(records(&quiet), Vec::<String>::new());

    let r = repo_with(&[(".dwp/command/build", BUILD), (".dwp/policy.toml", &policy("hooks/notify-me --loud"))]);
    task(&r, "t1", "build");
    task(&r, "t2", "build");
    let log = run(&r, &server.url);
    assert_eq!((r.state_of("t1"), r.state_of("t2")), ("done".into(), "done".into()));
    let notices = log.lines().filter(|l| l.contains("notifier hooks/notify-me: not found or not executable")).count();
    assert_eq!(notices, 1, "one notice per tick: {log}");
    let recs = records(&r);
    assert!(!recs.iter().any(|x| x.ends_with(&r.head("t1")) || x.ends_with(&r.head("t2"))), "{recs:?}");
    // By hand it says so too, and exits 1.
    let out = r.baton_cmd(&["notify"]).env("BATON_WEBHOOK_URL", &server.url).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed COMPLETED t1") && text.contains("not found or not executable"), "{text}");
    // It appears (in the repository's top directory, uncommitted): the next tick delivers.
    r.handler("hooks/notify-me", &format!("#!/bin/sh\ntest \"$1\" = --loud || exit 9\nexec {}\n", webhook()));
    let log = run(&r, &server.url);
    assert!(!log.contains("not found"), "{log}");
    let got = server.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!((by_task(&got, "t1").len(), by_task(&got, "t2").len()), (1, 1));
}

/// A head waiting at a gate, notified through the handler source's executable `.dwp/notify`
/// (no `notify` key), with the JSON on stdin and the text in `BATON_NOTIFY_TEXT`.
#[test]
fn a_gate_waiting_for_approval_reaches_dwp_notify() {
    let out = tempfile::tempdir().unwrap();
    let r = repo_with(&[
        (
            ".dwp/notify",
            "#!/bin/sh\ncat > \"$NOTIFY_DIR/$BATON_COMMIT.json\"\nprintf '%s' \"$BATON_NOTIFY_TEXT\" > \"$NOTIFY_DIR/$BATON_COMMIT.txt\"\n",
        ),
        (".dwp/policy.toml", "[defaults]\nenv.pass = [\"NOTIFY_DIR\"]\n\n[states.deploy]\ntier = \"gate\"\n"),
    ]);
    let head = task(&r, "t1", "deploy");
    let res = r.baton_cmd(&["run"]).env("NOTIFY_DIR", out.path()).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join(format!("{head}.json"))).unwrap()).unwrap();
    assert_eq!((json["status"].as_str(), json["outcome"].as_str()), (Some("WAITING"), Some("gate")));
    assert_eq!(json["task_id"], "t1");
    let text = std::fs::read_to_string(out.path().join(format!("{head}.txt"))).unwrap();
    assert_eq!(text, "Task t1 WAITING: approval needed for deploy: baton: deploy");
    // An approval on top is not news.
    r.baton_ok(&["approve", "t1", "-m", "ok"]);
    assert_eq!(r.trailer_of("t1", "dwp-approves").as_deref(), Some(head.as_str()));
    let res = r.baton_cmd(&["notify", "--json"]).env("NOTIFY_DIR", out.path()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&res.stdout), "", "nothing to notify: zero JSON lines");
}

/// Remote mode: two clones share one remote; a head notified by clone A is not notified again by
/// clone B.
#[test]
fn remote_clones_share_delivery_records() {
    let server = Server::start();
    let origin = TestRepo::bare();
    let home = origin.home().to_path_buf();
    let a = clone(&origin, &home, "a");
    std::fs::create_dir_all(a.join(".dwp/command")).unwrap();
    write_exec(&a.join(".dwp/command/build"), BUILD);
    std::fs::write(a.join(".dwp/policy.toml"), policy(&webhook())).unwrap();
    git_in(&home, &a, &["add", "-A"]);
    git_in(&home, &a, &["commit", "-q", "-m", "handlers"]);
    git_in(&home, &a, &["push", "-q", "origin", "main"]);
    git_in(&home, &a, &["branch", "t1", "main"]);
    baton_in(&home, &a, &server.url, &["send", "--branch", "t1", "build", "-m", "do it"]);
    git_in(&home, &a, &["push", "-q", "origin", "t1"]);
    let b = clone(&origin, &home, "b");

    baton_in(&home, &a, &server.url, &["run", "--remote", "origin"]);
    let done = git_in(&home, &a, &["ls-remote", "origin", "refs/heads/t1"]);
    let done = done.split_whitespace().next().unwrap().to_owned();
    let got = server.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["baton"]["commit"], done.as_str());
    let remote_recs = git_in(&home, &a, &["ls-remote", "origin", "refs/baton/notified/*"]);
    assert!(remote_recs.contains(&format!("refs/baton/notified/{done}")), "{remote_recs}");

    for _ in 0..2 {
        baton_in(&home, &b, &server.url, &["run", "--remote", "origin"]);
    }
    let out = baton_in(&home, &b, &server.url, &["notify", "--remote", "origin", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "nothing to notify: zero JSON lines");
    assert_eq!(server.received().len(), 1, "clone B sent it again");
}

fn clone(origin: &TestRepo, home: &Path, name: &str) -> PathBuf {
    let dir = home.join(name);
    git_in(home, home, &["clone", "-q", origin.path.to_str().unwrap(), dir.to_str().unwrap()]);
    dir
}

fn write_exec(p: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn baton_in(home: &Path, dir: &Path, url: &str, args: &[&str]) -> std::process::Output {
    let out = common::command_in(home, BATON, dir, args).env("BATON_WEBHOOK_URL", url).output().unwrap();
    assert!(out.status.success(), "git-baton {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The answer of a `tier = "notify"` state is news; a state's notifiers hear the outcome of its
/// runs (`done` answering `build`); a head that calls for nothing is settled, not looked at again.
#[test]
fn notify_tier_answers_and_origin_notifiers() {
    let server = Server::start();
    let p = format!(
        "[defaults]\nenv.pass = [\"BATON_WEBHOOK_URL\"]\n\n[states.report]\ntier = \"notify\"\nnotify = [{w:?}]\n\n[states.build]\nnotify = [{w:?}]\n",
        w = webhook()
    );
    let r = repo_with(&[
        (".dwp/command/report", "#!/bin/sh\ngit commit -q --allow-empty -m 'report written' -m 'dwp-state: review'\n"),
        (".dwp/command/build", BUILD),
        (".dwp/policy.toml", &p),
    ]);
    task(&r, "t1", "report");
    let idle = task(&r, "t2", "idle");
    task(&r, "t3", "build");
    run(&r, &server.url);
    let got = server.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    let answer = &by_task(&got, "t1")[0]["baton"];
    assert_eq!((answer["status"].as_str(), answer["outcome"].as_str()), (Some("COMPLETED"), Some("answer")));
    assert_eq!((answer["state"].as_str(), answer["origin_state"].as_str()), (Some("review"), Some("report")));
    let done = &by_task(&got, "t3")[0]["baton"];
    assert_eq!((done["outcome"].as_str(), done["origin_state"].as_str()), (Some("done"), Some("build")));
    // t2 was looked at (its policy has a notify tier) and settled: a record, nothing sent.
    assert!(records(&r).contains(&format!("refs/baton/notified/{idle}")));
    run(&r, &server.url);
    assert_eq!(server.received().len(), 2);
}
