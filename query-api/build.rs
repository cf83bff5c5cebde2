//! Compresses the dashboard's files into OUT_DIR: the query API embeds (`src/dashboard.rs` names which) and sends
//! them gzipped.

fn main() {
    let dir = "assets/dashboard";
    println!("cargo:rerun-if-changed={dir}");
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {dir}: {e}"));
    for entry in entries.flatten().filter(|e| e.path().is_file()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        gzip::gzip(&format!("{dir}/{name}"), &name);
    }
}

#[path = "../web/build/gzip.rs"]
mod gzip;
