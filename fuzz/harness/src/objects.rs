//! Entry points for the OSTree objects a pull reads from a mirror before it can trust them:
//! GVariant values (`a{sv}` metadata, boxed `v` values of any type), commits, dirtrees,
//! dirmeta and archive file objects (`.filez` header). Each must parse or be refused; what
//! parses must serialize to bytes that parse to the same value, because the store writes
//! objects back with these serializers and checksums what it wrote.

use keel_store::gvariant::{parse_dict, ser_dict};
use keel_store::objects::valid_entry_name;
use keel_store::{split_archive_object, Commit, DirMeta, DirTree, FileHeader, Variant};

/// The types a GVariant input is read as: the first byte picks one, the rest is the value.
pub const GVARIANT_TYPES: [&str; 12] = [
    "a{sv}", "v", "s", "as", "aay", "ay", "b", "y", "u", "t", "(uu)", "a(say)",
];

/// The type a GVariant input's first byte picks, and the value's bytes after it.
pub fn typed_value(data: &[u8]) -> Option<(&'static str, &[u8])> {
    let (pick, value) = data.split_first()?;
    Some((
        GVARIANT_TYPES[usize::from(*pick) % GVARIANT_TYPES.len()],
        value,
    ))
}

/// A GVariant value of the type the first byte picks (see [`GVARIANT_TYPES`]), and the same
/// bytes as the `a{sv}` of commit metadata and `.commitmeta`.
pub fn fuzz_gvariant(data: &[u8]) {
    if let Ok(dict) = parse_dict(data) {
        assert_eq!(
            parse_dict(&ser_dict(&dict)).as_ref(),
            Ok(&dict),
            "a parsed a{{sv}} must serialize to bytes that parse to the same entries"
        );
    }
    let Some((ty, value)) = typed_value(data) else {
        return;
    };
    let Ok(v) = Variant::parse(ty, value) else {
        return;
    };
    let _ = v.display();
    assert_eq!(
        Variant::parse(v.type_str(), &v.to_bytes()).as_ref(),
        Ok(&v),
        "a parsed {ty} must serialize to bytes that parse to the same value"
    );
}

/// A commit object (`.commit`), fetched before its checksum can be compared with a ref.
pub fn fuzz_commit(data: &[u8]) {
    let Ok(commit) = Commit::parse(data) else {
        return;
    };
    let _ = commit.version();
    let _ = commit.content_checksum();
    for (_, v) in &commit.metadata {
        let _ = v.display();
    }
    assert_eq!(
        Commit::parse(&commit.to_bytes()).as_ref(),
        Ok(&commit),
        "a parsed commit must serialize to bytes that parse to the same commit"
    );
}

/// A directory listing (`.dirtree`): every name a parsed tree holds is a plain entry name
/// (no `/`, `.` or `..`), since checkout joins them to paths.
pub fn fuzz_dirtree(data: &[u8]) {
    let Ok(tree) = DirTree::parse(data) else {
        return;
    };
    let names = tree
        .files
        .iter()
        .map(|f| &f.0)
        .chain(tree.dirs.iter().map(|d| &d.0));
    for name in names {
        assert!(valid_entry_name(name), "dirtree accepted the name {name:?}");
    }
    assert_eq!(
        DirTree::parse(&tree.to_bytes()).as_ref(),
        Ok(&tree),
        "a parsed dirtree must serialize to bytes that parse to the same tree"
    );
}

/// Directory metadata (`.dirmeta`), and the same layout read without the mode check as
/// bare-user file metadata.
pub fn fuzz_dirmeta(data: &[u8]) {
    let _ = DirMeta::parse_any(data);
    let Ok(meta) = DirMeta::parse(data) else {
        return;
    };
    assert_eq!(
        DirMeta::parse(&meta.to_bytes()).as_ref(),
        Ok(&meta),
        "parsed dirmeta must serialize to bytes that parse to the same dirmeta"
    );
}

/// An archive file object (`.filez`): length-prefixed header with the uncompressed size,
/// then the compressed content; and the same bytes as a bare header.
pub fn fuzz_file_object(data: &[u8]) {
    if let Ok(header) = FileHeader::parse(data) {
        assert!(header.validate().is_ok(), "{header:?}");
        assert_eq!(FileHeader::parse(&header.to_bytes()).as_ref(), Ok(&header));
    }
    let Ok((size, header, content)) = split_archive_object(data) else {
        return;
    };
    let mut again = header.archive_prefix(size);
    again.extend_from_slice(content);
    assert_eq!(
        split_archive_object(&again),
        Ok((size, header.clone(), content)),
        "a parsed file object must serialize to bytes that parse to the same header"
    );
}
