//! The ad-hoc query service: the guard, then the engine; a record per query, readable only by its requester;
//! paging tokens bound to their query; notices when a query ends.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;

use crate::engine::{Download, Engine, EngineError, Execution, Page, State};
use crate::error::AdhocError;
use crate::guard::{self, GuardConfig};
use crate::notice::{self, Mailer};
use crate::records::{QueryRecord, Records};

/// Who is calling: the identity the API's authorizer established (or the local dev identity), and the address
/// registered for it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: String,
    pub email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub guard: GuardConfig,
    /// Lifetime of download links in notices (never more than the result retention).
    pub link_lifetime: Duration,
    /// Where links to this API point when the engine serves downloads itself (locally: the query API's URL).
    pub link_base: Option<String>,
}

pub struct Service {
    engine: Arc<dyn Engine>,
    records: Arc<dyn Records>,
    /// Notices sent by this process when the engine reports the end itself; `None` where another function sends
    /// them (AWS: the notice Lambda on Athena's EventBridge events).
    mailer: Option<Arc<dyn Mailer>>,
    settings: ServiceSettings,
}

/// The largest page.
pub const MAX_RESULTS: u32 = 1_000;

impl Service {
    pub fn new(
        engine: Arc<dyn Engine>,
        records: Arc<dyn Records>,
        mailer: Option<Arc<dyn Mailer>>,
        settings: ServiceSettings,
    ) -> Service {
        Service { engine, records, mailer, settings }
    }

    pub fn guard(&self) -> &GuardConfig {
        &self.settings.guard
    }

    pub fn engine_name(&self) -> &'static str {
        self.engine.name()
    }

    /// Checks and starts `sql` for `caller`.
    pub async fn submit(
        self: &Arc<Self>,
        caller: &Identity,
        sql: &str,
        notify: bool,
    ) -> Result<QueryRecord, AdhocError> {
        let checked = guard::check(sql, &self.settings.guard)?;
        if notify && caller.email.is_none() {
            return Err(AdhocError::bad(
                "no_registered_address",
                "notify is true but no address is registered for the caller; notices go only to registered addresses",
            ));
        }
        let id = self.engine.start(&checked.sql).await?;
        let record = QueryRecord {
            id: id.clone(),
            requester: caller.principal.clone(),
            sql: sql.to_owned(),
            state: State::Queued,
            notify,
            address: if notify { caller.email.clone() } else { None },
            submitted_at: Utc::now(),
            completed_at: None,
            failure: None,
            notified_at: None,
        };
        if let Err(e) = self.records.insert(&record).await {
            // Without a record nobody could read or be told about it: stop it.
            let _ = self.engine.cancel(&id).await;
            return Err(e.into());
        }
        tracing::info!(query = %id, requester = %caller.principal, engine = self.engine.name(), notify, "query submitted");
        let service = self.clone();
        tokio::spawn(async move {
            if let Some(end) = service.engine.wait(&id).await {
                service.finished(&id, &end).await;
            }
        });
        Ok(record)
    }

    /// The caller's own record; anyone else's is "not found", as if it did not exist.
    async fn own(&self, caller: &Identity, id: &str) -> Result<QueryRecord, AdhocError> {
        match self.records.get(id).await? {
            Some(r) if r.requester == caller.principal => Ok(r),
            _ => Err(AdhocError::NotFound(format!("no query {id:?} of yours"))),
        }
    }

    /// The record and the engine's view of the execution, the record brought up to date.
    pub async fn status(&self, caller: &Identity, id: &str) -> Result<(QueryRecord, Execution), AdhocError> {
        let mut record = self.own(caller, id).await?;
        let execution = self.engine.status(id).await?;
        if execution.state != record.state && !record.state.is_final() {
            let completed = execution.completed_at.or_else(|| execution.state.is_final().then(Utc::now));
            self.records.set_state(id, execution.state, completed, execution.failure.as_deref()).await?;
            record.state = execution.state;
        }
        Ok((record, execution))
    }

    /// One page of the result. `token` is one this API issued for this query.
    pub async fn results(
        &self,
        caller: &Identity,
        id: &str,
        token: Option<&str>,
        max: u32,
    ) -> Result<Page, AdhocError> {
        self.own(caller, id).await?;
        let engine_token = token.map(|t| unwrap_token(id, t)).transpose()?;
        let mut page = self.engine.results(id, engine_token.as_deref(), max.clamp(1, MAX_RESULTS)).await?;
        page.next = page.next.map(|t| wrap_token(id, &t));
        Ok(page)
    }

    pub async fn download(&self, caller: &Identity, id: &str) -> Result<Download, AdhocError> {
        self.own(caller, id).await?;
        Ok(self.engine.download(id, self.settings.link_lifetime).await?)
    }

    pub async fn cancel(&self, caller: &Identity, id: &str) -> Result<(QueryRecord, Execution), AdhocError> {
        self.own(caller, id).await?;
        self.engine.cancel(id).await?;
        self.status(caller, id).await
    }

    /// A query ended (reported by the engine in this process).
    async fn finished(&self, id: &str, end: &Execution) {
        let Some(mailer) = &self.mailer else { return };
        if let Err(error) =
            finish(self.engine.as_ref(), self.records.as_ref(), mailer.as_ref(), &self.settings, id, end).await
        {
            tracing::error!(query = %id, %error, "could not record the end of a query or send its notice");
        }
    }
}

