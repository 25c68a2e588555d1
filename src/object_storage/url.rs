//! `s3://bucket/prefix` as named on the command line.

use std::fmt;

/// A bucket and a key prefix (a folder, or one object's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
}

impl ObjectUrl {
    /// `Ok(None)` for text that is not a URL (a local path); an error for a URL vigil cannot
    /// read, naming what it can.
    pub fn parse(text: &str) -> Result<Option<ObjectUrl>, String> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(None);
        };
        match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" => {}
            "gs" | "az" | "abfs" | "abfss" => {
                return Err(format!(
                    "{text}: {scheme}:// is not supported yet; object storage inputs are s3:// (AWS S3 or an S3-compatible server)"
                ))
            }
            _ => {
                return Err(format!(
                    "{text}: unknown URL scheme '{scheme}'; inputs are local paths, '-' for stdin, or s3://bucket/prefix"
                ))
            }
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // Bucket names: 3-63 of lower-case letters, digits, '.', '-' (S3's rules, loosely).
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid {
            return Err(format!(
                "{text}: '{bucket}' is not a bucket name (3 to 63 lower-case letters, digits, '.' or '-')"
            ));
        }
        Ok(Some(ObjectUrl {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        }))
    }

    /// The URL of the object `key` of this bucket.
    pub fn object(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}/", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = ObjectUrl::parse("s3://trail-logs/AWSLogs/123/CloudTrail/")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("trail-logs", "AWSLogs/123/CloudTrail")
        );
        assert_eq!(u.to_string(), "s3://trail-logs/AWSLogs/123/CloudTrail");
        assert_eq!(u.object("a/b.json.gz"), "s3://trail-logs/a/b.json.gz");
        let whole = ObjectUrl::parse("s3://logs").unwrap().unwrap();
        assert_eq!(whole.prefix, "");
        assert_eq!(whole.to_string(), "s3://logs/");
        assert_eq!(ObjectUrl::parse("/var/log/vault/audit.log").unwrap(), None);
        assert!(ObjectUrl::parse("gs://b/p")
            .unwrap_err()
            .contains("not supported yet"));
        assert!(ObjectUrl::parse("ftp://b/p")
            .unwrap_err()
            .contains("unknown URL scheme"));
        assert!(ObjectUrl::parse("s3://Bad_Bucket/p")
            .unwrap_err()
            .contains("not a bucket name"));
    }
}
