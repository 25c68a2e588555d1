//! Object storage failures as one sentence each, with no credential in them.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// Settings that cannot work (plain HTTP to a remote host, an unusable endpoint).
    #[error("{0}")]
    Config(String),
    #[error("cannot reach the object store at {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("bucket '{bucket}' does not exist at {endpoint}")]
    NoBucket { bucket: String, endpoint: String },
    #[error("{url}: access denied ({detail}); check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, web identity, or the instance role) and the bucket policy")]
    Denied { url: String, detail: String },
    #[error("{url}: no such object")]
    NotFound { url: String },
    /// The object changed between listing and reading (its ETag moved on).
    #[error("{url}: the object changed while it was read; run again to read its new version")]
    Changed { url: String },
    #[error("{url}: {detail}")]
    Other { url: String, detail: String },
}

/// What identifies the failed request in a message.
pub struct Context<'a> {
    pub url: &'a str,
    pub bucket: &'a str,
    pub endpoint: &'a str,
    /// Credential values to keep out of every message.
    pub secrets: &'a [String],
}

impl ObjectError {
    /// The object store error an `io::Error` of an [`super::ObjectReader`] carries, if any.
    pub fn from_io(e: &std::io::Error) -> Option<&ObjectError> {
        e.get_ref()?.downcast_ref::<ObjectError>()
    }

    pub fn from_store(e: &object_store::Error, cx: &Context<'_>) -> ObjectError {
        let text = scrub(&chain(e), cx.secrets);
        let code = xml_field(&text, "Code");
        let message = xml_field(&text, "Message");
        let detail = match (&code, &message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            _ => shorten(&text),
        };
        match e {
            object_store::Error::NotFound { .. } if code.as_deref() == Some("NoSuchBucket") => {
                ObjectError::NoBucket {
                    bucket: cx.bucket.to_owned(),
                    endpoint: cx.endpoint.to_owned(),
                }
            }
            object_store::Error::NotFound { .. } => ObjectError::NotFound {
                url: cx.url.to_owned(),
            },
            object_store::Error::Precondition { .. } | object_store::Error::NotModified { .. } => {
                ObjectError::Changed {
                    url: cx.url.to_owned(),
                }
            }
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => ObjectError::Denied {
                url: cx.url.to_owned(),
                detail,
            },
            _ if code.as_deref() == Some("NoSuchBucket") => ObjectError::NoBucket {
                bucket: cx.bucket.to_owned(),
                endpoint: cx.endpoint.to_owned(),
            },
            _ if matches!(
                code.as_deref(),
                Some(
                    "AccessDenied"
                        | "InvalidAccessKeyId"
                        | "SignatureDoesNotMatch"
                        | "ExpiredToken"
                )
            ) =>
            {
                ObjectError::Denied {
                    url: cx.url.to_owned(),
                    detail,
                }
            }
            // No response at all: the endpoint is wrong or down.
            _ if code.is_none() && !text.contains("status code") => ObjectError::Unreachable {
                endpoint: cx.endpoint.to_owned(),
                detail: root_cause(e, cx.secrets),
            },
            _ => ObjectError::Other {
                url: cx.url.to_owned(),
                detail,
            },
        }
    }
}

/// The error and its sources, joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The innermost cause (`Connection refused (os error 111)`), which says what went wrong.
fn root_cause(e: &dyn std::error::Error, secrets: &[String]) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    shorten(&scrub(&last, secrets))
}

/// `<Code>AccessDenied</Code>` → `AccessDenied`.
fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim().to_owned()).filter(|s| !s.is_empty())
}

/// Every credential value replaced. S3 puts the access key id and the string it expected to be
/// signed into some error bodies (SignatureDoesNotMatch); none of it is shown.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "[credential]");
    }
    out
}

fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() <= MAX {
        return one_line;
    }
    let mut cut = MAX;
    while !one_line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &one_line[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_s3_code_and_never_a_credential() {
        let body = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><AWSAccessKeyId>AKIAEXAMPLEKEY</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256 sekrit</StringToSign></Error>";
        let secrets = vec!["AKIAEXAMPLEKEY".to_owned(), "sekrit".to_owned()];
        let e = object_store::Error::Generic {
            store: "S3",
            source: body.into(),
        };
        let cx = Context {
            url: "s3://logs/a",
            bucket: "logs",
            endpoint: "http://127.0.0.1:1",
            secrets: &secrets,
        };
        let err = ObjectError::from_store(&e, &cx);
        let text = err.to_string();
        assert!(matches!(err, ObjectError::Denied { .. }), "{text}");
        assert!(
            text.contains("SignatureDoesNotMatch: The request signature"),
            "{text}"
        );
        assert!(
            !text.contains("AKIAEXAMPLEKEY") && !text.contains("sekrit"),
            "{text}"
        );
        assert_eq!(scrub("key AKIAEXAMPLEKEY!", &secrets), "key [credential]!");
    }
}
