//! Where deliveries are recorded: one ref per notified commit, `refs/baton/notified/<sha>`, and
//! the watermark `refs/baton/notified/since`. Every change is a compare-and-swap on the value
//! read (a ref transaction locally, a push with `--force-with-lease` in remote mode), so two
//! runners never both hold the right to send the same notification.
//!
//! A record's value says where its delivery stands:
//! - the shared *delivered* commit ([`delivered_id`]): a fixed object (empty tree, no parent,
//!   fixed identity and date), the same id in every repository — so loading the delivered set is a
//!   listing of ref names and values, no object read, however many records there are;
//! - a *claim*: a commit saying who is sending until when (`dwp-notify-until`), and which
//!   notifiers already delivered (`dwp-notify-sent`). A claim whose time passed — its sender
//!   crashed, or released it after a notifier failed (`until` 0) — is taken over by the next
//!   runner, by compare-and-swap on the claim it read.

use anyhow::{anyhow, Context, Result};
use gix::bstr::BString;

use crate::protocol::trailers::{self, Trailer};
use crate::repo::{Cas, ObjectId, Repo};
use crate::runner::backend::Swap;
use crate::runner::remote::{self, Pushed};

/// The records on the board.
pub const PREFIX: &str = "refs/baton/notified/";
/// The watermark's name under [`PREFIX`]: heads committed before it are never notified.
pub const SINCE: &str = "since";

/// More loose record files than this and a pass packs them.
pub const LOOSE_MAX: usize = 256;

/// Where the records of `remote` are fetched to.
pub fn remote_prefix(remote: &str) -> String {
    format!("refs/baton/remote-notified/{remote}/")
}

/// The refspec `remote::fetch` adds: every record and the watermark.
pub fn fetch_refspec(remote: &str) -> String {
    format!("+{PREFIX}*:{}*", remote_prefix(remote))
}

/// The local repository, or a shared remote, holds the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    Local,
    Remote(String),
}

/// What a claim commit says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claim {
    pub runner_id: Option<String>,
    /// Epoch seconds; 0 for a released claim.
    pub until: i64,
    /// Notifiers that already delivered this notification.
    pub sent: Vec<String>,
}

impl Claim {
    pub fn from_trailers(t: &[Trailer]) -> Claim {
        let values = |key: &str| -> Vec<String> {
            t.iter()
                .filter(|x| x.key == key.as_bytes())
                .map(|x| String::from_utf8_lossy(&x.value).into_owned())
                .collect()
        };
        Claim {
            runner_id: values("dwp-runner-id").pop(),
            until: values("dwp-notify-until").pop().and_then(|v| v.trim().parse().ok()).unwrap_or(0),
            sent: values("dwp-notify-sent"),
        }
    }

    pub fn message(&self, key: &str, what: &str) -> Vec<u8> {
        let one = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let subject = if self.until > 0 { "sending" } else { "not delivered yet" };
        let mut m = format!("baton: notification {subject}: {}\n\n", one(what));
        m.push_str(&format!("dwp-notify-key: {key}\n"));
        if let Some(r) = &self.runner_id {
            m.push_str(&format!("dwp-runner-id: {}\n", one(r)));
        }
        m.push_str(&format!("dwp-notify-until: {}\n", self.until));
        for s in &self.sent {
            m.push_str(&format!("dwp-notify-sent: {}\n", one(s)));
        }
        // Two claims written in the same second by different runners must differ.
        m.push_str(&format!("dwp-notify-writer: {}\n", uuid::Uuid::new_v4()));
        m.into_bytes()
    }
}

/// The records as loaded once per pass.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// Record value by notified commit (hashed by the id's own first bytes: no SipHash over
    /// 10,000 keys a tick).
    pub by_key: gix::hashtable::HashMap<ObjectId, ObjectId>,
    /// The watermark record's value, if there is one.
    pub since: Option<ObjectId>,
}

