//! The build-time half of `web::assets`: a file of the crate gzipped into OUT_DIR. Included by path in the build
//! scripts of the crates that embed assets (web and query-api): a build script cannot depend on its own crate.

use std::io::Write;
use std::path::PathBuf;

/// `source` (relative to the crate) gzipped at the best level into `$OUT_DIR/<name>.gz`; rebuilt when it changes.
pub fn gzip(source: &str, name: &str) {
    println!("cargo:rerun-if-changed={source}");
    let bytes = std::fs::read(source).unwrap_or_else(|e| panic!("cannot read {source}: {e}"));
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&bytes).expect("gzip in memory");
    let gz = encoder.finish().expect("gzip in memory");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set for build scripts"))
        .join(format!("{name}.gz"));
    std::fs::write(&out, gz).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
