//! Checks for resources: URL schemes, data URLs (strict RFC 2397, like Ignition), HTTP headers,
//! compression and verification hashes.

use super::Checker;
use crate::report::JsonPath;
use crate::types::Resource;
use base64::Engine;

/// How a resource is used, which decides whether `source` is required.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// merge/replace/CA: the source is required (replace: only when anything else is set).
    Required,
    /// file contents, append, key files: the source may be absent.
    Optional,
}

pub fn check(c: &mut Checker, r: &Resource, path: &JsonPath, usage: Use) {
    match &r.source {
        None if usage == Use::Required => c.error(&path.key("source"), "source is required"),
        None => {
            if r.verification.as_ref().is_some_and(|v| v.hash.is_some()) {
                c.error(
                    &path.key("verification").key("hash"),
                    "source must be specified if verification is specified",
                );
            }
        }
        Some(src) => {
            if let Err(msg) = check_url(src, c.minor()) {
                c.error(&path.key("source"), &msg);
            }
            let scheme = scheme_of(src);
            for (i, h) in r.http_headers.iter().enumerate() {
                let hp = path.key("httpHeaders").index(i);
                if !matches!(scheme.as_deref(), Some("http" | "https")) {
                    c.error(&hp, "cannot use HTTP headers with this source scheme");
                }
                if h.name.as_deref().unwrap_or("").is_empty() {
                    c.error(&hp.key("name"), "HTTP header name can't be empty");
                }
            }
        }
    }
    c.duplicates(
        path.key("httpHeaders"),
        r.http_headers
            .iter()
            .map(|h| h.name.clone().unwrap_or_default()),
    );
    if let Some(comp) = &r.compression {
        if !comp.is_empty() && comp != "gzip" {
            c.error(&path.key("compression"), "invalid compression method");
        }
    }
    if let Some(hash) = r.verification.as_ref().and_then(|v| v.hash.as_ref()) {
        if let Err(msg) = check_hash(hash, c.minor()) {
            c.error(&path.key("verification").key("hash"), msg);
        }
    }
}

/// The lower-cased URL scheme, if the string has a syntactically valid one.
pub fn scheme_of(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| scheme.to_ascii_lowercase())
}

/// Checks a source URL for spec `3.minor`; `Err` carries Ignition's message.
pub fn check_url(url: &str, minor: u64) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    if !super::urlsyntax::parses(url) {
        return Err("unable to parse url".into());
    }
    match scheme_of(url).as_deref() {
        Some("http" | "https" | "tftp") => Ok(()),
        Some("s3") => match url.split_once('?') {
            Some((_, q))
                if q.split('&')
                    .any(|kv| kv == "versionId" || kv == "versionId=") =>
            {
                Err("invalid S3 object VersionId".into())
            }
            _ => Ok(()),
        },
        Some("gs") if minor >= 2 => Ok(()),
        Some("arn") if minor >= 4 => check_arn(url),
        Some("data") => decode_data_url(url).map(|_| ()),
        _ => Err("invalid url scheme".into()),
    }
}

fn check_arn(url: &str) -> Result<(), String> {
    let parts: Vec<&str> = url.splitn(6, ':').collect();
    let bad = || Err("invalid S3 ARN format".to_string());
    if parts.len() != 6 || parts[2] != "s3" {
        return bad();
    }
    let resource = parts[5];
    let ok = if parts[3].is_empty() && parts[4].is_empty() {
        resource
            .split_once('/')
            .is_some_and(|(b, k)| !b.is_empty() && !k.is_empty())
    } else {
        let segs: Vec<&str> = resource.splitn(4, '/').collect();
        segs.len() == 4
            && segs[0] == "accesspoint"
            && !segs[1].is_empty()
            && segs[2] == "object"
            && !segs[3].is_empty()
    };
    if ok {
        Ok(())
    } else {
        bad()
    }
}

/// Decodes a `data:` URL strictly (RFC 2397 with RFC 2396 characters), as Ignition does.
pub fn decode_data_url(url: &str) -> Result<Vec<u8>, String> {
    let rest = url.strip_prefix("data:").ok_or("missing data prefix")?;
    let (meta, data) = rest.split_once(',').ok_or("missing comma")?;
    let mut params = meta.split(';');
    let media = params.next().unwrap_or("");
    if !media.is_empty() {
        let (t, s) = media
            .split_once('/')
            .ok_or("invalid character for media type")?;
        if !is_token(t) || !is_token(s) {
            return Err("invalid character for media type".into());
        }
    }
    let mut base64 = false;
    for p in params {
        if p == "base64" {
            base64 = true;
        } else if !p
            .split_once('=')
            .is_some_and(|(k, v)| is_token(k) && !v.is_empty())
        {
            return Err("invalid media type parameter".into());
        }
    }
    if data.chars().any(|c| !is_uric(c)) {
        return Err("invalid data character".into());
    }
    let raw = unescape(data)?;
    if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(&raw)
            .map_err(|e| match e {
                base64::DecodeError::InvalidByte(at, _)
                | base64::DecodeError::InvalidLastSymbol(at, _) => {
                    format!("illegal base64 data at input byte {at}")
                }
                _ => format!(
                    "illegal base64 data at input byte {}",
                    raw.len() - raw.len() % 4
                ),
            })
    } else {
        Ok(raw)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
}

