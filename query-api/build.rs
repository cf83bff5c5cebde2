//! Compresses the dashboard's files into OUT_DIR: the query API embeds and sends them gzipped.

fn main() {
    for name in
        ["index.html", "app.js", "views.mjs", "logic.mjs", "app.css", "uPlot.iife.min.js", "uPlot.min.css", "icon.svg"]
    {
        gzip::gzip(&format!("assets/dashboard/{name}"), name);
    }
}

#[path = "../web/build/gzip.rs"]
mod gzip;
