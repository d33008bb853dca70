//! The house rules are executable (issue #11): `.ci/run` fails on a formatting difference, a
//! shellcheck finding or a clippy warning, each on its own, before any test runs. Each case is a
//! clone of the committed tree with one defect, run through `.ci/run`'s gates (`SC_GATES_ONLY`).

use sc_e2e::{as_from_a_shell, repo_root};
use std::path::Path;
use std::process::Command;

/// A clone of the committed tree (sharing the repository's objects: quick).
fn clone() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new("git")
        .args(["clone", "--quiet", "--shared"])
        .arg(repo_root())
        .arg(dir.path().join("tree"))
        .status()
        .expect("git");
    assert!(status.success(), "git clone");
    dir
}

/// Runs `.ci/run`'s gates in `tree`; returns (success, output).
fn gates(tree: &Path) -> (bool, String) {
    let out = as_from_a_shell(&mut Command::new("bash"))
        .arg(".ci/run")
        .current_dir(tree)
        .env("SC_GATES_ONLY", "1")
        .output()
        .expect(".ci/run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).expect("open");
    f.write_all(text.as_bytes()).expect("append");
}

/// The last gate `.ci/run` announced before it stopped.
fn last_gate(output: &str) -> &str {
    output.lines().rev().find_map(|l| l.split("gate: ").nth(1)).unwrap_or("none")
}

#[test]
fn issue_11_ci_fails_on_a_formatting_difference() {
    let dir = clone();
    let tree = dir.path().join("tree");
    append(&tree.join("crates/proto/src/lib.rs"), "\npub   const  GATE_PROBE : u8=1;\n");
    let (ok, out) = gates(&tree);
    assert!(!ok, "{out}");
    assert_eq!(last_gate(&out), "cargo fmt --check", "{out}");
}

#[test]
fn issue_11_ci_fails_on_a_shellcheck_finding() {
    let dir = clone();
    let tree = dir.path().join("tree");
    // An unquoted variable that may split: SC2086.
    append(&tree.join("scripts/bench.sh"), "\nprobe=\"a b\"\nls $probe >/dev/null 2>&1 || true\n");
    let (ok, out) = gates(&tree);
    assert!(!ok, "{out}");
    assert_eq!(last_gate(&out), "shellcheck", "{out}");
    assert!(out.contains("SC2086"), "{out}");
}

#[test]
fn issue_11_ci_fails_on_a_clippy_warning_and_passes_without_one() {
    // Two clippy runs take both cores for a minute: never beside a shaped call.
    let _slot = sc_e2e::shaped::one_at_a_time_blocking();
    let dir = clone();
    let tree = dir.path().join("tree");
    // Formatted as rustfmt would, so only clippy objects (map_identity).
    let probe = tree.join("crates/proto/src/lib.rs");
    let clean = std::fs::read_to_string(&probe).expect("read");
    append(
        &probe,
        "\n/// A probe for the lint gate.\npub fn gate_probe() -> Option<u8> {\n    Some(1).map(|x| x)\n}\n",
    );
    let (ok, out) = gates(&tree);
    assert!(!ok, "{out}");
    assert_eq!(last_gate(&out), "clippy", "{out}");
    assert!(out.contains("map_identity"), "{out}");

    // The committed tree itself passes every gate.
    std::fs::write(&probe, clean).expect("restore");
    let (ok, out) = gates(&tree);
    assert!(ok, "the committed tree fails a gate:\n{out}");
    assert!(out.contains("gates passed"), "{out}");
}
