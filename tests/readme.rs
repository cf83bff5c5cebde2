//! The README's "Try it" block, run as a newcomer would run it: each command against the running system, its output
//! compared with the `# ...` line under it (`...` stands for anything). `localhost:3000` and `localhost:3001` are
//! the default ports; the test's runner listens on free ones, so the commands are pointed there.

mod support;

use std::process::Command;

use support::{interrupt, start};

/// A command of the block and the output the README shows for it.
struct Step {
    command: String,
    shown: String,
}

fn try_it_block() -> Vec<Step> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## Try it").nth(1).expect("README has a \"## Try it\" section");
    let block = section.split("```sh\n").nth(1).and_then(|b| b.split("```").next()).expect("a ```sh block in it");
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        if let Some(shown) = line.strip_prefix("# ") {
            let step = steps.last_mut().expect("an output line follows a command");
            step.shown = shown.to_owned();
        } else if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
        } else if !line.trim().is_empty() {
            pending.push_str(line);
            steps.push(Step { command: std::mem::take(&mut pending), shown: String::new() });
        }
    }
    steps
}

/// Whether `output` is `shown`, where each `...` in `shown` stands for any text.
fn matches(shown: &str, output: &str) -> bool {
    let parts: Vec<&str> = shown.split("...").collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !output.starts_with(first) || output.len() < first.len() + if parts.len() > 1 { last.len() } else { 0 } {
        return false;
    }
    if parts.len() == 1 {
        return output == first;
    }
    let mut rest = &output[first.len()..];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[test]
fn the_matcher_reads_three_dots_as_anything() {
    assert!(matches(r#"{"a":1,...}"#, r#"{"a":1,"b":2}"#));
    assert!(matches("[...]", "[]"));
    assert!(matches("exact", "exact"));
    assert!(!matches("exact", "exactly"));
    assert!(!matches(r#"{"a":1,...,"c":3}"#, r#"{"a":1,"b":2}"#));
}

#[test]
fn given_the_running_system_when_the_readmes_commands_are_run_then_each_shows_what_the_readme_says() {
    // Given the system as `cargo run` starts it (on free ports, in a directory of its own).
    let cwd = tempfile::tempdir().unwrap();
    let running = start(cwd.path(), &[]);
    let steps = try_it_block();
    assert!(steps.len() >= 5, "the block has its commands: {}", steps.len());

    // When each command is run as written, pointed at the runner's ports.
    for step in &steps {
        assert!(!step.shown.is_empty(), "the README shows what `{}` prints", step.command);
        let command = step
            .command
            .replace("localhost:3000", running.url.trim_start_matches("http://"))
            .replace("localhost:3001", running.query_url.trim_start_matches("http://"));
        let out = Command::new("sh").arg("-c").arg(&command).output().expect("sh runs");
        let printed = String::from_utf8_lossy(&out.stdout);

        // Then it succeeds and prints what the README shows under it.
        assert!(out.status.success(), "`{command}` failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(matches(&step.shown, printed.trim()), "`{}`\nREADME: {}\nprinted: {printed}", step.command, step.shown);
    }
    interrupt(running);
}
