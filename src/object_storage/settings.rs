//! `[object_store]`: where an S3-compatible server is, and whether plain HTTP may reach it.
//! Everything else (credentials, region) comes from the environment as the AWS tools read it.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectStore {
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
}

/// Validated `[object_store]` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectStoreSettings {
    /// An S3-compatible server (`https://minio.internal:9000`); else `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// Else `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// `Some(false)` refuses plain HTTP everywhere; unset allows it to a loopback endpoint only
    /// (an S3 test server); `Some(true)` says so explicitly (and is refused for other hosts).
    pub allow_http: Option<bool>,
}

pub fn parse(raw: RawObjectStore) -> Result<ObjectStoreSettings, String> {
    if let Some(e) = &raw.endpoint {
        let host = endpoint_host(e).ok_or_else(|| {
            format!("object_store.endpoint: '{e}' is not an http:// or https:// URL")
        })?;
        if e.starts_with("http://")
            && raw.allow_http == Some(true)
            && !crate::net::is_loopback_host(host)
        {
            return Err(format!(
                "object_store.allow_http: plain HTTP is allowed only to a loopback endpoint (127.0.0.1, ::1, localhost), not {host}"
            ));
        }
    }
    if let Some(r) = &raw.region {
        if r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("object_store.region: '{r}' is not a region name"));
        }
    }
    Ok(ObjectStoreSettings {
        endpoint: raw.endpoint,
        region: raw.region,
        allow_http: raw.allow_http,
    })
}

/// The host of an `http://` or `https://` URL (brackets kept off an IPv6 address).
pub fn endpoint_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// Whether plain HTTP may be used to reach `endpoint` under `allow_http`.
pub fn http_allowed(endpoint: &str, allow_http: Option<bool>) -> Result<bool, String> {
    if !endpoint.starts_with("http://") {
        return Ok(false);
    }
    let host = endpoint_host(endpoint).unwrap_or("");
    match allow_http {
        Some(false) => Err(format!(
            "the object store endpoint {endpoint} is plain HTTP and object_store.allow_http is false"
        )),
        _ if crate::net::is_loopback_host(host) => Ok(true),
        _ => Err(format!(
            "the object store endpoint {endpoint} is plain HTTP, which is allowed only to a loopback address (credentials and logs would cross the network in clear); use https://"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint_host("http://127.0.0.1:9000/"), Some("127.0.0.1"));
        assert_eq!(endpoint_host("https://[::1]:9000"), Some("::1"));
        assert_eq!(
            endpoint_host("https://s3.eu-west-1.amazonaws.com"),
            Some("s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(endpoint_host("minio:9000"), None);
        assert_eq!(http_allowed("http://localhost:5000", None), Ok(true));
        assert_eq!(http_allowed("https://minio.internal", None), Ok(false));
        assert!(http_allowed("http://minio.internal:9000", None)
            .unwrap_err()
            .contains("loopback"));
        assert!(http_allowed("http://127.0.0.1:9000", Some(false)).is_err());
        let raw = |e: &str, h: Option<bool>| RawObjectStore {
            endpoint: Some(e.into()),
            region: None,
            allow_http: h,
        };
        assert!(parse(raw("http://10.0.0.5:9000", Some(true)))
            .unwrap_err()
            .contains("loopback"));
        assert!(parse(raw("minio:9000", None))
            .unwrap_err()
            .contains("not an http"));
        assert!(parse(raw("http://127.0.0.1:9000", Some(true))).is_ok());
    }
}
