//! The module graph of every crate in the workspace, read from the sources: no crate has an import
//! circle between its modules, and the kiosk core's pure modules (the lock state machine, the
//! nurse's wording, the error type, the clock) import no module that does I/O.
//!
//! A module depends on another when its file names it through `crate::` (in a `use` or a path);
//! `crate::Name` re-exported at the crate root counts as the module it comes from. Comments and
//! string literals are skipped. The crate root's own `mod` and `pub use` lines are its table of
//! contents, not dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The crate root's name in the graph.
const ROOT: &str = "(crate root)";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace")
}

/// Every library crate's `src` directory: crates/*, src-tauri and the e2e kit.
fn crate_sources() -> Vec<PathBuf> {
    let root = workspace();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .map(|e| e.expect("entry").path().join("src"))
        .filter(|p| p.join("lib.rs").exists())
        .collect();
    dirs.push(root.join("src-tauri/src"));
    dirs.push(root.join("tests/src"));
    dirs.sort();
    assert!(dirs.len() >= 8, "found the workspace's crates: {dirs:?}");
    dirs
}

/// The source with comments, string and character literals blanked out (lifetimes kept).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // A raw string r"..." or r#"..."#.
                let mut j = i + 1;
                while b.get(j) == Some(&b'#') {
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let hashes = j - i - 1;
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                i = j + 1;
                while i < b.len() && !b[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' => {
                // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
                let literal_end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..].iter().position(|&c| c == b'\'').map(|p| i + 2 + p)
                } else {
                    let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
                };
                match literal_end {
                    Some(end) => {
                        out.push_str("' '");
                        i = end + 1;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            _ => {
                let len = src[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&src[i..i + len]);
                i += len;
            }
        }
    }
    out
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// The first path segment of each item in a `{...}` use group starting at `s` (just after `{`).
fn group_heads(s: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let (mut depth, mut at_item) = (0, true);
    let mut i = 0;
    while i < s.len() {
        let c = s.as_bytes()[i];
        match c {
            b'{' => depth += 1,
            b'}' if depth == 0 => break,
            b'}' => depth -= 1,
            b',' if depth == 0 => at_item = true,
            c if c.is_ascii_whitespace() => {}
            _ if at_item && depth == 0 => {
                if let Some(id) = ident_at(&s[i..]) {
                    heads.push(id);
                    i += id.len();
                }
                at_item = false;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// The first segment after each `crate::` in `code`.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` and longer names
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group).into_iter().map(str::to_owned));
        } else if let Some(id) = ident_at(rest) {
            found.insert(id.to_owned());
        }
    }
    found
}

