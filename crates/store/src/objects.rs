//! OSTree object types and their GVariant forms: dirmeta, dirtree, commit, file headers.

use crate::checksum::{Checksum, Hasher};
use crate::gvariant::{
    array_var, parse_dict, read_str, ser_dict, ser_str, Frame, GvError, StructReader, Variant,
};

/// File type bits of `st_mode`.
pub const S_IFMT: u32 = 0o170000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;

/// The kinds of objects in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    /// File content plus metadata (`.file`, or `.filez` in archive repos).
    File,
    /// A directory listing (`.dirtree`).
    DirTree,
    /// Directory metadata (`.dirmeta`).
    DirMeta,
    /// A commit (`.commit`).
    Commit,
    /// A tombstone of a deleted commit (`.commit-tombstone`).
    CommitTombstone,
    /// Detached commit metadata, e.g. signatures (`.commitmeta`), named after its commit.
    CommitMeta,
}

impl ObjectType {
    /// The file extension in a repository of the given kind (`archive`: compressed content).
    pub fn extension(self, archive: bool) -> &'static str {
        match self {
            ObjectType::File if archive => "filez",
            ObjectType::File => "file",
            ObjectType::DirTree => "dirtree",
            ObjectType::DirMeta => "dirmeta",
            ObjectType::Commit => "commit",
            ObjectType::CommitTombstone => "commit-tombstone",
            ObjectType::CommitMeta => "commitmeta",
        }
    }

    /// The object type for a file extension, if it is one.
    pub fn from_extension(ext: &str) -> Option<ObjectType> {
        Some(match ext {
            "file" | "filez" => ObjectType::File,
            "dirtree" => ObjectType::DirTree,
            "dirmeta" => ObjectType::DirMeta,
            "commit" => ObjectType::Commit,
            "commit-tombstone" => ObjectType::CommitTombstone,
            "commitmeta" => ObjectType::CommitMeta,
            _ => return None,
        })
    }

    /// OSTree's name for the type (as printed by `ostree fsck`).
    pub fn name(self) -> &'static str {
        self.extension(false)
    }

    /// Metadata objects are stored uncompressed and hash to their own bytes.
    pub fn is_meta(self) -> bool {
        self != ObjectType::File
    }
}

impl std::fmt::Display for ObjectType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Extended attributes: (name without trailing NUL, value), sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn ser_xattrs(xattrs: &Xattrs) -> Vec<u8> {
    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = xattrs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut f = Frame::new();
    for (name, value) in sorted {
        let mut e = Frame::new();
        let mut n = name.clone();
        n.push(0);
        e.child(1, &n, true);
        e.child(1, value, false);
        f.child(1, &e.finish_struct(), true);
    }
    f.finish_array()
}

fn parse_xattrs(data: &[u8]) -> Result<Xattrs, GvError> {
    array_var(data, 1)?
        .into_iter()
        .map(|entry| {
            let mut r = StructReader::new(entry);
            let name = r.var(1, false)?;
            let value = r.var(1, true)?;
            let name = name.strip_suffix(&[0]).unwrap_or(name);
            Ok((name.to_vec(), value.to_vec()))
        })
        .collect()
}

/// Directory metadata `(uuua(ayay))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirMeta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Full mode including `S_IFDIR`.
    pub mode: u32,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

impl DirMeta {
    /// Serialize.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut f = Frame::new();
        f.u32_be(self.uid);
        f.u32_be(self.gid);
        f.u32_be(self.mode);
        f.child(1, &ser_xattrs(&self.xattrs), false);
        f.finish_struct()
    }

    /// Parse the `(uuua(ayay))` fields without checking the mode (the same layout holds file
    /// metadata in bare-user `user.ostreemeta`): (uid, gid, mode, xattrs).
    pub fn parse_any(data: &[u8]) -> Result<(u32, u32, u32, Xattrs), GvError> {
        let mut r = StructReader::new(data);
        let uid = r.u32_be()?;
        let gid = r.u32_be()?;
        let mode = r.u32_be()?;
        let xattrs = parse_xattrs(r.var(1, true)?)?;
        Ok((uid, gid, mode, xattrs))
    }

    /// Parse and check that the mode is a directory's.
    pub fn parse(data: &[u8]) -> Result<DirMeta, GvError> {
        let (uid, gid, mode, xattrs) = DirMeta::parse_any(data)?;
        if mode & S_IFMT != S_IFDIR || mode & !(S_IFMT | 0o7777) != 0 {
            return Err(GvError(format!(
                "dirmeta mode {mode:o} is not a directory mode"
            )));
        }
        Ok(DirMeta {
            uid,
            gid,
            mode,
            xattrs,
        })
    }
}

