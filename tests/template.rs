//! template.yaml against the code, offline. For every function in the template:
//! - every environment variable its code reads is set by the template, or is left to its default on purpose
//!   (listed in `UNSET_ON_PURPOSE` with the reason), and every variable the template sets is read by its code;
//! - every AWS operation its code calls through an SDK client is an action its policy grants.
//!
//! "Its code" is the binary's own file and the non-test sources of the workspace crates it depends on. That
//! over-approximates what runs (a crate linked for its types brings its reads along), so each exception is named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use yaml_rust2::{Yaml, YamlLoader};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// (function, variable): read by code linked into the function, deliberately not set by the template.
const UNSET_ON_PURPOSE: &[(&str, &str, &str)] = &[
    ("CommandFunction", "DATA_DIR", "read for ORDERS_STORE=embedded only; the template sets ORDERS_STORE=dynamodb"),
    (
        "QueryNoticeFunction",
        "READ_MODEL_URL",
        "read-model is linked for its table names; the notice function never opens the read model",
    ),
    ("QueryNoticeFunction", "READ_MODEL_AUTH", "as READ_MODEL_URL"),
    ("QueryNoticeFunction", "LAKE_URL", "lake is linked for its table names; only the lake writer opens the lake"),
    (
        "QueryNoticeFunction",
        "NOTICE_ADDRESSES",
        "addresses are recorded at submission; the notice function reads the record",
    ),
    ("QueryFunction", "LAKE_URL", "as for the notice function: the query API runs Athena, it never opens the lake"),
    ("QueryFunction", "NOTICE_SENDER", "read by the notice function's binary only"),
    ("QueryFunction", "ATHENA_OUTPUT_LOCATION", "the workgroup enforces its output location"),
    ("QueryNoticeFunction", "ATHENA_OUTPUT_LOCATION", "the workgroup enforces its output location"),
    (
        "LakeWriterFunction",
        "READ_MODEL_URL",
        "read-model is linked with the change types; the lake writer never opens the read model",
    ),
    ("LakeWriterFunction", "READ_MODEL_AUTH", "as READ_MODEL_URL"),
    (
        "MigrateFunction",
        "READ_MODEL_URL",
        "read-model is linked for the migrations; the function connects as the owner through READ_MODEL_ADMIN_URL",
    ),
    ("MigrateFunction", "READ_MODEL_AUTH", "as READ_MODEL_URL: the owner signs in with the secret's password"),
    ("MigrateFunction", "READ_MODEL_STATEMENT_TIMEOUT_SECS", "as READ_MODEL_URL; migrations run without a limit"),
    ("LakeWriterFunction", "READ_MODEL_STATEMENT_TIMEOUT_SECS", "as READ_MODEL_URL"),
    ("QueryNoticeFunction", "READ_MODEL_STATEMENT_TIMEOUT_SECS", "as READ_MODEL_URL"),
    ("QueryFunction", "READ_MODEL_MAX_STATEMENT_BYTES", "its default is what RDS Proxy passes without pinning"),
    ("ProjectorFunction", "READ_MODEL_MAX_STATEMENT_BYTES", "its default is what RDS Proxy passes without pinning"),
    ("MigrateFunction", "READ_MODEL_MAX_STATEMENT_BYTES", "as READ_MODEL_URL; migrations are the crate's own files"),
];

/// (file, operation, the only caller): SDK operations in shared crates that no Lambda calls. The test checks that
/// the caller's name appears nowhere else in a Lambda's sources.
const NOT_CALLED_BY_LAMBDAS: &[(&str, &str, &str)] = &[
    ("write-store/src/dynamodb.rs", "scan", "scan_page"),
    ("write-store/src/dynamodb.rs", "create_table", "create_table"),
    ("change-feed/src/poller.rs", "describe_table", "poller"),
    ("change-feed/src/poller.rs", "describe_stream", "poller"),
    ("change-feed/src/poller.rs", "get_shard_iterator", "poller"),
    ("change-feed/src/poller.rs", "get_records", "poller"),
];

