//! A small GVariant codec for the fixed OSTree object types and `a{sv}` metadata.
//!
//! Serialization follows the GVariant specification in normal form: children aligned to their
//! type's alignment, framing offsets little-endian with the smallest width that fits. Integer
//! *fields of OSTree objects* are stored big-endian by the callers (OSTree pre-swaps them); the
//! integers inside [`Variant`] values are GVariant's native little-endian, exactly like GLib on
//! x86, so a caller that follows OSTree's big-endian convention for a metadata value (for example
//! `ostree.commit.timestamp`) passes `value.to_be()`.
//!
//! Reading validates every bound and returns [`GvError`] on malformed input; it never panics,
//! whatever the bytes (pull parses untrusted objects).

/// Malformed GVariant data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed GVariant: {0}")]
pub struct GvError(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, GvError> {
    Err(GvError(msg.into()))
}

fn round_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

/// Width of a framing offset for a container whose serialized size is `size`.
fn offset_size(size: usize) -> usize {
    match size {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

fn read_offset(data: &[u8], at: usize, w: usize) -> Result<usize, GvError> {
    let bytes = data
        .get(at..at + w)
        .ok_or_else(|| GvError("framing offset out of bounds".into()))?;
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        v |= u64::from(*b) << (8 * i);
    }
    usize::try_from(v).or_else(|_| bad("framing offset too large"))
}

/// Builds the body of a structure or an array: children at aligned offsets, then framing offsets.
#[derive(Default)]
pub struct Frame {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Frame {
    /// An empty container.
    pub fn new() -> Frame {
        Frame::default()
    }

    /// Append a serialized child aligned to `align`; `framed` records its end as a framing offset
    /// (variable-size struct members other than the last, and every element of an array of
    /// variable-size elements).
    pub fn child(&mut self, align: usize, bytes: &[u8], framed: bool) {
        let start = round_up(self.buf.len(), align);
        self.buf.resize(start, 0);
        self.buf.extend_from_slice(bytes);
        if framed {
            self.ends.push(self.buf.len());
        }
    }

    /// Append a big-endian `u32` field (OSTree's convention for object fields).
    pub fn u32_be(&mut self, v: u32) {
        self.child(4, &v.to_be_bytes(), false);
    }

    /// Append a big-endian `u64` field (OSTree's convention for object fields).
    pub fn u64_be(&mut self, v: u64) {
        self.child(8, &v.to_be_bytes(), false);
    }

    fn finish(mut self, reverse: bool) -> Vec<u8> {
        if self.ends.is_empty() {
            return self.buf;
        }
        let body = self.buf.len();
        let n = self.ends.len();
        let w = [1usize, 2, 4, 8]
            .into_iter()
            .find(|w| offset_size(body + w * n) <= *w)
            .unwrap_or(8);
        if reverse {
            self.ends.reverse();
        }
        for end in &self.ends {
            self.buf
                .extend_from_slice(&(*end as u64).to_le_bytes()[..w]);
        }
        self.buf
    }

    /// Finish a structure with at least one variable-size member (offsets stored in reverse).
    pub fn finish_struct(self) -> Vec<u8> {
        self.finish(true)
    }

    /// Finish an array (offsets in element order; none for fixed-size elements).
    pub fn finish_array(self) -> Vec<u8> {
        self.finish(false)
    }
}

/// Serialize a string `s`.
pub fn ser_str(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

/// Reads the members of a structure in order.
pub struct StructReader<'a> {
    data: &'a [u8],
    pos: usize,
    offsets_end: usize,
    w: usize,
}

impl<'a> StructReader<'a> {
    /// Start reading a structure serialized as `data`.
    pub fn new(data: &'a [u8]) -> StructReader<'a> {
        StructReader {
            data,
            pos: 0,
            offsets_end: data.len(),
            w: offset_size(data.len()),
        }
    }

    /// A fixed-size member of `size` bytes aligned to `align`.
    pub fn fixed(&mut self, align: usize, size: usize) -> Result<&'a [u8], GvError> {
        let start = round_up(self.pos, align);
        let end = start + size;
        if end > self.offsets_end {
            return bad(format!("fixed member of {size} bytes runs past the end"));
        }
        self.pos = end;
        Ok(&self.data[start..end])
    }

    /// A big-endian `u32` field.
    pub fn u32_be(&mut self) -> Result<u32, GvError> {
        let b = self.fixed(4, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A big-endian `u64` field.
    pub fn u64_be(&mut self) -> Result<u64, GvError> {
        let b = self.fixed(8, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A variable-size member aligned to `align`; `last` if it is the structure's final member.
    pub fn var(&mut self, align: usize, last: bool) -> Result<&'a [u8], GvError> {
        let start = round_up(self.pos, align);
        let end = if last {
            self.offsets_end
        } else {
            if self.w == 0 || self.offsets_end < self.w {
                return bad("missing framing offset");
            }
            self.offsets_end -= self.w;
            read_offset(self.data, self.offsets_end, self.w)?
        };
        if start > end || end > self.offsets_end {
            return bad(format!("member bounds {start}..{end} are invalid"));
        }
        self.pos = end;
        Ok(&self.data[start..end])
    }
}

/// Split an array of fixed-size elements.
pub fn array_fixed(data: &[u8], elem: usize) -> Result<std::slice::ChunksExact<'_, u8>, GvError> {
    if elem == 0 || !data.len().is_multiple_of(elem) {
        return bad(format!(
            "array of {}-byte elements has size {}",
            elem,
            data.len()
        ));
    }
    Ok(data.chunks_exact(elem))
}

/// Split an array of variable-size elements aligned to `align`.
pub fn array_var(data: &[u8], align: usize) -> Result<Vec<&[u8]>, GvError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let w = offset_size(data.len());
    let table = read_offset(data, data.len() - w, w)?;
    if table > data.len() || !(data.len() - table).is_multiple_of(w) {
        return bad("array framing offsets are invalid");
    }
    let n = (data.len() - table) / w;
    let mut out = Vec::with_capacity(n);
    let mut prev = 0;
    for i in 0..n {
        let end = read_offset(data, table + i * w, w)?;
        let start = round_up(prev, align);
        if start > end || end > table {
            return bad(format!(
                "array element {i} bounds {start}..{end} are invalid"
            ));
        }
        out.push(&data[start..end]);
        prev = end;
    }
    Ok(out)
}

/// Read a string `s`: UTF-8 followed by one NUL, no other NUL.
pub fn read_str(data: &[u8]) -> Result<&str, GvError> {
    match data.split_last() {
        Some((0, body)) if !body.contains(&0) => {
            std::str::from_utf8(body).or_else(|_| bad("string is not UTF-8"))
        }
        _ => bad("string is not NUL-terminated"),
    }
}

/// How deeply types and boxed values may nest, as in GLib (`G_VARIANT_MAX_RECURSION_DEPTH`).
/// Untrusted input (a mirror's `summary.sig`, detached metadata) nested deeper would
/// otherwise overflow the stack.
const MAX_DEPTH: usize = 128;

/// Length of the first complete GVariant type in `t`, if it starts with one.
fn type_len(t: &[u8]) -> Option<usize> {
    type_len_at(t, 0)
}

fn type_len_at(t: &[u8], depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *t.first()? {
        b'b' | b'y' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'h' | b'd' | b's' | b'o'
        | b'g' | b'v' => Some(1),
        b'a' | b'm' => type_len_at(&t[1..], depth + 1).map(|n| n + 1),
        b'(' => {
            let mut i = 1;
            while *t.get(i)? != b')' {
                i += type_len_at(&t[i..], depth + 1)?;
            }
            Some(i + 1)
        }
        b'{' => {
            let k = type_len_at(&t[1..], depth + 1)?;
            let v = type_len_at(&t[1 + k..], depth + 1)?;
            (*t.get(1 + k + v)? == b'}').then_some(k + v + 2)
        }
        _ => None,
    }
}

/// A value inside an `a{sv}` dictionary.
#[derive(Debug, Clone, PartialEq)]
pub enum Variant {
    /// `b`
    Bool(bool),
    /// `y`
    Byte(u8),
    /// `i` (little-endian, GLib native)
    I32(i32),
    /// `u` (little-endian, GLib native)
    U32(u32),
    /// `x` (little-endian, GLib native)
    I64(i64),
    /// `t` (little-endian, GLib native)
    U64(u64),
    /// `s`
    Str(String),
    /// `ay`
    Bytes(Vec<u8>),
    /// `as`
    StrList(Vec<String>),
    /// `aay`
    BytesList(Vec<Vec<u8>>),
    /// `a{sv}`
    Dict(Vec<(String, Variant)>),
    /// `v`
    Boxed(Box<Variant>),
    /// Any other type, kept as its exact serialized bytes.
    Other { type_str: String, data: Vec<u8> },
}

impl Variant {
    /// The GVariant type string.
    pub fn type_str(&self) -> &str {
        match self {
            Variant::Bool(_) => "b",
            Variant::Byte(_) => "y",
            Variant::I32(_) => "i",
            Variant::U32(_) => "u",
            Variant::I64(_) => "x",
            Variant::U64(_) => "t",
            Variant::Str(_) => "s",
            Variant::Bytes(_) => "ay",
            Variant::StrList(_) => "as",
            Variant::BytesList(_) => "aay",
            Variant::Dict(_) => "a{sv}",
            Variant::Boxed(_) => "v",
            Variant::Other { type_str, .. } => type_str,
        }
    }

    /// Serialize the value (without any variant wrapper).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Variant::Bool(b) => vec![u8::from(*b)],
            Variant::Byte(b) => vec![*b],
            Variant::I32(v) => v.to_le_bytes().to_vec(),
            Variant::U32(v) => v.to_le_bytes().to_vec(),
            Variant::I64(v) => v.to_le_bytes().to_vec(),
            Variant::U64(v) => v.to_le_bytes().to_vec(),
            Variant::Str(s) => ser_str(s),
            Variant::Bytes(b) => b.clone(),
            Variant::StrList(list) => {
                let mut f = Frame::new();
                for s in list {
                    f.child(1, &ser_str(s), true);
                }
                f.finish_array()
            }
            Variant::BytesList(list) => {
                let mut f = Frame::new();
                for b in list {
                    f.child(1, b, true);
                }
                f.finish_array()
            }
            Variant::Dict(entries) => ser_dict(entries),
            Variant::Boxed(inner) => ser_boxed(inner),
            Variant::Other { data, .. } => data.clone(),
        }
    }

    /// Parse a value of type `type_str` from `data`.
    pub fn parse(type_str: &str, data: &[u8]) -> Result<Variant, GvError> {
        Variant::parse_at(type_str, data, 0)
    }

    fn parse_at(type_str: &str, data: &[u8], depth: usize) -> Result<Variant, GvError> {
        if depth > MAX_DEPTH {
            return bad(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        let fixed = |n: usize| -> Result<&[u8], GvError> {
            if data.len() == n {
                Ok(data)
            } else {
                bad(format!("value of type {type_str} has {} bytes", data.len()))
            }
        };
        Ok(match type_str {
            "b" => Variant::Bool(fixed(1)?[0] != 0),
            "y" => Variant::Byte(fixed(1)?[0]),
            "i" => Variant::I32(i32::from_le_bytes(fixed(4)?.try_into().unwrap_or([0; 4]))),
            "u" => Variant::U32(u32::from_le_bytes(fixed(4)?.try_into().unwrap_or([0; 4]))),
            "x" => Variant::I64(i64::from_le_bytes(fixed(8)?.try_into().unwrap_or([0; 8]))),
            "t" => Variant::U64(u64::from_le_bytes(fixed(8)?.try_into().unwrap_or([0; 8]))),
            "s" => Variant::Str(read_str(data)?.to_string()),
            "ay" => Variant::Bytes(data.to_vec()),
            "as" => Variant::StrList(
                array_var(data, 1)?
                    .into_iter()
                    .map(|s| read_str(s).map(str::to_string))
                    .collect::<Result<_, _>>()?,
            ),
            "aay" => Variant::BytesList(
                array_var(data, 1)?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect(),
            ),
            "a{sv}" => Variant::Dict(parse_dict_at(data, depth + 1)?),
            "v" => Variant::Boxed(Box::new(parse_boxed(data, depth + 1)?)),
            other => {
                if type_len(other.as_bytes()) != Some(other.len()) {
                    return bad(format!("`{other}` is not a GVariant type"));
                }
                Variant::Other {
                    type_str: other.to_string(),
                    data: data.to_vec(),
                }
            }
        })
    }

    /// The string inside a `s` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Variant::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short human-readable rendering, in GVariant text style.
    pub fn display(&self) -> String {
        match self {
            Variant::Bool(b) => b.to_string(),
            Variant::Byte(b) => format!("byte 0x{b:02x}"),
            Variant::I32(v) => v.to_string(),
            Variant::U32(v) => format!("uint32 {v}"),
            Variant::I64(v) => format!("int64 {v}"),
            Variant::U64(v) => format!("uint64 {v}"),
            Variant::Str(s) => format!("'{s}'"),
            Variant::Bytes(b) => format!("[byte 0x{}]", hex::encode(b)),
            Variant::StrList(l) => {
                let items: Vec<String> = l.iter().map(|s| format!("'{s}'")).collect();
                format!("[{}]", items.join(", "))
            }
            Variant::BytesList(l) => format!("[{} byte arrays]", l.len()),
            Variant::Dict(d) => {
                let items: Vec<String> = d
                    .iter()
                    .map(|(k, v)| format!("'{k}': {}", v.display()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
            Variant::Boxed(v) => format!("<{}>", v.display()),
            Variant::Other { type_str, data } => format!("@{type_str} {}", hex::encode(data)),
        }
    }
}

/// Serialize a `v`: the child, a NUL, the child's type string.
fn ser_boxed(inner: &Variant) -> Vec<u8> {
    let mut b = inner.to_bytes();
    b.push(0);
    b.extend_from_slice(inner.type_str().as_bytes());
    b
}

fn parse_boxed(data: &[u8], depth: usize) -> Result<Variant, GvError> {
    let nul = data
        .iter()
        .rposition(|b| *b == 0)
        .ok_or_else(|| GvError("variant has no type string".into()))?;
    let ty = std::str::from_utf8(&data[nul + 1..]).or_else(|_| bad("variant type is not UTF-8"))?;
    if type_len(ty.as_bytes()) != Some(ty.len()) {
        return bad(format!("`{ty}` is not a GVariant type"));
    }
    Variant::parse_at(ty, &data[..nul], depth)
}

/// Serialize an `a{sv}` in the given entry order (GVariant does not sort dictionaries).
pub fn ser_dict(entries: &[(String, Variant)]) -> Vec<u8> {
    let mut f = Frame::new();
    for (k, v) in entries {
        let mut e = Frame::new();
        e.child(1, &ser_str(k), true);
        e.child(8, &ser_boxed(v), false);
        f.child(8, &e.finish_struct(), true);
    }
    f.finish_array()
}

/// Parse an `a{sv}`, keeping entry order.
pub fn parse_dict(data: &[u8]) -> Result<Vec<(String, Variant)>, GvError> {
    parse_dict_at(data, 0)
}

fn parse_dict_at(data: &[u8], depth: usize) -> Result<Vec<(String, Variant)>, GvError> {
    array_var(data, 8)?
        .into_iter()
        .map(|entry| {
            let mut r = StructReader::new(entry);
            let k = read_str(r.var(1, false)?)?.to_string();
            let v = parse_boxed(r.var(8, true)?, depth)?;
            Ok((k, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(entries: &[(&str, Variant)]) -> Vec<(String, Variant)> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn dict_roundtrip_table() {
        let nested = Variant::Dict(d(&[("n", Variant::U32(7))]));
        for entries in [
            d(&[]),
            d(&[("version", Variant::Str("1.0".into()))]),
            d(&[
                ("version", Variant::Str("1.0".into())),
                (
                    "ostree.ref-binding",
                    Variant::StrList(vec!["test/x86_64".into()]),
                ),
            ]),
            d(&[
                ("t", Variant::U64(1_577_836_800u64.to_be())),
                ("b", Variant::Bool(true)),
                ("ay", Variant::Bytes(vec![1, 2, 3])),
                ("aay", Variant::BytesList(vec![vec![9; 300], vec![]])),
                ("i", Variant::I32(-5)),
                ("x", Variant::I64(-9)),
                ("y", Variant::Byte(1)),
                ("nested", nested.clone()),
                ("boxed", Variant::Boxed(Box::new(Variant::Str("in".into())))),
                (
                    "other",
                    Variant::Other {
                        type_str: "(uu)".into(),
                        data: vec![0; 8],
                    },
                ),
            ]),
        ] {
            let bytes = ser_dict(&entries);
            assert_eq!(parse_dict(&bytes).unwrap(), entries);
        }
    }

    #[test]
    fn glib_bytes_for_version_dict() {
        // GLib: {'version': <'1.0'>} serializes as key, NUL, pad to 8, value, NUL, type, offset,
        // then the array's offset table.
        let bytes = ser_dict(&d(&[("version", Variant::Str("1.0".into()))]));
        assert_eq!(bytes, b"version\x001.0\x00\x00s\x08\x0f".to_vec());
    }

    #[test]
    fn type_len_table() {
        for (t, want) in [
            ("s", Some(1)),
            ("a{sv}", Some(5)),
            ("(uuua(ayay))", Some(12)),
            ("a(say)x", Some(6)),
            ("(", None),
            ("{s}", None),
            ("z", None),
            ("", None),
        ] {
            assert_eq!(type_len(t.as_bytes()), want, "{t}");
        }
    }

    #[test]
    fn offset_width_grows() {
        let list = Variant::BytesList(vec![vec![7u8; 200], vec![8u8; 200]]);
        let bytes = list.to_bytes();
        assert_eq!(bytes.len(), 400 + 4, "two 2-byte offsets");
        assert_eq!(Variant::parse("aay", &bytes).unwrap(), list);
    }
}