/// A directory listing `(a(say)a(sayay))`, each list sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirTree {
    /// (name, content checksum).
    pub files: Vec<(String, Checksum)>,
    /// (name, dirtree checksum, dirmeta checksum).
    pub dirs: Vec<(String, Checksum, Checksum)>,
}

/// Is `name` acceptable as a directory entry name in a dirtree?
pub fn valid_entry_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

impl DirTree {
    /// Serialize (sorts both lists by byte order first, as OSTree does).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut files: Vec<&(String, Checksum)> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut dirs: Vec<&(String, Checksum, Checksum)> = self.dirs.iter().collect();
        dirs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut fa = Frame::new();
        for (name, c) in files {
            let mut e = Frame::new();
            e.child(1, &ser_str(name), true);
            e.child(1, &c.0, false);
            fa.child(1, &e.finish_struct(), true);
        }
        let mut da = Frame::new();
        for (name, t, m) in dirs {
            let mut e = Frame::new();
            e.child(1, &ser_str(name), true);
            e.child(1, &t.0, true);
            e.child(1, &m.0, false);
            da.child(1, &e.finish_struct(), true);
        }
        let mut f = Frame::new();
        f.child(1, &fa.finish_array(), true);
        f.child(1, &da.finish_array(), false);
        f.finish_struct()
    }

    /// Parse, checking names, checksum lengths and the sort order.
    pub fn parse(data: &[u8]) -> Result<DirTree, GvError> {
        let mut r = StructReader::new(data);
        let files_data = r.var(1, false)?;
        let dirs_data = r.var(1, true)?;
        let mut tree = DirTree::default();
        for e in array_var(files_data, 1)? {
            let mut er = StructReader::new(e);
            let name = entry_name(er.var(1, false)?)?;
            let c = checksum_field(er.var(1, true)?)?;
            tree.files.push((name, c));
        }
        for e in array_var(dirs_data, 1)? {
            let mut er = StructReader::new(e);
            let name = entry_name(er.var(1, false)?)?;
            let t = checksum_field(er.var(1, false)?)?;
            let m = checksum_field(er.var(1, true)?)?;
            tree.dirs.push((name, t, m));
        }
        let sorted = |names: Vec<&str>| names.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes());
        if !sorted(tree.files.iter().map(|f| f.0.as_str()).collect())
            || !sorted(tree.dirs.iter().map(|d| d.0.as_str()).collect())
        {
            return Err(GvError(
                "dirtree entries are not sorted or not unique".into(),
            ));
        }
        Ok(tree)
    }
}

fn entry_name(data: &[u8]) -> Result<String, GvError> {
    let name = read_str(data)?;
    if !valid_entry_name(name) {
        return Err(GvError(format!("invalid file name {name:?} in dirtree")));
    }
    Ok(name.to_string())
}

fn checksum_field(data: &[u8]) -> Result<Checksum, GvError> {
    Checksum::from_bytes(data)
        .ok_or_else(|| GvError(format!("checksum field has {} bytes, not 32", data.len())))
}

/// A commit `(a{sv}aya(say)sstayay)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// Metadata in stored order.
    pub metadata: Vec<(String, Variant)>,
    /// Parent commit, if any.
    pub parent: Option<Checksum>,
    /// Related objects (unused in practice): (name, commit checksum).
    pub related: Vec<(String, Checksum)>,
    /// One-line subject.
    pub subject: String,
    /// Longer description.
    pub body: String,
    /// Seconds since the epoch (UTC).
    pub timestamp: u64,
    /// Root dirtree.
    pub root_tree: Checksum,
    /// Root dirmeta.
    pub root_meta: Checksum,
}

