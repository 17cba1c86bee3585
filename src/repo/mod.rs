//! The only door to git. Reads (refs, commits, trees) and writes (commit objects, ref
//! compare-and-swap) happen in-process with gix; the `git` binary is used only where gix cannot do
//! the job (linked worktree add/remove/prune, see [`worktree`]), always with a scrubbed environment.

mod branch_refs;
pub mod handlers;
pub mod walk;
pub mod worktree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
pub use branch_refs::BranchRef;
use gix::bstr::{BString, ByteSlice};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};
pub use gix::ObjectId;

use crate::protocol::{trailers, StateRead, Trailer};

/// A parsed commit: what every layer above needs, nothing borrowed from gix.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub id: ObjectId,
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub message: Vec<u8>,
    pub trailers: Vec<Trailer>,
    /// Committer time, seconds since the epoch.
    pub committer_time: i64,
    pub author: String,
}

impl CommitInfo {
    pub fn state(&self) -> StateRead {
        StateRead::from_trailers(&self.trailers)
    }
}

/// A branch (local or remote-tracking) and the commit it points to.
#[derive(Debug, Clone)]
pub struct BranchHead {
    /// Short name: `feature/x` for `refs/heads/feature/x`, `origin/x` for remote-tracking.
    pub branch: String,
    pub refname: String,
    pub id: ObjectId,
}

/// Where to list branches from.
#[derive(Debug, Clone)]
pub enum BranchSource {
    Local,
    Remote(String),
}

/// The result of a compare-and-swap on a ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    Updated,
    /// The ref no longer had the expected value: somebody else moved (or deleted) it.
    Moved {
        actual: Option<ObjectId>,
    },
}

/// How a handler path resolved in a commit's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerLookup {
    /// An executable file at this repository-relative path.
    Found(String),
    /// A file exists but is not executable (or is a symlink leaving its folder).
    NotExecutable(String),
    Missing,
}

pub struct Repo {
    inner: gix::Repository,
    /// The commit-graph, opened once per handle: opening it maps the file, and a walk per
    /// branch (10,000 of them on a big board) must not map it 10,000 times.
    graph: std::cell::OnceCell<Option<gix::commitgraph::Graph>>,
}

impl Repo {
    /// Find the repository containing `dir` (like git: walk up, honour `GIT_DIR`).
    pub fn discover(dir: &Path) -> Result<Repo> {
        let mut inner = match std::env::var_os("GIT_DIR") {
            Some(git_dir) => gix::open(PathBuf::from(git_dir)),
            None => gix::discover(dir),
        }
        .map_err(|e| anyhow!("not a git repository (or any parent up to /): {}: {e}", dir.display()))?;
        // gix has no default identity; git-baton writes protocol commits even on a machine where
        // nobody configured one (CI), so it falls back to a fixed one instead of failing.
        inner
            .committer_or_set_fallback("git-baton", "git-baton@localhost")
            .context("reading the committer identity")?;
        Ok(Repo { inner, graph: Default::default() })
    }

    /// The repository's commit-graph when it has one (and `core.commitGraph` allows it), opened
    /// on first use. Commits are immutable, so a graph rewritten meanwhile only lacks newer
    /// commits, which are then read as objects.
    pub fn commit_graph(&self) -> Option<&gix::commitgraph::Graph> {
        self.graph.get_or_init(|| self.inner.commit_graph_if_enabled().ok().flatten()).as_ref()
    }

    pub fn gix(&self) -> &gix::Repository {
        &self.inner
    }

    pub fn into_sync(self) -> gix::ThreadSafeRepository {
        self.inner.into_sync()
    }

    pub fn from_sync(sync: &gix::ThreadSafeRepository) -> Repo {
        Repo { inner: sync.to_thread_local(), graph: Default::default() }
    }

    pub fn is_bare(&self) -> bool {
        self.inner.is_bare()
    }

    /// The directory shared by all worktrees (`.git` of the main worktree, or the bare repo).
    pub fn common_dir(&self) -> &Path {
        self.inner.common_dir()
    }

