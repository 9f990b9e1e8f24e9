//! Hostile Butane documents, each run through the real `keel butane` binary under a virtual
//! memory cap (`ulimit -v`) and a time bound: alias bombs (nested, wide, in keys, in values),
//! a mapping with 200 000 keys, NUL bytes and deep nesting. Each attack must end in a clear
//! error that names the limit and the place (or, for the many keys, in success) without
//! reaching the cap and without writing an output file.
//!
//! The binary is `target/debug/keel` beside this test; build it first (`cargo build -p keel`;
//! a workspace `cargo test` builds it). A missing or out-of-date binary fails the tests.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The address space each run may use. A translation of a small config needs about 60 MiB; the
/// alias bombs below expanded past 2 GiB before expansion was bounded by bytes.
const MEMORY_CAP_KIB: u64 = 256 * 1024;
/// How long one run may take (debug build, shared machine). The 200 000-key mapping took more
/// than 240 s before duplicate keys were found with a hash map.
const TIME_BOUND: Duration = Duration::from_secs(20);

/// Runs one at a time, so that each run's time is its own and not that of its neighbours.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const HEADER: &str = "variant: keel\nversion: 1.0.0\n";

struct Run {
    status: ExitStatus,
    stderr: String,
    elapsed: Duration,
    output_written: bool,
}

impl Run {
    /// Asserts the run was refused with exit status 1 and every part of `expected` in its
    /// message, and that nothing was written.
    fn assert_refused(&self, expected: &[&str]) {
        assert_eq!(
            self.status.code(),
            Some(1),
            "expected a clean refusal (exit 1), got {:?}; stderr:\n{}",
            self.status,
            self.stderr
        );
        for part in expected {
            assert!(
                self.stderr.contains(part),
                "stderr lacks {part:?}:\n{}",
                self.stderr
            );
        }
        assert!(!self.output_written, "an output file was written");
    }
}

/// Files whose change makes the `keel` binary out of date for these tests.
fn sources() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut todo = vec![
        crates.join("butane/src"),
        crates.join("ignition-config/src"),
    ];
    let mut files = Vec::new();
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

fn modified(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// `target/debug/keel`, checked to exist and to be newer than the Butane sources.
fn keel_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let keel = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("keel"))
        .unwrap();
    assert!(
        keel.is_file(),
        "{} is missing: these tests run the real binary; build it with `cargo build -p keel`",
        keel.display()
    );
    let built = modified(&keel);
    if let Some(newer) = sources().into_iter().find(|s| modified(s) > built) {
        panic!(
            "{} is older than {}: rebuild it with `cargo build -p keel`",
            keel.display(),
            newer.display()
        );
    }
    keel
}

