//! Reading content objects back in every mode: header plus a content stream.

use crate::checksum::{Checksum, Hasher};
use crate::error::{IoPath, StoreError};
use crate::objects::{split_length_prefixed, DirMeta, FileHeader, ObjectType, S_IFMT};
use crate::repo::{Repo, RepoMode};
use crate::txn::BARE_USER_META;
use crate::xattrs;
use flate2::read::DeflateDecoder;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// An opened content object.
pub struct ContentReader {
    /// Its metadata.
    pub header: FileHeader,
    /// Uncompressed content size (0 for symlinks).
    pub size: u64,
    /// The content (empty for symlinks).
    pub content: Box<dyn Read + Send>,
    /// The object file.
    pub path: PathBuf,
}

fn missing_or(e: io::Error, c: &Checksum, p: &Path) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::MissingObject {
            kind: ObjectType::File,
            checksum: *c,
        }
    } else {
        StoreError::Io {
            path: p.to_path_buf(),
            source: e,
        }
    }
}

fn corrupt(c: &Checksum, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        kind: ObjectType::File,
        checksum: *c,
        reason: reason.into(),
    }
}

/// Inflates an archive object's content and, at the end, rejects bytes after the deflate stream.
struct Inflate {
    z: DeflateDecoder<BufReader<File>>,
    compressed: u64,
}

impl Read for Inflate {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.z.read(buf)?;
        if n == 0 && !buf.is_empty() && self.z.total_in() != self.compressed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "deflate stream ends after {} of {} bytes",
                    self.z.total_in(),
                    self.compressed
                ),
            ));
        }
        Ok(n)
    }
}

impl Repo {
    /// Open a content object: its header and a stream of its (uncompressed) content.
    pub fn open_content(&self, c: &Checksum) -> Result<ContentReader, StoreError> {
        let path = self.object_path(ObjectType::File, c);
        let md = fs::symlink_metadata(&path).map_err(|e| missing_or(e, c, &path))?;
        let empty = || -> Box<dyn Read + Send> { Box::new(io::empty()) };
        let link_target = |p: &Path| -> Result<String, StoreError> {
            fs::read_link(p)
                .at(p)?
                .into_os_string()
                .into_string()
                .map_err(|_| corrupt(c, "symlink target is not UTF-8"))
        };
        let (header, size, content): (FileHeader, u64, Box<dyn Read + Send>) = match self.mode() {
            RepoMode::Archive => {
                let mut f = File::open(&path).at(&path)?;
                let mut prefix = [0u8; 8];
                f.read_exact(&mut prefix)
                    .map_err(|_| corrupt(c, "truncated header"))?;
                let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as u64;
                if len > md.len() {
                    return Err(corrupt(c, "header length exceeds the file size"));
                }
                let mut hbytes = vec![0u8; len as usize];
                f.read_exact(&mut hbytes)
                    .map_err(|_| corrupt(c, "truncated header"))?;
                let (size, header) =
                    FileHeader::parse_archive(&hbytes).map_err(|e| corrupt(c, e.0))?;
                let content: Box<dyn Read + Send> = if header.is_symlink() {
                    empty()
                } else {
                    Box::new(Inflate {
                        z: DeflateDecoder::new(BufReader::with_capacity(128 * 1024, f)),
                        compressed: md.len().saturating_sub(8 + len),
                    })
                };
                (header, size, content)
            }
            RepoMode::Bare | RepoMode::BareUserOnly if md.file_type().is_symlink() => {
                let xattrs = if self.mode() == RepoMode::Bare {
                    xattrs::read(&path)?
                } else {
                    Vec::new()
                };
                let (uid, gid) = if self.mode() == RepoMode::Bare {
                    (md.uid(), md.gid())
                } else {
                    (0, 0)
                };
                let header = FileHeader {
                    uid,
                    gid,
                    mode: md.mode(),
                    rdev: 0,
                    symlink_target: link_target(&path)?,
                    xattrs,
                };
                (header, 0, empty())
            }
            RepoMode::Bare => {
                let header = FileHeader {
                    uid: md.uid(),
                    gid: md.gid(),
                    mode: md.mode(),
                    rdev: 0,
                    symlink_target: String::new(),
                    xattrs: xattrs::read(&path)?,
                };
                (header, md.len(), Box::new(File::open(&path).at(&path)?))
            }
            RepoMode::BareUserOnly => {
                let header = FileHeader {
                    uid: 0,
                    gid: 0,
                    mode: md.mode(),
                    rdev: 0,
                    symlink_target: String::new(),
                    xattrs: Vec::new(),
                };
                (header, md.len(), Box::new(File::open(&path).at(&path)?))
            }
            RepoMode::BareUser => {
                let mut f = File::open(&path).at(&path)?;
                let meta = xattrs::get_fd(&f, &path, BARE_USER_META)?
                    .ok_or_else(|| corrupt(c, format!("no {BARE_USER_META} xattr")))?;
                let (uid, gid, mode, xattrs) = match DirMeta::parse_any(&meta) {
                    Ok(m) => m,
                    Err(e) => return Err(corrupt(c, e.0)),
                };
                if mode & S_IFMT == crate::objects::S_IFLNK {
                    let mut target = Vec::new();
                    f.read_to_end(&mut target).at(&path)?;
                    if target.pop() != Some(0) {
                        return Err(corrupt(
                            c,
                            "bare-user symlink content lacks its trailing NUL",
                        ));
                    }
                    let t = String::from_utf8(target)
                        .map_err(|_| corrupt(c, "symlink target is not UTF-8"))?;
                    (
                        FileHeader {
                            uid,
                            gid,
                            mode,
                            rdev: 0,
                            symlink_target: t,
                            xattrs,
                        },
                        0,
                        empty(),
                    )
                } else {
                    let header = FileHeader {
                        uid,
                        gid,
                        mode,
                        rdev: 0,
                        symlink_target: String::new(),
                        xattrs,
                    };
                    (header, md.len(), Box::new(f))
                }
            }
        };
        header.validate().map_err(|e| corrupt(c, e.0))?;
        Ok(ContentReader {
            header,
            size,
            content,
            path,
        })
    }

    /// Recompute a content object's checksum from its stored form (what fsck verifies).
    pub fn verify_content(&self, c: &Checksum) -> Result<(), StoreError> {
        let mut obj = self.open_content(c)?;
        let mut h = Hasher::new();
        h.update(&obj.header.stream_prefix());
        let n = io::copy(&mut obj.content, &mut h)
            .map_err(|e| corrupt(c, format!("unreadable content: {e}")))?;
        if n != obj.size {
            return Err(corrupt(
                c,
                format!("content is {n} bytes, header says {}", obj.size),
            ));
        }
        let got = h.finish();
        if got != *c {
            return Err(corrupt(c, format!("content hashes to {got}")));
        }
        Ok(())
    }

    /// The raw bytes of an object file as stored (for serving archive repositories).
    pub fn read_object_raw(&self, t: ObjectType, c: &Checksum) -> Result<Vec<u8>, StoreError> {
        let p = self.object_path(t, c);
        fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingObject {
                    kind: t,
                    checksum: *c,
                }
            } else {
                StoreError::Io {
                    path: p.clone(),
                    source: e,
                }
            }
        })
    }
}

/// Parse an archive `.filez` held in memory: header, and the raw-deflate content that follows.
pub fn split_archive_object(
    data: &[u8],
) -> Result<(u64, FileHeader, &[u8]), crate::gvariant::GvError> {
    let (h, rest) = split_length_prefixed(data)?;
    let (size, header) = FileHeader::parse_archive(h)?;
    Ok((size, header, rest))
}
