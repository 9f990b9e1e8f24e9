//! The pull engine: resolve refs, fetch and verify commits, then walk their trees with a pool
//! of workers and store every missing object after checking its checksum.
//!
//! Order of events for each commit (as OSTree does): the commit bytes are checked against
//! their checksum and, when the remote has keys, against its ed25519 signatures; only then is
//! `state/<commit>.commitpartial` written and the commit stored. Workers share one write
//! transaction that is made durable (one syncfs) every few thousand objects, every few seconds
//! and at the end, also after a failure, so objects received before a failure are kept and a new pull does not fetch them again. Refs move only
//! after every object is durable and the commitpartial markers are removed; a failed pull
//! leaves the markers and no ref changes. A commit without a marker is complete and is not
//! walked again.
//!
//! Before any tree is walked, each ref's new commit is compared with the commit the ref points
//! to now (and with [`PullOptions::baseline`]): a move backwards ([`crate::downgrade`]) is
//! refused unless [`PullOptions::allow_downgrade`] is set, so a replayed old summary moves no
//! ref and costs only the commit objects. The first pull of a ref has nothing to compare with.

use crate::downgrade::{self, Verdict};
use crate::error::PullError;
use crate::sign;
use crate::source::Source;
use ed25519_dalek::VerifyingKey;
use keel_store::objects::{DirMeta, DirTree};
use keel_store::{Checksum, Commit, ObjectType, Repo, StoreError, Transaction, Variant};
use keel_utils::progress::Progress;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where pulled refs are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    /// `refs/remotes/<remote>/<ref>` (a normal pull).
    Remote(String),
    /// `refs/heads/<ref>` (`--mirror`, and `pull-local`).
    Local,
}

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Parent commits to fetch below each pulled commit (-1: the whole history).
    pub depth: i64,
    /// Where refs go.
    pub ref_target: RefTarget,
    /// When set, every commit must carry an ed25519 signature by one of these keys.
    pub commit_keys: Option<Vec<VerifyingKey>>,
    /// Objects stored before they are made durable together (one syncfs).
    pub batch: usize,
    /// Accept commits that are older than (or unrelated to) what the refs point to now.
    pub allow_downgrade: bool,
    /// A commit every pulled commit must also not go back from, with what it is for messages
    /// (`keel upgrade`: the deployment it upgrades).
    pub baseline: Option<(String, Checksum)>,
}

