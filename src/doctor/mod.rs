//! `git baton doctor`: the facts about a set-up (`cli::doctor` reads them) and the verdict on each
//! (pure, here; `cli::doctor` gathers the facts): one line per check, `ok` / `warn` / `fail`, with what to do about it.

use serde::Serialize;

/// How a check came out. A `fail` makes `doctor` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `repository`, `git`, `identity`, `handler-source`, `handler`, `state`,
    /// `policy`, `scratch`, `hooks`, `remote`, `aynig-worktrees`.
    pub check: &'static str,
    pub verdict: Verdict,
    /// What was found, naming the thing (a path, a branch, a remote).
    pub detail: String,
    /// What to do about it (None when nothing needs doing).
    pub fix: Option<String>,
}

fn check(check: &'static str, verdict: Verdict, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check { check, verdict, detail: detail.into(), fix }
}

/// git below this version works, but the notification records are never packed
/// (`git pack-refs --include`).
pub const GIT_RECOMMENDED: (u32, u32) = (2, 42);

/// Where handlers and the policy come from, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceFact {
    /// A trusted ref, resolved: its name and short commit id.
    Trusted { read: String, commit: String },
    /// No trusted ref: each task's own commit.
    Task,
    /// A trusted ref is set but cannot be used (missing, not a commit, not a valid name).
    Broken(String),
}

/// One file in the handler folder of the handler tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerFact {
    /// Repository-relative path, `.dwp/command/build`.
    pub path: String,
    pub executable: bool,
    /// A symlink (followed within its folder by the runner; judged by where it points).
    pub symlink: bool,
    /// The first bytes: `#!` or an ELF header make a file the kernel can run.
    pub head: Vec<u8>,
}

/// A handler file in the working tree that the handler tree does not have as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uncommitted {
    /// The handler tree has no such file.
    New,
    /// The handler tree has it with other content or another executable bit.
    Changed,
}

/// A remote and whether `git ls-remote` answered within the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFact {
    pub name: String,
    /// Ok, or why not (the timeout, git's first error line).
    pub reached: Result<(), String>,
    /// Named with `--remote`: the runner depends on it.
    pub required: bool,
}

/// Which of git-baton's hooks are installed, from `hooks status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HooksFact {
    pub client_installed: usize,
    pub client_total: usize,
    pub server_installed: usize,
    pub bare: bool,
}

/// Everything `doctor` looks at. Any part may be missing when an earlier one failed (no
/// repository: nothing else is read).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The repository found (its git dir), or why none was.
    pub repository: Option<Result<String, String>>,
    /// `git --version`'s numbers, or why git could not be run.
    pub git: Option<Result<(u32, u32, u32), String>>,
    /// `git var GIT_COMMITTER_IDENT` (what `git commit` in a handler will use), or git's complaint.
    pub identity: Option<Result<String, String>>,
    pub source: Option<SourceFact>,
    /// The tree handlers were read from, for the lines (`refs/heads/main`, `HEAD`).
    pub handler_tree: Option<String>,
    pub handlers: Vec<HandlerFact>,
    /// Files of the working tree's `.dwp/command/` that differ from the handler tree.
    pub uncommitted: Vec<(String, Uncommitted)>,
    /// (branch, refused value) for heads whose `dwp-state` is not a valid handler name.
    pub invalid_states: Vec<(String, String)>,
    /// The policy file: None without one, Ok with one that parses, Err with its error.
    pub policy: Option<Result<(), String>>,
    /// (logs bytes, log count, slot bytes, slot count) of the scratch space.
    pub scratch: Option<(u64, u64, u64, u64)>,
    pub hooks: Option<HooksFact>,
    pub remotes: Vec<RemoteFact>,
    /// (branch, path) of worktrees registered under the top-level `.worktrees/` (AYNIG's).
    pub aynig_worktrees: Vec<(String, String)>,
}

/// Scratch above this many bytes gets a warning (logs and kept worktrees pile up without `gc`).
pub const SCRATCH_WARN_BYTES: u64 = 1 << 30;

