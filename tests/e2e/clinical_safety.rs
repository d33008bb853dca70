//! Issue #16: the hazard log (docs/clinical-safety.md) names, for each hazard, the tests that prove
//! its mitigations; a name that matches no test fails here. (Each named test runs in this same
//! test command, so it also passes or the build fails.) A hazard without tests must say it is open.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every test function in the workspace's Rust sources, by file name without `.rs`.
fn tests_by_file(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack: Vec<std::path::PathBuf> = ["crates", "tests", "src-tauri"].iter().map(|d| root.join(d)).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !["target", "node_modules", "gen"].iter().any(|skip| path.ends_with(skip)) {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut after_test_attribute = false;
            for line in text.lines().map(str::trim) {
                if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                    after_test_attribute = true;
                } else if after_test_attribute && (line.starts_with("fn ") || line.starts_with("async fn ")) {
                    let name = line.trim_start_matches("async ").trim_start_matches("fn ");
                    let name: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    out.entry(stem.clone()).or_default().insert(name);
                    after_test_attribute = false;
                } else if !line.starts_with("#[") && !line.starts_with("//") {
                    after_test_attribute = false;
                }
            }
        }
    }
    out
}

struct Hazard {
    title: String,
    status: String,
    tests: Vec<String>,
}

fn hazards(log: &str) -> Vec<Hazard> {
    let mut out: Vec<Hazard> = Vec::new();
    let mut field = "";
    for line in log.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            out.push(Hazard { title: title.to_owned(), status: String::new(), tests: Vec::new() });
            field = "";
            continue;
        }
        let Some(h) = out.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("- **") {
            field = rest.split("**").next().unwrap_or("");
        }
        match field {
            "Status:" => h.status.push_str(line),
            "Tests:" => h.tests.extend(line.split('`').skip(1).step_by(2).map(str::to_owned)),
            _ => {}
        }
    }
    out
}

#[test]
fn issue_16_every_hazard_names_tests_that_exist() {
    let root = sc_e2e::repo_root();
    let log = std::fs::read_to_string(root.join("docs/clinical-safety.md")).expect("docs/clinical-safety.md");
    let known = tests_by_file(&root);
    let hazards = hazards(&log);
    for needed in [
        "call drops",
        "No audio",
        "wrong patient",
        "misleadingly",
        "left unlocked",
        "unusable when needed",
        "note is lost or unread",
        "admits the wrong laptop",
    ] {
        assert!(hazards.iter().any(|h| h.title.contains(needed)), "the log has no hazard about {needed:?}");
    }
    let mut missing = Vec::new();
    for h in &hazards {
        if h.tests.is_empty() {
            assert!(h.status.contains("open"), "{}: no test named, and not marked open", h.title);
            println!("open, no test yet: {}", h.title);
        }
        for t in &h.tests {
            let found = t
                .split_once("::")
                .is_some_and(|(file, name)| known.get(file).is_some_and(|names| names.contains(name)));
            if !found {
                missing.push(format!("{}: {t}", h.title));
            }
        }
    }
    assert!(missing.is_empty(), "hazards name tests that do not exist:\n{}", missing.join("\n"));
}

#[test]
fn the_checker_sees_a_name_that_is_not_a_test() {
    let log = "## H1. x\n- **Status:** mitigated.\n- **Tests:** `clinical_safety::no_such_test`,\n  `clinical_safety::the_checker_sees_a_name_that_is_not_a_test`.\n";
    let h = hazards(log);
    assert_eq!(
        h[0].tests,
        ["clinical_safety::no_such_test", "clinical_safety::the_checker_sees_a_name_that_is_not_a_test"]
    );
    let known = tests_by_file(&sc_e2e::repo_root());
    let names = known.get("clinical_safety").expect("this file");
    assert!(names.contains("the_checker_sees_a_name_that_is_not_a_test") && !names.contains("no_such_test"));
}
