//! The URL syntax Ignition accepts before looking at the scheme (what Go's `net/url.Parse`
//! refuses becomes `unable to parse url`): control characters, a missing scheme, bad `%`
//! escapes in the path or fragment, and bad characters or ports in the host. Opaque URLs
//! (`data:,...`) are only checked for control characters, as Go leaves them unparsed.

/// Whether `url` parses.
pub fn parses(url: &str) -> bool {
    if url.chars().any(|c| c.is_ascii_control()) || url.starts_with(':') {
        return false;
    }
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    if fragment.is_some_and(|f| !escapes_ok(f)) {
        return false;
    }
    let after_scheme = match rest.split_once(':') {
        Some((scheme, after)) if !scheme.contains('/') && !scheme.contains('?') => after,
        _ => rest,
    };
    let without_query = after_scheme.split('?').next().unwrap_or("");
    if !without_query.starts_with('/') {
        return true;
    }
    let Some(authority_and_path) = without_query.strip_prefix("//") else {
        return escapes_ok(without_query);
    };
    let (authority, path) = match authority_and_path.find('/') {
        Some(i) => authority_and_path.split_at(i),
        None => (authority_and_path, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_ok(host) && escapes_ok(path)
}

/// Every `%` starts a two-digit hex escape.
fn escapes_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn host_ok(host: &str) -> bool {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        match v6.split_once(']') {
            Some((_, "")) => return true,
            Some((_, after)) => match after.strip_prefix(':') {
                Some(port) => ("", port),
                None => return false,
            },
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, p),
            None => (host, ""),
        }
    };
    let name_ok = name
        .chars()
        .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || "-_.~!$&'()*+,;=%\"<>".contains(c))
        && escapes_ok(name);
    name_ok && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_url_parse_table() {
        let cases = [
            ("http://example.com/a", true),
            ("http://example.com/a b", true),
            ("http://example.com/?a=%zz", true),
            ("http://user@example.com:8080/x#frag", true),
            ("http://[::1]:80/x", true),
            ("data:,a%ZZ", true),
            ("s3://bucket/key", true),
            ("http://exa mple.com/", false),
            ("http://example.com/%zz", false),
            ("s3://b/%zz", false),
            ("tftp://h/%2", false),
            ("http://[::1/x", false),
            ("http://h:abc/x", false),
            ("http://h/x#%zz", false),
            (":x", false),
            ("http://h/\u{7f}", false),
        ];
        for (url, want) in cases {
            assert_eq!(parses(url), want, "{url}");
        }
    }
}
