//! Where a pull reads objects from: an archive repository over HTTP(S), or a local repository
//! of any mode (`pull-local`, `file://` remotes). A source only delivers bytes; the pull engine
//! verifies every object before it is stored.

use crate::error::PullError;
use crate::fetch::{Body, CappedReader, FetchError, FetchOptions, Fetcher};
use crate::freshness::SummaryRead;
use crate::summary::{self, Summary};
use ed25519_dalek::VerifyingKey;
use flate2::bufread::DeflateDecoder;
use keel_store::objects::FileHeader;
use keel_store::{Checksum, ObjectType, Repo, StoreError, Transaction};
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Mutex;

use std::time::Duration;

/// A repository objects can be pulled from.
pub trait Source: Sync {
    /// Human-readable location (URL or path) for messages.
    fn location(&self) -> String;
    /// Where one object lives (URL or path) for messages.
    fn object_location(&self, t: ObjectType, c: &Checksum) -> String;
    /// Resolve refs (or full checksums) to commits.
    fn resolve(&self, refs: &[String]) -> Result<Vec<(String, Checksum)>, PullError>;
    /// The stored bytes of a metadata object (unverified; a missing object is an error).
    fn metadata(&self, t: ObjectType, c: &Checksum) -> Result<Vec<u8>, PullError>;
    /// Detached metadata of a commit, if it has any.
    fn detached_metadata(&self, c: &Checksum) -> Result<Option<Vec<u8>>, PullError>;
    /// Store content object `c` into `tx`, verifying its checksum; one attempt (numbered from
    /// 0). Returns the bytes transferred.
    fn content(&self, c: &Checksum, tx: &Transaction<'_>, attempt: u32) -> Result<u64, PullError>;
    /// Retries and first backoff for failed content transfers (metadata is retried inside
    /// [`Source::metadata`]).
    fn retry_policy(&self) -> (u32, Duration);
    /// Transfers to run in parallel.
    fn parallel(&self) -> usize;
    /// The summary the last [`Source::resolve`] read, if this kind of source has one.
    fn summary_read(&self) -> Option<SummaryRead> {
        None
    }
}

fn object_rel_path(t: ObjectType, c: &Checksum) -> String {
    let hex = c.to_hex();
    format!("objects/{}/{}.{}", &hex[..2], &hex[2..], t.extension(true))
}

fn what(t: ObjectType, c: &Checksum) -> String {
    format!("{t} object {c}")
}

/// An archive repository served over HTTP(S) by any static file server.
pub struct HttpSource {
    fetcher: Fetcher,
    summary_keys: Option<Vec<VerifyingKey>>,
    summary_read: Mutex<Option<SummaryRead>>,
}

impl HttpSource {
    /// A source at `url`. With `summary_keys`, the server must offer a `summary` signed by one
    /// of them, and refs are resolved only through it. Fails when the CAs of `opts.roots`
    /// cannot be used.
    pub fn new(
        url: &str,
        opts: FetchOptions,
        summary_keys: Option<Vec<VerifyingKey>>,
    ) -> Result<HttpSource, PullError> {
        Ok(HttpSource {
            fetcher: Fetcher::new(url, opts)?,
            summary_keys,
            summary_read: Mutex::new(None),
        })
    }

    /// The HTTP client (for request and byte counters).
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    fn max_meta(&self) -> u64 {
        self.fetcher.options().max_metadata_size
    }

    fn summary(&self) -> Result<Option<Summary>, PullError> {
        let max = self.max_meta();
        let sig = self
            .fetcher
            .get_optional("summary.sig", "summary signature", max)?;
        let Some(bytes) = self.fetcher.get_optional("summary", "summary", max)? else {
            if self.summary_keys.is_some() {
                return Err(PullError::Remote(format!(
                    "{}: sign-verify-summary is set but the server has no summary; sign one there with `keel repo summary --update --sign-key KEYFILE`",
                    self.fetcher.url("summary")
                )));
            }
            return Ok(None);
        };
        if let Some(keys) = &self.summary_keys {
            summary::verify(&bytes, sig.as_deref(), keys).map_err(|source| {
                PullError::Signature {
                    what: "summary".into(),
                    location: self.fetcher.url("summary"),
                    source,
                }
            })?;
        }
        let parsed = Summary::parse(&bytes).map_err(|e| PullError::Corrupt {
            what: "summary".into(),
            location: self.fetcher.url("summary"),
            reason: e.0,
        })?;
        if let Some(mode) = parsed.meta(summary::MODE_KEY).and_then(|v| v.as_str()) {
            check_archive(mode, &self.fetcher.url("summary"))?;
        }
        Ok(Some(parsed))
    }

