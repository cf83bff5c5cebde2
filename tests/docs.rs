//! The documents a newcomer reads stay short and true: the README within 200 lines with every link resolving, and
//! docs/configuration.md listing exactly the variables the code declares.

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `.rs` file under `dir`, recursively, without `target/`, hidden directories, tests and the benchmarks
/// (whose options `orders-bench <benchmark> --help` lists).
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && !["target", "tests", "test-support", "bench"].contains(&name.as_str()) {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn given_the_readme_then_it_fits_in_200_lines_and_every_link_resolves() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 200, "README.md has {lines} lines");
    let link = Regex::new(r"\]\(([^)#]+)\)").unwrap();
    for c in link.captures_iter(&readme) {
        let target = &c[1];
        if target.starts_with("http") {
            continue;
        }
        assert!(Path::new(ROOT).join(target).exists(), "README links to {target}, which does not exist");
    }
}

#[test]
fn given_the_code_then_docs_configuration_lists_exactly_the_variables_it_declares() {
    // Given every variable a settings struct declares (`env = "NAME"`), outside tests.
    let mut files = Vec::new();
    sources(Path::new(ROOT), &mut files);
    let declared_re = Regex::new(r#"\benv\s*=\s*"([A-Z][A-Z0-9_]+)""#).unwrap();
    let mut declared = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        declared.extend(declared_re.captures_iter(code).map(|c| c[1].to_owned()));
    }
    assert!(declared.len() > 20, "found the declarations: {declared:?}");

    // When the tables of docs/configuration.md are read (each row's first cell names one or more variables).
    let doc = read("docs/configuration.md");
    let name = Regex::new(r"`([A-Z][A-Z0-9_]+)`").unwrap();
    let documented: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or_default().to_owned();
            name.captures_iter(&first).map(|c| c[1].to_owned()).collect::<Vec<_>>()
        })
        .collect();

    // Then the two are the same.
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&declared).collect();
    assert!(undocumented.is_empty(), "declared but not in docs/configuration.md: {undocumented:?}");
    assert!(unknown.is_empty(), "in docs/configuration.md but declared nowhere: {unknown:?}");
}
