//! The crate's floors, checked: no two files of `host/src` import each other, directly or
//! through others. A lower module never names a higher one's types (ARCHITECTURE.md, "Floors").
//!
//! Read from the text, as a person reading the `use` lines would: every `crate::`, `super::`
//! and `self::` path outside `#[cfg(test)]` code is an edge from its file to the file of the
//! module it names (a grouped `a::{b, c}` names `a` and each of `b`, `c`). Comments are left
//! out. The check is a test so that `cargo test` (and so CI) fails on the first new cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["operators", "aggregate"]`) → its file, for every file under `src`.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading host/src") {
            let path = entry.expect("a directory entry").path();
            let rel = path.strip_prefix(src).expect("under src").to_path_buf();
            if path.is_dir() {
                // Binaries are crates of their own.
                if rel != Path::new("bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The file of the longest module prefix of `parts`.
fn file_of<'a>(
    modules: &'a BTreeMap<Vec<String>, PathBuf>,
    parts: &[String],
) -> Option<&'a PathBuf> {
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get(&parts[..n]))
}

/// The source without comments, and without what follows the first `#[cfg(test)]`.
fn code_of(text: &str) -> String {
    let code = text
        .lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n");
    code.split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Each file's imports: file → files it names.
fn edges(
    modules: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> {
    let path_re =
        regex::Regex::new(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)(::\{([^;]*?)\})?")
            .expect("a valid regex");
    let mut out: BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> = BTreeMap::new();
    for (module, file) in modules {
        let code = code_of(&std::fs::read_to_string(file).expect("reading a source file"));
        for m in path_re.captures_iter(&code) {
            let mut rest: Vec<String> = m[2].split("::").skip(1).map(str::to_owned).collect();
            let parts = match &m[1] {
                "crate" => rest,
                base => {
                    let mut here = module.clone();
                    if base == "super" {
                        here.pop();
                        while rest.first().is_some_and(|r| r == "super") {
                            here.pop();
                            rest.remove(0);
                        }
                    }
                    here.extend(rest);
                    here
                }
            };
            let mut targets = vec![parts.clone()];
            if let Some(group) = m.get(4) {
                for item in group.as_str().split(',') {
                    let item = item.split(" as ").next().unwrap_or_default();
                    let item = item.replace(['{', '}'], "");
                    let item = item.trim();
                    if !item.is_empty() && item != "self" {
                        let mut t = parts.clone();
                        t.extend(item.split("::").map(str::to_owned));
                        targets.push(t);
                    }
                }
            }
            for t in targets {
                if let Some(to) = file_of(modules, &t)
                    && to != file
                {
                    let depth = (1..=t.len())
                        .rev()
                        .find(|&n| modules.contains_key(&t[..n]))
                        .unwrap_or(0);
                    let item = t.get(depth).cloned().unwrap_or_else(|| "*".to_owned());
                    out.entry(file.clone())
                        .or_default()
                        .entry(to.clone())
                        .or_default()
                        .insert(item);
                }
            }
        }
    }
    out
}

/// The strongly connected components with more than one file (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>) -> Vec<Vec<PathBuf>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a PathBuf) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.edges.get(v).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_file_of_the_crate_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    assert!(modules.len() > 50, "found only {} files", modules.len());
    let edges = edges(&modules);
    let found = cycles(&edges);
    let mut report = String::new();
    for files in &found {
        report.push_str(&format!("cycle of {} files:\n", files.len()));
        for from in files {
            for (to, items) in edges.get(from).into_iter().flatten() {
                if files.contains(to) {
                    let items: Vec<&str> = items.iter().map(String::as_str).collect();
                    report.push_str(&format!(
                        "  {} -> {}: {}\n",
                        from.strip_prefix(&src).unwrap_or(from).display(),
                        to.strip_prefix(&src).unwrap_or(to).display(),
                        items.join(", ")
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a lower module names a higher one's types; move the shared words down (config/) or the caller up:\n{report}"
    );
}

#[test]
fn the_check_sees_a_cycle_when_there_is_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path();
    std::fs::create_dir_all(src.join("low")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod low;\npub mod high;\n").expect("write");
    std::fs::write(
        src.join("low/mod.rs"),
        "// use crate::high::Ignored; (a comment)\nuse crate::high::{Plan, self};\n",
    )
    .expect("write");
    std::fs::write(
        src.join("high.rs"),
        "use crate::low::Words;\n#[cfg(test)]\nmod tests { use crate::low::*; }\n",
    )
    .expect("write");
    let modules = modules(src);
    let edges = edges(&modules);
    let found = cycles(&edges);
    assert_eq!(
        found,
        vec![vec![src.join("high.rs"), src.join("low/mod.rs")]]
    );
    // Without the upward import, none.
    std::fs::write(src.join("low/mod.rs"), "pub struct Words;\n").expect("write");
    assert!(cycles(&edges_of(src)).is_empty());
}

fn edges_of(src: &Path) -> BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> {
    edges(&modules(src))
}