    fn check_config(&self) -> Result<(), PullError> {
        let url = self.fetcher.url("config");
        let Some(bytes) = self
            .fetcher
            .get_optional("config", "repository config", 1 << 20)?
        else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&bytes);
        match crate::config::core_mode(&text) {
            Some(mode) => check_archive(mode, &url),
            None => Ok(()),
        }
    }

    fn receive_file(
        &self,
        c: &Checksum,
        tx: &Transaction<'_>,
        body: Body,
    ) -> Result<u64, PullError> {
        let what = what(ObjectType::File, c);
        let url = body.url.clone();
        let corrupt = |reason: String| PullError::Corrupt {
            what: what.clone(),
            location: url.clone(),
            reason,
        };
        let max_meta = self.max_meta();
        let mut r = CappedReader::new(body, max_meta, &what);
        let mut prefix = [0u8; 8];
        r.read_exact(&mut prefix).map_err(|e| r.error(e))?;
        let hlen = u64::from(u32::from_be_bytes([
            prefix[0], prefix[1], prefix[2], prefix[3],
        ]));
        if hlen > max_meta {
            return Err(corrupt(format!(
                "header length {hlen} is larger than the {max_meta}-byte limit"
            )));
        }
        let mut hbytes = vec![0u8; hlen as usize];
        r.read_exact(&mut hbytes).map_err(|e| r.error(e))?;
        let (size, header) = FileHeader::parse_archive(&hbytes).map_err(|e| corrupt(e.0))?;
        // Raw deflate never needs more than a fraction over the input; this bound is generous.
        r.set_max((8 + hlen).saturating_add(size.saturating_add(size / 4 + 65536)));
        let mut buffered = BufReader::with_capacity(128 * 1024, r);
        let mut content = SizedReader {
            inner: DeflateDecoder::new(&mut buffered),
            symlink: header.is_symlink(),
            expected: size,
            got: 0,
            failed: None,
        };
        let stored = tx.write_content(Some(c), &header, &mut content);
        let (got, content_failure) = (content.got, content.failed.take());
        drop(content);
        let trailing = buffered.fill_buf().map(|b| !b.is_empty()).unwrap_or(false);
        let body = buffered.into_inner();
        if let Some(f) = body.failure() {
            return Err(f.into());
        }
        if let Some(reason) = content_failure {
            return Err(corrupt(reason));
        }
        // The body was fine: a local write failure (a full disk) is not a short transfer.
        let stored = match stored {
            Err(e @ StoreError::Io { .. }) => return Err(e.into()),
            other => other,
        };
        if got < size && !header.is_symlink() {
            return Err(FetchError::Transport {
                what,
                url,
                message: format!("body ended early: {got} of the {size} content bytes"),
            }
            .into());
        }
        match stored {
            Err(StoreError::Corrupt { reason, .. }) => return Err(corrupt(reason)),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        if trailing {
            return Err(corrupt(
                "unexpected data after the end of the object".into(),
            ));
        }
        let n = body.bytes_read();
        self.fetcher.add_bytes(n);
        Ok(n)
    }
}

fn check_archive(mode: &str, url: &str) -> Result<(), PullError> {
    if keel_store::RepoMode::parse(mode).is_some_and(|m| m.is_archive()) {
        Ok(())
    } else {
        Err(PullError::Remote(format!(
            "{url}: the remote repository is in mode `{mode}`; only archive repositories can be pulled over HTTP"
        )))
    }
}

/// The content of a `.filez`: inflates, counts, fails once it exceeds the size the header
/// declared, and remembers why the data was bad (as opposed to the transfer failing).
struct SizedReader<R> {
    inner: R,
    symlink: bool,
    expected: u64,
    got: u64,
    failed: Option<String>,
}

impl<R: Read> Read for SizedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.symlink {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.failed
                    .get_or_insert(format!("bad compressed content: {e}"));
                return Err(e);
            }
        };
        self.got += n as u64;
        if self.got > self.expected {
            let msg = format!(
                "content is longer than the {} bytes its header declares",
                self.expected
            );
            self.failed.get_or_insert(msg.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        Ok(n)
    }
}

impl Source for HttpSource {
    fn location(&self) -> String {
        self.fetcher.url("")
    }

    fn object_location(&self, t: ObjectType, c: &Checksum) -> String {
        self.fetcher.url(&object_rel_path(t, c))
    }