/// Records the end of query `id` and, if it asked for one, sends its notice once: the path shared by the local
/// engine and the notice Lambda. Returns whether a notice was sent.
pub async fn finish(
    engine: &dyn Engine,
    records: &dyn Records,
    mailer: &dyn Mailer,
    settings: &ServiceSettings,
    id: &str,
    end: &Execution,
) -> Result<bool, AdhocError> {
    let Some(record) = records.get(id).await? else {
        tracing::info!(query = %id, "no record for this execution (not submitted through the API); no notice");
        return Ok(false);
    };
    records.set_state(id, end.state, end.completed_at.or_else(|| Some(Utc::now())), end.failure.as_deref()).await?;
    if !record.notify || record.address.is_none() || !end.state.is_final() {
        return Ok(false);
    }
    let link = if end.state == State::Succeeded {
        match engine.download(id, settings.link_lifetime).await {
            Ok(Download::Redirect(url)) => Some(url),
            Ok(Download::Csv(_)) => settings.link_base.as_ref().map(|base| format!("{base}/queries/{id}/download")),
            Err(e) => {
                tracing::warn!(query = %id, error = %e, "no download link for the notice");
                None
            }
        }
    } else {
        None
    };
    let Some(notice) = notice::compose(&record, end, link.as_deref().map(|l| (l, settings.link_lifetime))) else {
        return Ok(false);
    };
    if !records.claim_notice(id, Utc::now()).await? {
        return Ok(false);
    }
    mailer.send(&notice).await.map_err(|e| AdhocError::Unavailable(e.to_string()))?;
    Ok(true)
}

/// Page tokens name their query, so one from another query (or made up) is refused before the engine sees it.
fn wrap_token(id: &str, engine_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{id}\n{engine_token}"))
}

fn unwrap_token(id: &str, token: &str) -> Result<String, AdhocError> {
    let bad = || AdhocError::bad("invalid_next_token", "nextToken was not issued for this query");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    match text.split_once('\n') {
        Some((owner, inner)) if owner == id && !inner.is_empty() => Ok(inner.to_owned()),
        _ => Err(bad()),
    }
}

impl From<EngineError> for AdhocError {
    fn from(e: EngineError) -> AdhocError {
        match e {
            EngineError::NotFound => AdhocError::NotFound("no such query execution".into()),
            EngineError::BadToken => AdhocError::bad("invalid_next_token", "nextToken is not valid for this query"),
            EngineError::NotReady(state) => AdhocError::NotReady(state),
            EngineError::Unavailable(cause) => AdhocError::Unavailable(cause),
        }
    }
}

impl Service {
    /// Handles one EventBridge "Athena Query State Change" event: a query that ended gets its record updated and,
    /// if it asked, its notice. Other states are ignored. An error makes Lambda retry the event.
    pub async fn on_state_change_event(
        &self,
        mailer: &dyn Mailer,
        event: &serde_json::Value,
    ) -> Result<bool, AdhocError> {
        let detail = event.get("detail").ok_or_else(|| AdhocError::bad("invalid_event", "no detail"))?;
        let id = detail
            .get("queryExecutionId")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| AdhocError::bad("invalid_event", "no detail.queryExecutionId"))?;
        let state = detail.get("currentState").and_then(serde_json::Value::as_str).and_then(State::parse);
        if !state.is_some_and(State::is_final) {
            return Ok(false);
        }
        let end = self.engine.status(id).await?;
        finish(self.engine.as_ref(), self.records.as_ref(), mailer, &self.settings, id, &end).await
    }
}

/// The notice Lambda's handler.
pub async fn on_state_change(
    service: &Service,
    mailer: &dyn Mailer,
    event: &serde_json::Value,
) -> Result<bool, AdhocError> {
    service.on_state_change_event(mailer, event).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_accepted_only_for_its_own_query() {
        let token = wrap_token("q1", "1000");
        assert_eq!(unwrap_token("q1", &token).unwrap(), "1000");
        assert!(unwrap_token("q2", &token).is_err());
        assert!(unwrap_token("q1", "not base64!").is_err());
        assert!(unwrap_token("q1", &URL_SAFE_NO_PAD.encode("q1\n")).is_err());
    }
}
