//! AYNIG compatibility (hacknlove/all-you-need-is-git): the rules where AYNIG's behaviour is
//! reproduced on purpose — log-level precedence, the body a handler gets as `AYNIG_BODY`, the
//! `dwp-source: git:<remote>` switch to remote mode — and the leftovers of an AYNIG runner
//! (`.worktrees/worktree-<branch>-<hash>`) that `git baton migrate-aynig` removes.
//!
//! The pure rules are table-tested here; the two readers ([`leftovers`], [`other_case_handler`])
//! only look at the repository.

pub mod leftovers;

pub use leftovers::{leftovers, Leftover};

use crate::protocol::state::last_text;
use crate::protocol::{Key, Trailer};
use crate::repo::{ObjectId, Repo};

/// AYNIG's log levels, in its spelling (`warning` is read as `warn`, any case).
pub const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error"];

/// AYNIG's default when nothing sets a level.
pub const DEFAULT_LOG_LEVEL: &str = "error";

/// A level as AYNIG normalizes it, or None when it is not one.
pub fn normalize_log_level(value: &str) -> Option<&'static str> {
    let v = value.trim().to_ascii_lowercase();
    let v = if v == "warning" { "warn".to_owned() } else { v };
    LOG_LEVELS.iter().copied().find(|l| *l == v)
}

/// The log level of a branch, with AYNIG's precedence: `--log-level` > the head's `dwp-log-level`
/// trailer > `AYNIG_LOG_LEVEL` > `error`. A value that is not a level is passed over, as AYNIG does
/// (the command line itself refuses a bad `--log-level` before this is asked).
pub fn resolve_log_level(flag: Option<&str>, trailer: Option<&str>, env: Option<&str>) -> &'static str {
    [flag, trailer, env].into_iter().flatten().find_map(normalize_log_level).unwrap_or(DEFAULT_LOG_LEVEL)
}

/// The `dwp-log-level` of a commit (the last one, as for every trailer).
pub fn trailer_log_level(trailers: &[Trailer]) -> Option<String> {
    last_text(trailers, Key::LogLevel)
}

/// What AYNIG passes as `AYNIG_BODY`: git's `%b` — everything after the subject paragraph, the
/// trailer block included — without trailing newlines. (`BATON_BODY` is the body alone.)
pub fn aynig_body(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message).replace("\r\n", "\n");
    let text = text.trim_start_matches('\n');
    let body = match text.find("\n\n") {
        Some(end) => &text[end..],
        None => "",
    };
    body.trim_start_matches('\n').trim_end_matches('\n').to_owned()
}

/// The remote a `dwp-source` value names: `git:<name>` (AYNIG's only form), else None.
pub fn source_remote(value: &str) -> Option<String> {
    let name = value.trim().strip_prefix("git:")?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The remote the checked-out HEAD's `dwp-source: git:<name>` selects, as AYNIG's `run` reads it
/// when `--dwp-remote` is not given. None in a repository without commits or without the trailer.
pub fn head_source_remote(repo: &Repo) -> anyhow::Result<Option<String>> {
    let Some(head) = repo.head_id()? else {
        return Ok(None);
    };
    let commit = repo.commit(head)?;
    Ok(last_text(&commit.trailers, Key::Source).and_then(|v| source_remote(&v)))
}

/// A handler whose name differs from `state` only in letter case, in `dir` of `tree`: AYNIG
/// lowercases states, git-baton keeps git's case, so `dwp-state: Build` finds no `build` here.
/// Returns the repository-relative path of the other-case file.
pub fn other_case_handler(repo: &Repo, tree: ObjectId, dir: &str, state: &str) -> anyhow::Result<Option<String>> {
    let tree = repo.gix().find_tree(tree)?;
    let Some(entry) = tree.lookup_entry_by_path(dir)? else {
        return Ok(None);
    };
    if !entry.mode().is_tree() {
        return Ok(None);
    }
    let folder = repo.gix().find_tree(entry.object_id())?;
    for e in folder.iter() {
        let e = e?;
        let name = e.filename().to_string();
        if name != state && name.eq_ignore_ascii_case(state) {
            return Ok(Some(format!("{dir}/{name}")));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_precedence_is_flag_then_trailer_then_env() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
        let cases: &[Case] = &[
            (None, None, None, "error"),
            (Some("debug"), Some("info"), Some("warn"), "debug"),
            (None, Some("info"), Some("warn"), "info"),
            (None, None, Some("warn"), "warn"),
            (None, Some("loud"), Some("Warning"), "warn"),
            (None, Some(" INFO "), None, "info"),
            (Some("nonsense"), None, Some("debug"), "debug"),
            (None, Some(""), Some(""), "error"),
        ];
        for (flag, trailer, env, want) in cases {
            assert_eq!(resolve_log_level(*flag, *trailer, *env), *want, "{flag:?} {trailer:?} {env:?}");
        }
    }

    #[test]
    fn aynig_body_keeps_the_trailer_block() {
        let cases: &[(&str, &str)] = &[
            ("title\n\nbody\n\ndwp-state: x\n", "body\n\ndwp-state: x"),
            ("title\n\ndwp-state: x\n", "dwp-state: x"),
            ("title\n", ""),
            ("title\nsecond line\n\nbody\n", "body"),
            ("\n\ntitle\n\n\nbody\n\n", "body"),
        ];
        for (msg, want) in cases {
            assert_eq!(aynig_body(msg.as_bytes()), *want, "{msg:?}");
        }
    }

    #[test]
    fn source_names_a_git_remote() {
        assert_eq!(source_remote("git:origin").as_deref(), Some("origin"));
        assert_eq!(source_remote(" git: up ").as_deref(), Some("up"));
        assert_eq!(source_remote("git:"), None);
        assert_eq!(source_remote("origin"), None);
        assert_eq!(source_remote("http:x"), None);
    }
}
