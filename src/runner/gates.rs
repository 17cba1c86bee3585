//! The runner's side of gates ([`crate::humans::gate`] decides): the facts a gate needs from a
//! head, the check a run makes before it claims a gated branch (a required signature is verified
//! here, with `git verify-commit`), the default written when a gate times out, and the
//! approval's variables for the handler.

use std::path::Path;

use anyhow::Result;

use super::backend::Swap;
use super::board::BranchCard;
use super::context::Ctx;
use super::exec::Job;
use super::report::{Event, Kind};
use crate::humans::gate::{
    self, approval_message, rejection_message, timed_out, Approval, ApprovalFacts, GateStatus, HeadFacts, Rejection,
    TIMEOUT_APPROVER,
};
use crate::policy::{GateDefault, HumansPolicy, Policy, Tier};
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved, State, TrailerArg};
use crate::repo::worktree::git;
use crate::repo::{CommitInfo, ObjectId, Repo};

use super::clock;

/// The facts of an approval head (None for a head without `dwp-approves`): its committer's email
/// and its parent's committer time.
pub fn approval_facts(repo: &Repo, commit: &CommitInfo) -> Option<ApprovalFacts> {
    last_text(&commit.trailers, Key::Approves)?;
    Some(ApprovalFacts {
        committer_email: repo.committer_email(commit.id).ok(),
        parent_time: commit.parents.first().and_then(|p| repo.commit(*p).ok()).map(|c| c.committer_time),
    })
}

/// The gate facts of a head.
pub fn head_facts<'a>(commit: &'a CommitInfo, approval: Option<&'a ApprovalFacts>) -> HeadFacts<'a> {
    HeadFacts {
        trailers: &commit.trailers,
        first_parent: commit.parents.first().copied(),
        committer_time: commit.committer_time,
        approval,
    }
}

/// Where a branch's head stands at the gate of its state (pure: the card holds the facts).
pub fn status(card: &BranchCard, humans: &HumansPolicy, now: i64) -> GateStatus {
    gate::status(&head_facts(&card.commit, card.approval.as_ref()), humans, now)
}

/// The people policy of `state` when it is gated (None otherwise — looking at `tier` only, so
/// an ungated state costs a lookup or two).
pub fn gate_policy(policy: Option<&Policy>, state: &str) -> Option<HumansPolicy> {
    let p = policy?;
    let tier = p.state(state).and_then(|s| s.tier.as_ref()).or(p.defaults().tier.as_ref())?;
    (*tier.get_ref() == Tier::Gate).then(|| p.humans(state))
}

/// The NOTE `status` shows for a head at a gate (None when its state is not gated).
pub fn note(card: &BranchCard, policy: Option<&Policy>, now: i64) -> Option<String> {
    let state = card.state.valid().filter(|s| !s.is(Reserved::Working) && !s.is(Reserved::Parked))?;
    let humans = gate_policy(policy, state.as_str())?;
    let option = |d: Option<char>| d.map(|d| format!(", option {d}")).unwrap_or_default();
    Some(match status(card, &humans, now) {
        GateStatus::NotGated => return None,
        GateStatus::Waiting { since } => match gate::deadline(since, &humans) {
            Some(at) => {
                format!("gate waiting (default {} in {})", humans.gate_default.value, clock::human_left(at - now))
            }
            None => "gate waiting".to_owned(),
        },
        GateStatus::Approved { by, decision } => format!("approved by {by}{}", option(decision)),
        GateStatus::NeedsSignatureCheck { by, decision, .. } => {
            format!("approved by {by}{} (signature checked before the run)", option(decision))
        }
        GateStatus::Refused { why, .. } => format!("gate waiting (approval refused: {why})"),
        GateStatus::TimedOut { default, .. } => format!("gate timed out (default {default} due)"),
    })
}

/// Who approved the head a handler runs on, and what they chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    pub by: String,
    pub decision: Option<char>,
}

/// What the gate check before a claim said.
pub(super) enum GateCheck {
    /// Claim and run (with the approval, for a gated state).
    Run(Option<Approved>),
    /// Do not run: the gate waits (a refused signature was reported).
    Stop,
}