/// The shared "delivered" commit: empty tree, no parent, fixed identity and time 0.
pub fn delivered_object() -> gix::objs::Commit {
    let sig = gix::actor::Signature {
        name: "git-baton".into(),
        email: "git-baton@localhost".into(),
        time: gix::date::Time::new(0, 0),
    };
    gix::objs::Commit {
        tree: ObjectId::empty_tree(gix::hash::Kind::Sha1),
        parents: Default::default(),
        author: sig.clone(),
        committer: sig,
        encoding: None,
        message: BString::from("baton: notification delivered\n"),
        extra_headers: Vec::new(),
    }
}

/// The id of the delivered commit, without writing it.
pub fn delivered_id() -> ObjectId {
    use gix::objs::WriteTo;
    let c = delivered_object();
    let mut buf = Vec::new();
    c.write_to(&mut buf).expect("writing to a Vec");
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Commit, &buf).expect("sha1 of a small buffer")
}

/// Write the delivered commit (and the empty tree it names) into `repo`.
pub fn write_delivered(repo: &Repo) -> Result<ObjectId> {
    repo.empty_tree()?;
    let id = repo.gix().write_object(delivered_object()).context("writing the delivered record")?.detach();
    debug_assert_eq!(id, delivered_id());
    Ok(id)
}

impl Store {
    pub fn new(remote: Option<&str>) -> Store {
        match remote {
            Some(r) => Store::Remote(r.to_owned()),
            None => Store::Local,
        }
    }

    /// The prefix records are read from.
    pub fn read_prefix(&self) -> String {
        match self {
            Store::Local => PREFIX.to_owned(),
            Store::Remote(r) => remote_prefix(r),
        }
    }

    /// The record's ref on the board.
    pub fn board_ref(key: &str) -> String {
        format!("{PREFIX}{key}")
    }

    fn local_ref(&self, key: &str) -> String {
        format!("{}{key}", self.read_prefix())
    }

    /// Every record and the watermark: ref names and values only — a record's value is taken as
    /// written, never peeled (peeling reads the object: 20 µs a record).
    pub fn load(&self, repo: &Repo) -> Result<Records> {
        let prefix = self.read_prefix();
        let mut out = Records::default();
        let platform = repo.gix().references().context("reading refs")?;
        for r in platform.prefixed(prefix.as_str()).with_context(|| format!("reading {prefix}"))? {
            let Ok(r) = r.inspect_err(|e| tracing::warn!("skipping a ref under {prefix}: {e}")) else {
                continue;
            };
            let Some(id) = r.target().try_id().map(|i| i.to_owned()) else {
                continue; // a symbolic ref is no record
            };
            let name = r.name().as_bstr();
            let Some(short) = name.strip_prefix(prefix.as_bytes()) else {
                continue;
            };
            if short == SINCE.as_bytes() {
                out.since = Some(id);
            } else if let Ok(key) = ObjectId::from_hex(short) {
                out.by_key.insert(key, id);
            }
        }
        Ok(out)
    }

    /// The watermark's time (`dwp-notify-since`), if the board has one that can be read.
    pub fn since(&self, repo: &Repo, records: &Records) -> Option<i64> {
        let c = repo.commit(records.since?).ok()?;
        let t = c.trailers.iter().rev().find(|t| t.key == b"dwp-notify-since")?;
        String::from_utf8_lossy(&t.value).trim().parse().ok()
    }

    /// Write the watermark if there is none; returns the time that holds afterwards.
    pub fn set_since(&self, repo: &Repo, since: i64, now: i64) -> Result<i64> {
        let message = format!(
            "baton: notifications enabled\n\nHeads committed before this time are not notified.\n\ndwp-notify-since: {since}\n"
        );
        let id = repo.write_commit(repo.empty_tree()?, &[], message.as_bytes(), now)?;
        match self.put(repo, SINCE, None, id)? {
            Swap::Done => Ok(since),
            // Another runner was first: its watermark stands (read back next pass).
            Swap::Lost(_) => Ok(since),
            Swap::Failed(why) => Err(anyhow!("could not write {}: {why}", Store::board_ref(SINCE))),
        }
    }