/// `git version 2.47.3` → (2, 47, 3); a vendor suffix (`.windows.1`, ` (Apple Git-146)`) is ignored.
pub fn parse_git_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.trim().strip_prefix("git version ")?;
    let mut nums = v.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().ok());
    let major = nums.next()??;
    let minor = nums.next()??;
    let patch = nums.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Whether the first bytes make a file the kernel runs directly.
fn runnable_head(head: &[u8]) -> bool {
    head.starts_with(b"#!") || head.starts_with(b"\x7fELF")
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The verdict on every fact gathered, in report order.
pub fn judge(f: &Facts) -> Vec<Check> {
    use Verdict::{Fail, Ok as Good, Warn};
    let mut out = Vec::new();
    match &f.repository {
        Some(Ok(dir)) => out.push(check("repository", Good, format!("git directory {dir}"), None)),
        Some(Err(why)) => {
            out.push(check("repository", Fail, why.clone(), Some("run git baton inside a git repository".into())))
        }
        None => {}
    }
    match &f.git {
        Some(Ok((a, b, c))) if (*a, *b) < GIT_RECOMMENDED => out.push(check(
            "git",
            Warn,
            format!(
                "git {a}.{b}.{c}: older than {}.{}; notification records are never packed",
                GIT_RECOMMENDED.0, GIT_RECOMMENDED.1
            ),
            Some(format!("install git {}.{} or later", GIT_RECOMMENDED.0, GIT_RECOMMENDED.1)),
        )),
        Some(Ok((a, b, c))) => out.push(check("git", Good, format!("git {a}.{b}.{c}"), None)),
        Some(Err(why)) => out.push(check("git", Fail, why.clone(), Some("install git and put it on PATH".into()))),
        None => {}
    }
    match &f.identity {
        Some(Ok(who)) => out.push(check("identity", Good, format!("commits are made as {who}"), None)),
        Some(Err(why)) => out.push(check(
            "identity",
            Fail,
            format!("git has no identity, so a handler's `git commit` fails ({why})"),
            Some(
                "git config --global user.name \"Your Name\" && git config --global user.email you@example.com".into(),
            ),
        )),
        None => {}
    }
    match &f.source {
        Some(SourceFact::Trusted { read, commit }) => out.push(check(
            "handler-source",
            Good,
            format!("handlers and policy come from {read} ({commit}), never from a task's commit"),
            None,
        )),
        Some(SourceFact::Task) => out.push(check(
            "handler-source",
            Warn,
            "handlers and policy come from each task's own commit: a pushed branch or an agent can change what runs",
            Some("git config baton.trustedRef refs/heads/main (the branch that holds your .dwp/)".into()),
        )),
        Some(SourceFact::Broken(why)) => out.push(check(
            "handler-source",
            Fail,
            why.clone(),
            Some("create that ref, or point baton.trustedRef at one that exists (git config baton.trustedRef refs/heads/main)".into()),
        )),
        None => {}
    }
    let tree = f.handler_tree.as_deref().unwrap_or("HEAD");
    let mut bad_handlers = 0;
    for h in &f.handlers {
        if !h.executable {
            bad_handlers += 1;
            let how = if h.symlink {
                "a symlink that leads to no executable handler in its folder"
            } else {
                "not executable"
            };
            out.push(check(
                "handler",
                Fail,
                format!("{} in {tree} is {how}: the runner never runs it", h.path),
                Some(format!("git update-index --chmod=+x {} && git commit", h.path)),
            ));
        } else if !h.symlink && !runnable_head(&h.head) {
            bad_handlers += 1;
            out.push(check(
                "handler",
                Fail,
                format!("{} in {tree} does not start with #! (the kernel cannot run it: exec format error)", h.path),
                Some(format!("put an interpreter line such as #!/bin/sh first in {}", h.path)),
            ));
        }
    }
    if f.source.is_some() && bad_handlers == 0 {
        let n = f.handlers.len();
        let detail = match n {
            0 => format!("no handlers in .dwp/command of {tree}"),
            _ => format!("{n} handler(s) in {tree}, all executable with #!"),
        };
        let fix = (n == 0).then(|| "git baton init writes a sample handler; commit .dwp/ to the handler source".into());
        out.push(check("handler", if n == 0 { Warn } else { Good }, detail, fix));
    }
    for (path, how) in &f.uncommitted {
        let what = match how {
            Uncommitted::New => format!("{path} is in the working tree but not in {tree}"),
            Uncommitted::Changed => format!("{path} in the working tree differs from {tree}'s"),
        };
        out.push(check(
            "handler",
            Warn,
            format!("{what}: the runner runs the one in {tree}"),
            Some(format!("commit it to {}", tree.strip_prefix("refs/heads/").unwrap_or(tree))),
        ));
    }
    for (branch, value) in &f.invalid_states {
        out.push(check(
            "state",
            Warn,
            format!("branch {branch} has dwp-state {value:?}, not a handler name: the runner ignores it"),
            Some(format!("git baton send --branch {branch} STATE (letters, digits, '.', '_', '-')")),
        ));
    }
    if f.repository.as_ref().is_some_and(|r| r.is_ok()) && f.invalid_states.is_empty() {
        out.push(check("state", Good, "every dwp-state on a branch head is a valid handler name", None));
    }
    match &f.policy {
        Some(Ok(())) => out.push(check("policy", Good, format!(".dwp/policy.toml in {tree} parses"), None)),
        Some(Err(why)) => out.push(check(
            "policy",
            Fail,
            format!("{why}; the runner runs no branch under it"),
            Some("git baton policy check .dwp/policy.toml, fix, and commit it to the handler source".into()),
        )),
        None if f.source.is_some() => {
            out.push(check("policy", Good, format!("no .dwp/policy.toml in {tree}: built-in defaults"), None))
        }
        None => {}
    }
    if let Some((log_bytes, logs, slot_bytes, slots)) = f.scratch {
        let total = log_bytes + slot_bytes;
        let detail = format!(
            "scratch: {logs} log(s) {}, {slots} worktree slot(s) {}",
            human_bytes(log_bytes),
            human_bytes(slot_bytes)
        );
        if total > SCRATCH_WARN_BYTES {
            out.push(check(
                "scratch",
                Warn,
                format!("{detail}; over {}", human_bytes(SCRATCH_WARN_BYTES)),
                Some("git baton gc (git baton watch runs it daily)".into()),
            ));
        } else {
            out.push(check("scratch", Good, detail, None));
        }
    }
    if let Some(h) = &f.hooks {
        if h.bare {
            let v = if h.server_installed > 0 { Good } else { Warn };
            let fix = (h.server_installed == 0).then(|| "git baton hooks install --server".to_owned());
            out.push(check("hooks", v, format!("{} server hook(s) of git-baton installed", h.server_installed), fix));
        } else if h.client_installed == 0 {
            out.push(check("hooks", Good, "no client hooks: ticks run only when you run git baton run or watch", None));
        } else if h.client_installed < h.client_total {
            out.push(check(
                "hooks",
                Warn,
                format!(
                    "{} of {} client hooks installed: some branch moves start no tick",
                    h.client_installed, h.client_total
                ),
                Some("git baton hooks install".into()),
            ));
        } else {
            out.push(check("hooks", Good, format!("all {} client hooks installed", h.client_total), None));
        }
    }
    for r in &f.remotes {
        match &r.reached {
            Ok(()) => out.push(check("remote", Good, format!("{} answers", r.name), None)),
            Err(why) => out.push(check(
                "remote",
                if r.required { Fail } else { Warn },
                format!("{} is not reachable: {why}", r.name),
                Some(format!("git ls-remote {} (check the URL, the network and credentials)", r.name)),
            )),
        }
    }
    if !f.aynig_worktrees.is_empty() {
        let n = f.aynig_worktrees.len();
        let names: Vec<&str> = f.aynig_worktrees.iter().map(|(b, _)| b.as_str()).take(5).collect();
        let more = if n > 5 { format!(" and {} more", n - 5) } else { String::new() };
        out.push(check(
            "aynig-worktrees",
            Warn,
            format!(
                "{n} AYNIG worktree(s) under .worktrees/ keep {}{more} checked out: the runner skips those branches",
                names.join(", ")
            ),
            Some("git baton migrate-aynig".into()),
        ));
    }
    out
}

/// Exit status of a report: 1 when any check failed.
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.verdict == Verdict::Fail)
}

#[cfg(test)]
mod tests;