/// (function, action, reason): operations of a shared adapter linked into a function whose code path never calls
/// them. Named one by one; not granted, so a change that starts calling one fails in AWS, not silently.
const LINKED_NOT_CALLED: &[(&str, &str, &str)] = &[
    (
        "QueryFunction",
        "ses:SendEmail",
        "the query API builds its service without a mailer; notices are the notice function's",
    ),
    (
        "QueryNoticeFunction",
        "athena:StartQueryExecution",
        "the notice path reads an execution's state; it starts nothing",
    ),
    ("QueryNoticeFunction", "athena:GetQueryResults", "the notice links the result file; it does not page it"),
    ("QueryNoticeFunction", "athena:StopQueryExecution", "the notice path cancels nothing"),
    ("QueryNoticeFunction", "dynamodb:PutItem", "records are created at submission; the notice path updates them"),
];

/// Variables the Lambda runtime or the SDKs provide, and the log filter the tracing subscriber reads.
fn provided(var: &str) -> bool {
    var.starts_with("AWS_") || var == "RUST_LOG"
}

struct Function {
    name: String,
    binary: String,
    env: BTreeSet<String>,
    actions: BTreeSet<String>,
}

fn text(y: &Yaml) -> Option<&str> {
    y.as_str()
}

fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(a) => a.iter().filter_map(text).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn functions(template: &Yaml) -> Vec<Function> {
    let resources = template["Resources"].as_hash().expect("Resources");
    let mut out = Vec::new();
    for (name, resource) in resources {
        if text(&resource["Type"]) != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = text(name).expect("a resource name").to_owned();
        let binary = text(&resource["Metadata"]["BuildProperties"]["Binary"])
            .unwrap_or_else(|| panic!("{name}: Metadata.BuildProperties.Binary"))
            .to_owned();
        let props = &resource["Properties"];
        let env = props["Environment"]["Variables"]
            .as_hash()
            .map(|h| h.keys().filter_map(text).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut actions = BTreeSet::new();
        // A policy, or `!If [condition, policy, !Ref AWS::NoValue]`: the grants it may give.
        let policies = props["Policies"].as_vec().into_iter().flatten().flat_map(|p| match p {
            Yaml::Array(branches) => branches.iter().collect::<Vec<_>>(),
            other => vec![other],
        });
        for policy in policies {
            for statement in policy["Statement"].as_vec().into_iter().flatten() {
                if text(&statement["Effect"]) == Some("Allow") {
                    actions.extend(strings(&statement["Action"]));
                }
            }
        }
        // SAM grants a DynamoDB stream consumer AWSLambdaDynamoDBExecutionRole (the stream reads).
        let events = props["Events"].as_hash().map(|h| h.values().collect::<Vec<_>>()).unwrap_or_default();
        if events.iter().any(|e| text(&e["Type"]) == Some("DynamoDB")) {
            for a in ["DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"] {
                actions.insert(format!("dynamodb:{a}"));
            }
        }
        out.push(Function { name, binary, env, actions });
    }
    out
}

/// Workspace crates (directory names) and, per crate, its normal workspace dependencies and binaries.
struct Workspace {
    deps: BTreeMap<String, Vec<String>>,
    bins: BTreeMap<String, (String, PathBuf)>,
}

fn workspace() -> Workspace {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let members_line = manifest.lines().find(|l| l.starts_with("members")).expect("workspace members");
    let members: Vec<String> =
        Regex::new(r#""([^"]+)""#).unwrap().captures_iter(members_line).map(|c| c[1].to_owned()).collect();
    let mut deps = BTreeMap::new();
    let mut bins = BTreeMap::new();
    let bin = Regex::new(r#"\[\[bin\]\]\s*name = "([^"]+)"\s*path = "([^"]+)""#).unwrap();
    for m in &members {
        let text = std::fs::read_to_string(Path::new(ROOT).join(m).join("Cargo.toml")).unwrap();
        let section = text.split("[dependencies]").nth(1).unwrap_or("");
        let section = section.split("\n[").next().unwrap_or("");
        let own: Vec<String> = section
            .lines()
            .filter_map(|l| l.split('.').next())
            .filter(|d| members.iter().any(|m| m == d.trim()))
            .map(|d| d.trim().to_owned())
            .collect();
        deps.insert(m.clone(), own);
        for c in bin.captures_iter(&text) {
            bins.insert(c[1].to_owned(), (m.clone(), Path::new(m).join(&c[2])));
        }
    }
    Workspace { deps, bins }
}

fn crates_of(ws: &Workspace, krate: &str, into: &mut BTreeSet<String>) {
    if into.insert(krate.to_owned()) {
        for d in ws.deps.get(krate).into_iter().flatten() {
            crates_of(ws, d, into);
        }
    }
}

/// The function's sources (relative path, text without test modules): its binary and its crates' libraries.
fn sources(ws: &Workspace, binary: &str) -> Vec<(String, String)> {
    let (krate, bin_path) = ws.bins.get(binary).unwrap_or_else(|| panic!("no [[bin]] named {binary}"));
    let mut crates = BTreeSet::new();
    crates_of(ws, krate, &mut crates);
    let mut files = vec![bin_path.clone()];
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(Path::new(ROOT).join(dir)).into_iter().flatten().flatten() {
            let rel = dir.join(e.file_name());
            if e.path().is_dir() {
                if e.file_name() != "bin" {
                    walk(&rel, out);
                }
            } else if rel.extension().is_some_and(|x| x == "rs") && e.file_name() != "tests.rs" {
                out.push(rel);
            }
        }
    }
    for c in &crates {
        walk(&Path::new(c).join("src"), &mut files);
    }
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(Path::new(ROOT).join(&f)).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
            (f.display().to_string(), code)
        })
        .collect()
}