impl Commit {
    /// Serialize.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut rel = Frame::new();
        for (name, c) in &self.related {
            let mut e = Frame::new();
            e.child(1, &ser_str(name), true);
            e.child(1, &c.0, false);
            rel.child(1, &e.finish_struct(), true);
        }
        let mut f = Frame::new();
        f.child(8, &ser_dict(&self.metadata), true);
        f.child(
            1,
            self.parent.as_ref().map(|p| &p.0[..]).unwrap_or(&[]),
            true,
        );
        f.child(1, &rel.finish_array(), true);
        f.child(1, &ser_str(&self.subject), true);
        f.child(1, &ser_str(&self.body), true);
        f.u64_be(self.timestamp);
        f.child(1, &self.root_tree.0, true);
        f.child(1, &self.root_meta.0, false);
        f.finish_struct()
    }

    /// Parse.
    pub fn parse(data: &[u8]) -> Result<Commit, GvError> {
        let mut r = StructReader::new(data);
        let metadata = parse_dict(r.var(8, false)?)?;
        let parent_bytes = r.var(1, false)?;
        let parent = if parent_bytes.is_empty() {
            None
        } else {
            Some(checksum_field(parent_bytes)?)
        };
        let mut related = Vec::new();
        for e in array_var(r.var(1, false)?, 1)? {
            let mut er = StructReader::new(e);
            let name = read_str(er.var(1, false)?)?.to_string();
            related.push((name, checksum_field(er.var(1, true)?)?));
        }
        let subject = read_str(r.var(1, false)?)?.to_string();
        let body = read_str(r.var(1, false)?)?.to_string();
        let timestamp = r.u64_be()?;
        let root_tree = checksum_field(r.var(1, false)?)?;
        let root_meta = checksum_field(r.var(1, true)?)?;
        Ok(Commit {
            metadata,
            parent,
            related,
            subject,
            body,
            timestamp,
            root_tree,
            root_meta,
        })
    }

    /// A metadata value by key.
    pub fn meta(&self, key: &str) -> Option<&Variant> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `version` metadata, if present.
    pub fn version(&self) -> Option<&str> {
        self.meta("version").and_then(Variant::as_str)
    }

    /// OSTree's "ContentChecksum": sha256(root dirtree bytes ‖ root dirmeta bytes).
    pub fn content_checksum(&self) -> Checksum {
        let mut h = Hasher::new();
        h.update(&self.root_tree.0);
        h.update(&self.root_meta.0);
        h.finish()
    }
}

/// Metadata of a content object: the header `(uuuusa(ayay))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Full mode with `S_IFREG` or `S_IFLNK`.
    pub mode: u32,
    /// Device number; always 0 in valid objects.
    pub rdev: u32,
    /// Target of a symlink, empty for regular files.
    pub symlink_target: String,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

