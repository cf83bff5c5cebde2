//! The layout stays legible: each crate one role, no module of a crate importing one that imports it back, no
//! source file over 500 lines, every Lambda `main` short, the domain free of AWS, and the query side independent
//! of the projector.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAX_LINES: usize = 500;
const MAX_LAMBDA_MAIN_LINES: usize = 30;

/// The workspace's crates: the root and each member directory.
fn crates() -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let members = manifest.lines().find(|l| l.starts_with("members")).expect("a members line");
    let mut out = vec![PathBuf::from(ROOT)];
    out.extend(Regex::new(r#""([^"]+)""#).unwrap().captures_iter(members).map(|c| Path::new(ROOT).join(&c[1])));
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn given_every_source_file_then_none_is_over_500_lines() {
    let mut files = Vec::new();
    for krate in crates() {
        for dir in ["src", "tests", "benches"] {
            rust_files(&krate.join(dir), &mut files);
        }
    }
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, n)| format!("{} ({n} lines)", f.strip_prefix(ROOT).unwrap_or(f).display()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn given_every_lambda_then_its_main_file_is_at_most_30_lines() {
    let mut mains = Vec::new();
    for krate in crates() {
        rust_files(&krate.join("src/bin"), &mut mains);
    }
    assert!(mains.len() >= 6, "found the Lambda mains: {mains:?}");
    for main in mains {
        let n = std::fs::read_to_string(&main).unwrap().lines().count();
        assert!(n <= MAX_LAMBDA_MAIN_LINES, "{} has {n} lines", main.display());
    }
}

/// Each top-level module of `krate` and the top-level modules it names through `crate::`, outside tests.
fn module_graph(krate: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = krate.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let path = Regex::new(r"crate::([a-z_][a-z0-9_]*)").unwrap();
    let group = Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let word = Regex::new(r"\b([a-z_][a-z0-9_]*)\b").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
        if ["lib", "main", "bin"].contains(&top.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut names: BTreeSet<String> = path.captures_iter(code).map(|c| c[1].to_owned()).collect();
        for g in group.captures_iter(code) {
            names.extend(word.captures_iter(&g[1]).map(|c| c[1].to_owned()));
        }
        names.remove(&top);
        graph.entry(top).or_default().extend(names);
    }
    graph
}

/// A circle of modules in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten().filter(|n| graph.contains_key(*n)) {
            if let Some(found) = visit(graph, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

#[test]
fn the_circle_finder_finds_circles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).into()).or_default().insert((*b).into());
            g.entry((*b).into()).or_default();
        }
        g
    };
    assert_eq!(circle(&graph(&[("db", "dialect"), ("dialect", "value")])), None);
    let found = circle(&graph(&[("db", "dialect"), ("dialect", "rds"), ("rds", "db")])).unwrap();
    assert_eq!(found.first(), found.last());
    assert_eq!(found.len(), 4);
}

#[test]
fn given_every_crate_then_no_module_imports_one_that_imports_it_back() {
    for krate in crates() {
        let graph = module_graph(&krate);
        assert!(circle(&graph).is_none(), "{}: modules in a circle: {:?}", krate.display(), circle(&graph));
    }
}

fn dependencies(krate: &str) -> String {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join(krate).join("Cargo.toml")).unwrap();
    let start = manifest.find("[dependencies]").expect("a [dependencies] table");
    let rest = &manifest[start + "[dependencies]".len()..];
    rest[..rest.find("\n[").unwrap_or(rest.len())].to_owned()
}

#[test]
fn the_domain_speaks_no_aws_and_the_query_side_does_not_depend_on_the_projector() {
    let domain = dependencies("domain");
    assert!(!domain.contains("aws"), "domain depends on AWS: {domain}");
    for krate in ["query-api", "read-model", "migrator", "lake", "adhoc"] {
        let deps = dependencies(krate);
        assert!(!deps.lines().any(|l| l.starts_with("projector")), "{krate} depends on the projector");
    }
}