/// Before claiming a gated branch: its head must still carry a valid approval, and a required
/// signature must verify. A signature that does not is a notice, never a run; if the gate's
/// timeout has passed meanwhile, its default is applied.
pub(super) fn check(ctx: &Ctx, job: &Job) -> Result<GateCheck> {
    let humans = &job.settings.humans;
    if humans.tier.value != Tier::Gate {
        return Ok(GateCheck::Run(None));
    }
    let repo = ctx.repo();
    let commit = repo.commit(job.head)?;
    let facts = approval_facts(&repo, &commit);
    let now = clock::now();
    match gate::status(&head_facts(&commit, facts.as_ref()), humans, now) {
        GateStatus::NotGated => Ok(GateCheck::Run(None)),
        GateStatus::Approved { by, decision } => Ok(GateCheck::Run(Some(Approved { by, decision }))),
        GateStatus::NeedsSignatureCheck { by, decision, since } => {
            match verify_signature(&ctx.common_dir, job.head, &by) {
                Ok(()) => Ok(GateCheck::Run(Some(Approved { by, decision }))),
                Err(why) => {
                    let mut ev = Event::new(&job.branch, Kind::Notice);
                    ev.state = Some(job.state.to_string());
                    ev.commit = Some(job.head.to_string());
                    ev.error = Some(format!(
                        "the approval by {by} at the gate of {} does not count: {why} (gate.require_signed); waiting",
                        job.state
                    ));
                    ctx.emit(ev);
                    if let Some(default) = timed_out(since, humans, now) {
                        apply_default(ctx, &job.branch, job.head, &job.state, &default, humans)?;
                    }
                    Ok(GateCheck::Stop)
                }
            }
        }
        GateStatus::Waiting { .. } | GateStatus::Refused { .. } | GateStatus::TimedOut { .. } => Ok(GateCheck::Stop),
    }
}