impl FileHeader {
    /// Is this a symbolic link?
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }

    /// Check what OSTree can represent: a regular file or symlink with only permission bits.
    pub fn validate(&self) -> Result<(), GvError> {
        let kind = self.mode & S_IFMT;
        if (kind != S_IFREG && kind != S_IFLNK) || self.mode & !(S_IFMT | 0o7777) != 0 {
            return Err(GvError(format!(
                "file mode {:o} is not a regular file or symlink",
                self.mode
            )));
        }
        if self.rdev != 0 {
            return Err(GvError("file header has a non-zero rdev".into()));
        }
        if (kind == S_IFLNK) == self.symlink_target.is_empty() {
            return Err(GvError(
                "symlink target present on a non-symlink, or missing".into(),
            ));
        }
        Ok(())
    }

    fn frame(&self, size: Option<u64>) -> Vec<u8> {
        let mut f = Frame::new();
        if let Some(size) = size {
            f.u64_be(size);
        }
        f.u32_be(self.uid);
        f.u32_be(self.gid);
        f.u32_be(self.mode);
        f.u32_be(self.rdev);
        f.child(1, &ser_str(&self.symlink_target), true);
        f.child(1, &ser_xattrs(&self.xattrs), false);
        f.finish_struct()
    }

    /// The header variant `(uuuusa(ayay))`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.frame(None)
    }

    /// The archive header variant `(tuuuusa(ayay))` with the uncompressed size.
    pub fn to_archive_bytes(&self, size: u64) -> Vec<u8> {
        self.frame(Some(size))
    }

    fn parse_fields(r: &mut StructReader<'_>) -> Result<FileHeader, GvError> {
        let uid = r.u32_be()?;
        let gid = r.u32_be()?;
        let mode = r.u32_be()?;
        let rdev = r.u32_be()?;
        let symlink_target = read_str(r.var(1, false)?)?.to_string();
        let xattrs = parse_xattrs(r.var(1, true)?)?;
        let h = FileHeader {
            uid,
            gid,
            mode,
            rdev,
            symlink_target,
            xattrs,
        };
        h.validate()?;
        Ok(h)
    }

    /// Parse `(uuuusa(ayay))`.
    pub fn parse(data: &[u8]) -> Result<FileHeader, GvError> {
        FileHeader::parse_fields(&mut StructReader::new(data))
    }

    /// Parse `(tuuuusa(ayay))`: the uncompressed size and the header.
    pub fn parse_archive(data: &[u8]) -> Result<(u64, FileHeader), GvError> {
        let mut r = StructReader::new(data);
        let size = r.u64_be()?;
        Ok((size, FileHeader::parse_fields(&mut r)?))
    }

    /// The start of the content object stream: `BE u32 len`, 4 zero bytes, header. The object's
    /// checksum is the SHA-256 of this followed by the content.
    pub fn stream_prefix(&self) -> Vec<u8> {
        length_prefixed(&self.to_bytes())
    }

    /// The start of an archive `.filez` object: length prefix and archive header.
    pub fn archive_prefix(&self, size: u64) -> Vec<u8> {
        length_prefixed(&self.to_archive_bytes(size))
    }
}

fn length_prefixed(header: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + header.len());
    v.extend_from_slice(&(header.len() as u32).to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(header);
    v
}

/// Split a length-prefixed header off the front of `data`: (header bytes, rest).
pub fn split_length_prefixed(data: &[u8]) -> Result<(&[u8], &[u8]), GvError> {
    if data.len() < 8 {
        return Err(GvError(
            "object is shorter than its 8-byte header prefix".into(),
        ));
    }
    let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let end = 8usize.checked_add(len).filter(|e| *e <= data.len());
    match end {
        Some(end) => Ok((&data[8..end], &data[end..])),
        None => Err(GvError(format!(
            "header length {len} runs past the end of the object"
        ))),
    }
}