    pub fn workdir(&self) -> Option<&Path> {
        self.inner.workdir()
    }

    /// The branch checked out in the worktree this process runs in, if HEAD is attached.
    pub fn head_branch(&self) -> Result<Option<String>> {
        Ok(self
            .inner
            .head_name()
            .context("reading HEAD")?
            .and_then(|n| n.as_bstr().strip_prefix(b"refs/heads/").map(|b| b.to_str_lossy().into_owned())))
    }

    /// Whether HEAD points to a commit at all (false for unborn branches).
    pub fn head_id(&self) -> Result<Option<ObjectId>> {
        let head = self.inner.head().context("reading HEAD")?;
        Ok(head.id().map(|id| id.detach()))
    }

    /// Every branch of `source`, sorted by name, with the commit it points to.
    pub fn branches(&self, source: &BranchSource) -> Result<Vec<BranchHead>> {
        let platform = self.inner.references().context("reading refs")?;
        let (iter, strip) = match source {
            BranchSource::Local => (platform.local_branches().context("reading refs/heads")?, "refs/heads/".to_owned()),
            BranchSource::Remote(remote) => {
                let prefix = format!("refs/remotes/{remote}/");
                (platform.prefixed(prefix.as_str()).with_context(|| format!("reading {prefix}"))?, prefix)
            }
        };
        let mut out = Vec::new();
        for r in iter {
            // A ref file git-baton cannot read is skipped with a warning: one bad ref never stops
            // the board.
            let mut r = match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("skipping a ref that cannot be read: {e}");
                    continue;
                }
            };
            let refname = r.name().as_bstr().to_str_lossy().into_owned();
            let Some(short) = refname.strip_prefix(&strip) else {
                continue;
            };
            if short == "HEAD" {
                continue; // refs/remotes/<remote>/HEAD is a pointer, not a branch
            }
            let branch = match source {
                BranchSource::Local => short.to_owned(),
                BranchSource::Remote(remote) => format!("{remote}/{short}"),
            };
            let id = match r.target().try_id() {
                Some(id) => id.to_owned(),
                None => match r.peel_to_id() {
                    Ok(id) => id.detach(),
                    Err(e) => {
                        tracing::warn!("skipping {refname}: {e}");
                        continue;
                    }
                },
            };
            out.push(BranchHead { branch, refname, id });
        }
        out.sort_by(|a, b| a.refname.cmp(&b.refname));
        Ok(out)
    }

    /// Every ref under `prefix` (e.g. `refs/baton/breakers/`): the part after the prefix and the
    /// object it points to, sorted. A ref that cannot be read is skipped with a warning.
    pub fn refs_under(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        let platform = self.inner.references().context("reading refs")?;
        let mut out = Vec::new();
        for r in platform.prefixed(prefix).with_context(|| format!("reading {prefix}"))? {
            let Ok(mut r) = r.inspect_err(|e| tracing::warn!("skipping a ref under {prefix}: {e}")) else {
                continue;
            };
            let refname = r.name().as_bstr().to_str_lossy().into_owned();
            let Some(short) = refname.strip_prefix(prefix).map(str::to_owned) else {
                continue;
            };
            match r.peel_to_id() {
                Ok(id) => out.push((short, id.detach())),
                Err(e) => tracing::warn!("skipping {refname}: {e}"),
            }
        }
        out.sort();
        Ok(out)
    }

    /// The commit a ref points to, `None` if the ref does not exist.
    pub fn ref_id(&self, refname: &str) -> Result<Option<ObjectId>> {
        match self.inner.try_find_reference(refname).with_context(|| format!("reading {refname}"))? {
            None => Ok(None),
            Some(mut r) => Ok(Some(r.peel_to_id().with_context(|| format!("resolving {refname}"))?.detach())),
        }
    }

    /// What a branch points to when that is not a commit: `Some("tag")`, `Some("tree")`, … (a
    /// branch head must be a commit; git accepts other objects there).
    pub fn non_commit_head(&self, refname: &str) -> Result<Option<String>> {
        let Some(r) = self.inner.try_find_reference(refname).with_context(|| format!("reading {refname}"))? else {
            return Ok(None);
        };
        let Some(id) = r.target().try_id().map(|i| i.to_owned()) else {
            return Ok(None);
        };
        match self.inner.find_header(id) {
            Ok(h) if h.kind() == gix::object::Kind::Commit => Ok(None),
            Ok(h) => Ok(Some(h.kind().to_string())),
            Err(_) => Ok(Some(format!("missing object {id}"))),
        }
    }

    /// Resolve a revision (`main`, `HEAD~2`, a sha) to a commit id.
    ///
    /// A full hex id is taken as an object id directly (git does the same), skipping gix's
    /// prefix disambiguation, which re-scans the object store per argument: 10,000 ids resolved
    /// in ~90 ms that way, versus a hash-map lookup here. Whether it names a commit is checked
    /// when the commit is read.
    pub fn resolve_commit(&self, rev: &str) -> Result<ObjectId> {
        if rev.len() == 40 && rev.bytes().all(|c| c.is_ascii_hexdigit()) {
            if let Ok(id) = ObjectId::from_hex(rev.as_bytes()) {
                if self.inner.has_object(id) {
                    return Ok(id);
                }
            }
        }
        let id = self
            .inner
            .rev_parse_single(rev.as_bytes().as_bstr())
            .map_err(|e| anyhow!("unknown revision {rev:?}: {e}"))?;
        let obj = id.object().with_context(|| format!("reading {rev}"))?;
        let commit = obj.peel_to_commit().map_err(|_| anyhow!("{rev:?} does not name a commit"))?;
        Ok(commit.id)
    }

    /// Read and parse one commit.
    pub fn commit(&self, id: ObjectId) -> Result<CommitInfo> {
        let commit = self.inner.find_commit(id).with_context(|| format!("reading commit {id}"))?;
        let decoded = commit.decode().with_context(|| format!("decoding commit {id}"))?;
        let message = decoded.message.to_vec();
        let committer_time = decoded.committer().map(|s| s.seconds()).unwrap_or(0);
        let author = decoded
            .author()
            .map(|a| format!("{} <{}>", a.name.to_str_lossy(), a.email.to_str_lossy()))
            .unwrap_or_default();
        Ok(CommitInfo {
            id,
            tree: decoded.tree(),
            parents: decoded.parents().collect(),
            trailers: trailers::parse(&message),
            message,
            committer_time,
            author,
        })
    }

    /// The committer's email of a commit (a gate counts approvals by it).
    pub fn committer_email(&self, id: ObjectId) -> Result<String> {
        let commit = self.inner.find_commit(id).with_context(|| format!("reading commit {id}"))?;
        let decoded = commit.decode().with_context(|| format!("decoding commit {id}"))?;
        Ok(decoded.committer().map(|c| c.email.to_str_lossy().into_owned()).unwrap_or_default())
    }

    /// The email of the identity commits made here would carry (git's rules: `GIT_COMMITTER_EMAIL`,
    /// then `user.email`, …), None when none is configured.
    pub fn identity_email(&self) -> Option<String> {
        match self.inner.committer() {
            Some(Ok(sig)) => Some(sig.email.to_str_lossy().trim().to_owned()),
            _ => None,
        }
    }

    /// The empty tree, written to the object database (side records such as breakers carry no
    /// files).
    pub fn empty_tree(&self) -> Result<ObjectId> {
        Ok(self.inner.write_object(gix::objs::Tree::empty()).context("writing the empty tree")?.detach())
    }

    /// Write a commit object (nothing else changes) and return its id.
    /// `now` is the committer/author time; identity comes from git config and `GIT_*` variables.
    pub fn write_commit(&self, tree: ObjectId, parents: &[ObjectId], message: &[u8], now: i64) -> Result<ObjectId> {
        let time = gix::date::Time::new(now, 0);
        let committer = self.inner.committer().ok_or_else(|| anyhow!("no committer identity"))??;
        let author = self.inner.author().ok_or_else(|| anyhow!("no author identity"))??;
        let sig = |s: gix::actor::SignatureRef<'_>| gix::actor::Signature {
            name: s.name.into(),
            email: s.email.into(),
            time,
        };
        let commit = gix::objs::Commit {
            tree,
            parents: parents.iter().copied().collect(),
            author: sig(author),
            committer: sig(committer),
            encoding: None,
            message: BString::from(message),
            extra_headers: Vec::new(),
        };
        Ok(self.inner.write_object(&commit).context("writing the commit object")?.detach())
    }

    /// The one way git-baton moves a ref: compare-and-swap with the value it read.
    ///
    /// Uses git's own `<ref>.lock` protocol, so it is exclusive against other git-baton processes
    /// and against git itself. A lock held by someone else is retried briefly; if the ref then holds
    /// another value, the swap lost the race and says so instead of failing.
    pub fn compare_and_swap(
        &self,
        refname: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
        reflog: &str,
    ) -> Result<Cas> {
        self.edit_ref(refname, expected, Some(new), reflog)
    }

    /// Delete `refname` if it still points to `expected`: the same compare-and-swap, to nothing.
    pub fn delete_ref(&self, refname: &str, expected: ObjectId) -> Result<Cas> {
        self.edit_ref(refname, Some(expected), None, "")
    }

    /// One ref edit by compare-and-swap: `new` (`None`: delete) only if the ref holds `expected`
    /// (`None`: must not exist). A lock held by someone else is retried briefly; if the ref then
    /// holds another value, the swap lost the race and says so instead of failing.
    fn edit_ref(&self, refname: &str, expected: Option<ObjectId>, new: Option<ObjectId>, reflog: &str) -> Result<Cas> {
        let name: FullName = refname.try_into().map_err(|e| anyhow!("invalid ref name {refname:?}: {e}"))?;
        let expected_value = match expected {
            Some(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
            None => PreviousValue::MustNotExist,
        };
        let change = || match new {
            Some(id) => Change::Update {
                log: LogChange { mode: RefLog::AndReference, force_create_reflog: false, message: reflog.into() },
                expected: expected_value.clone(),
                new: Target::Object(id),
            },
            None => Change::Delete { expected: expected_value.clone(), log: RefLog::AndReference },
        };
        let mut last_err = None;
        for attempt in 0..20u64 {
            let current = self.ref_id(refname)?;
            if current != expected {
                return Ok(Cas::Moved { actual: current });
            }
            match self.inner.edit_reference(RefEdit { change: change(), name: name.clone(), deref: false }) {
                Ok(_) => return Ok(Cas::Updated),
                Err(e) => last_err = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(10 + attempt * 15));
        }
        let current = self.ref_id(refname)?;
        if current != expected {
            return Ok(Cas::Moved { actual: current });
        }
        // Name the cause: a full disk reads very differently from a lock someone holds.
        let mut chain = Vec::new();
        let mut io_cause = None;
        let mut source: Option<&(dyn std::error::Error + 'static)> = last_err.as_ref().map(|e| e as _);
        while let Some(e) = source {
            chain.push(e.to_string());
            io_cause = io_cause.or_else(|| e.downcast_ref::<std::io::Error>().and_then(|io| io.raw_os_error()));
            source = e.source();
        }
        let hint = match io_cause {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => " (the disk is full)".to_owned(),
            Some(_) => String::new(),
            None => format!(" (is another git process holding {refname}.lock?)"),
        };
        bail!("could not update {refname}{hint}: {}", chain.join(": "))
    }

    /// Several ref updates in one transaction, each on its expected value (`None`: must not
    /// exist): all of them or none. Returns `Cas::Moved` naming the first ref that did not hold its
    /// expected value (then nothing was written).
    pub fn update_refs(&self, edits: &[(String, Option<ObjectId>, ObjectId)], reflog: &str) -> Result<(Cas, String)> {
        let mut out = Vec::with_capacity(edits.len());
        for (refname, expected, new) in edits {
            let current = self.ref_id(refname)?;
            if current != *expected {
                return Ok((Cas::Moved { actual: current }, refname.clone()));
            }
            let name: FullName =
                refname.as_str().try_into().map_err(|e| anyhow!("invalid ref name {refname:?}: {e}"))?;
            out.push(RefEdit {
                change: Change::Update {
                    log: LogChange { mode: RefLog::AndReference, force_create_reflog: false, message: reflog.into() },
                    expected: match expected {
                        Some(id) => PreviousValue::MustExistAndMatch(Target::Object(*id)),
                        None => PreviousValue::MustNotExist,
                    },
                    new: Target::Object(*new),
                },
                name,
                deref: false,
            });
        }
        match self.inner.edit_references(out) {
            Ok(_) => Ok((Cas::Updated, String::new())),
            Err(e) => {
                // Lost a race between the check and the locks: say which ref moved.
                for (refname, expected, _) in edits {
                    let current = self.ref_id(refname)?;
                    if current != *expected {
                        return Ok((Cas::Moved { actual: current }, refname.clone()));
                    }
                }
                Err(anyhow!("could not update {} refs in one transaction: {e}", edits.len()))
            }
        }
    }

    /// The tree of what is staged in this worktree's index (`git write-tree`: gix cannot write a
    /// tree from an index); None in a bare repository.
    pub fn index_tree(&self) -> Result<Option<ObjectId>> {
        let Some(dir) = self.workdir() else {
            return Ok(None);
        };
        let out = worktree::run_git(dir, ["write-tree"])?;
        let id =
            ObjectId::from_hex(out.trim().as_bytes()).with_context(|| format!("git write-tree printed {out:?}"))?;
        Ok(Some(id))
    }

    /// Append a commit with `message` on top of `expected_head` (same tree: files, index and any
    /// worktree that has the branch checked out stay as they are) and move `refname` to it by
    /// compare-and-swap. Returns the new commit on success.
    pub fn append_commit(
        &self,
        refname: &str,
        expected_head: ObjectId,
        message: &[u8],
        now: i64,
        reflog: &str,
    ) -> Result<(ObjectId, Cas)> {
        let parent = self.commit(expected_head)?;
        let id = self.write_commit(parent.tree, &[expected_head], message, now)?;
        let cas = self.compare_and_swap(refname, Some(expected_head), id, reflog)?;
        Ok((id, cas))
    }

    /// Is `ancestor` reachable from `tip` (or equal to it)? Answered with a merge base, which
    /// uses the commit-graph when present: no walk limit that could turn into a wrong answer.
    pub fn descends_from(&self, tip: ObjectId, ancestor: ObjectId) -> Result<bool> {
        if tip == ancestor {
            return Ok(true);
        }
        let base = self.inner.merge_base(tip, ancestor).map_err(|e| anyhow!("finding a merge base: {e}"))?;
        Ok(base.is_some_and(|b| b.detach() == ancestor))
    }

    /// The merge base of two commits, if they share history.
    pub fn merge_base(&self, a: ObjectId, b: ObjectId) -> Result<Option<ObjectId>> {
        if a == b {
            return Ok(Some(a));
        }
        let base = self.inner.merge_base(a, b).map_err(|e| anyhow!("finding a merge base: {e}"))?;
        Ok(base.map(|id| id.detach()))
    }

    /// The first-parent chain from `tip` (newest first), stopping before `stop` (excluded) or
    /// after `limit` commits.
    /// The first-parent chain from `tip` (newest first) down to, not including, the first commit
    /// `stop` says yes to; at most `limit` commits.
    pub fn first_parents_until(
        &self,
        tip: ObjectId,
        stop: impl Fn(&ObjectId) -> bool,
        limit: usize,
    ) -> Result<Vec<CommitInfo>> {
        let mut out = Vec::new();
        let mut next = Some(tip);
        while let Some(id) = next {
            if stop(&id) || out.len() >= limit {
                break;
            }
            let c = self.commit(id)?;
            next = c.parents.first().copied();
            out.push(c);
        }
        Ok(out)
    }

    pub fn first_parents(&self, tip: ObjectId, stop: Option<ObjectId>, limit: usize) -> Result<Vec<CommitInfo>> {
        let mut out = Vec::new();
        let mut next = Some(tip);
        while let Some(id) = next {
            if Some(id) == stop || out.len() >= limit {
                break;
            }
            let c = self.commit(id)?;
            next = c.parents.first().copied();
            out.push(c);
        }
        Ok(out)
    }

    /// The commits reachable from `tip` but not from `base`, `base` excluded.
    pub fn commits_between(&self, tip: ObjectId, base: ObjectId) -> Result<Vec<ObjectId>> {
        let walk = self.inner.rev_walk([tip]).with_hidden([base]).all().context("walking history")?;
        walk.map(|info| Ok(info.context("walking history")?.id)).collect()
    }

    /// Look a handler up in a tree: `<dir>/<state>` must be an executable file; a symlink is
    /// followed (at most 8 hops, so a loop ends) while it names a sibling in the same folder, never outside it.
    pub fn lookup_handler(&self, tree: ObjectId, dir: &str, state: &str) -> Result<HandlerLookup> {
        self.lookup_handler_hops(tree, dir, state, 0)
    }

    /// Symlinks followed at most this many times (a loop `x -> y -> x` ends as "not executable").
    const MAX_HANDLER_HOPS: usize = 8;

    fn lookup_handler_hops(&self, tree: ObjectId, dir: &str, state: &str, hops: usize) -> Result<HandlerLookup> {
        let tree_obj = self.inner.find_tree(tree).with_context(|| format!("reading tree {tree}"))?;
        let path = format!("{dir}/{state}");
        let Some(entry) = tree_obj.lookup_entry_by_path(&path).with_context(|| format!("looking up {path}"))? else {
            return Ok(HandlerLookup::Missing);
        };
        use gix::object::tree::EntryKind;
        match entry.mode().kind() {
            EntryKind::BlobExecutable => Ok(HandlerLookup::Found(path)),
            EntryKind::Link => {
                let blob = self.inner.find_blob(entry.object_id()).context("reading symlink")?;
                let target = blob.data.to_str_lossy().into_owned();
                let target = target.trim_start_matches("./");
                if crate::protocol::State::parse(target).is_ok() && target != state && hops < Self::MAX_HANDLER_HOPS {
                    match self.lookup_handler_hops(tree, dir, target, hops + 1)? {
                        HandlerLookup::Found(_) => Ok(HandlerLookup::Found(path)),
                        _ => Ok(HandlerLookup::NotExecutable(path)),
                    }
                } else {
                    Ok(HandlerLookup::NotExecutable(path))
                }
            }
            _ => Ok(HandlerLookup::NotExecutable(path)),
        }
    }
}

/// Handler lookups cached per tree: branches that share a tree (state commits keep their parent's
/// tree) cost one lookup between them.
#[derive(Default)]
pub struct HandlerCache {
    map: HashMap<(ObjectId, String, String), HandlerLookup>,
}

impl HandlerCache {
    pub fn lookup(&mut self, repo: &Repo, tree: ObjectId, dir: &str, state: &str) -> Result<HandlerLookup> {
        let key = (tree, dir.to_owned(), state.to_owned());
        if let Some(v) = self.map.get(&key) {
            return Ok(v.clone());
        }
        let v = repo.lookup_handler(tree, dir, state)?;
        self.map.insert(key, v.clone());
        Ok(v)
    }
}

/// The cores this process may use, read once: `std::thread::available_parallelism` reads cgroup
/// files on every call, which costs a tenth of a report that walks 10,000 branches.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
