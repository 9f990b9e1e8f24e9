//! The kernel command line: which platform this is, where the config comes from, first boot.

use std::path::Path;

/// Default location of the kernel command line.
pub const PROC_CMDLINE: &str = "/proc/cmdline";

/// What provisioning reads from the kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    /// All arguments, split like the kernel does (double quotes group words).
    pub args: Vec<String>,
}

impl KernelCmdline {
    /// Splits a command line into arguments, honouring double quotes.
    pub fn parse(text: &str) -> KernelCmdline {
        let mut args = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut started = false;
        for c in text.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    started = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if started {
                        args.push(std::mem::take(&mut cur));
                        started = false;
                    }
                }
                c => {
                    cur.push(c);
                    started = true;
                }
            }
        }
        if started {
            args.push(cur);
        }
        KernelCmdline { args }
    }

    /// Reads and parses a command-line file (normally `/proc/cmdline`).
    pub fn read(path: &Path) -> std::io::Result<KernelCmdline> {
        Ok(KernelCmdline::parse(&std::fs::read_to_string(path)?))
    }

    /// The value of the last `key=value` argument (the kernel's "last one wins" rule).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .rev()
            .find_map(|a| a.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }

    /// Whether `arg` appears exactly (as a flag or as `key=value`).
    pub fn contains(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }

    /// `ignition.platform.id=`.
    pub fn platform(&self) -> Option<&str> {
        self.value("ignition.platform.id")
    }

    /// `ignition.config.url=`.
    pub fn config_url(&self) -> Option<&str> {
        self.value("ignition.config.url").filter(|u| !u.is_empty())
    }

    /// `ignition.firstboot` present and not switched off (`0`, `no`, `off`, empty value).
    pub fn first_boot(&self) -> bool {
        self.args.iter().any(|a| a == "ignition.firstboot")
            || matches!(self.value("ignition.firstboot"), Some(v) if !matches!(v, "" | "0" | "no" | "off"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("  a b\n", &["a", "b"]),
            ("x=\"a b\" y", &["x=a b", "y"]),
            ("\"\" z", &["", "z"]),
        ];
        for (text, want) in cases {
            assert_eq!(KernelCmdline::parse(text).args, *want, "{text:?}");
        }
    }

    #[test]
    fn lookups_table() {
        let c = KernelCmdline::parse(
            "ro ignition.platform.id=qemu ignition.config.url=data:,x ignition.firstboot ignition.platform.id=metal",
        );
        assert_eq!(c.platform(), Some("metal"));
        assert_eq!(c.config_url(), Some("data:,x"));
        assert!(c.first_boot());
        assert!(c.contains("ro"));
        for (text, want) in [
            ("ignition.firstboot=1", true),
            ("ignition.firstboot=0", false),
            ("ignition.firstboot=off", false),
            ("ignition.firstboot=", false),
            ("quiet", false),
        ] {
            assert_eq!(KernelCmdline::parse(text).first_boot(), want, "{text}");
        }
        assert_eq!(
            KernelCmdline::parse("ignition.config.url=").config_url(),
            None
        );
    }
}
