//! Compresses the vendored Swagger UI into OUT_DIR: the APIs embed and send it gzipped (1.7 MB as files, about a
//! quarter of that compressed), which keeps each Lambda's bootstrap within its size budget.

fn main() {
    for name in ["swagger-ui-bundle.js", "swagger-ui.css"] {
        gzip::gzip(&format!("assets/{name}"), name);
    }
}

#[path = "build/gzip.rs"]
mod gzip;