    fn resolve(&self, refs: &[String]) -> Result<Vec<(String, Checksum)>, PullError> {
        let summary = self.summary()?;
        if summary.is_none() {
            self.check_config()?;
        }
        *self.summary_read.lock().unwrap_or_else(|e| e.into_inner()) = Some(SummaryRead {
            summary: summary.clone(),
            verified: self.summary_keys.is_some(),
        });
        let mut out = Vec::new();
        for name in refs {
            if let Ok(c) = name.parse::<Checksum>() {
                out.push((name.clone(), c));
                continue;
            }
            let c = match &summary {
                Some(s) => {
                    s.find(name)
                        .map(|r| r.checksum)
                        .ok_or_else(|| PullError::RefNotFound {
                            name: name.clone(),
                            location: self.fetcher.url("summary"),
                        })?
                }
                None => {
                    let path = format!("refs/heads/{name}");
                    let bytes = match self.fetcher.get(&path, &format!("ref {name}"), 1024) {
                        Err(FetchError::NotFound { url, .. }) => {
                            return Err(PullError::RefNotFound {
                                name: name.clone(),
                                location: url,
                            })
                        }
                        r => r?,
                    };
                    let text = String::from_utf8_lossy(&bytes);
                    text.trim().parse().map_err(|_| PullError::Corrupt {
                        what: format!("ref {name}"),
                        location: self.fetcher.url(&path),
                        reason: "not a 64-character checksum".into(),
                    })?
                }
            };
            out.push((name.clone(), c));
        }
        Ok(out)
    }

    fn metadata(&self, t: ObjectType, c: &Checksum) -> Result<Vec<u8>, PullError> {
        Ok(self
            .fetcher
            .get(&object_rel_path(t, c), &what(t, c), self.max_meta())?)
    }

    fn detached_metadata(&self, c: &Checksum) -> Result<Option<Vec<u8>>, PullError> {
        let t = ObjectType::CommitMeta;
        Ok(self
            .fetcher
            .get_optional(&object_rel_path(t, c), &what(t, c), self.max_meta())?)
    }

    fn content(&self, c: &Checksum, tx: &Transaction<'_>, attempt: u32) -> Result<u64, PullError> {
        let path = object_rel_path(ObjectType::File, c);
        let received = self
            .fetcher
            .open(&path, &what(ObjectType::File, c), attempt)
            .map_err(PullError::from)
            .and_then(|body| self.receive_file(c, tx, body));
        // The pull engine retries while attempts are left; say so when this was the last one.
        match received {
            Err(PullError::Fetch(e))
                if e.is_retryable() && attempt >= self.fetcher.options().retries =>
            {
                Err(e.gave_up(attempt + 1).into())
            }
            other => other,
        }
    }

    fn retry_policy(&self) -> (u32, Duration) {
        let o = self.fetcher.options();
        (o.retries, o.backoff)
    }

    fn parallel(&self) -> usize {
        self.fetcher.options().parallel.clamp(1, 64)
    }

    fn summary_read(&self) -> Option<SummaryRead> {
        self.summary_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Another repository on this machine, in any mode.
pub struct LocalSource {
    repo: Repo,
}

impl LocalSource {
    /// Open the repository at `path`.
    pub fn open(path: &std::path::Path) -> Result<LocalSource, PullError> {
        Ok(LocalSource {
            repo: Repo::open(path)?,
        })
    }
}

impl Source for LocalSource {
    fn location(&self) -> String {
        self.repo.path().display().to_string()
    }

    fn object_location(&self, t: ObjectType, c: &Checksum) -> String {
        self.repo.object_path(t, c).display().to_string()
    }

    fn resolve(&self, refs: &[String]) -> Result<Vec<(String, Checksum)>, PullError> {
        refs.iter()
            .map(|r| {
                let c = self
                    .repo
                    .resolve_rev(r)
                    .map_err(|_| PullError::RefNotFound {
                        name: r.clone(),
                        location: self.location(),
                    })?;
                Ok((r.clone(), c))
            })
            .collect()
    }

    fn metadata(&self, t: ObjectType, c: &Checksum) -> Result<Vec<u8>, PullError> {
        Ok(self.repo.read_object_raw(t, c)?)
    }

    fn detached_metadata(&self, c: &Checksum) -> Result<Option<Vec<u8>>, PullError> {
        match self.repo.read_object_raw(ObjectType::CommitMeta, c) {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::MissingObject { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn content(&self, c: &Checksum, tx: &Transaction<'_>, _attempt: u32) -> Result<u64, PullError> {
        let mut obj = self.repo.open_content(c)?;
        tx.write_content(Some(c), &obj.header, &mut obj.content)?;
        Ok(obj.size)
    }

    fn retry_policy(&self) -> (u32, Duration) {
        (0, Duration::ZERO)
    }

    fn parallel(&self) -> usize {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8)
    }
}