    /// Read a claim record (a value that is not the delivered commit).
    pub fn claim(&self, repo: &Repo, id: ObjectId) -> Claim {
        repo.commit(id).map(|c| Claim::from_trailers(&c.trailers)).unwrap_or_default()
    }

    /// Write a claim commit for `key` and swap it in for `expected`.
    pub fn put_claim(
        &self,
        repo: &Repo,
        key: &str,
        expected: Option<ObjectId>,
        claim: &Claim,
        what: &str,
        now: i64,
    ) -> Result<(ObjectId, Swap)> {
        let id = repo.write_commit(repo.empty_tree()?, &[], &claim.message(key, what), now)?;
        Ok((id, self.put(repo, key, expected, id)?))
    }

    /// Compare-and-swap one record from `expected` (None: must not exist) to `new`.
    pub fn put(&self, repo: &Repo, key: &str, expected: Option<ObjectId>, new: ObjectId) -> Result<Swap> {
        match self {
            Store::Local => cas(repo.compare_and_swap(&Store::board_ref(key), expected, new, "baton: notify")?),
            Store::Remote(r) => {
                let pushed = remote::push_ref(repo.common_dir(), r, &Store::board_ref(key), Some(new), Some(expected));
                let swap = swap_of(pushed);
                if swap == Swap::Done {
                    // The local copy follows the remote's (whatever it held before).
                    let local = self.local_ref(key);
                    let _ =
                        repo.ref_id(&local).and_then(|old| repo.compare_and_swap(&local, old, new, "baton: notify"));
                }
                Ok(swap)
            }
        }
    }

    /// Record heads that call for no notification as settled (the delivered commit), each only if
    /// it has no record yet. In remote mode one push per 500 records.
    pub fn settle(&self, repo: &Repo, keys: &[ObjectId]) -> Result<()> {
        let delivered = delivered_id();
        match self {
            Store::Local => {
                for key in keys {
                    repo.compare_and_swap(&Store::board_ref(&key.to_string()), None, delivered, "baton: notify")?;
                }
                Ok(())
            }
            Store::Remote(r) => {
                for chunk in keys.chunks(500) {
                    let mut cmd = crate::repo::worktree::git(repo.common_dir());
                    cmd.args(["push", "--porcelain", "--quiet"]);
                    for key in chunk {
                        cmd.arg(format!("--force-with-lease={}:", Store::board_ref(&key.to_string())));
                    }
                    cmd.arg("--").arg(r);
                    for key in chunk {
                        cmd.arg(format!("{delivered}:{}", Store::board_ref(&key.to_string())));
                    }
                    // Refs that exist already are refused one by one; the rest go through.
                    let out = cmd.output().context("running git push")?;
                    let refused = String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with('!'));
                    if !out.status.success() && !refused {
                        let err = String::from_utf8_lossy(&out.stderr);
                        return Err(anyhow!("git push failed: {}", err.lines().next().unwrap_or("").trim()));
                    }
                }
                Ok(())
            }
        }
    }

    /// Pack the records into `packed-refs` once more than [`LOOSE_MAX`] of them are loose files:
    /// listing 10,000 loose refs costs an idle tick ~100 ms, packed ones a few. Only refs under
    /// the records' prefix are packed (`git pack-refs --include`, git 2.42 or later); git's
    /// lock protocol keeps it safe against runners writing refs meanwhile. Best effort.
    pub fn pack_loose(&self, repo: &Repo) {
        let prefix = self.read_prefix();
        let dir = repo.common_dir().join(prefix.trim_end_matches('/'));
        let loose = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        if loose <= LOOSE_MAX {
            return;
        }
        let include = format!("{prefix}*");
        match crate::repo::worktree::run_git(repo.common_dir(), ["pack-refs", "--include", include.as_str()]) {
            Ok(_) => tracing::debug!("packed {loose} loose notification records"),
            Err(e) => tracing::debug!("packing notification records: {e:#}"),
        }
    }

    /// Delete records that still hold the values given; returns how many went.
    pub fn delete(&self, repo: &Repo, records: &[(String, ObjectId)]) -> Result<usize> {
        if records.is_empty() {
            return Ok(0);
        }
        match self {
            Store::Local => {
                let mut n = 0;
                for (key, id) in records {
                    if repo.delete_ref(&Store::board_ref(key), *id)? == Cas::Updated {
                        n += 1;
                    }
                }
                Ok(n)
            }
            Store::Remote(r) => {
                // One push for all: each ref with its own expected value.
                let mut cmd = crate::repo::worktree::git(repo.common_dir());
                cmd.args(["push", "--porcelain", "--quiet"]);
                for (key, id) in records {
                    cmd.arg(format!("--force-with-lease={}:{id}", Store::board_ref(key)));
                }
                cmd.arg("--").arg(r);
                for (key, _) in records {
                    cmd.arg(format!(":{}", Store::board_ref(key)));
                }
                let out = cmd.output().context("running git push")?;
                let text = String::from_utf8_lossy(&out.stdout);
                let refused = text.lines().filter(|l| l.starts_with('!')).count();
                if !out.status.success() && refused == 0 {
                    let err = String::from_utf8_lossy(&out.stderr);
                    return Err(anyhow!("git push failed: {}", err.lines().next().unwrap_or("").trim()));
                }
                for (key, id) in records {
                    let _ = repo.delete_ref(&self.local_ref(key), *id);
                }
                Ok(records.len() - refused)
            }
        }
    }
}