/// Checksum of a content object with this header and content.
pub fn content_checksum(header: &FileHeader, content: &[u8]) -> Checksum {
    let mut h = Hasher::new();
    h.update(&header.stream_prefix());
    h.update(content);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Checksum {
        s.parse().unwrap()
    }

    fn reg(mode: u32) -> FileHeader {
        FileHeader {
            uid: 0,
            gid: 0,
            mode,
            rdev: 0,
            symlink_target: String::new(),
            xattrs: vec![],
        }
    }

    #[test]
    fn file_vectors() {
        let link = FileHeader {
            mode: 0o120777,
            symlink_target: "a.txt".into(),
            ..reg(0)
        };
        let xattr = FileHeader {
            xattrs: vec![
                (b"user.zeta".to_vec(), b"Z".to_vec()),
                (b"user.alpha".to_vec(), b"AAA".to_vec()),
            ],
            ..reg(0o100644)
        };
        for (header, content, want) in [
            (
                reg(0o100644),
                &b"hello\n"[..],
                "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b",
            ),
            (
                reg(0o100755),
                b"x",
                "d474afd297f3fc61b97186b79aeaa37ddb302743c8b3d1d634f9f2ced1675072",
            ),
            (
                link.clone(),
                b"",
                "f379a4b359f3e8deb971eef3e40a492fec37696c0169a600789f0bc62c43b535",
            ),
        ] {
            assert_eq!(content_checksum(&header, content).to_hex(), want);
            assert_eq!(FileHeader::parse(&header.to_bytes()).unwrap(), header);
        }
        assert!(content_checksum(&xattr, b"hi\n")
            .to_hex()
            .starts_with("218e638f"));
        assert!(content_checksum(&xattr, b"hi\n").to_hex().ends_with("ab1b"));
        assert_eq!(
            hex::encode(reg(0o100644).stream_prefix()),
            "00000012000000000000000000000000000081a4000000000011"
        );
        assert_eq!(&hex::encode(link.stream_prefix())[..8], "00000017");
    }

    #[test]
    fn dirmeta_vectors() {
        let plain = DirMeta {
            uid: 0,
            gid: 0,
            mode: 0o40755,
            xattrs: vec![],
        };
        assert_eq!(
            hex::encode(plain.to_bytes()),
            "00000000000000000000".to_string() + "41ed"
        );
        assert_eq!(
            Checksum::of(&plain.to_bytes()).to_hex(),
            "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
        );
        let x = DirMeta {
            xattrs: vec![(b"user.dir".to_vec(), b"D".to_vec())],
            ..plain
        };
        assert_eq!(
            hex::encode(x.to_bytes()),
            "0000000000000000000041ed757365722e6469720044090b"
        );
        assert_eq!(DirMeta::parse(&x.to_bytes()).unwrap(), x);
    }

    #[test]
    fn tree_and_commit_vectors() {
        let dm = c("446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488");
        let empty = DirTree::default();
        assert_eq!(empty.to_bytes(), vec![0]);
        let sub = DirTree {
            files: vec![(
                "b".into(),
                c("d474afd297f3fc61b97186b79aeaa37ddb302743c8b3d1d634f9f2ced1675072"),
            )],
            dirs: vec![],
        };
        assert_eq!(
            Checksum::of(&sub.to_bytes()).to_hex(),
            "51765323de2c6a8e14ca2d48a70210d4a403a293d240ddd8e20658568251e125"
        );
        let root = DirTree {
            files: vec![
                (
                    "link".into(),
                    c("f379a4b359f3e8deb971eef3e40a492fec37696c0169a600789f0bc62c43b535"),
                ),
                (
                    "a.txt".into(),
                    c("44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"),
                ),
            ],
            dirs: vec![
                ("sub".into(), Checksum::of(&sub.to_bytes()), dm),
                ("empty".into(), Checksum::of(&[0]), dm),
            ],
        };
        let root_bytes = root.to_bytes();
        assert_eq!(root_bytes.len(), 224);
        let root_c = Checksum::of(&root_bytes);
        assert_eq!(
            root_c.to_hex(),
            "ef19f9d45d5efde5ce9dda0da9a68ff99beb093856154ac0ee77a7857cf7ae9c"
        );
        let parsed = DirTree::parse(&root_bytes).unwrap();
        assert_eq!(parsed.files[0].0, "a.txt");
        assert_eq!(parsed.dirs[0].0, "empty");
        let commit = Commit {
            metadata: vec![
                ("version".into(), Variant::Str("1.0".into())),
                (
                    "ostree.ref-binding".into(),
                    Variant::StrList(vec!["test/x86_64".into()]),
                ),
            ],
            parent: None,
            related: vec![],
            subject: "subj".into(),
            body: "body".into(),
            timestamp: 1_577_836_800,
            root_tree: root_c,
            root_meta: dm,
        };
        let bytes = commit.to_bytes();
        assert_eq!(bytes.len(), 150);
        assert_eq!(
            Checksum::of(&bytes).to_hex(),
            "0d7f83d77a632cd6e72a212efdc0e18672d727413fd42c24214a30c7f0c2aaa8"
        );
        assert_eq!(Commit::parse(&bytes).unwrap(), commit);
        assert_eq!(
            commit.content_checksum().to_hex(),
            "49549cd36c05762f29b71a7a246a2c45b8ff7ce8bd1d21325a72b552ef47cb18"
        );
    }

    #[test]
    fn rejects_unrepresentable_modes() {
        for mode in [
            0o020644,
            0o010644,
            0o140755,
            0o060600,
            0o100644 | 0o1_000_000,
        ] {
            assert!(reg(mode).validate().is_err(), "{mode:o}");
        }
        assert!(reg(0o104755).validate().is_ok());
    }
}
