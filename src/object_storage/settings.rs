//! `[object_store]`: where an S3-compatible server is, and whether plain HTTP may reach it.
//! Everything else (credentials, region) comes from the environment as the AWS tools read it.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectStore {
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
    max_in_flight: Option<usize>,
}

/// Validated `[object_store]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreSettings {
    /// An S3-compatible server (`https://minio.internal:9000`); else `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// Else `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// `Some(false)` refuses plain HTTP everywhere; unset allows it to a loopback endpoint only
    /// (an S3 test server); `Some(true)` says so explicitly (and is refused for other hosts).
    pub allow_http: Option<bool>,
    /// Objects requested ahead of the one being read (S3 answers a GET after tens of
    /// milliseconds, and CloudTrail objects are kilobytes: one at a time would mostly wait).
    pub max_in_flight: usize,
}

/// `max_in_flight` unless set.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

impl Default for ObjectStoreSettings {
    fn default() -> Self {
        ObjectStoreSettings {
            endpoint: None,
            region: None,
            allow_http: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
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
    let max_in_flight = raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if !(1..=256).contains(&max_in_flight) {
        return Err(format!(
            "object_store.max_in_flight: {max_in_flight} is not between 1 and 256"
        ));
    }
    Ok(ObjectStoreSettings {
        endpoint: raw.endpoint,
        region: raw.region,
        allow_http: raw.allow_http,
        max_in_flight,
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
            max_in_flight: None,
        };
        assert!(parse(raw("http://10.0.0.5:9000", Some(true)))
            .unwrap_err()
            .contains("loopback"));
        assert!(parse(raw("minio:9000", None))
            .unwrap_err()
            .contains("not an http"));
        assert_eq!(
            parse(raw("http://127.0.0.1:9000", Some(true)))
                .unwrap()
                .max_in_flight,
            DEFAULT_MAX_IN_FLIGHT
        );
        let none = RawObjectStore {
            max_in_flight: Some(0),
            ..Default::default()
        };
        assert!(parse(none).unwrap_err().contains("max_in_flight"));
    }
}