/// Runs `keel butane` on `document` under the memory cap, killing it at the time bound.
fn butane(document: &[u8], extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hostile.bu");
    let output = dir.path().join("out.ign");
    let stderr_path = dir.path().join("stderr");
    std::fs::write(&input, document).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_CAP_KIB} && exec \"$0\" butane \"$@\""
        ))
        .arg(keel_binary())
        .args(extra)
        .arg("-o")
        .arg(&output)
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).unwrap());
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIME_BOUND {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("keel butane ran longer than {TIME_BOUND:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&std::fs::read(&stderr_path).unwrap()).into_owned();
    eprintln!(
        "{} bytes in, exit {:?} after {elapsed:?}: {}",
        document.len(),
        status.code(),
        stderr.lines().next().unwrap_or_default()
    );
    Run {
        status,
        stderr,
        elapsed,
        output_written: output.exists(),
    }
}

/// "Billion laughs": ten levels, each a list of nine aliases of the level before (9^10 leaves
/// from 500 bytes). It reached 171 MB before the node count stopped it.
#[test]
fn nested_alias_bomb_is_refused_at_the_alias() {
    let mut doc = format!("{HEADER}x0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for level in 1..10 {
        let items = vec![format!("*a{}", level - 1); 9].join(",");
        writeln!(doc, "x{level}: &a{level} [{items}]").unwrap();
    }
    butane(doc.as_bytes(), &[]).assert_refused(&[
        "aliases expand to more than 16 MiB",
        "of the anchor at line",
        "use fewer aliases",
        "error at line 8 col",
    ]);
}

/// One 500 kB scalar aliased 170 000 times: a 1 MB document that expanded past the 2 GiB cap
/// in 3.6 s (the allocator aborted the process).
#[test]
fn wide_alias_bomb_of_a_large_scalar_is_refused() {
    let big = "A".repeat(500_000);
    let aliases = vec!["*a"; 170_000].join(",");
    let doc = format!("{HEADER}x: &a \"{big}\"\ny: [{aliases}]\n");
    let run = butane(doc.as_bytes(), &[]);
    run.assert_refused(&[
        "aliases expand to more than 16 MiB",
        "copies 500048 bytes of the anchor at line 3 col 7",
        "error at line 4 col",
    ]);
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
}

/// Ten 50 kB anchors used as the keys of 8 000 mappings (1.1 MB): reached the 2 GiB cap in
/// 2.3 s.
#[test]
fn alias_bomb_in_mapping_keys_is_refused() {
    let mut doc = format!("{HEADER}anchors:\n");
    for i in 0..10u8 {
        let text = char::from(b'A' + i).to_string().repeat(50_000);
        writeln!(doc, "  - &k{i} \"{text}\"").unwrap();
    }
    let keys: Vec<String> = (0..10).map(|i| format!("*k{i} : 1")).collect();
    let row = format!("{{{}}}", keys.join(", "));
    writeln!(doc, "maps: [{}]", vec![row; 8_000].join(",")).unwrap();
    butane(doc.as_bytes(), &[])
        .assert_refused(&["aliases expand to more than 16 MiB", "error at line 14 col"]);
}

/// A mapping of 100 5 kB values aliased 100 000 times as a value (0.8 MB): reached the 2 GiB
/// cap in 1.6 s.
#[test]
fn alias_bomb_of_a_mapping_in_values_is_refused() {
    let entries: Vec<String> = (0..100)
        .map(|i| format!("k{i}: \"{}\"", "B".repeat(5_000)))
        .collect();
    let doc = format!(
        "{HEADER}m: &m {{{}}}\nl: [{}]\n",
        entries.join(", "),
        vec!["*m"; 100_000].join(",")
    );
    butane(doc.as_bytes(), &[]).assert_refused(&[
        "aliases expand to more than 16 MiB",
        "of the anchor at line 3 col 7",
    ]);
}

/// Anchors and aliases that stay within the limit still translate: one 500 kB file content
/// reused by eight files.
#[test]
fn aliases_within_the_limit_still_translate() {
    let content: String = (0..500_000u32)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let mut doc = format!(
        "{HEADER}storage:\n  files:\n    - path: /etc/f0\n      contents:\n        inline: &c \"{content}\"\n"
    );
    for i in 1..8 {
        writeln!(
            doc,
            "    - path: /etc/f{i}\n      contents:\n        inline: *c"
        )
        .unwrap();
    }
    let run = butane(doc.as_bytes(), &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.output_written);
}

fn many_keys(n: usize) -> String {
    let mut doc = String::from(HEADER);
    doc.push_str("storage:\n  x:\n");
    for i in 0..n {
        writeln!(doc, "    key{i}: {i}").unwrap();
    }
    doc
}

/// 200 000 keys in one mapping: more than 240 s before (each key was compared with every
/// earlier one); now read in linear time: ten times the keys take well under thirty times as
/// long (a quadratic reader takes a hundred times as long).
#[test]
fn mapping_with_200k_keys_translates_in_seconds() {
    let small = butane(many_keys(20_000).as_bytes(), &[]);
    assert!(small.status.success(), "{}", small.stderr);
    let run = butane(many_keys(200_000).as_bytes(), &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.output_written);
    assert!(
        run.stderr.contains("Unused key x"),
        "the unknown key is reported: {}",
        run.stderr
    );
    assert!(
        run.elapsed < Duration::from_secs(15),
        "200 000 keys took {:?}",
        run.elapsed
    );
    assert!(
        run.elapsed < small.elapsed * 30,
        "200 000 keys took {:?}, 20 000 took {:?}: not linear",
        run.elapsed,
        small.elapsed
    );
}

/// The same mapping with the first key repeated at the end is refused, naming both lines.
#[test]
fn duplicate_key_after_200k_keys_is_found_quickly() {
    let mut doc = many_keys(200_000);
    doc.push_str("    key0: again\n");
    let run = butane(doc.as_bytes(), &[]);
    run.assert_refused(&[
        "error at line 200005 col 5",
        "mapping key \"key0\" already defined at line 5",
    ]);
    assert!(run.elapsed < Duration::from_secs(15), "{:?}", run.elapsed);
}

/// A NUL in a plain scalar used to end the stream: `/etc/a\0b` translated to `/etc/a` and
/// everything after the NUL was dropped without a word.
#[test]
fn nul_byte_is_refused_with_line_and_column() {
    let doc = format!(
        "{HEADER}storage:\n  files:\n    - path: /etc/a\0b\nsystemd:\n  units:\n    - name: x.service\n"
    );
    butane(doc.as_bytes(), &[]).assert_refused(&[
        "error at line 5 col 19",
        "control character U+0000 is not allowed",
        "write it as \"\\u0000\" inside a double-quoted string",
    ]);
}

/// A NUL inside a quoted string, and other control characters, are refused the same way.
#[test]
fn control_characters_are_refused_anywhere() {
    let cases: [(&str, &str); 3] = [
        (
            "k: \"a\0b\"\n",
            "error at line 3 col 6: yaml: control character U+0000",
        ),
        (
            "k: |\n  a\u{1b}[31m\n",
            "error at line 4 col 4: yaml: control character U+001B",
        ),
        (
            "k: v\n\0",
            "error at line 4 col 1: yaml: control character U+0000",
        ),
    ];
    for (body, expected) in cases {
        butane(format!("{HEADER}{body}").as_bytes(), &[]).assert_refused(&[expected]);
    }
}

/// Block mappings nested 3 000 deep (9 MB) are refused at the depth limit.
#[test]
fn deep_block_nesting_is_refused() {
    let mut doc = String::from(HEADER);
    for depth in 0..3_000 {
        writeln!(doc, "{}a{depth}:", "  ".repeat(depth)).unwrap();
    }
    butane(doc.as_bytes(), &[]).assert_refused(&[
        "error at line 259",
        "nesting deeper than 256 levels; flatten the document",
    ]);
}

/// Flow sequences and mappings nested 100 000 deep are refused by the parser's limit.
#[test]
fn deep_flow_nesting_is_refused() {
    let n = 100_000;
    let seqs = format!("{HEADER}x: {}{}\n", "[".repeat(n), "]".repeat(n));
    let maps = format!("{HEADER}x: {}1{}\n", "{a: ".repeat(n), "}".repeat(n));
    for doc in [seqs, maps] {
        butane(doc.as_bytes(), &[]).assert_refused(&[
            "error at line 3",
            "nested deeper than 255 levels; flatten the document",
        ]);
    }
}
