//! The CloudFormation custom resource protocol: one request in, one response PUT to its pre-signed `ResponseURL`.
//! Create and Update run the work; Delete leaves the database as it is (its data outlives this resource). The
//! response says what happened: the work's error as FAILED with the reason, and FAILED before the function's
//! deadline when the work has not finished, so a stack never waits an hour for an answer that will not come.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest as Request;
use serde::Serialize;

use crate::MigratorError;

/// The physical id of the one read model a stack migrates; the same on every Update, so CloudFormation never
/// replaces (and so never deletes) it.
pub const PHYSICAL_ID: &str = "orders-read-model";

/// CloudFormation caps the whole response at 4,096 bytes.
const REASON_MAX: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Success,
    Failed,
}

/// The body CloudFormation expects at `ResponseURL`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub no_echo: bool,
    pub data: BTreeMap<String, String>,
}

struct Common<'a> {
    kind: &'static str,
    response_url: &'a str,
    stack_id: &'a str,
    request_id: &'a str,
    logical_resource_id: &'a str,
    physical_resource_id: Option<&'a str>,
}

/// The fields every request has; `None` for a request type this crate does not know (the enum is open).
fn common(request: &Request) -> Option<Common<'_>> {
    Some(match request {
        Request::Create(r) => Common {
            kind: "Create",
            response_url: &r.response_url,
            stack_id: &r.stack_id,
            request_id: &r.request_id,
            logical_resource_id: &r.logical_resource_id,
            physical_resource_id: None,
        },
        Request::Update(r) => Common {
            kind: "Update",
            response_url: &r.response_url,
            stack_id: &r.stack_id,
            request_id: &r.request_id,
            logical_resource_id: &r.logical_resource_id,
            physical_resource_id: Some(&r.physical_resource_id),
        },
        Request::Delete(r) => Common {
            kind: "Delete",
            response_url: &r.response_url,
            stack_id: &r.stack_id,
            request_id: &r.request_id,
            logical_resource_id: &r.logical_resource_id,
            physical_resource_id: Some(&r.physical_resource_id),
        },
        _ => return None,
    })
}

fn known(request: &Request) -> Result<Common<'_>, MigratorError> {
    common(request).ok_or_else(|| MigratorError::Config(format!("unknown custom resource request: {request:?}")))
}

fn truncated(reason: String) -> String {
    if reason.len() <= REASON_MAX {
        return reason;
    }
    let mut end = REASON_MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &reason[..end])
}

/// The response for `request` given the work's outcome (its `Data`, or the reason it failed).
pub fn response(
    request: &Request,
    outcome: Result<BTreeMap<String, String>, String>,
) -> Result<Response, MigratorError> {
    let c = known(request)?;
    let (status, reason, data) = match outcome {
        Ok(data) => (Status::Success, None, data),
        Err(reason) => (Status::Failed, Some(truncated(reason)), BTreeMap::new()),
    };
    Ok(Response {
        status,
        reason,
        // A failed Create keeps the fixed id too: CloudFormation then sends a Delete for it, which is a no-op.
        physical_resource_id: c.physical_resource_id.unwrap_or(PHYSICAL_ID).to_owned(),
        stack_id: c.stack_id.to_owned(),
        request_id: c.request_id.to_owned(),
        logical_resource_id: c.logical_resource_id.to_owned(),
        no_echo: false,
        data,
    })
}

/// Runs `work` for a Create or Update (not for a Delete), bounded by `deadline` less `margin`, and PUTs the
/// response to the request's `ResponseURL` (three tries). Ok once CloudFormation has the response, whatever it
/// says; Err when it could not be delivered, so the invocation fails and is logged as failed.
pub async fn handle<W, F>(
    request: &Request,
    deadline: SystemTime,
    margin: Duration,
    http: &reqwest::Client,
    work: W,
) -> Result<Response, MigratorError>
where
    W: FnOnce() -> F,
    F: Future<Output = Result<BTreeMap<String, String>, MigratorError>>,
{
    let c = known(request)?;
    let outcome = if matches!(request, Request::Delete(_)) {
        tracing::info!("Delete: the read model is left as it is");
        Ok(BTreeMap::new())
    } else {
        let budget = deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(margin);
        match tokio::time::timeout(budget, work()).await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("{} did not finish within the function's {} s", c.kind, budget.as_secs())),
        }
    };
    match &outcome {
        Ok(_) => tracing::info!(kind = c.kind, "custom resource succeeded"),
        Err(reason) => tracing::error!(kind = c.kind, %reason, "custom resource failed"),
    }
    let body = response(request, outcome)?;
    send(http, c.response_url, &body).await?;
    Ok(body)
}

async fn send(http: &reqwest::Client, url: &str, body: &Response) -> Result<(), MigratorError> {
    let json = serde_json::to_vec(body).map_err(|e| MigratorError::Respond(e.to_string()))?;
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
        }
        // The URL is pre-signed without a content type: none is sent.
        match http.put(url).header("content-length", json.len()).body(json.clone()).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("{} from the response URL", r.status()),
            Err(e) => last = e.to_string(),
        }
        tracing::warn!(attempt, error = %last, "response not delivered");
    }
    Err(MigratorError::Respond(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: &str) -> Request {
        let physical = if kind == "Create" { "" } else { r#","PhysicalResourceId":"orders-read-model""# };
        serde_json::from_str(&format!(
            r#"{{"RequestType":"{kind}","ResponseURL":"http://127.0.0.1:9/r","StackId":"arn:stack","RequestId":"req-1",
                "ResourceType":"Custom::ReadModelMigrations","LogicalResourceId":"ReadModelMigrations",
                "ResourceProperties":{{"ServiceToken":"arn:fn"}},"OldResourceProperties":{{}}{physical}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn given_an_outcome_then_the_response_names_the_request_and_keeps_one_physical_id() {
        let ok = response(&request("Create"), Ok(BTreeMap::from([("Dialect".into(), "postgres".into())]))).unwrap();
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(json["Status"], "SUCCESS");
        assert_eq!(json["PhysicalResourceId"], PHYSICAL_ID);
        assert_eq!(json["RequestId"], "req-1");
        assert_eq!(json["StackId"], "arn:stack");
        assert_eq!(json["LogicalResourceId"], "ReadModelMigrations");
        assert_eq!(json["Data"]["Dialect"], "postgres");
        assert!(json.get("Reason").is_none());

        let failed = response(&request("Update"), Err("x".repeat(10_000))).unwrap();
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["Status"], "FAILED");
        assert_eq!(json["PhysicalResourceId"], PHYSICAL_ID);
        assert!(serde_json::to_vec(&failed).unwrap().len() < 4_096, "within CloudFormation's limit");
    }
}