fn cas(c: Cas) -> Result<Swap> {
    Ok(match c {
        Cas::Updated => Swap::Done,
        Cas::Moved { actual } => Swap::Lost(match actual {
            Some(a) => format!("the record is at {a}"),
            None => "the record is gone".to_owned(),
        }),
    })
}

fn swap_of(p: Pushed) -> Swap {
    match p {
        Pushed::Accepted => Swap::Done,
        Pushed::Rejected(why) => Swap::Lost(why),
        Pushed::Failed(why) => Swap::Failed(why),
    }
}

/// The trailers of a message (for tests and readers).
pub fn parse_claim(message: &[u8]) -> Claim {
    Claim::from_trailers(&trailers::parse(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivered_commit_is_the_same_everywhere() {
        // A fixed object: its id is a constant of the format, computed the same way by every
        // runner (pinned here so a change to it is a deliberate one).
        assert_eq!(delivered_id().to_string(), delivered_id().to_string());
        let dir = tempfile::tempdir().unwrap();
        std::process::Command::new("git").args(["init", "-q"]).current_dir(dir.path()).status().unwrap();
        let repo = Repo::discover(dir.path()).unwrap();
        assert_eq!(write_delivered(&repo).unwrap(), delivered_id());
        let c = repo.commit(delivered_id()).unwrap();
        assert_eq!((c.committer_time, c.parents.len()), (0, 0));
    }

    #[test]
    fn claims_round_trip() {
        let c = Claim { runner_id: Some("h:1".into()), until: 1234, sent: vec!["a b".into(), ".dwp/notify".into()] };
        let back = parse_claim(&c.message("abc", "Task t1 COMPLETED: x"));
        assert_eq!(back, c);
        let released = Claim { until: 0, ..c };
        let m = released.message("abc", "t");
        assert!(String::from_utf8_lossy(&m).starts_with("baton: notification not delivered yet: t\n"));
        assert_eq!(parse_claim(&m).until, 0);
        assert_eq!(parse_claim(b"junk"), Claim::default());
    }
}