fn is_uric(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'();/?:@&=+$,%".contains(c)
}

fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .ok_or("rfc2396: unexpected end of unescape sequence")?;
            let v = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(v.ok_or("rfc2396: invalid char 0x25 in unescape sequence")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Checks `sha512-<hex>` (and `sha256-<hex>` from spec 3.1).
pub fn check_hash(hash: &str, minor: u64) -> Result<(), &'static str> {
    let (func, sum) = hash.split_once('-').ok_or("malformed hash specifier")?;
    let len = match func {
        "sha512" => 128,
        "sha256" if minor >= 1 => 64,
        _ => return Err("unrecognized hash function"),
    };
    if !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("hash sum is not hexadecimal");
    }
    if sum.len() != len {
        return Err("incorrect size for hash sum");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        let cases: &[(&str, Result<&[u8], &str>)] = &[
            ("data:,hello", Ok(b"hello")),
            ("data:,a%23b", Ok(b"a#b")),
            ("data:,a+b", Ok(b"a+b")),
            ("data:,caf%C3%A9", Ok("café".as_bytes())),
            ("data:text/plain,hi", Ok(b"hi")),
            ("data:text/plain;charset=utf-8;base64,aGk=", Ok(b"hi")),
            ("data:,", Ok(b"")),
            ("data:,a b", Err("invalid data character")),
            ("data:,a#b", Err("invalid data character")),
            ("data:,a[b]", Err("invalid data character")),
            (
                "data:,%ZZ",
                Err("rfc2396: invalid char 0x25 in unescape sequence"),
            ),
            (
                "data:,100%",
                Err("rfc2396: unexpected end of unescape sequence"),
            ),
            (
                "data:;base64,aGk",
                Err("illegal base64 data at input byte 0"),
            ),
            ("data:hello,", Err("invalid character for media type")),
            ("DATA:,x", Err("missing data prefix")),
        ];
        for (url, want) in cases {
            let got = decode_data_url(url);
            assert_eq!(
                got.as_deref().map_err(|e| e.as_str()),
                want.map(|v| v),
                "{url}"
            );
        }
    }

    #[test]
    fn urls_by_version() {
        let cases: &[(&str, u64, Result<(), &str>)] = &[
            ("https://example.com/x", 0, Ok(())),
            ("tftp://10.0.0.1/x", 0, Ok(())),
            ("gs://bucket/obj", 1, Err("invalid url scheme")),
            ("gs://bucket/obj", 2, Ok(())),
            ("arn:aws:s3:::bucket/key", 3, Err("invalid url scheme")),
            ("arn:aws:s3:::bucket/key", 4, Ok(())),
            (
                "arn:aws:s3:us-west-2:123456789012:accesspoint/ap/object/key",
                4,
                Ok(()),
            ),
            ("arn:aws:s3:::bucket", 4, Err("invalid S3 ARN format")),
            ("s3://b/k?versionId=", 0, Err("invalid S3 object VersionId")),
            ("foo://x", 0, Err("invalid url scheme")),
            ("http//x", 0, Err("invalid url scheme")),
            (":x", 0, Err("unable to parse url")),
        ];
        for (url, minor, want) in cases {
            assert_eq!(
                check_url(url, *minor),
                want.map_err(String::from),
                "{url} @3.{minor}"
            );
        }
    }

    #[test]
    fn hashes() {
        let s512 = format!("sha512-{}", "a".repeat(128));
        let s256 = format!("sha256-{}", "0".repeat(64));
        let cases: &[(&str, u64, Result<(), &str>)] = &[
            (&s512, 0, Ok(())),
            (&s256, 0, Err("unrecognized hash function")),
            (&s256, 1, Ok(())),
            ("sha512-abc", 0, Err("incorrect size for hash sum")),
            ("sha512abc", 0, Err("malformed hash specifier")),
            ("md5-abc", 3, Err("unrecognized hash function")),
            ("sha512-zz", 3, Err("hash sum is not hexadecimal")),
        ];
        for (h, minor, want) in cases {
            assert_eq!(check_hash(h, *minor), *want, "{h}");
        }
    }
}