impl PullOptions {
    /// Defaults: no history, refs under `refs/remotes/<remote>/`, no signature check.
    pub fn for_remote(remote: &str) -> PullOptions {
        PullOptions {
            depth: 0,
            ref_target: RefTarget::Remote(remote.to_string()),
            commit_keys: None,
            batch: 5000,
            allow_downgrade: false,
            baseline: None,
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone, Default)]
pub struct PullReport {
    /// Refs (or checksums) pulled and the commits they now point to.
    pub refs: Vec<(String, Checksum)>,
    /// Commits fetched (not already complete locally).
    pub commits: usize,
    /// Objects transferred.
    pub objects: u64,
    /// Bytes transferred.
    pub bytes: u64,
}

/// Pull `refs` (names or full checksums) from `src` into `repo`.
pub fn pull(
    repo: &Repo,
    src: &dyn Source,
    refs: &[String],
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PullReport, PullError> {
    let targets = src.resolve(refs)?;
    let mut commits = Commits {
        repo,
        src,
        opts,
        roots: Vec::new(),
        partial: Vec::new(),
        bytes: 0,
    };
    let mut tips = Vec::new();
    for (name, c) in &targets {
        let binding = (!Checksum::is_hex(name)).then_some(name.as_str());
        tips.push(commits.fetch_chain(c, binding)?);
    }
    if !opts.allow_downgrade {
        for ((name, c), tip) in targets.iter().zip(&tips) {
            refuse_backwards(repo, opts, name, c, tip)?;
        }
    }
    progress.message(&format!(
        "{} commit(s) to fetch from {}",
        commits.partial.len(),
        src.location()
    ));
    let walk = Walk::new(repo, src, progress, opts.batch);
    let (objects, bytes) = walk.run(&commits.roots)?;
    for c in &commits.partial {
        let p = partial_path(repo, c);
        std::fs::remove_file(&p).map_err(|source| StoreError::Io { path: p, source })?;
    }
    for (name, c) in &targets {
        if Checksum::is_hex(name) {
            continue;
        }
        repo.set_ref(&local_ref(&opts.ref_target, name), Some(c))?;
    }
    progress.finish();
    Ok(PullReport {
        refs: targets,
        commits: commits.partial.len(),
        objects: objects + commits.partial.len() as u64,
        bytes: bytes + commits.bytes,
    })
}

/// The local ref a pulled ref is written to.
fn local_ref(target: &RefTarget, name: &str) -> String {
    match target {
        RefTarget::Remote(remote) => format!("{remote}:{name}"),
        RefTarget::Local => name.to_string(),
    }
}

/// Refuse `tip` (commit `c`, pulled as `name`: a ref, or a checksum that moves no ref) when
/// it goes back from the commit the local ref points to now, or from `opts.baseline`; what a
/// pull does before walking trees unless `opts.allow_downgrade`.
pub fn refuse_backwards(
    repo: &Repo,
    opts: &PullOptions,
    name: &str,
    c: &Checksum,
    tip: &Commit,
) -> Result<(), PullError> {
    let mut against = Vec::new();
    if !Checksum::is_hex(name) {
        let local = local_ref(&opts.ref_target, name);
        if let Some(current) = repo.read_ref(&local)? {
            against.push((format!("ref {local}"), current));
        }
    }
    against.extend(opts.baseline.clone());
    for (what, current) in against {
        if let Verdict::Backwards(why) = downgrade::check(repo, &current, c, tip)? {
            return Err(PullError::Downgrade {
                name: what,
                current: downgrade::describe(repo, &current),
                candidate: downgrade::describe_commit(c, tip),
                why,
            });
        }
    }
    Ok(())
}

fn partial_path(repo: &Repo, c: &Checksum) -> PathBuf {
    repo.path().join("state").join(format!("{c}.commitpartial"))
}

fn verify_hash(
    src: &dyn Source,
    t: ObjectType,
    c: &Checksum,
    bytes: &[u8],
) -> Result<(), PullError> {
    let got = Checksum::of(bytes);
    if got == *c {
        return Ok(());
    }
    Err(PullError::Corrupt {
        what: format!("{t} object {c}"),
        location: src.object_location(t, c),
        reason: format!("its bytes hash to {got}"),
    })
}

/// Fetching and checking commit objects, before any tree is walked.
struct Commits<'a> {
    repo: &'a Repo,
    src: &'a dyn Source,
    opts: &'a PullOptions,
    roots: Vec<(Checksum, Checksum)>,
    partial: Vec<Checksum>,
    bytes: u64,
}

impl Commits<'_> {
    /// Fetch `tip` and its parents down to the depth asked for; returns the tip.
    fn fetch_chain(&mut self, tip: &Checksum, binding: Option<&str>) -> Result<Commit, PullError> {
        let first = self.fetch(tip, binding)?;
        let mut next = first.parent;
        let mut depth = self.opts.depth;
        while depth != 0 {
            let Some(parent) = next else { break };
            next = self.fetch(&parent, None)?.parent;
            depth -= 1;
        }
        Ok(first)
    }

    fn fetch(&mut self, c: &Checksum, binding: Option<&str>) -> Result<Commit, PullError> {
        let t = ObjectType::Commit;
        let have = self.repo.has_object(t, c);
        let complete = have && !self.repo.is_partial(c);
        let detached = if self.opts.commit_keys.is_some() || !complete {
            self.src.detached_metadata(c)?
        } else {
            None
        };
        let bytes = if have {
            self.repo.load_metadata_bytes(t, c)?
        } else {
            let b = self.src.metadata(t, c)?;
            verify_hash(self.src, t, c, &b)?;
            self.bytes += b.len() as u64;
            b
        };
        let commit = Commit::parse(&bytes).map_err(|e| PullError::Corrupt {
            what: format!("commit {c}"),
            location: self.src.object_location(t, c),
            reason: e.0,
        })?;
        if let Some(keys) = &self.opts.commit_keys {
            sign::verify(&bytes, detached.as_deref(), keys).map_err(|source| {
                PullError::Signature {
                    what: format!("commit {c}"),
                    location: self.src.object_location(t, c),
                    source,
                }
            })?;
        }
        if let Some(name) = binding {
            check_binding(&commit, c, name)?;
        }
        if !complete {
            let p = partial_path(self.repo, c);
            let dir = self.repo.path().join("state");
            std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir, source })?;
            keel_utils::fsutil::write_atomic(&p, b"", 0o644)
                .map_err(|source| StoreError::Io { path: p, source })?;
            if let Some(m) = &detached {
                self.repo.write_detached_metadata(c, Some(m))?;
            }
            if !have {
                self.repo.write_metadata_object(t, &bytes)?;
            }
            self.roots.push((commit.root_tree, commit.root_meta));
            self.partial.push(*c);
        }
        Ok(commit)
    }
}

