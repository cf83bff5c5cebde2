//! The layers every request of both APIs passes, on the local server and on Lambda alike.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::envelope::error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSettings {
    /// The largest request body taken. A body declared larger (Content-Length) is answered 413 at once, unread;
    /// one that grows larger while read is cut off there and answered 413 too.
    pub max_body_bytes: usize,
    /// How long one request may take, its body's arrival included; past it, 408.
    pub request_timeout: Duration,
}

impl Default for EdgeSettings {
    fn default() -> EdgeSettings {
        EdgeSettings { max_body_bytes: 64 * 1024, request_timeout: Duration::from_secs(60) }
    }
}

/// `router` with the edge layers: tracing outermost, then the time limit, then the body limits.
pub fn edge(router: Router, settings: EdgeSettings) -> Router {
    let limit = settings.max_body_bytes;
    let timeout = settings.request_timeout;
    router
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |request: Request, next: Next| refuse_declared_oversize(limit, request, next)))
        .layer(middleware::from_fn(move |request: Request, next: Next| time_limit(timeout, request, next)))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn refuse_declared_oversize(limit: usize, request: Request<Body>, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        ),
        _ => next.run(request).await,
    }
}

async fn time_limit(timeout: Duration, request: Request<Body>, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {} s", timeout.as_secs()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(settings: EdgeSettings) -> Router {
        let echo = post(|body: axum::body::Bytes| async move { body.len().to_string() });
        let slow = post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        });
        edge(Router::new().route("/echo", echo).route("/slow", slow), settings)
    }

    async fn answer(app: Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn given_a_body_declared_larger_than_the_limit_then_413_comes_before_any_of_it_is_read() {
        // A body that would never end: only the declared length can be answered.
        let never = Body::from_stream(futures_pending());
        let request = Request::post("/echo").header("content-length", "10000000000").body(never).unwrap();
        let (status, body) =
            tokio::time::timeout(Duration::from_secs(2), answer(app(EdgeSettings::default()), request)).await.unwrap();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["code"], "payload_too_large");
    }

    #[tokio::test]
    async fn given_a_body_within_the_limit_then_it_is_read_and_one_past_it_is_refused() {
        let settings = EdgeSettings { max_body_bytes: 10, ..Default::default() };
        let ok = Request::post("/echo").body(Body::from("0123456789")).unwrap();
        let (status, _) = answer(app(settings), ok).await;
        assert_eq!(status, StatusCode::OK);
        // Without a declared length (chunked), the limit cuts it while read.
        let chunks = futures_iter(vec!["01234".into(), "567890".into()]);
        let long = Request::post("/echo").body(Body::from_stream(chunks)).unwrap();
        let (status, _) = answer(app(settings), long).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn given_a_request_past_its_time_limit_then_408_in_the_envelope() {
        let settings = EdgeSettings { request_timeout: Duration::from_millis(100), ..Default::default() };
        let (status, body) = answer(app(settings), Request::post("/slow").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"]["code"], "request_timeout");
    }

    type Chunk = Result<axum::body::Bytes, std::io::Error>;

    fn futures_pending() -> impl futures_util::Stream<Item = Chunk> {
        futures_util::stream::pending()
    }

    fn futures_iter(chunks: Vec<axum::body::Bytes>) -> impl futures_util::Stream<Item = Chunk> {
        futures_util::stream::iter(chunks.into_iter().map(Ok))
    }
}