/// Name -> module for the crate root's `pub use module::Name` (and `pub use module::{A, B}`).
fn reexports(root_code: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for statement in root_code.split(';') {
        let s = statement.trim();
        let Some(path) = s.strip_prefix("pub use ").or_else(|| s.strip_prefix("pub(crate) use ")) else { continue };
        let path = path.trim().trim_start_matches("crate::");
        let Some(module) = ident_at(path).filter(|m| modules.contains(*m)) else { continue };
        let rest = path[module.len()..].trim_start_matches("::");
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group.trim_end_matches('}').split(',').collect(),
            None => vec![rest],
        };
        for name in names {
            let name = name.split(" as ").last().unwrap_or(name).trim();
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() {
                map.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    map
}

/// Every `.rs` file under `dir`, code only, one after another.
fn nested_code(dir: &Path) -> String {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    let mut code = String::new();
    for path in entries {
        if path.is_dir() {
            code.push_str(&nested_code(&path));
        } else if path.extension() == Some("rs".as_ref()) {
            code.push_str(&code_only(&std::fs::read_to_string(&path).expect("source")));
            code.push('\n');
        }
    }
    code
}

/// The crate's module graph: one module per file directly in `src`, and per directory there (a
/// module with submodules counts as one, its files' references together).
fn graph(src: &Path) -> Graph {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            if !path.ends_with("bin") {
                let name = path.file_name().and_then(|n| n.to_str()).expect("a module name").to_owned();
                files.entry(name).or_default().push_str(&nested_code(&path));
            }
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).filter(|_| path.extension() == Some("rs".as_ref()))
        else {
            continue;
        };
        let code = code_only(&std::fs::read_to_string(&path).expect("source"));
        if stem == "main" {
            // A binary beside the library: it uses the library by name and declares no modules.
            assert!(!code.contains("mod "), "{} declares modules", path.display());
            continue;
        }
        files.entry(stem.to_owned()).or_default().push_str(&code);
    }
    let root_code = files.remove("lib").expect("lib.rs");
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let exported = reexports(&root_code, &modules);
    let resolve = |name: &str| -> String {
        if modules.contains(name) {
            name.to_owned()
        } else {
            exported.get(name).cloned().unwrap_or_else(|| ROOT.to_owned())
        }
    };
    let mut g = Graph::new();
    for (module, code) in &files {
        let deps = crate_references(code).iter().map(|r| resolve(r)).filter(|d| d != module).collect();
        g.insert(module.clone(), deps);
    }
    // The root's own code (not its `mod` and `pub use` lines) may use modules too.
    let root_body: String = root_code
        .split(';')
        .filter(|s| {
            let s = s.trim_start();
            !(s.starts_with("pub use") || s.starts_with("pub mod") || s.starts_with("mod ") || s.contains("\nmod "))
        })
        .collect::<Vec<_>>()
        .join(";");
    let mut root_deps: BTreeSet<String> = crate_references(&root_body).iter().map(|r| resolve(r)).collect();
    for module in &modules {
        let named = root_body.match_indices(&format!("{module}::")).any(|(at, _)| {
            at == 0 || !root_body[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        });
        if named {
            root_deps.insert(module.clone());
        }
    }
    root_deps.remove(ROOT);
    g.insert(ROOT.to_owned(), root_deps);
    g
}

/// A cycle in `g`, if there is one (as the list of modules around it).
fn cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(n: &str, g: &Graph, marks: &mut BTreeMap<String, Mark>, path: &mut Vec<String>) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|p| p == n).unwrap_or(0);
                let mut c = path[from..].to_vec();
                c.push(n.to_owned());
                return Some(c);
            }
            None => {}
        }
        marks.insert(n.to_owned(), Mark::Open);
        path.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(n.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    g.keys().find_map(|n| visit(n, g, &mut marks, &mut Vec::new()))
}

/// Everything `module` reaches in `g`.
fn reach(g: &Graph, module: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![module.to_owned()];
    while let Some(m) = todo.pop() {
        for d in g.get(&m).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn no_crate_has_an_import_circle() {
    for src in crate_sources() {
        let g = graph(&src);
        assert!(g.len() > 1 || src.ends_with("keyx/src"), "{} has modules: {g:?}", src.display());
        if let Some(c) = cycle(&g) {
            panic!("import circle in {}: {}", src.display(), c.join(" -> "));
        }
    }
}

#[test]
fn the_kiosk_cores_pure_modules_import_only_pure_modules() {
    let g = graph(&workspace().join("crates/core/src"));
    // Modules without I/O: no file, keystore, network or task.
    let pure: BTreeSet<String> = ["lock", "notice", "error", "clock"].map(str::to_owned).into();
    for module in &pure {
        let reached = reach(&g, module);
        let impure: Vec<&String> = reached.difference(&pure).collect();
        assert!(impure.is_empty(), "{module} reaches modules with I/O: {impure:?}");
    }
    assert_eq!(
        g["lock"],
        ["error", "notice"].map(str::to_owned).into(),
        "the lock state machine imports the error type and the wording, nothing else"
    );
}

#[test]
fn the_reader_sees_what_it_should() {
    let code = code_only(
        "use crate::a::{self, B};\n// crate::commented\nlet s = \"crate::quoted\";\nlet c = '\"'; use crate::{b::{C, D}, e};\n\
         fn f<'x>() { crate::g::h(); $crate::i::j(); }",
    );
    let refs = crate_references(&code);
    assert_eq!(refs, ["a", "b", "e", "g"].map(str::to_owned).into(), "{code}");
    let mut g = Graph::new();
    g.insert("a".into(), ["b".to_owned()].into());
    g.insert("b".into(), ["a".to_owned()].into());
    assert!(cycle(&g).is_some(), "a circle is found");
    g.insert("b".into(), BTreeSet::new());
    assert!(cycle(&g).is_none());
}
