//! The core's module structure, checked: no domain imports the container (or the `Store` that
//! names every domain, or the in-memory store), and the core's modules form no import cycle.
//! A domain is a folder under `src/`; every other top-level module is a leaf that domains
//! share. Test code (modules declared `#[cfg(test)]`, the `testing` fixtures, the conformance
//! suite and trailing `#[cfg(test)] mod tests` blocks) is left out: it may wire anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules that wire domains together; no domain may name them.
const CONTAINER: &[&str] = &["levqor", "store", "memory"];
/// Test-only modules.
const TEST_ONLY: &[&str] = &["testing", "conformance"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level module a file under `src/` belongs to (`None` for `lib.rs`).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first),
    }
}

/// Whether `file` is test code: declared `#[cfg(test)] mod name;` by its parent module.
fn is_test_file(file: &Path) -> bool {
    let stem = file.file_stem().unwrap().to_str().unwrap();
    let dir = file.parent().unwrap();
    let parents = [
        dir.join("mod.rs"),
        dir.with_extension("rs"),
        dir.join("lib.rs"),
    ];
    parents.iter().any(|parent| {
        let Ok(text) = std::fs::read_to_string(parent) else {
            return false;
        };
        let declaration = format!("mod {stem};");
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        lines
            .windows(2)
            .any(|w| w[0] == "#[cfg(test)]" && w[1].ends_with(&declaration))
    })
}

/// The code of `text` without comments and without a trailing `#[cfg(test)] mod … { … }`.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if line.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.starts_with("mod ") && next.trim_end().ends_with('{'))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Names re-exported at the crate root (`pub use jobs::model::Job`), by the module they come
/// from, so that `crate::Job` counts as naming `jobs`.
fn root_exports() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = rest.split("::").next().unwrap().trim().to_string();
        let names = match rest.find('{') {
            Some(i) => rest[i + 1..].trim_end_matches('}').to_string(),
            None => rest.rsplit("::").next().unwrap().to_string(),
        };
        for name in names.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.clone());
            }
        }
    }
    out
}

/// The top-level modules that `code` names through `crate::`.
fn named_modules(code: &str, exports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut name = |segment: &str| {
        let segment = segment.trim();
        let ident: String = segment
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            return;
        }
        let module = exports.get(&ident).cloned().unwrap_or(ident);
        out.insert(module);
    };
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with('$') {
            continue; // `$crate::` in a macro is the crate's user's path
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b::{Y, Z}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        name(&item);
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || item.is_empty() {
                    item.push(c);
                }
            }
            name(&item);
        } else {
            name(rest);
        }
    }
    out
}

/// Which top-level module names which, from the crate's source, test code left out.
fn graph() -> Graph {
    let exports = root_exports();
    let mut g = Graph::new();
    for file in rust_files(&src()) {
        let Some(module) = module_of(&file) else {
            continue;
        };
        if TEST_ONLY.contains(&module.as_str()) || is_test_file(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = g.entry(module.clone()).or_default();
        for named in named_modules(&code(&text), &exports) {
            if named != module {
                edges.insert(named);
            }
        }
    }
    g
}

/// A cycle of `g`, as the path that closes it, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        g: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, g, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|node| visit(node, g, &mut Vec::new(), &mut done))
}

/// The domains: the folders under `src/`.
fn domains() -> Vec<String> {
    std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .filter(|d| !TEST_ONLY.contains(&d.as_str()) && !CONTAINER.contains(&d.as_str()))
        .collect()
}

#[test]
fn no_domain_imports_the_container() {
    let g = graph();
    let domains = domains();
    assert!(domains.len() >= 9, "domains found: {domains:?}");
    let offenders: Vec<String> = domains
        .iter()
        .flat_map(|d| {
            g.get(d)
                .into_iter()
                .flatten()
                .filter(|n| CONTAINER.contains(&n.as_str()))
                .map(move |n| format!("{d} -> {n}"))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "domains naming the container: {offenders:?}"
    );
}

#[test]
fn core_modules_form_no_import_cycle() {
    let g = graph();
    assert!(
        g.get("jobs").is_some_and(|e| e.contains("error")),
        "the graph is read: {g:?}"
    );
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checks_see_grouped_imports_re_exports_and_cycles() {
    let exports = BTreeMap::from([("Levqor".to_string(), "levqor".to_string())]);
    let named = named_modules(
        "use crate::{a::X, b::{c::Y, Z}};\nfn f() -> crate::Levqor { crate::d::g() }\n$crate::e::h!()",
        &exports,
    );
    assert_eq!(
        named,
        BTreeSet::from(["a", "b", "d", "levqor"].map(String::from))
    );
    let g: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(x, y)| (x.to_string(), BTreeSet::from([y.to_string()])))
        .collect();
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    let text = "use crate::a::X;\n#[cfg(test)]\nmod tests {\n    use crate::b::Y;\n}\n";
    assert!(!code(text).contains("crate::b"));
    assert!(is_test_file(&src().join("billing/test_world.rs")));
    assert!(!is_test_file(&src().join("billing/service.rs")));
}
