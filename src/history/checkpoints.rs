//! Checkpoints and resuming from them.
//!
//! A commit carrying `dwp-checkpoint: NAME` marks a point a workflow can return to. Resuming
//! appends one commit (history is never rewritten) that sets the checkpoint's state again, with
//! its body and the trailers that describe the *request* — not the ones that recorded a past run —
//! plus `dwp-resumed-from: <sha>`. When several commits carry the same name, the newest wins.

use crate::protocol::message::body_of;
use crate::protocol::{compose, Key, MessageError, Reserved, State, StateRead, TrailerArg};
use crate::repo::CommitInfo;

/// The checkpoint names a commit carries (every `dwp-checkpoint` value, in order).
pub fn names(c: &CommitInfo) -> Vec<String> {
    c.trailers
        .iter()
        .filter(|t| t.key == Key::Checkpoint.as_str().as_bytes())
        .map(|t| t.value_lossy().trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Does a trailer of the checkpoint go into the resuming commit? Everything except: the lease
/// and take-over keys only runners write, the facts of a finished run (`dwp-exit-code`,
/// `dwp-error`, `dwp-attempt` — a resume starts afresh), `dwp-checkpoint` (the resuming commit
/// is not a new checkpoint), an older `dwp-resumed-from`, and the spend the checkpoint reported
/// (`dwp-cost`, `dwp-tokens`) or its `dwp-budget-reset` (counted once, on the checkpoint). Request trailers such as
/// `dwp-next-on-failure`, `dwp-max-attempts`, `dwp-correlation-id` and anything not `dwp-` stay.
pub fn carried_over(key: &[u8]) -> bool {
    let Some(k) = std::str::from_utf8(key).ok().and_then(Key::from_name) else {
        return true;
    };
    !(k.runner_only()
        || k.once_only()
        || matches!(k, Key::ExitCode | Key::Error | Key::Attempt | Key::Checkpoint | Key::ResumedFrom))
}

/// Why a commit cannot be resumed from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("commit {0} carries no dwp-state, so there is no state to resume")]
    NoState(String),
    #[error("commit {0} has the invalid state {1:?}")]
    InvalidState(String, String),
    #[error("commit {0} is a `working` lease; resume from the state before it")]
    Working(String),
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// The state and message of a commit that resumes from `from`. `label` says how it was chosen
/// (`checkpoint NAME` or `commit SHA`) and goes into the subject.
pub fn resume_message(from: &CommitInfo, label: &str) -> Result<(State, Vec<u8>), ResumeError> {
    let id = from.id.to_string();
    let state = match from.state() {
        StateRead::None => return Err(ResumeError::NoState(id)),
        StateRead::Invalid(v) => return Err(ResumeError::InvalidState(id, v)),
        StateRead::Valid(s) if s.is(Reserved::Working) => return Err(ResumeError::Working(id)),
        StateRead::Valid(s) => s,
    };
    let mut trailers: Vec<TrailerArg> = from
        .trailers
        .iter()
        .filter(|t| carried_over(&t.key))
        // A trailer git reads but we could not write back (an empty value) is left out.
        .filter_map(|t| TrailerArg::new(t.key_lossy(), t.value_lossy()).ok())
        .collect();
    trailers.push(TrailerArg::reserved(Key::ResumedFrom, &id));
    let body = body_of(&from.message);
    let subject = format!("baton: resume {state} from {label}");
    let body = (!body.is_empty()).then_some(body.as_str());
    let message = compose(&subject, body, &trailers, &state)?;
    Ok((state, message))
}

/// A checkpoint found on a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub name: String,
    pub commit: crate::repo::ObjectId,
    pub state: Option<String>,
    pub time: i64,
    /// False when a newer commit on the branch carries the same name.
    pub current: bool,
}

/// Checkpoints of a branch walked newest first: the first time a name is seen it is current.
#[derive(Debug, Default)]
pub struct Finder {
    seen: std::collections::HashSet<String>,
}

impl Finder {
    pub fn checkpoints(&mut self, c: &CommitInfo) -> Vec<Checkpoint> {
        names(c)
            .into_iter()
            .map(|name| Checkpoint {
                current: self.seen.insert(name.clone()),
                name,
                commit: c.id,
                state: c.state().text().map(str::to_owned),
                time: c.committer_time,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::trailers::parse;
    use crate::repo::ObjectId;

    fn commit(msg: &str) -> CommitInfo {
        CommitInfo {
            id: ObjectId::from_hex(b"00000000000000000000000000000000000000aa").unwrap(),
            tree: ObjectId::empty_tree(gix::hash::Kind::Sha1),
            parents: vec![],
            message: msg.as_bytes().to_vec(),
            trailers: parse(msg.as_bytes()),
            committer_time: 5,
            author: "A <a@x>".into(),
        }
    }

    #[test]
    fn resume_keeps_body_and_request_trailers() {
        let c = commit("baton: build\n\nBuild it.\n\nSecond paragraph.\n\nReviewed-by: Bob\ndwp-next-on-failure: triage\ndwp-checkpoint: plan\ndwp-attempt: 2\ndwp-run-id: r\ndwp-state: build\n");
        let (state, msg) = resume_message(&c, "checkpoint plan").unwrap();
        assert_eq!(state.as_str(), "build");
        assert_eq!(
            String::from_utf8(msg).unwrap(),
            "baton: resume build from checkpoint plan\n\nBuild it.\n\nSecond paragraph.\n\nReviewed-by: Bob\ndwp-next-on-failure: triage\ndwp-resumed-from: 00000000000000000000000000000000000000aa\ndwp-state: build\n"
        );
    }

    #[test]
    fn resume_without_body() {
        let (_, msg) = resume_message(&commit("s\n\ndwp-state: plan\n"), "commit 0000000").unwrap();
        assert_eq!(
            String::from_utf8(msg).unwrap(),
            "baton: resume plan from commit 0000000\n\ndwp-resumed-from: 00000000000000000000000000000000000000aa\ndwp-state: plan\n"
        );
    }

    #[test]
    fn refuses_working_invalid_and_stateless() {
        assert!(matches!(resume_message(&commit("s\n\ndwp-state: working\n"), "x"), Err(ResumeError::Working(_))));
        assert!(matches!(resume_message(&commit("s\n\ndwp-state: a/b\n"), "x"), Err(ResumeError::InvalidState(..))));
        assert!(matches!(resume_message(&commit("just a commit\n"), "x"), Err(ResumeError::NoState(_))));
    }

    #[test]
    fn newest_checkpoint_of_a_name_is_current() {
        let mut f = Finder::default();
        let newer = f.checkpoints(&commit("s\n\ndwp-checkpoint: plan\ndwp-checkpoint: b\ndwp-state: x\n"));
        let older = f.checkpoints(&commit("s\n\ndwp-checkpoint: plan\ndwp-state: y\n"));
        assert_eq!(newer.len(), 2);
        assert!(newer.iter().all(|c| c.current));
        assert_eq!((older[0].name.as_str(), older[0].current), ("plan", false));
        assert_eq!(older[0].state.as_deref(), Some("y"));
    }
}
