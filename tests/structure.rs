//! Checks on the shape of the code itself, read from the source tree: every module says
//! first what it owns, no file grows past [`MAX_LINES`], every "rule N" the code cites is a
//! rule `docs/design.md` defines, and no two modules of the server import each other
//! (directly or around a circle) outside their tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines one source file may have.
const MAX_LINES: usize = 800;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file of the workspace's crates and tests (not build output, not fuzz corpora).
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(name.as_ref(), "target" | ".git" | "corpus" | "artifacts") {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    out.sort();
    assert!(out.len() > 50, "found only {} sources", out.len());
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_module_begins_with_what_it_owns() {
    let missing: Vec<String> = sources()
        .iter()
        .filter(|p| !read(p).starts_with("//!"))
        .map(|p| relative(p))
        .collect();
    assert!(missing.is_empty(), "no module doc first: {missing:#?}");
}

#[test]
fn no_file_is_longer_than_the_limit() {
    let long: Vec<(String, usize)> = sources()
        .iter()
        .map(|p| (relative(p), read(p).lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:#?}");
}

/// The rule numbers `text` cites: "rule 4", "rules 4 and 6", "rules 1, 2, 14", "rules 5-10"
/// (a range cites every rule in it), across line breaks and comment markers.
fn cited_rules(text: &str) -> BTreeSet<u32> {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '/' || c == '!' || c == '*')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let number = |w: &str| -> Option<(u32, Option<u32>)> {
        let w = w.trim_end_matches([',', ')', '.', ':', ';']);
        match w.split_once(['-', '\u{2013}']) {
            Some((a, b)) => Some((a.parse().ok()?, Some(b.parse().ok()?))),
            None => Some((w.parse().ok()?, None)),
        }
    };
    let mut out = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_start_matches('(');
        if w != "rule" && w != "rules" {
            continue;
        }
        for next in &words[i + 1..] {
            if next == "and" || next == "or" {
                continue;
            }
            let Some((first, last)) = number(next) else {
                break;
            };
            out.extend(first..=last.unwrap_or(first));
            if !next.ends_with(',') && w == "rule" {
                break;
            }
        }
    }
    out
}

#[test]
fn every_rule_the_code_cites_is_defined_in_the_design() {
    let design = read(&root().join("docs/design.md"));
    let defined: BTreeSet<u32> = design
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.split_once(". **")?;
            let _ = rest;
            number.parse().ok()
        })
        .collect();
    assert!(defined.len() >= 15, "rules defined: {defined:?}");
    let mut undefined = Vec::new();
    for path in sources() {
        for n in cited_rules(&read(&path)) {
            if !defined.contains(&n) {
                undefined.push((relative(&path), n));
            }
        }
    }
    assert!(undefined.is_empty(), "cited, not defined: {undefined:?}");
}

/// The module path of a source file under `src` ("store/apply.rs" -> ["store", "apply"]).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The text of `source` without its test modules (from a `#[cfg(test)]` that opens a
/// module to the end of the file: test modules come last).
fn without_tests(source: &str) -> &str {
    let mut at = 0;
    while let Some(found) = source[at..].find("#[cfg(test)]") {
        let start = at + found;
        let after = source[start + 12..].trim_start();
        let after = after
            .strip_prefix("#[allow(clippy::unwrap_used)]")
            .map_or(after, str::trim_start);
        if after.starts_with("mod ") && after.contains('{') && {
            let line = after.lines().next().unwrap_or("");
            line.trim_end().ends_with('{')
        } {
            return &source[..start];
        }
        at = start + 12;
    }
    source
}

/// The modules `source` (module `me`) names through `crate::` or `super::` paths.
fn referenced(me: &[String], source: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    // Code only: a doc link or a comment naming a module is not an import.
    let text: String = without_tests(source)
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.as_str();
    for (at, _) in text.match_indices("crate::") {
        for path in paths_at(&text[at + 7..]) {
            out.insert(path);
        }
    }
    for (at, _) in text.match_indices("super::") {
        if at > 0 && text[..at].ends_with("::") {
            continue;
        }
        let mut base: Vec<String> = me.to_vec();
        let mut rest = &text[at..];
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        for path in paths_at(rest) {
            out.insert([base.clone(), path].concat());
        }
    }
    out
}

/// The paths written at the start of `text`: `a::b::C` is one; `{a::B, c::{D, E}}` is
/// `a::B`, `c::D` and `c::E`.
fn paths_at(text: &str) -> Vec<Vec<String>> {
    let head: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let prefix: Vec<String> = head
        .split("::")
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let Some(group) = text[head.len()..].strip_prefix('{') else {
        return vec![prefix];
    };
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        let item = match c {
            '{' => {
                depth += 1;
                None
            }
            '}' if depth == 0 => Some(i),
            '}' => {
                depth -= 1;
                None
            }
            ',' if depth == 0 => Some(i),
            _ => None,
        };
        if let Some(end) = item {
            for path in paths_at(group[start..end].trim()) {
                if !path.is_empty() {
                    out.push([prefix.clone(), path].concat());
                }
            }
            start = end + 1;
            if c == '}' {
                break;
            }
        }
    }
    out
}

