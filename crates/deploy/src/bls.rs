//! Boot Loader Specification type 1 entries: the file format, the file name with the boot
//! counter (`ostree-<serial>-<stateroot>[+<left>[-<done>]].conf`) and the order systemd-boot
//! boots them in.

use std::cmp::Ordering;

/// The `sort-key` every Keel entry carries, so systemd-boot orders Keel entries by `version`.
pub const SORT_KEY: &str = "keel";

/// The boot counter in an entry's file name (systemd's automatic boot assessment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Boots left before the entry is bad.
    pub left: u32,
    /// Boots already tried (absent right after the entry was written).
    pub done: Option<u32>,
}

impl Counter {
    /// No tries left: systemd-boot sorts the entry last; it failed to boot healthy.
    pub fn is_bad(&self) -> bool {
        self.left == 0
    }
}

/// A parsed entry file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    /// Monotonic number, also written as the entry's `version`.
    pub serial: u64,
    /// The stateroot the entry boots.
    pub stateroot: String,
    /// Boot counter; `None` once blessed (or never counted).
    pub counter: Option<Counter>,
}

impl EntryName {
    /// Parse `ostree-<serial>-<stateroot>[+<left>[-<done>]].conf`; `None` for foreign files.
    pub fn parse(file_name: &str) -> Option<EntryName> {
        let stem = file_name.strip_suffix(".conf")?.strip_prefix("ostree-")?;
        let (base, counter) = match stem.rsplit_once('+') {
            Some((base, c)) => {
                let (left, done) = match c.split_once('-') {
                    Some((l, d)) => (l.parse().ok()?, Some(d.parse().ok()?)),
                    None => (c.parse().ok()?, None),
                };
                (base, Some(Counter { left, done }))
            }
            None => (stem, None),
        };
        let (serial, stateroot) = base.split_once('-')?;
        if !serial.bytes().all(|b| b.is_ascii_digit()) || !valid_stateroot(stateroot) {
            return None;
        }
        Some(EntryName {
            serial: serial.parse().ok()?,
            stateroot: stateroot.to_string(),
            counter,
        })
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        format!("{}{}.conf", self.id_stem(), self.counter_suffix())
    }

    /// The name without the counter, as systemd-boot's entry id (`ostree-7-keel.conf`).
    pub fn id(&self) -> String {
        format!("{}.conf", self.id_stem())
    }

    fn id_stem(&self) -> String {
        format!("ostree-{}-{}", self.serial, self.stateroot)
    }

    fn counter_suffix(&self) -> String {
        match self.counter {
            None => String::new(),
            Some(Counter { left, done: None }) => format!("+{left}"),
            Some(Counter {
                left,
                done: Some(d),
            }) => format!("+{left}-{d}"),
        }
    }
}

/// A stateroot name: letters, digits, `_`, `.`, `-`, not starting with `-` or `.`.
pub fn valid_stateroot(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The contents of one entry file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootEntry {
    /// Menu title.
    pub title: String,
    /// Sort version (the serial).
    pub version: String,
    /// `sort-key`.
    pub sort_key: Option<String>,
    /// Kernel path on the ESP.
    pub linux: String,
    /// Initramfs path on the ESP.
    pub initrd: String,
    /// Kernel command line.
    pub options: String,
}

impl BootEntry {
    /// Parse `key value` lines; unknown keys are ignored, `#` lines are comments.
    pub fn parse(text: &str) -> BootEntry {
        let mut e = BootEntry::default();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            let value = value.trim().to_string();
            match key {
                "title" => e.title = value,
                "version" => e.version = value,
                "sort-key" => e.sort_key = Some(value),
                "linux" => e.linux = value,
                "initrd" => e.initrd = value,
                "options" => e.options = value,
                _ => {}
            }
        }
        e
    }

    /// Serialize, one key per line.
    pub fn to_text(&self) -> String {
        let mut s = format!("title {}\nversion {}\n", self.title, self.version);
        if let Some(k) = &self.sort_key {
            s.push_str(&format!("sort-key {k}\n"));
        }
        s.push_str(&format!(
            "linux {}\ninitrd {}\noptions {}\n",
            self.linux, self.initrd, self.options
        ));
        s
    }

    /// The value of the `ostree=` karg (the last one, as the kernel reads it).
    pub fn ostree_karg(&self) -> Option<&str> {
        keel_utils::cmdline::last_value(&self.options, "ostree")
    }
}

/// Compare two version strings the way systemd's `strverscmp_improved` orders the versions
/// Keel writes: runs of digits compare numerically, runs of letters lexically, a digit run sorts
/// after a letter run, other characters separate runs, and a longer version wins a tie.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(rb.iter()) {
        let ord = match (
            x.bytes().all(|c| c.is_ascii_digit()),
            y.bytes().all(|c| c.is_ascii_digit()),
        ) {
            (true, true) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ra.len().cmp(&rb.len())
}

fn runs(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i].is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        } else if bytes[i].is_ascii_alphabetic() {
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
        } else {
            i += 1;
            continue;
        }
        out.push(&s[start..i]);
    }
    out
}

