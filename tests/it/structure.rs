//! The crate's top-level modules form no cycle: the data path (input, ingest, store, query,
//! detect, alert) has no back-edges, so parts of it (parsers, events, the store format) can
//! become crates of their own. A module's unit tests are left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module name -> modules it names as `crate::<name>`, with the files that do.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names `crate::<name>` in `code`, outside comments and the file's unit tests.
fn crate_references(code: &str) -> BTreeSet<String> {
    let code = code
        .find("#[cfg(test)]\nmod tests")
        .map_or(code, |i| &code[..i]);
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // `crate::{a, b}` would hide names from this scan: the crate does not use it.
            assert!(
                !rest.starts_with('{'),
                "a grouped `use crate::{{..}}` in: {line}"
            );
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path.clone());
        } else {
            continue;
        }
        modules.insert(name, files);
    }
    let mut graph = Graph::new();
    for (name, files) in &modules {
        let edges = graph.entry(name.clone()).or_default();
        for f in files {
            let code = std::fs::read_to_string(f).unwrap();
            for target in crate_references(&code) {
                if &target != name && modules.contains_key(&target) {
                    let shown = f.strip_prefix(&src).unwrap().display().to_string();
                    edges.entry(target).or_default().insert(shown);
                }
            }
        }
    }
    graph
}

/// A path from `from` back to `to` in `graph`, if there is one (depth first).
fn path_between(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_owned(), vec![from.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        if node == to {
            return Some(path);
        }
        if !seen.insert(node.clone()) {
            continue;
        }
        for next in graph.get(&node).into_iter().flat_map(|e| e.keys()) {
            let mut p = path.clone();
            p.push(next.clone());
            stack.push((next.clone(), p));
        }
    }
    None
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 20, "modules found: {:?}", graph.keys());
    // The scan sees the edges the pipeline relies on.
    assert!(graph["store"].contains_key("event"), "{:?}", graph["store"]);
    for (module, edges) in &graph {
        for (target, files) in edges {
            if let Some(back) = path_between(&graph, target, module) {
                panic!(
                    "module cycle {module} -> {}: {module} names {target} in {:?}",
                    back.join(" -> "),
                    files
                );
            }
        }
    }
}

#[test]
fn the_scan_finds_a_cycle_when_there_is_one() {
    let mut graph = Graph::new();
    let edge = |g: &mut Graph, a: &str, b: &str| {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), BTreeSet::new());
    };
    edge(&mut graph, "config", "serve");
    edge(&mut graph, "serve", "alert");
    edge(&mut graph, "alert", "config");
    assert_eq!(
        path_between(&graph, "serve", "config"),
        Some(vec!["serve".into(), "alert".into(), "config".into()])
    );
    assert_eq!(
        crate_references(
            "use crate::store::Store; // crate::alert\nlet x = crate::timerange::f();"
        ),
        BTreeSet::from(["store".to_owned(), "timerange".to_owned()])
    );
}
