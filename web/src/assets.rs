//! Static files embedded gzipped (compressed at build time by `build/gzip.rs`): sent as they are, with
//! `Content-Encoding: gzip`, to a client that accepts gzip (every browser), and inflated for one that does not.

use std::io::Read;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::negotiate::accepts;

/// One embedded file: its content type and its gzipped bytes (`include_bytes!` of `$OUT_DIR/<name>.gz`).
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub content_type: &'static str,
    pub gzip: &'static [u8],
}

/// `asset` for a request with `request`'s headers, and `cache_control`.
pub fn respond(asset: &Asset, request: &HeaderMap, cache_control: &'static str) -> Response {
    let mut response = if accepts(request, header::ACCEPT_ENCODING, &["gzip", "x-gzip", "*"]) {
        let mut r = asset.gzip.into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        let mut plain = Vec::with_capacity(asset.gzip.len() * 4);
        match flate2::read::GzDecoder::new(asset.gzip).read_to_end(&mut plain) {
            Ok(_) => plain.into_response(),
            // Only a build that embedded a broken file gets here.
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("embedded asset: {e}")).into_response(),
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap());
        h
    }

    #[tokio::test]
    async fn given_a_client_with_or_without_gzip_then_each_gets_the_same_file() {
        let asset = Asset {
            content_type: "text/css; charset=utf-8",
            gzip: include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui.css.gz")),
        };
        let file = include_bytes!("../assets/swagger-ui.css");
        let zipped = respond(&asset, &headers("gzip"), "no-cache");
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(zipped.headers()[header::VARY], "accept-encoding");
        let bytes = zipped.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.len() < file.len() / 3, "compressed: {} of {}", bytes.len(), file.len());
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut inflated).unwrap();
        assert_eq!(inflated, file);
        let plain = respond(&asset, &HeaderMap::new(), "no-cache");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(plain.into_body().collect().await.unwrap().to_bytes(), &file[..]);
    }
}