fn check_binding(commit: &Commit, c: &Checksum, name: &str) -> Result<(), PullError> {
    match commit.meta("ostree.ref-binding") {
        Some(Variant::StrList(bindings)) if !bindings.iter().any(|b| b == name) => {
            Err(PullError::RefBinding {
                commit: *c,
                name: name.to_string(),
                bindings: bindings.clone(),
            })
        }
        _ => Ok(()),
    }
}

#[derive(Clone, Copy)]
struct Job {
    t: ObjectType,
    c: Checksum,
    attempt: u32,
}

#[derive(Default)]
struct WalkState {
    queue: VecDeque<Job>,
    busy: usize,
    seen: HashSet<(ObjectType, Checksum)>,
    failed: Option<PullError>,
    objects: u64,
    bytes: u64,
}

/// The parallel tree walk.
struct Walk<'a> {
    repo: &'a Repo,
    src: &'a dyn Source,
    progress: &'a Progress,
    batch: usize,
    state: Mutex<WalkState>,
    wake: Condvar,
    /// The shared write transaction; replaced (and the old one made durable) every batch.
    tx: Mutex<Option<Arc<Transaction<'a>>>>,
    batch_state: Mutex<(usize, Instant)>,
}

/// Commit a transaction once no worker holds it any more (workers hold it only while they
/// store one object).
fn commit_when_released(mut tx: Arc<Transaction<'_>>) -> Result<(), PullError> {
    loop {
        match Arc::try_unwrap(tx) {
            Ok(t) => return Ok(t.commit()?),
            Err(shared) => {
                tx = shared;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Longest time stored objects wait before they are made durable.
const BATCH_TIME: Duration = Duration::from_secs(10);

/// What processing one object produced: objects it refers to, bytes transferred, and whether
/// it was transferred.
type Done = (Vec<(ObjectType, Checksum)>, u64, bool);

impl<'a> Walk<'a> {
    fn new(repo: &'a Repo, src: &'a dyn Source, progress: &'a Progress, batch: usize) -> Walk<'a> {
        Walk {
            repo,
            src,
            progress,
            batch: batch.max(1),
            state: Mutex::new(WalkState::default()),
            wake: Condvar::new(),
            tx: Mutex::new(None),
            batch_state: Mutex::new((0, Instant::now())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WalkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Walk from the (root dirtree, root dirmeta) pairs; returns (objects, bytes) transferred.
    fn run(self, roots: &[(Checksum, Checksum)]) -> Result<(u64, u64), PullError> {
        {
            let mut st = self.lock();
            for (tree, meta) in roots {
                for (t, c) in [(ObjectType::DirMeta, *meta), (ObjectType::DirTree, *tree)] {
                    if st.seen.insert((t, c)) {
                        st.queue.push_back(Job { t, c, attempt: 0 });
                    }
                }
            }
            self.progress.set_total(st.seen.len() as u64);
        }
        *self.tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(self.repo.begin()?));
        std::thread::scope(|s| {
            for _ in 0..self.src.parallel() {
                s.spawn(|| {
                    if let Err(e) = self.worker() {
                        self.fail(e);
                    }
                });
            }
        });
        let last = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let durable = last.map_or(Ok(()), commit_when_released);
        let st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        durable?;
        match st.failed {
            Some(e) => Err(e),
            None => Ok((st.objects, st.bytes)),
        }
    }

    fn next_job(&self) -> Option<Job> {
        let mut st = self.lock();
        loop {
            if st.failed.is_some() {
                return None;
            }
            if let Some(j) = st.queue.pop_front() {
                st.busy += 1;
                return Some(j);
            }
            if st.busy == 0 {
                return None;
            }
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn finish(&self, (children, bytes, fetched): Done) {
        let mut st = self.lock();
        let mut added = 0;
        for (t, c) in children {
            if st.seen.insert((t, c)) {
                added += 1;
                let job = Job { t, c, attempt: 0 };
                if t == ObjectType::File {
                    st.queue.push_back(job);
                } else {
                    st.queue.push_front(job);
                }
            }
        }
        st.busy -= 1;
        if fetched {
            st.objects += 1;
            st.bytes += bytes;
        }
        self.progress.set_total(st.seen.len() as u64);
        let idle = st.busy == 0;
        drop(st);
        self.progress.inc(1, bytes);
        // Wake only as many waiting workers as there are new jobs (all of them when the walk
        // is over), so idle workers do not all contend for the lock after every object.
        if added > 1 || idle {
            self.wake.notify_all();
        } else if added == 1 {
            self.wake.notify_one();
        }
    }

    fn requeue(&self, job: Job) {
        let mut st = self.lock();
        st.queue.push_front(Job {
            attempt: job.attempt + 1,
            ..job
        });
        st.busy -= 1;
        drop(st);
        self.wake.notify_one();
    }

    fn fail(&self, e: PullError) {
        let mut st = self.lock();
        st.failed.get_or_insert(e);
        drop(st);
        self.wake.notify_all();
    }

    /// Make everything stored so far durable: swap in a new transaction, commit the old one
    /// (other workers keep writing into the new one meanwhile).
    fn swap_transaction(&self) -> Result<(), PullError> {
        let fresh = Arc::new(self.repo.begin()?);
        let old = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(fresh);
        old.map_or(Ok(()), commit_when_released)
    }

    fn worker(&self) -> Result<(), PullError> {
        let (retries, backoff) = self.src.retry_policy();
        while let Some(job) = self.next_job() {
            let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let result = match &tx {
                Some(tx) => self.process(job, tx),
                None => Err(PullError::Remote("pull transaction closed".into())),
            };
            drop(tx);
            match result {
                Ok(done) => {
                    let due = {
                        let mut b = self.batch_state.lock().unwrap_or_else(|e| e.into_inner());
                        b.0 += usize::from(done.2);
                        let due = b.0 >= self.batch || b.1.elapsed() > BATCH_TIME;
                        if due {
                            *b = (0, Instant::now());
                        }
                        due
                    };
                    self.finish(done);
                    if due {
                        self.swap_transaction()?;
                    }
                }
                Err(e)
                    if job.t == ObjectType::File && e.is_retryable() && job.attempt < retries =>
                {
                    tracing::warn!("{e}; retrying");
                    std::thread::sleep(backoff.saturating_mul(1 << job.attempt.min(16)));
                    // A failed attempt may leave the object reserved in the transaction.
                    self.swap_transaction()?;
                    self.requeue(job);
                }
                Err(e) => {
                    {
                        let mut st = self.lock();
                        st.busy -= 1;
                    }
                    self.fail(e);
                }
            }
        }
        Ok(())
    }

    fn fetch_meta(&self, t: ObjectType, c: &Checksum) -> Result<Vec<u8>, PullError> {
        let bytes = self.src.metadata(t, c)?;
        verify_hash(self.src, t, c, &bytes)?;
        Ok(bytes)
    }

    fn corrupt(&self, t: ObjectType, c: &Checksum, reason: String) -> PullError {
        PullError::Corrupt {
            what: format!("{t} object {c}"),
            location: self.src.object_location(t, c),
            reason,
        }
    }

    fn process(&self, job: Job, tx: &Transaction<'_>) -> Result<Done, PullError> {
        let (t, c) = (job.t, &job.c);
        match t {
            ObjectType::DirTree => {
                let local = self.repo.has_object(t, c);
                let bytes = if local {
                    self.repo.load_metadata_bytes(t, c)?
                } else {
                    self.fetch_meta(t, c)?
                };
                let tree = DirTree::parse(&bytes).map_err(|e| self.corrupt(t, c, e.0))?;
                if !local {
                    tx.write_metadata(t, &bytes)?;
                }
                let mut children: Vec<(ObjectType, Checksum)> = tree
                    .files
                    .iter()
                    .map(|(_, f)| (ObjectType::File, *f))
                    .collect();
                for (_, dt, dm) in &tree.dirs {
                    children.push((ObjectType::DirMeta, *dm));
                    children.push((ObjectType::DirTree, *dt));
                }
                let n = if local { 0 } else { bytes.len() as u64 };
                Ok((children, n, !local))
            }
            ObjectType::DirMeta if !self.repo.has_object(t, c) => {
                let bytes = self.fetch_meta(t, c)?;
                DirMeta::parse(&bytes).map_err(|e| self.corrupt(t, c, e.0))?;
                tx.write_metadata(t, &bytes)?;
                Ok((Vec::new(), bytes.len() as u64, true))
            }
            ObjectType::File if !self.repo.has_object(t, c) => {
                let n = self.src.content(c, tx, job.attempt)?;
                Ok((Vec::new(), n, true))
            }
            _ => Ok((Vec::new(), 0, false)),
        }
    }
}
