//! Completion notices: to the caller's own registered address (never one from a request), with the outcome, the
//! failure reason, and a download link of bounded lifetime. Locally an `.eml` file in `DATA_DIR/outbox` and a log
//! line; in AWS SESv2 from the configured sender identity.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::Utc;

use crate::engine::{Execution, State};
use crate::records::QueryRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("notice not sent: {0}")]
    Send(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, notice: &Notice) -> Result<(), NoticeError>;
}

/// The notice for a query that ended; `None` when it did not ask for one or has no address.
pub fn compose(
    record: &QueryRecord,
    execution: &Execution,
    link: Option<(&str, std::time::Duration)>,
) -> Option<Notice> {
    let to = record.address.clone().filter(|_| record.notify)?;
    let short: String = record.sql.chars().take(200).collect();
    let mut body = format!("Your query {} ended: {}.\n\nSQL: {short}\n", record.id, execution.state.as_str());
    if let Some(t) = execution.completed_at {
        body.push_str(&format!("Completed: {}\n", t.to_rfc3339()));
    }
    if let Some(ms) = execution.run_time_ms {
        body.push_str(&format!("Run time: {ms} ms\n"));
    }
    if let Some(bytes) = execution.bytes_scanned {
        body.push_str(&format!("Bytes scanned: {bytes}\n"));
    }
    match execution.state {
        State::Succeeded => {
            if let Some((url, lifetime)) = link {
                body.push_str(&format!(
                    "\nDownload the result (CSV; the link works for {} minutes):\n{url}\n",
                    lifetime.as_secs() / 60
                ));
            }
        }
        State::Failed => {
            body.push_str(&format!(
                "\nReason: {}\n",
                execution.failure.as_deref().unwrap_or("not given by the engine")
            ));
        }
        _ => {}
    }
    Some(Notice { to, subject: format!("Query {} {}", record.id, execution.state.as_str()), body })
}

/// Local notices: one RFC 5322 message per file in `dir`, and a log line.
pub struct Outbox {
    dir: PathBuf,
    from: String,
}

impl Outbox {
    pub fn new(dir: PathBuf, from: String) -> Outbox {
        Outbox { dir, from }
    }
}

/// A header value without line breaks (no header injection through a subject or an address).
fn header(value: &str) -> String {
    value.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect()
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, n: &Notice) -> Result<(), NoticeError> {
        let now = Utc::now();
        let message = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}",
            header(&self.from),
            header(&n.to),
            header(&n.subject),
            now.to_rfc2822(),
            n.body.replace('\n', "\r\n"),
        );
        let name = format!("{}-{}.eml", now.format("%Y%m%dT%H%M%S%.6fZ"), uuid::Uuid::new_v4().simple());
        let path = self.dir.join(name);
        let write = async {
            tokio::fs::create_dir_all(&self.dir).await?;
            tokio::fs::write(&path, message).await
        };
        write.await.map_err(|e| NoticeError::Send(format!("{}: {e}", path.display())))?;
        tracing::info!(to = %n.to, subject = %n.subject, file = %path.display(), "notice written to the outbox");
        Ok(())
    }
}

/// Notices through SESv2, from `from` (the configured sender identity).
pub struct Ses {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl Ses {
    pub fn new(client: aws_sdk_sesv2::Client, from: String) -> Ses {
        Ses { client, from }
    }
}

#[async_trait]
impl Mailer for Ses {
    async fn send(&self, n: &Notice) -> Result<(), NoticeError> {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let content = |s: &str| Content::builder().data(s).charset("UTF-8").build();
        let subject = content(&header(&n.subject)).map_err(|e| NoticeError::Send(e.to_string()))?;
        let text = content(&n.body).map_err(|e| NoticeError::Send(e.to_string()))?;
        let message = Message::builder().subject(subject).body(Body::builder().text(text).build()).build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&n.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| NoticeError::Send(aws_sdk_sesv2::error::DisplayErrorContext(e).to_string()))?;
        tracing::info!(to = %n.to, subject = %n.subject, "notice sent with SES");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(notify: bool) -> QueryRecord {
        QueryRecord {
            id: "q1".into(),
            requester: "dev".into(),
            sql: "SELECT 1".into(),
            state: State::Running,
            notify,
            address: Some("dev@localhost".into()),
            submitted_at: Utc::now(),
            completed_at: None,
            failure: None,
            notified_at: None,
        }
    }

    fn ended(state: State, failure: Option<&str>) -> Execution {
        Execution {
            state,
            submitted_at: None,
            completed_at: Some(Utc::now()),
            bytes_scanned: Some(10),
            run_time_ms: Some(5),
            failure: failure.map(str::to_owned),
        }
    }

    #[test]
    fn a_failure_notice_names_the_reason_and_a_success_carries_the_link() {
        let failed = compose(&record(true), &ended(State::Failed, Some("column x not found")), None).unwrap();
        assert_eq!(failed.to, "dev@localhost");
        assert!(failed.body.contains("column x not found"), "{}", failed.body);
        let ok =
            compose(&record(true), &ended(State::Succeeded, None), Some(("https://x/y", Duration::from_secs(3600))))
                .unwrap();
        assert!(ok.body.contains("https://x/y") && ok.body.contains("60 minutes"), "{}", ok.body);
        assert_eq!(compose(&record(false), &ended(State::Succeeded, None), None), None);
    }

    #[tokio::test]
    async fn the_outbox_writes_one_message_without_header_injection() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().join("outbox"), "orders@localhost".into());
        let notice = Notice {
            to: "dev@localhost\r\nBcc: x@evil".into(),
            subject: "Query q1 SUCCEEDED".into(),
            body: "hi\n".into(),
        };
        outbox.send(&notice).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(text.contains("To: dev@localhost  Bcc: x@evil\r\n"), "{text}");
        assert!(!text.contains("\r\nBcc:"));
    }
}