/// systemd-boot's menu order (`boot_entry_compare`): entries with no tries left last; entries
/// with a sort-key before those without; then sort-key ascending, version descending, id
/// (file name without counter) descending; then more tries left first, fewer tries done first.
pub fn boot_order(a: (&EntryName, &BootEntry), b: (&EntryName, &BootEntry)) -> Ordering {
    let bad = |n: &EntryName| n.counter.is_some_and(|c| c.is_bad());
    let (na, ea) = a;
    let (nb, eb) = b;
    bad(na)
        .cmp(&bad(nb))
        .then_with(|| ea.sort_key.is_none().cmp(&eb.sort_key.is_none()))
        .then_with(|| match (&ea.sort_key, &eb.sort_key) {
            (Some(x), Some(y)) => x.cmp(y).then_with(|| version_cmp(&eb.version, &ea.version)),
            _ => Ordering::Equal,
        })
        .then_with(|| version_cmp(&nb.id(), &na.id()))
        .then_with(|| match (na.counter, nb.counter) {
            (Some(x), Some(y)) => y.left.cmp(&x.left).then_with(|| x.done.cmp(&y.done)),
            _ => Ordering::Equal,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_round_trip() {
        let c = |left, done| Some(Counter { left, done });
        let table = [
            ("ostree-7-keel.conf", Some((7, "keel", None))),
            ("ostree-12-keel+3.conf", Some((12, "keel", c(3, None)))),
            ("ostree-12-keel+2-1.conf", Some((12, "keel", c(2, Some(1))))),
            ("ostree-3-my-os+0-3.conf", Some((3, "my-os", c(0, Some(3))))),
            ("ostree-1-keel.conf.new", None),
            ("keel-keel-1.conf", None),
            ("ostree-x-keel.conf", None),
            ("ostree-1-keel+x.conf", None),
            ("ostree-1-.conf", None),
            ("ostree-1-keel+3-.conf", None),
        ];
        for (name, want) in table {
            let got = EntryName::parse(name);
            match want {
                None => assert_eq!(got, None, "{name}"),
                Some((serial, stateroot, counter)) => {
                    let got = got.unwrap_or_else(|| panic!("{name} did not parse"));
                    assert_eq!(
                        (got.serial, got.stateroot.as_str(), got.counter),
                        (serial, stateroot, counter),
                        "{name}"
                    );
                    assert_eq!(got.file_name(), name);
                }
            }
        }
    }

    #[test]
    fn versions_compare_like_systemd() {
        use Ordering::*;
        let table = [
            ("10", "9", Greater),
            ("9", "10", Less),
            ("007", "7", Equal),
            ("12.20261125.3.0", "12.20261125.3.1", Less),
            ("12.20261126.3.0", "12.20261125.3.9", Greater),
            ("1.0a", "1.0", Greater),
            ("1a", "12", Less),
            ("ostree-10-keel.conf", "ostree-9-keel.conf", Greater),
            ("", "0", Less),
        ];
        for (a, b, want) in table {
            assert_eq!(version_cmp(a, b), want, "{a} vs {b}");
        }
    }

    fn entry(name: &str, version: &str, sort_key: Option<&str>) -> (EntryName, BootEntry) {
        let n = EntryName::parse(name).expect("valid name");
        let e = BootEntry {
            version: version.into(),
            sort_key: sort_key.map(str::to_string),
            ..BootEntry::default()
        };
        (n, e)
    }

    #[test]
    fn boot_order_puts_newest_first_and_bad_entries_last() {
        // (entries in arbitrary order, expected file names in menu order)
        type Row<'a> = (&'a str, &'a str, Option<&'a str>);
        let table: Vec<(Vec<Row>, Vec<&str>)> = vec![
            (
                vec![
                    ("ostree-4-keel.conf", "4", Some("keel")),
                    ("ostree-5-keel+3.conf", "5", Some("keel")),
                ],
                vec!["ostree-5-keel+3.conf", "ostree-4-keel.conf"],
            ),
            (
                vec![
                    ("ostree-5-keel+0-3.conf", "5", Some("keel")),
                    ("ostree-4-keel.conf", "4", Some("keel")),
                ],
                vec!["ostree-4-keel.conf", "ostree-5-keel+0-3.conf"],
            ),
            (
                vec![
                    ("ostree-9-keel.conf", "9", Some("keel")),
                    ("ostree-10-keel+1-2.conf", "10", Some("keel")),
                ],
                vec!["ostree-10-keel+1-2.conf", "ostree-9-keel.conf"],
            ),
            (
                vec![
                    ("ostree-9-keel.conf", "9", None),
                    ("ostree-2-keel.conf", "2", Some("keel")),
                ],
                vec!["ostree-2-keel.conf", "ostree-9-keel.conf"],
            ),
            (
                vec![
                    ("ostree-9-keel.conf", "9", None),
                    ("ostree-10-keel.conf", "10", None),
                ],
                vec!["ostree-10-keel.conf", "ostree-9-keel.conf"],
            ),
        ];
        for (input, want) in table {
            let mut v: Vec<_> = input.iter().map(|(n, ver, k)| entry(n, ver, *k)).collect();
            v.sort_by(|a, b| boot_order((&a.0, &a.1), (&b.0, &b.1)));
            let got: Vec<String> = v.iter().map(|(n, _)| n.file_name()).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn entry_text_round_trips_and_finds_ostree_karg() {
        let e = BootEntry {
            title: "Keel 1 (keel, 0d7f83d7)".into(),
            version: "3".into(),
            sort_key: Some(SORT_KEY.into()),
            linux: "/ostree/keel-ab/vmlinuz".into(),
            initrd: "/ostree/keel-ab/initramfs.img".into(),
            options: "root=LABEL=root rw ostree=/ostree/boot.1/keel/ab/0".into(),
        };
        let text = e.to_text();
        assert_eq!(BootEntry::parse(&text), e);
        assert_eq!(e.ostree_karg(), Some("/ostree/boot.1/keel/ab/0"));
        assert_eq!(BootEntry::parse("# c\ntitle  a b \n").title, "a b");
    }
}
