//! Whether the projection keeps up: `/projection/status` (per source, the lag against the newest change the feed
//! holds, and the changes set aside) and `/health` (the read model answers; `degraded` when a source lags past the
//! threshold or a change is set aside). What the feed holds comes from a `FeedWatch`: the embedded change log
//! itself in the local runner, what stream consumers recorded when a batch did not go through otherwise.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::QueryError;
use crate::state::AppState;

/// One change-feed source of `GET /projection/status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// `embedded`, a stream ARN (Lambda), or `<stream ARN>#<shard>` (poller).
    pub source: String,
    /// The last applied change's sequence number; null when nothing is applied yet.
    pub sequence: Option<String>,
    /// When that change happened in the write model (RFC 3339, UTC).
    pub last_changed_at: Option<String>,
    /// When it was applied to the read model.
    pub applied_at: Option<String>,
    /// The newest change the feed holds, as far as known (null: none known beyond the applied one).
    pub head_sequence: Option<String>,
    /// Changes not yet applied (with `behindAtLeast`, a lower bound: a stream consumer knows the batch it holds).
    pub behind: u64,
    pub behind_at_least: bool,
    /// How old the oldest change not yet applied is: 0 when none waits. Grows while the projection stalls.
    #[schema(example = 0.0)]
    pub lag_seconds: f64,
    /// How long the last applied change took to reach the read model.
    pub apply_latency_seconds: Option<f64>,
    /// How old the newest projected change is (grows while nothing is written, too).
    pub seconds_since_last_change: Option<f64>,
}

/// One change set aside.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterStatus {
    pub source: String,
    pub sequence: String,
    pub order_id: Option<String>,
    pub reason: String,
    pub failed_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLettersStatus {
    /// Changes set aside because the read model cannot apply them (`orders dead-letters` lists and retries them).
    pub count: u64,
    /// The newest ten.
    pub newest: Vec<DeadLetterStatus>,
}

/// Why the projection is degraded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reason {
    /// `projection_lagging`, `changes_set_aside` or `rebuild_unfinished`.
    #[schema(example = "projection_lagging")]
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    /// `ok`, or `degraded` (see `reasons`).
    #[schema(example = "ok")]
    pub status: String,
    pub reasons: Vec<Reason>,
    /// A source lagging more than this is degraded (`PROJECTION_LAG_THRESHOLD_SECS`).
    pub lag_threshold_seconds: u64,
    pub sources: Vec<SourceStatus>,
    pub dead_letters: DeadLettersStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`: the read model answers and keeps up; `degraded`: it answers, but a source lags past the threshold or
    /// a change is set aside (`reasons` says which). A read model that does not answer is a 503.
    #[schema(example = "ok")]
    pub status: String,
    pub reasons: Vec<Reason>,
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1_000.0
}

fn time(at: &DateTime<Utc>) -> String {
    domain::order::format_time(at)
}

/// The whole status, read now.
pub(crate) async fn read_status(state: &AppState) -> Result<ProjectionStatus, QueryError> {
    let now = Utc::now();
    let threshold = state.settings.lag_threshold;
    let applied = state.model.positions().await?;
    let backlogs = state.feed.backlogs(&applied).await.map_err(QueryError::Unavailable)?;
    let letters = state.model.dead_letters(10).await?;
    let unfinished = state.model.unfinished_rebuild().await?;
    let mut sources: Vec<SourceStatus> = applied
        .iter()
        .map(|p| SourceStatus {
            source: p.source.clone(),
            sequence: Some(p.sequence.as_str().to_owned()),
            last_changed_at: Some(time(&p.last_changed_at)),
            applied_at: Some(time(&p.applied_at)),
            head_sequence: None,
            behind: 0,
            behind_at_least: false,
            lag_seconds: 0.0,
            apply_latency_seconds: Some(secs(p.applied_at - p.last_changed_at)),
            seconds_since_last_change: Some(secs(now - p.last_changed_at)),
        })
        .collect();
    for b in backlogs {
        let index = match sources.iter().position(|s| s.source == b.source) {
            Some(i) => i,
            None => {
                sources.push(SourceStatus {
                    source: b.source.clone(),
                    sequence: None,
                    last_changed_at: None,
                    applied_at: None,
                    head_sequence: None,
                    behind: 0,
                    behind_at_least: false,
                    lag_seconds: 0.0,
                    apply_latency_seconds: None,
                    seconds_since_last_change: None,
                });
                sources.len() - 1
            }
        };
        let s = &mut sources[index];
        s.head_sequence = b.head.as_ref().map(|(seq, _)| seq.as_str().to_owned());
        s.behind = b.behind;
        s.behind_at_least = b.at_least;
        s.lag_seconds = b.oldest_pending.map(|at| secs(now - at).max(0.0)).unwrap_or(0.0);
    }
    sources.sort_by(|a, b| a.source.cmp(&b.source));
    let mut reasons = Vec::new();
    for s in sources.iter().filter(|s| s.lag_seconds > threshold.as_secs_f64()) {
        reasons.push(Reason {
            code: "projection_lagging".into(),
            message: format!(
                "{} is {:.0} s behind ({}{} changes waiting; threshold {} s)",
                s.source,
                s.lag_seconds,
                if s.behind_at_least { "at least " } else { "" },
                s.behind,
                threshold.as_secs()
            ),
        });
    }
    if letters.count > 0 {
        reasons.push(Reason {
            code: "changes_set_aside".into(),
            message: format!(
                "{} change(s) could not be applied and are set aside; see /projection/status and `orders dead-letters`",
                letters.count
            ),
        });
    }
    if let Some(read_model::Target::Unfinished { source, started_at }) = unfinished {
        reasons.push(Reason {
            code: "rebuild_unfinished".into(),
            message: format!(
                "a rebuild from {source} started {} has not finished: this read model holds part of the orders at \
                 most; run `orders rebuild` again or read the model in use",
                time(&started_at)
            ),
        });
    }
    Ok(ProjectionStatus {
        status: if reasons.is_empty() { "ok" } else { "degraded" }.into(),
        reasons,
        lag_threshold_seconds: threshold.as_secs(),
        sources,
        dead_letters: DeadLettersStatus {
            count: letters.count,
            newest: letters
                .newest
                .into_iter()
                .map(|l| DeadLetterStatus {
                    source: l.source,
                    sequence: l.sequence.as_str().to_owned(),
                    order_id: l.order_id,
                    reason: l.reason,
                    failed_at: time(&l.failed_at),
                })
                .collect(),
        },
    })
}

#[utoipa::path(
    get,
    path = "/projection/status",
    description = "Per change-feed source: the last applied position, the newest change the feed holds, how many \
                   changes wait and how old the oldest of them is; and the changes set aside.",
    responses(
        (status = 200, description = "The status", body = ProjectionStatus,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 500, description = "Internal error", body = web::envelope::ErrorBody),
        (status = 503, description = "The read model is unavailable", body = web::envelope::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn status(State(state): State<AppState>) -> Result<Response, QueryError> {
    let status = read_status(&state).await?;
    let mut response = Json(status).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/health",
    description = "Whether the read model answers (503 when it does not), and whether the projection keeps up: \
                   `degraded` when a source lags past the threshold or a change is set aside.",
    responses(
        (status = 200, description = "It answers; `status` says whether it keeps up", body = Health,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 500, description = "Internal error", body = web::envelope::ErrorBody),
        (status = 503, description = "It does not answer", body = web::envelope::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Result<Response, QueryError> {
    let status = read_status(&state).await?;
    let mut response = Json(Health { status: status.status, reasons: status.reasons }).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