/// Circles among sibling modules of the server: an arrow from sibling A to sibling B when
/// code in A (or below it) names something in B (or below it).
fn server_circles() -> Vec<Vec<String>> {
    let src = root().join("server/src");
    let all: Vec<PathBuf> = sources()
        .into_iter()
        .filter(|p| p.starts_with(&src))
        .collect();
    // Modules declared under `#[cfg(test)]` are tests of their parent: left out.
    let mut test_modules = BTreeSet::new();
    for file in &all {
        let me = module_of(&src, file);
        let text = read(file);
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line == "#[cfg(test)]"
                && let Some(next) = lines.next()
                && let Some(name) = next
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ")
                    .strip_prefix("mod ")
                    .and_then(|rest| rest.strip_suffix(';'))
            {
                test_modules.insert([me.clone(), vec![name.to_string()]].concat());
            }
        }
    }
    let files: Vec<(Vec<String>, String)> = all
        .into_iter()
        .map(|f| (module_of(&src, &f), read(&f)))
        .filter(|(m, _)| !test_modules.iter().any(|t| m.starts_with(t)))
        .collect();
    circles_among(&files)
}

/// Circles among sibling modules of `files` ((module path, source) each): an arrow from
/// sibling A to sibling B when code in A (or below it) names something in B (or below it).
/// A path through a re-export (`pub use` in a parent) counts as an arrow to the parent,
/// which is not one between siblings.
fn circles_among(files: &[(Vec<String>, String)]) -> Vec<Vec<String>> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    // Arrows between siblings, keyed by their parent.
    let mut arrows: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for (me, text) in files {
        for target in referenced(me, text) {
            // The longest module prefix of the path (the rest names an item).
            let Some(target) = (0..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|t| modules.contains(t))
            else {
                continue;
            };
            let common = me.iter().zip(&target).take_while(|(a, b)| a == b).count();
            // One is inside the other (a parent and its own child): not between siblings.
            if common == me.len() || common == target.len() {
                continue;
            }
            arrows
                .entry(me[..common].to_vec())
                .or_default()
                .insert((me[common].clone(), target[common].clone()));
        }
    }
    if std::env::var_os("CODETTA_SHOW_ARROWS").is_some() {
        for (parent, edges) in &arrows {
            for (a, b) in edges {
                println!("{}: {a} -> {b}", parent.join("::"));
            }
        }
    }
    let mut circles = Vec::new();
    for (parent, edges) in arrows {
        let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
        for start in &nodes {
            // A path back to `start`: depth-first over the siblings' arrows.
            let mut stack = vec![(vec![(*start).clone()], (*start).clone())];
            let mut seen = BTreeSet::new();
            while let Some((path, at)) = stack.pop() {
                for (_, next) in edges.iter().filter(|(a, _)| *a == at) {
                    if next == *start {
                        let mut named: Vec<String> = path
                            .iter()
                            .map(|m| [parent.clone(), vec![m.clone()]].concat().join("::"))
                            .collect();
                        named.sort();
                        if !circles.contains(&named) {
                            circles.push(named);
                        }
                    } else if seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((longer, next.clone()));
                    }
                }
            }
        }
    }
    circles
}

#[test]
fn server_modules_import_each_other_in_one_direction() {
    let circles = server_circles();
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_circle_check_sees_a_circle() {
    let me = vec!["heal".to_string()];
    let refs = referenced(
        &me,
        "use crate::service::ServerService;\nuse super::store::Store;\nuse crate::{peers::Peers, store::{a, b}};\n#[cfg(test)]\nmod tests {\n use crate::admin::x;\n}\n",
    );
    assert!(refs.contains(&vec!["peers".to_string(), "Peers".to_string()]));
    assert!(refs.contains(&vec!["service".to_string(), "ServerService".to_string()]));
    assert!(refs.contains(&vec!["store".to_string(), "Store".to_string()]));
    assert!(
        !refs.iter().any(|r| r[0] == "admin"),
        "test modules are left out: {refs:?}"
    );
}

#[test]
fn rules_are_read_in_every_form_the_code_writes_them() {
    let text = "// rule 4; (rules 7, 8 and 10) and rules 5-6 or\n/// rules 1 and\n/// 14.";
    assert_eq!(
        cited_rules(text),
        BTreeSet::from([1, 4, 5, 6, 7, 8, 10, 14])
    );
    assert!(cited_rules("the rules of the game 2026").is_empty());
}

#[test]
fn the_circle_check_finds_circles_through_groups_and_deep_paths() {
    let m = |p: &str| p.split("::").map(str::to_string).collect::<Vec<_>>();
    let files = vec![
        (m("a"), "use crate::{b::Thing, c};\n".to_string()),
        (m("b"), "fn f() { crate::a::inner::g(); }\n".to_string()),
        (m("a::inner"), "pub fn g() {}\n".to_string()),
        (m("c"), "use super::store::{x::{Y, Z}};\n".to_string()),
        (m("store"), String::new()),
        (m("store::x"), "use super::y::W;\n".to_string()),
        (m("store::y"), "use crate::store::{x::Y};\n".to_string()),
    ];
    let circles = circles_among(&files);
    assert!(
        circles.contains(&vec!["a".to_string(), "b".to_string()]),
        "{circles:?}"
    );
    assert!(
        circles.contains(&vec!["store::x".to_string(), "store::y".to_string()]),
        "{circles:?}"
    );
    assert_eq!(circles.len(), 2, "c -> store only: {circles:?}");
}