/// Does commit `id` carry a good signature, made by `email`? `git verify-commit` must accept it
/// (SSH: `gpg.ssh.allowedSignersFile`; GPG: the keyring), git must call it good (`%G?` = `G`),
/// and the signer (the SSH principal, or the GPG user id's email) must be `email`.
pub fn verify_signature(dir: &Path, id: ObjectId, email: &str) -> Result<(), String> {
    let sha = id.to_string();
    let mut verify = with_gpg_env(git(dir));
    let out = verify.args(["verify-commit", &sha]).output().map_err(|e| format!("running git verify-commit: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        return Err(match why.as_str() {
            "" => "it is not signed".to_owned(),
            w if w.contains("no signature") || w.contains("No signature") => "it is not signed".to_owned(),
            w => format!("its signature does not verify: {w}"),
        });
    }
    let mut show = with_gpg_env(git(dir));
    let out = show
        .args(["show", "-s", "--format=%G?%x1f%GS", &sha])
        .output()
        .map_err(|e| format!("running git show: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (status, signer) = text.trim_end_matches('\n').split_once('\x1f').unwrap_or(("", ""));
    if status != "G" {
        return Err(format!("git rates its signature {status:?}, not good (G)"));
    }
    let signer_email = match (signer.rfind('<'), signer.rfind('>')) {
        (Some(a), Some(b)) if a < b => &signer[a + 1..b],
        _ => signer.trim(),
    };
    if !signer_email.eq_ignore_ascii_case(email) {
        return Err(format!("it is signed by {signer:?}, not by its committer {email}"));
    }
    Ok(())
}

/// GPG finds its keyring through `GNUPGHOME`; git's scrubbed environment would drop it.
pub fn with_gpg_env(mut cmd: std::process::Command) -> std::process::Command {
    for var in ["GNUPGHOME", "GPG_TTY"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd
}

fn runner_trailers(ctx: &Ctx) -> Vec<TrailerArg> {
    let mut t = vec![TrailerArg::reserved(Key::RunnerId, &ctx.opts.runner_id)];
    if let Some(r) = ctx.board.remote() {
        t.push(TrailerArg::reserved(Key::Source, format!("git:{r}")));
    }
    t
}

/// The gate of `state` on `head` timed out: write its default — an approval by
/// [`TIMEOUT_APPROVER`] with the default's letter, or a reject to `gate.on_reject` — by
/// compare-and-swap on `head` (a lost race is just a lost race).
pub(super) fn apply_default(
    ctx: &Ctx,
    branch: &str,
    head: ObjectId,
    state: &State,
    default: &GateDefault,
    humans: &HumansPolicy,
) -> Result<()> {
    let repo = ctx.repo();
    let gated = repo.commit(head)?;
    let waited = humans.gate_timeout.value.map_or("?".to_owned(), |t| format!("{t}s"));
    let mut ev = Event::new(branch, Kind::LostRace);
    ev.state = Some(state.to_string());
    let (msg, next) = match default {
        GateDefault::None => return Ok(()),
        GateDefault::Option(letter) => {
            let note = format!("Nobody decided within {waited} (gate.timeout); gate.default = {letter} applied.");
            let msg = approval_message(&Approval {
                gated_message: &gated.message,
                gated_trailers: &gated.trailers,
                gated: head,
                state,
                by: TIMEOUT_APPROVER,
                decision: Some(*letter),
                note: Some(&note),
                runner: runner_trailers(ctx),
            })?;
            ev.error = Some(format!("nobody decided within {waited}: approved with option {letter} (gate.default)"));
            (msg, state.clone())
        }
        GateDefault::Reject => {
            let to = match State::parse(&humans.gate_on_reject.value) {
                Ok(s) if !s.is(Reserved::Working) => s,
                _ => {
                    ev.action = Kind::Error;
                    ev.error =
                        Some(format!("gate.on_reject {:?} is not a state to move to", humans.gate_on_reject.value));
                    ctx.emit(ev);
                    return Ok(());
                }
            };
            let why = format!("Nobody decided within {waited} (gate.timeout); gate.default = reject applied.");
            let msg = rejection_message(&Rejection {
                gated_trailers: &gated.trailers,
                gated: head,
                state,
                to: &to,
                by: TIMEOUT_APPROVER,
                why: &why,
                runner: runner_trailers(ctx),
            })?;
            ev.error = Some(format!("nobody decided within {waited}: rejected (gate.default)"));
            (msg, to)
        }
    };
    let now = clock::now();
    let id = repo.write_commit(gated.tree, &[head], &msg, now)?;
    match ctx.board.swap(&repo, branch, head, id, "baton: gate timeout")? {
        Swap::Done => {
            ev.action = Kind::Decided;
            ev.commit = Some(id.to_string());
            ev.next_state = Some(next.to_string());
            // An approval runs at the next tick: wake a poller for it.
            ctx.note_due(now);
        }
        Swap::Lost(_) => ev.error = None,
        Swap::Failed(why) => {
            ev.action = Kind::Error;
            ev.error = Some(format!("could not write the gate's default: {why}"));
        }
    }
    ctx.emit(ev);
    Ok(())
}

/// The handler's variables of an approved gate: `BATON_APPROVED_BY`, and `BATON_DECISION` when the
/// approval chose an option.
pub(super) fn with_approval(mut env: Vec<(String, String)>, approved: Option<&Approved>) -> Vec<(String, String)> {
    if let Some(a) = approved {
        env.push(("BATON_APPROVED_BY".into(), a.by.clone()));
        if let Some(d) = a.decision {
            env.push(("BATON_DECISION".into(), d.to_string()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::policy::Base;
    use crate::protocol::{trailers, Lease};
    use crate::repo::{BranchHead, HandlerLookup};
    use crate::runner::board::PolicyRead;
    use crate::runner::plan::{plan, Action, Checkout, CurrentBranch, HandlerOrigin, PlanConfig, PlanInput};

    const POLICY: &str = "[states.deploy]\ntier = \"gate\"\ngate.approvers = [\"lead@example.com\"]\n\
                          gate.timeout = \"1h\"\ngate.default = \"B\"\n";

    fn input(branch: &str, msg: &str, time: i64, approval: Option<ApprovalFacts>) -> PlanInput {
        let id = ObjectId::from_bytes_or_panic(&[2; 20]);
        let trailers = trailers::parse(msg.as_bytes());
        let commit = CommitInfo {
            id,
            tree: id,
            parents: vec![ObjectId::from_bytes_or_panic(&[1; 20])],
            message: msg.as_bytes().to_vec(),
            trailers: trailers.clone(),
            committer_time: time,
            author: String::new(),
        };
        PlanInput {
            card: BranchCard {
                head: BranchHead { branch: branch.into(), refname: format!("refs/heads/{branch}"), id },
                state: commit.state(),
                lease: Lease::from_commit(&trailers, time),
                commit,
                handler: Some(HandlerLookup::Found(".dwp/command/deploy".into())),
                stalled_handler: None,
                policy: PolicyRead::Ok(Arc::new(Policy::parse(POLICY, "policy.toml").unwrap())),
                approval,
            },
            checkout: Checkout::Free,
        }
    }

    /// The planner skips a waiting gate without a word, notices a refused approval, runs an
    /// approved one and turns a timed-out one into a `GateTimeout` action.
    #[test]
    fn the_planner_waits_notices_runs_and_times_out() {
        let parent = ObjectId::from_bytes_or_panic(&[1; 20]).to_string();
        let approval = format!("t\n\ndwp-approved-by: lead@example.com\ndwp-approves: {parent}\ndwp-state: deploy\n");
        let by = |email: &str| Some(ApprovalFacts { committer_email: Some(email.into()), parent_time: Some(0) });
        let inputs = vec![
            input("waiting", "t\n\ndwp-state: deploy\n", 1000, None),
            input("approved", &approval, 1000, by("LEAD@example.com")),
            input("stranger", &approval.replace("lead@", "x@"), 1000, by("x@example.com")),
            input("late", "t\n\ndwp-state: deploy\n", 0, None),
        ];
        let config = PlanConfig {
            current: CurrentBranch::Skip,
            handlers: HandlerOrigin::Worktree,
            base: Base::default(),
            breakers: BTreeMap::new(),
            deps: BTreeMap::new(),
            children: BTreeMap::new(),
        };
        let actions = plan(&inputs, 3600, &config);
        let mut seen: Vec<String> = actions
            .iter()
            .map(|a| match a {
                Action::Run { branch, .. } => format!("run {branch}"),
                Action::Notice { branch, message } => format!("notice {branch}: {message}"),
                Action::GateTimeout { branch, default, since, .. } => format!("timeout {branch} {default} {since}"),
                other => format!("{other:?}"),
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                "notice stranger: the approval at the gate of deploy does not count (x@example.com is not in gate.approvers); waiting",
                "run approved",
                "timeout late B 0",
            ]
        );
    }

    #[test]
    fn status_notes() {
        let p = Policy::parse(POLICY, "policy.toml").unwrap();
        let parent = ObjectId::from_bytes_or_panic(&[1; 20]).to_string();
        let approval = format!(
            "t\n\ndwp-approved-by: lead@example.com\ndwp-approves: {parent}\ndwp-decision: A\ndwp-state: deploy\n"
        );
        let facts = Some(ApprovalFacts { committer_email: Some("lead@example.com".into()), parent_time: Some(0) });
        let note_of =
            |msg: &str, facts: Option<ApprovalFacts>, now| note(&input("b", msg, 0, facts).card, Some(&p), now);
        assert_eq!(note_of("t\n\ndwp-state: deploy\n", None, 600).as_deref(), Some("gate waiting (default B in 50m)"));
        assert_eq!(note_of("t\n\ndwp-state: deploy\n", None, 3600).as_deref(), Some("gate timed out (default B due)"));
        assert_eq!(note_of(&approval, facts, 10).as_deref(), Some("approved by lead@example.com, option A"));
        assert_eq!(note_of("t\n\ndwp-state: build\n", None, 10), None);
    }
}
