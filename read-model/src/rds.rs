//! Aurora through RDS Proxy with IAM authentication: a 15-minute auth token (a SigV4-presigned `connect` URL,
//! service `rds-db`) stands in for the password, so connections never hold a stored secret. Tokens only ever
//! travel over TLS; the read model refreshes them well before they expire.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::dialect::Dialect;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// How long a token is valid; RDS caps it at 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// How often a pool gets a fresh token: well inside the lifetime, so new connections never present an old one.
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);

/// The auth token for `user` at `host:port`, signed at `at` with `credentials` in `region`.
pub fn auth_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    credentials: &Credentials,
    at: SystemTime,
) -> Result<String, String> {
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let user: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
    let url = format!("https://{host}:{port}/?Action=connect&DBUser={user}");
    let signable = SignableRequest::new("GET", url.as_str(), std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    let mut request = http::Request::builder().uri(url.as_str()).body(()).map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut request);
    let signed = request.uri().to_string();
    Ok(signed.strip_prefix("https://").unwrap_or(&signed).to_owned())
}

/// Where IAM tokens come from: the process's AWS credentials (on Lambda, its role) in `region`.
#[derive(Clone, Debug)]
pub struct IamAuth {
    pub region: String,
    pub credentials: SharedCredentialsProvider,
}

/// Checks that `url` may carry an IAM token: PostgreSQL or MySQL with TLS required (on MySQL the token travels
/// through the cleartext plugin, so TLS is what protects it).
pub fn check_url(url: &url::Url, dialect: Dialect) -> Result<(), String> {
    match dialect {
        Dialect::Postgres => {
            let mode = url.query_pairs().find(|(k, _)| k == "sslmode" || k == "ssl-mode").map(|(_, v)| v.into_owned());
            match mode.as_deref() {
                Some("require" | "verify-ca" | "verify-full") => Ok(()),
                _ => Err("READ_MODEL_AUTH=iam sends a token as the password: READ_MODEL_URL must require TLS \
                          (sslmode=require, verify-ca or verify-full)"
                    .into()),
            }
        }
        Dialect::MySql => {
            let mode =
                url.query_pairs().find(|(k, _)| k == "ssl-mode" || k == "sslmode").map(|(_, v)| v.to_uppercase());
            match mode.as_deref() {
                Some("REQUIRED" | "VERIFY_CA" | "VERIFY_IDENTITY") => Ok(()),
                _ => Err("READ_MODEL_AUTH=iam sends a token in clear text through MySQL's cleartext plugin: \
                          READ_MODEL_URL must require TLS (ssl-mode=REQUIRED, VERIFY_CA or VERIFY_IDENTITY)"
                    .into()),
            }
        }
        Dialect::Sqlite => Err("READ_MODEL_AUTH=iam applies to Aurora through RDS Proxy, not SQLite".into()),
    }
}

/// How the read model authenticates: the password in `READ_MODEL_URL`, or an RDS IAM token (`READ_MODEL_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Auth {
    /// The password in `READ_MODEL_URL`.
    Password,
    /// RDS IAM tokens from the process's AWS credentials and region.
    Iam,
}

/// `url` with a fresh token as its password.
pub async fn url_with_token(url: &url::Url, iam: &IamAuth) -> Result<String, String> {
    let host = url.host_str().ok_or("READ_MODEL_URL has no host")?;
    let port = url.port().unwrap_or(if url.scheme().starts_with("mysql") { 3306 } else { 5432 });
    let user = url.username();
    if user.is_empty() {
        return Err("READ_MODEL_URL names no user for the IAM token".into());
    }
    let credentials = iam.credentials.provide_credentials().await.map_err(|e| format!("AWS credentials: {e}"))?;
    let token = auth_token(host, port, user, &iam.region, &credentials, SystemTime::now())?;
    let mut with = url.clone();
    with.set_password(Some(&token)).map_err(|()| "READ_MODEL_URL cannot carry a password".to_owned())?;
    Ok(with.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_needs_tls_on_postgres_and_mysql() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_url(&url("postgres://projector@proxy:5432/orders?sslmode=require"), Dialect::Postgres).is_ok());
        assert!(check_url(&url("postgres://projector@proxy:5432/orders"), Dialect::Postgres).is_err());
        assert!(check_url(&url("postgres://projector@proxy/orders?sslmode=prefer"), Dialect::Postgres).is_err());
        assert!(check_url(&url("mysql://projector@proxy/orders?ssl-mode=REQUIRED"), Dialect::MySql).is_ok());
        assert!(check_url(&url("mysql://projector@proxy/orders?ssl-mode=verify_identity"), Dialect::MySql).is_ok());
        for refused in ["mysql://projector@proxy/orders", "mysql://projector@proxy/orders?ssl-mode=PREFERRED"] {
            let err = check_url(&url(refused), Dialect::MySql).unwrap_err();
            assert!(err.contains("must require TLS"), "{refused}: {err}");
        }
        assert!(check_url(&url("sqlite://x.db"), Dialect::Sqlite).is_err());
    }

    #[tokio::test]
    async fn the_token_becomes_the_urls_password_and_tls_stays_required() {
        let iam = IamAuth {
            region: "eu-west-1".into(),
            credentials: SharedCredentialsProvider::new(Credentials::new("AKID", "secret", None, None, "test")),
        };
        let base = url::Url::parse("postgres://projector@proxy.example:5432/orders?sslmode=require").unwrap();
        let with = url::Url::parse(&url_with_token(&base, &iam).await.unwrap()).unwrap();
        let password = percent_decode(with.password().unwrap());
        assert!(password.starts_with("proxy.example:5432/?Action=connect&DBUser=projector&"), "{password}");
        assert!(password.contains("X-Amz-Expires=900"));
        assert_eq!(with.query(), Some("sslmode=require"));
        assert_eq!((with.username(), with.host_str(), with.path()), ("projector", Some("proxy.example"), "/orders"));
    }

    /// Undoes the URL's percent-encoding of the password, as the database driver does before sending it.
    fn percent_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// Produced by botocore's `generate_db_auth_token` (the AWS SDK for Python) with these credentials, host, port,
    /// user and region at 2026-11-22T00:00:00Z: the reference implementation, so equality proves the signature.
    const BOTOCORE: &str = "orders-proxy.proxy-abc.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=projector\
        &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261122%2Feu-west-1%2Frds-db%2Faws4_request\
        &X-Amz-Date=20261122T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
        &X-Amz-Signature=a176598a91ae61d8a92f2146e1bed08a769710a8b8b8ecc822f6a77f0cd4e89a";

    #[test]
    fn the_token_equals_the_aws_sdks_for_the_same_inputs() {
        let credentials =
            Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_305_600); // 2026-11-22T00:00:00Z
        let token = auth_token(
            "orders-proxy.proxy-abc.eu-west-1.rds.amazonaws.com",
            5432,
            "projector",
            "eu-west-1",
            &credentials,
            at,
        )
        .unwrap();
        assert_eq!(token, BOTOCORE);
    }
}