fn env_reads(sources: &[(String, String)]) -> BTreeMap<String, String> {
    let read = Regex::new(r#"(?:\b(?:var|var_os)\(|\benv\s*=\s*)"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)""#).unwrap();
    let mut out = BTreeMap::new();
    for (file, code) in sources {
        for c in read.captures_iter(code) {
            out.entry(c[1].to_owned()).or_insert_with(|| file.clone());
        }
    }
    out
}

/// The operations of an SDK crate, from its `src/operation/` modules in the registry.
fn operations(sdk: &str) -> BTreeSet<String> {
    let lock = std::fs::read_to_string(Path::new(ROOT).join("Cargo.lock")).unwrap();
    let version = Regex::new(&format!(r#"name = "{sdk}"\nversion = "([^"]+)""#))
        .unwrap()
        .captures(&lock)
        .unwrap_or_else(|| panic!("{sdk} in Cargo.lock"))[1]
        .to_owned();
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let mut out = BTreeSet::new();
    for registry in std::fs::read_dir(home.join("registry/src")).expect("the cargo registry").flatten() {
        let dir = registry.path().join(format!("{sdk}-{version}/src/operation"));
        for op in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if op.path().is_dir() {
                out.insert(op.file_name().to_string_lossy().into_owned());
            }
        }
    }
    assert!(!out.is_empty(), "no operations found for {sdk} {version} under {}", home.display());
    out
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// (IAM action, file) for every SDK operation called in the sources.
fn calls(sources: &[(String, String)]) -> BTreeMap<String, String> {
    // SDK crate → IAM service prefix.
    let sdks = [
        ("aws-sdk-dynamodb", "aws_sdk_dynamodb", "dynamodb"),
        ("aws-sdk-dynamodbstreams", "aws_sdk_dynamodbstreams", "dynamodb"),
        ("aws-sdk-athena", "aws_sdk_athena", "athena"),
        ("aws-sdk-sesv2", "aws_sdk_sesv2", "ses"),
        ("aws-sdk-secretsmanager", "aws_sdk_secretsmanager", "secretsmanager"),
    ];
    let call = Regex::new(r"\.([a-z][a-z0-9_]*)\(\)").unwrap();
    let mut out = BTreeMap::new();
    for (sdk, path, prefix) in sdks {
        let ops = operations(sdk);
        for (file, code) in sources {
            if !code.contains(path) {
                continue;
            }
            for c in call.captures_iter(code) {
                let op = &c[1];
                let exempt = NOT_CALLED_BY_LAMBDAS.iter().any(|(f, o, _)| file == f && op == *o);
                if ops.contains(op) && !exempt {
                    out.entry(format!("{prefix}:{}", pascal(op))).or_insert_with(|| file.clone());
                }
            }
        }
    }
    out
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(Path::new(ROOT).join("template.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

#[test]
fn every_function_of_the_template_is_a_binary_of_the_workspace() {
    let ws = workspace();
    let functions = functions(&template());
    assert!(functions.len() >= 5, "the template has {} functions", functions.len());
    for f in &functions {
        assert!(ws.bins.contains_key(&f.binary), "{}: no binary {}", f.name, f.binary);
    }
    let lambdas: BTreeSet<&str> = ws.bins.keys().map(String::as_str).filter(|b| b.ends_with("-lambda")).collect();
    let deployed: BTreeSet<&str> = functions.iter().map(|f| f.binary.as_str()).collect();
    assert_eq!(lambdas, deployed, "every Lambda binary is deployed, and only those");
}

#[test]
fn given_each_function_then_the_template_sets_what_its_code_reads_and_nothing_else() {
    let ws = workspace();
    let mut problems = Vec::new();
    for f in functions(&template()) {
        let sources = sources(&ws, &f.binary);
        let reads = env_reads(&sources);
        for (var, file) in &reads {
            let excused = UNSET_ON_PURPOSE.iter().any(|(func, v, _)| *func == f.name && v == var);
            if !f.env.contains(var) && !provided(var) && !excused {
                problems.push(format!("{}: {file} reads {var}, which the template does not set", f.name));
            }
            if f.env.contains(var) && excused {
                problems.push(format!("{}: {var} is set, yet listed as unset on purpose", f.name));
            }
        }
        for var in &f.env {
            if !reads.contains_key(var) && !provided(var) {
                problems.push(format!("{}: the template sets {var}, which no code of {} reads", f.name, f.binary));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn given_each_function_then_its_policy_grants_every_aws_operation_its_code_calls() {
    let ws = workspace();
    let mut problems = Vec::new();
    for f in functions(&template()) {
        let sources = sources(&ws, &f.binary);
        let mut needed = calls(&sources);
        // RDS IAM auth tokens are signed locally; connecting with one needs rds-db:connect.
        if f.env.contains("READ_MODEL_AUTH")
            && let Some((file, _)) = sources.iter().find(|(_, code)| code.contains("AuthTokenGenerator"))
        {
            needed.insert("rds-db:connect".into(), file.clone());
        }
        for (action, file) in needed {
            let excused = LINKED_NOT_CALLED.iter().any(|(func, a, _)| *func == f.name && *a == action);
            if f.actions.contains(&action) && excused {
                problems.push(format!("{}: {action} is granted, yet listed as never called", f.name));
            }
            if !f.actions.contains(&action) && !excused {
                problems.push(format!("{}: {file} calls {action}, which its policy does not grant", f.name));
            }
        }
        // The exempted operations' callers are really absent from this function's code.
        for (file, op, caller) in NOT_CALLED_BY_LAMBDAS {
            let used = sources.iter().any(|(f2, code)| {
                f2 != file
                    && code.lines().any(|l| {
                        let l = l.trim_start();
                        l.contains(caller) && !l.starts_with("//") && !l.starts_with("pub mod ")
                    })
            });
            if used {
                problems.push(format!("{}: {caller} (which calls {op}) is used by its code", f.name));
            }
        }
        for action in &f.actions {
            assert!(!action.contains('*'), "{}: wildcard action {action}", f.name);
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
