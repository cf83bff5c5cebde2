//! One embedded query, in a process of its own (`adhoc_embedded::worker`).

fn main() -> std::process::ExitCode {
    adhoc_embedded::worker::main()
}
