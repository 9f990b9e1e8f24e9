//! newc cpio archives, the format the Linux kernel unpacks as an initramfs: the VM tests append
//! one to a real initramfs (a drop-in that makes a boot fail) or boot a small one of their own.

/// One member of an archive. Parent directories are added by [`newc`].
#[derive(Debug, Clone)]
pub enum Member<'a> {
    /// A regular file with permission bits `mode`.
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    /// A character device node.
    CharDevice {
        path: &'a str,
        major: u32,
        minor: u32,
    },
    /// A directory.
    Dir { path: &'a str },
}

impl Member<'_> {
    fn path(&self) -> &str {
        match self {
            Member::File { path, .. } | Member::CharDevice { path, .. } | Member::Dir { path } => {
                path
            }
        }
    }
}

struct Header<'a> {
    ino: u32,
    mode: u32,
    rdev: (u32, u32),
    name: &'a str,
    data: &'a [u8],
}

fn entry(out: &mut Vec<u8>, h: &Header) {
    let fields = [
        h.ino,
        h.mode,
        0, // uid
        0, // gid
        1, // nlink
        0, // mtime
        h.data.len() as u32,
        0, // devmajor
        0, // devminor
        h.rdev.0,
        h.rdev.1,
        h.name.len() as u32 + 1,
        0, // check
    ];
    out.extend(b"070701");
    for f in fields {
        out.extend(format!("{f:08x}").as_bytes());
    }
    out.extend(h.name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend(h.data);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// The archive holding `members` (paths relative, without a leading `/`) and every parent
/// directory they need, owned by root, with a zero mtime.
pub fn newc(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ino = 1;
    let mut dirs: Vec<String> = Vec::new();
    let mut add_dir = |out: &mut Vec<u8>, ino: &mut u32, d: &str| {
        if !dirs.iter().any(|x| x == d) {
            entry(
                out,
                &Header {
                    ino: *ino,
                    mode: 0o040755,
                    rdev: (0, 0),
                    name: d,
                    data: b"",
                },
            );
            *ino += 1;
            dirs.push(d.to_string());
        }
    };
    for m in members {
        let parts: Vec<&str> = m.path().split('/').collect();
        for i in 1..parts.len() {
            add_dir(&mut out, &mut ino, &parts[..i].join("/"));
        }
        let (mode, rdev, data): (u32, (u32, u32), &[u8]) = match m {
            Member::Dir { path } => {
                add_dir(&mut out, &mut ino, path);
                continue;
            }
            Member::File { mode, data, .. } => (0o100000 | (mode & 0o7777), (0, 0), data),
            Member::CharDevice { major, minor, .. } => (0o020600, (*major, *minor), b""),
        };
        entry(
            &mut out,
            &Header {
                ino,
                mode,
                rdev,
                name: m.path(),
                data,
            },
        );
        ino += 1;
    }
    entry(
        &mut out,
        &Header {
            ino: 0,
            mode: 0,
            rdev: (0, 0),
            name: "TRAILER!!!",
            data: b"",
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parents_and_trailer() {
        let a = newc(&[
            Member::File {
                path: "etc/x/y.conf",
                mode: 0o644,
                data: b"hello",
            },
            Member::CharDevice {
                path: "dev/console",
                major: 5,
                minor: 1,
            },
        ]);
        let text = String::from_utf8_lossy(&a);
        let names: Vec<&str> = [
            "etc\0",
            "etc/x\0",
            "etc/x/y.conf\0",
            "dev\0",
            "dev/console\0",
        ]
        .into_iter()
        .filter(|n| text.contains(n))
        .collect();
        assert_eq!(names.len(), 5, "{text:?}");
        assert!(text.contains("hello"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!"));
        assert_eq!(a.len() % 4, 0);
        // The device node: mode 020600, rdev 5:1.
        assert!(text.contains(&format!("{:08x}", 0o020600)));
        assert!(text.contains(&format!("{:08x}{:08x}", 5, 1)));
    }
}
