//! The one renderer of Prometheus' text exposition format (version 0.0.4) used by every Keel
//! metrics endpoint (update agent, graph server, FleetLock server and their HTTP layer).
//!
//! Label values and help texts are escaped as the format requires: in label values a backslash,
//! a double quote and a line feed become `\\`, `\"` and `\n`; in help texts a backslash and a
//! line feed do (a quote stays as it is).

use std::fmt::{Display, Write};

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (names end in `_total` by convention).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A family of per-key values: name, type, help text and the value of one item.
pub type KeyedFamily<T, V> = (&'static str, Kind, &'static str, fn(&T) -> V);

/// A text exposition being written: families (`# HELP`, `# TYPE`) each followed by samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts the family `name` with its help text and type; samples of it follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let _ = writeln!(
            self.out,
            "# HELP {name} {}\n# TYPE {name} {}",
            escape(help, false),
            kind.name()
        );
        self
    }

    /// One sample of `name` with `labels` (name, value) in the given order.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape(v, true));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// For each of `families`, the family and one sample per item of `items`, labelled `label`
    /// with the item's key.
    pub fn keyed<'a, K, T, V>(
        &mut self,
        label: &str,
        items: impl Iterator<Item = (&'a K, &'a T)> + Clone,
        families: &[KeyedFamily<T, V>],
    ) -> &mut Self
    where
        K: AsRef<str> + 'a,
        T: 'a,
        V: Display,
    {
        for (name, kind, help, value) in families {
            self.family(name, *kind, help);
            for (key, item) in items.clone() {
                self.sample(name, &[(label, key.as_ref())], value(item));
            }
        }
        self
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    /// The finished text.
    pub fn into_string(self) -> String {
        self.out
    }
}

fn escape(text: &str, quote: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Label values as the three hand-written renderers printed them (unescaped) and as the
    /// format requires them.
    #[test]
    fn label_values_are_escaped() {
        for (value, want) in [
            ("stable", "m{l=\"stable\"} 1\n"),
            ("a\\b", "m{l=\"a\\\\b\"} 1\n"),
            ("say \"hi\"", "m{l=\"say \\\"hi\\\"\"} 1\n"),
            ("two\nlines", "m{l=\"two\\nlines\"} 1\n"),
            ("", "m{l=\"\"} 1\n"),
        ] {
            let mut e = Exposition::new();
            e.sample("m", &[("l", value)], 1);
            assert_eq!(e.as_str(), want, "{value:?}");
        }
    }

    #[test]
    fn families_samples_and_help_escapes() {
        let mut e = Exposition::new();
        e.family(
            "keel_x_total",
            Kind::Counter,
            "Requests \"seen\", by a\\b\nand c.",
        )
        .sample(
            "keel_x_total",
            &[("api", "pre-reboot"), ("status", "200")],
            3,
        )
        .single("keel_y", Kind::Gauge, "Seconds.", 0.005);
        let items = std::collections::BTreeMap::from([("b".to_string(), 2u8), ("a".into(), 1)]);
        e.keyed(
            "k",
            items.iter(),
            &[("keel_z", Kind::Gauge, "Per key.", |v: &u8| {
                u32::from(*v) * 10
            })],
        );
        assert_eq!(
            e.into_string(),
            "# HELP keel_x_total Requests \"seen\", by a\\\\b\\nand c.\n\
             # TYPE keel_x_total counter\n\
             keel_x_total{api=\"pre-reboot\",status=\"200\"} 3\n\
             # HELP keel_y Seconds.\n\
             # TYPE keel_y gauge\n\
             keel_y 0.005\n\
             # HELP keel_z Per key.\n\
             # TYPE keel_z gauge\n\
             keel_z{k=\"a\"} 10\n\
             keel_z{k=\"b\"} 20\n"
        );
    }
}
