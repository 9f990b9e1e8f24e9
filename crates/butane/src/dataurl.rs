//! Encoding inline and local contents as the shortest `data:` URL, as Butane does: percent
//! escaping, base64, or gzip+base64 (marked `compression: gzip`) when that is shorter.

use base64::Engine;

/// An encoded resource: the URL and the compression to declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub source: String,
    pub compression: Option<&'static str>,
}

/// Encodes `data`. With `allow_gzip` false (the user set `compression`, or the spec has no
/// compression field here) the result is never compressed.
pub fn encode(data: &[u8], allow_gzip: bool) -> Encoded {
    let escaped = format!("data:,{}", escape(data));
    let b64 = format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    );
    let mut best = if b64.len() < escaped.len() {
        b64
    } else {
        escaped
    };
    let mut compression = None;
    if allow_gzip {
        let url = format!(
            "data:;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(gzip(data))
        );
        if url.len() + "gzip".len() < best.len() {
            best = url;
            compression = Some("gzip");
        }
    }
    Encoded {
        source: best,
        compression,
    }
}

/// Gzip at the best level with one fixed deflate implementation (miniz_oxide), so the same
/// input gives the same bytes whichever backend `flate2` was built with elsewhere in the
/// workspace: header (no name, mtime 0, "max compression", OS unknown), raw deflate, CRC-32
/// and size trailer (RFC 1952).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 9));
    out.extend(crc32fast::hash(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// Percent-escapes everything but RFC 2396 unreserved characters and a few safe reserved ones.
fn escape(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    for &b in data {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()/:=,+@;&$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_ignition_config::validate::decode_data_url;

    #[test]
    fn encodings_round_trip_and_pick_the_shortest() {
        let long_repetitive = "hello world\n".repeat(200);
        let cases: &[(&[u8], bool, &str, Option<&str>)] = &[
            (b"hello", true, "data:,hello", None),
            (b"a b#c", true, "data:,a%20b%23c", None),
            (
                &[0xff, 0xfe, 0xfd, 0x00, 0x01, 0x02],
                true,
                "data:;base64,//79AAEC",
                None,
            ),
            (
                long_repetitive.as_bytes(),
                true,
                "data:;base64,H4sI",
                Some("gzip"),
            ),
            (
                long_repetitive.as_bytes(),
                false,
                "data:,hello%20world%0A",
                None,
            ),
        ];
        for (data, gzip, prefix, compression) in cases {
            let e = encode(data, *gzip);
            assert!(e.source.starts_with(prefix), "{}", e.source);
            assert_eq!(e.compression, *compression);
            let decoded = decode_data_url(&e.source).unwrap();
            if compression.is_none() {
                assert_eq!(&decoded, data);
            }
        }
    }
}
