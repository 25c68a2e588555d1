//! The normalized event: one row per target of one audited request.
//!
//! This file is the single definition of the stored schema; `schemas/event.md` documents the same
//! columns for people and must change with it (a test compares the two).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, ListBuilder, MapBuilder, MapFieldNames,
    RecordBatch, StringBuilder, TimestampNanosecondBuilder, UInt16Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// Version of the stored schema; bumped on any column change, written in every row and file.
pub const SCHEMA_VERSION: u16 = 1;

/// Where an event came from; also the `source=` partition directory and the `--source` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    Vault,
    CloudTrail,
    Gcp,
    Azure,
    K8s,
}

impl SourceKind {
    pub const ALL: [SourceKind; 5] = [
        SourceKind::Vault,
        SourceKind::CloudTrail,
        SourceKind::Gcp,
        SourceKind::Azure,
        SourceKind::K8s,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Vault => "vault",
            SourceKind::CloudTrail => "cloudtrail",
            SourceKind::Gcp => "gcp",
            SourceKind::Azure => "azure",
            SourceKind::K8s => "k8s",
        }
    }

    pub fn parse(name: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Every source's name, for messages: "vault, cloudtrail, gcp, azure, k8s".
    pub fn names() -> String {
        SourceKind::ALL.map(SourceKind::as_str).join(", ")
    }
}

/// Names written as text where events are kept outside Parquet (held records carried to the
/// next ingest): the same words as the columns.
macro_rules! serde_as_str {
    ($name:ident, $parse:expr) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                let parse: fn(&str) -> Option<$name> = $parse;
                parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} `{text}`", stringify!($name)))
                })
            }
        }
    };
}

serde_as_str!(SourceKind, SourceKind::parse);

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }
        serde_as_str!($name, $name::parse);
    };
}

string_enum!(
    /// What kind of thing the request did, across sources.
    Action {
        Read => "read", List => "list", Write => "write", Delete => "delete", Rotate => "rotate",
        Decrypt => "decrypt", Login => "login", Token => "token", Policy => "policy", Other => "other",
    }
);

string_enum!(
    /// How the request ended.
    Outcome {
        Success => "success", Denied => "denied", NotFound => "not_found", Error => "error",
        Unknown => "unknown",
    }
);

string_enum!(
    /// What kind of principal made the request.
    ActorType {
        Human => "human", Workload => "workload", Root => "root", Service => "service",
        Anonymous => "anonymous", Unknown => "unknown",
    }
);

string_enum!(
    /// What kind of object the request targeted.
    ResourceType {
        AwsSecret => "aws_secret", SsmParameter => "ssm_parameter", KmsKey => "kms_key",
        GcpSecret => "gcp_secret", AzureKvSecret => "azure_kv_secret", AzureKvKey => "azure_kv_key",
        AzureKvCertificate => "azure_kv_certificate", K8sSecret => "k8s_secret",
        VaultPath => "vault_path", None => "none",
    }
);

/// One normalized row, as a parser produces it. `ingest_time` and `schema_version` are added by
/// the batch builder, `source` and `date` come from the partition path.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub event_uid: String,
    pub source: SourceKind,
    #[serde(deserialize_with = "interned")]
    pub source_format: &'static str,
    /// Nanoseconds since the Unix epoch, UTC.
    pub event_time: i64,
    pub source_event_id: Option<String>,
    pub request_id: Option<String>,
    pub tenant: Option<String>,
    pub region: Option<String>,
    pub service: String,
    pub operation: String,
    pub action: Action,
    pub is_secret_read: bool,
    pub outcome: Outcome,
    pub status_code: Option<String>,
    pub http_status: Option<i32>,
    pub error_message: Option<String>,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub actor_type: ActorType,
    pub actor_role: Option<String>,
    pub actor_origin_id: Option<String>,
    pub via_service: Option<String>,
    pub credential_id: Option<String>,
    pub actor_groups: Vec<String>,
    pub mfa: Option<bool>,
    pub src_ip: Option<String>,
    pub src_host: Option<String>,
    pub user_agent: Option<String>,
    pub resource_type: ResourceType,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub resource_version: Option<String>,
    pub resource_scope: Option<String>,
    pub target_index: i32,
    pub target_count: i32,
    pub raw_event: Option<String>,
    pub raw_location: String,
    pub parse_warnings: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

/// A format name read back from text, as the `&'static str` parsers give: each distinct name
/// is allocated once for the life of the process (there are a handful).
fn interned<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    use serde::Deserialize;
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let text = String::deserialize(d)?;
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(name) = names.iter().find(|n| **n == text) {
        return Ok(name);
    }
    let name: &'static str = Box::leak(text.into_boxed_str());
    names.push(name);
    Ok(name)
}

impl Event {
    /// An event with every optional field empty; parsers fill in what their format has.
    pub fn new(
        source: SourceKind,
        source_format: &'static str,
        event_uid: String,
        event_time: i64,
    ) -> Event {
        Event {
            event_uid,
            source,
            source_format,
            event_time,
            source_event_id: None,
            request_id: None,
            tenant: None,
            region: None,
            service: String::new(),
            operation: String::new(),
            action: Action::Other,
            is_secret_read: false,
            outcome: Outcome::Unknown,
            status_code: None,
            http_status: None,
            error_message: None,
            actor_id: None,
            actor_name: None,
            actor_type: ActorType::Unknown,
            actor_role: None,
            actor_origin_id: None,
            via_service: None,
            credential_id: None,
            actor_groups: Vec::new(),
            mfa: None,
            src_ip: None,
            src_host: None,
            user_agent: None,
            resource_type: ResourceType::None,
            resource_id: None,
            resource_name: None,
            resource_version: None,
            resource_scope: None,
            target_index: 0,
            target_count: 1,
            raw_event: None,
            raw_location: String::new(),
            parse_warnings: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// UTC calendar date of `event_time` (`YYYY-MM-DD`): the `date=` partition.
    pub fn date(&self) -> String {
        utc_date(self.event_time)
    }
}

/// `YYYY-MM-DD` of a UTC timestamp in nanoseconds.
pub fn utc_date(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .format("%Y-%m-%d")
        .to_string()
}

/// Names of the two partition columns, which live in the path and not in the files.
pub const PARTITION_COLUMNS: [&str; 2] = ["source", "date"];

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn string_list(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    )
}

fn string_map(name: &str) -> Field {
    let entries = Field::new(
        "entries",
        DataType::Struct(vec![utf8("keys", false), utf8("values", true)].into()),
        false,
    );
    Field::new(name, DataType::Map(Arc::new(entries), false), false)
}

fn timestamp(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    )
}

/// The schema of the stored Parquet files (without the partition columns).
pub fn file_schema() -> SchemaRef {
    let fields = vec![
        utf8("event_uid", false),
        utf8("source_format", false),
        timestamp("event_time"),
        timestamp("ingest_time"),
        utf8("source_event_id", true),
        utf8("request_id", true),
        utf8("tenant", true),
        utf8("region", true),
        utf8("service", false),
        utf8("operation", false),
        utf8("action", false),
        Field::new("is_secret_read", DataType::Boolean, false),
        utf8("outcome", false),
        utf8("status_code", true),
        Field::new("http_status", DataType::Int32, true),
        utf8("error_message", true),
        utf8("actor_id", true),
        utf8("actor_name", true),
        utf8("actor_type", false),
        utf8("actor_role", true),
        utf8("actor_origin_id", true),
        utf8("via_service", true),
        utf8("credential_id", true),
        string_list("actor_groups"),
        Field::new("mfa", DataType::Boolean, true),
        utf8("src_ip", true),
        utf8("src_host", true),
        utf8("user_agent", true),
        utf8("resource_type", false),
        utf8("resource_id", true),
        utf8("resource_name", true),
        utf8("resource_version", true),
        utf8("resource_scope", true),
        Field::new("target_index", DataType::Int32, false),
        Field::new("target_count", DataType::Int32, false),
        utf8("raw_event", true),
        utf8("raw_location", false),
        string_list("parse_warnings"),
        string_map("attributes"),
        Field::new("schema_version", DataType::UInt16, false),
    ];
    Arc::new(Schema::new(fields))
}

/// The schema of table `events` as queried: the file columns plus the partition columns.
pub fn table_schema() -> SchemaRef {
    let mut fields: Vec<Field> = file_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(utf8("source", false));
    fields.push(utf8("date", false));
    Arc::new(Schema::new(fields))
}

/// Builds Arrow record batches (file schema) from events.
pub struct EventBatchBuilder {
    ingest_time: i64,
    len: usize,
    event_uid: StringBuilder,
    source_format: StringBuilder,
    event_time: TimestampNanosecondBuilder,
    ingest_time_col: TimestampNanosecondBuilder,
    source_event_id: StringBuilder,
    request_id: StringBuilder,
    tenant: StringBuilder,
    region: StringBuilder,
    service: StringBuilder,
    operation: StringBuilder,
    action: StringBuilder,
    is_secret_read: BooleanBuilder,
    outcome: StringBuilder,
    status_code: StringBuilder,
    http_status: Int32Builder,
    error_message: StringBuilder,
    actor_id: StringBuilder,
    actor_name: StringBuilder,
    actor_type: StringBuilder,
    actor_role: StringBuilder,
    actor_origin_id: StringBuilder,
    via_service: StringBuilder,
    credential_id: StringBuilder,
    actor_groups: ListBuilder<StringBuilder>,
    mfa: BooleanBuilder,
    src_ip: StringBuilder,
    src_host: StringBuilder,
    user_agent: StringBuilder,
    resource_type: StringBuilder,
    resource_id: StringBuilder,
    resource_name: StringBuilder,
    resource_version: StringBuilder,
    resource_scope: StringBuilder,
    target_index: Int32Builder,
    target_count: Int32Builder,
    raw_event: StringBuilder,
    raw_location: StringBuilder,
    parse_warnings: ListBuilder<StringBuilder>,
    attributes: MapBuilder<StringBuilder, StringBuilder>,
    schema_version: UInt16Builder,
}

impl EventBatchBuilder {
    pub fn new(ingest_time: i64) -> Self {
        Self::with_capacities(ingest_time, 1024, |_| 1024)
    }

    /// A builder with room for `rows` rows and `bytes(column)` bytes of text in each text
    /// column (`attributes.keys` and `attributes.values` for the map), so filling it does not
    /// grow and copy its buffers again and again.
    pub fn with_capacities(ingest_time: i64, rows: usize, bytes: impl Fn(&str) -> usize) -> Self {
        let map_names = MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        };
        let text = |name: &str| StringBuilder::with_capacity(rows, bytes(name));
        let list = |name: &str| ListBuilder::with_capacity(text(name), rows);
        let time = || TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC");
        EventBatchBuilder {
            ingest_time,
            len: 0,
            event_uid: text("event_uid"),
            source_format: text("source_format"),
            event_time: time(),
            ingest_time_col: time(),
            source_event_id: text("source_event_id"),
            request_id: text("request_id"),
            tenant: text("tenant"),
            region: text("region"),
            service: text("service"),
            operation: text("operation"),
            action: text("action"),
            is_secret_read: BooleanBuilder::with_capacity(rows),
            outcome: text("outcome"),
            status_code: text("status_code"),
            http_status: Int32Builder::with_capacity(rows),
            error_message: text("error_message"),
            actor_id: text("actor_id"),
            actor_name: text("actor_name"),
            actor_type: text("actor_type"),
            actor_role: text("actor_role"),
            actor_origin_id: text("actor_origin_id"),
            via_service: text("via_service"),
            credential_id: text("credential_id"),
            actor_groups: list("actor_groups"),
            mfa: BooleanBuilder::with_capacity(rows),
            src_ip: text("src_ip"),
            src_host: text("src_host"),
            user_agent: text("user_agent"),
            resource_type: text("resource_type"),
            resource_id: text("resource_id"),
            resource_name: text("resource_name"),
            resource_version: text("resource_version"),
            resource_scope: text("resource_scope"),
            target_index: Int32Builder::with_capacity(rows),
            target_count: Int32Builder::with_capacity(rows),
            raw_event: text("raw_event"),
            raw_location: text("raw_location"),
            parse_warnings: list("parse_warnings"),
            attributes: MapBuilder::with_capacity(
                Some(map_names),
                text("attributes.keys"),
                text("attributes.values"),
                rows,
            ),
            schema_version: UInt16Builder::with_capacity(rows),
        }
    }

    /// A builder sized for a batch like `like` (a quarter more room, so a batch a little
    /// larger still fits).
    pub fn sized_like(ingest_time: i64, like: &RecordBatch) -> Self {
        let text_bytes = |name: &str| -> usize {
            let (column, part) = match name.split_once('.') {
                Some((column, part)) => (column, Some(part)),
                None => (name, None),
            };
            let Some(array) = like.column_by_name(column) else {
                return 0;
            };
            let texts = match (array.data_type(), part) {
                (DataType::Utf8, _) => Some(array.as_string::<i32>()),
                (DataType::List(_), _) => array.as_list::<i32>().values().as_string_opt::<i32>(),
                (DataType::Map(_, _), Some("keys")) => array.as_map().keys().as_string_opt(),
                (DataType::Map(_, _), _) => array.as_map().values().as_string_opt(),
                _ => None,
            };
            texts.map_or(0, |t| t.values().len())
        };
        let rows = like.num_rows() + like.num_rows() / 4;
        Self::with_capacities(ingest_time, rows, |name| {
            let b = text_bytes(name);
            b + b / 4
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, e: &Event) {
        self.len += 1;
        self.event_uid.append_value(&e.event_uid);
        self.source_format.append_value(e.source_format);
        self.event_time.append_value(e.event_time);
        self.ingest_time_col.append_value(self.ingest_time);
        self.source_event_id
            .append_option(e.source_event_id.as_deref());
        self.request_id.append_option(e.request_id.as_deref());
        self.tenant.append_option(e.tenant.as_deref());
        self.region.append_option(e.region.as_deref());
        self.service.append_value(&e.service);
        self.operation.append_value(&e.operation);
        self.action.append_value(e.action.as_str());
        self.is_secret_read.append_value(e.is_secret_read);
        self.outcome.append_value(e.outcome.as_str());
        self.status_code.append_option(e.status_code.as_deref());
        self.http_status.append_option(e.http_status);
        self.error_message.append_option(e.error_message.as_deref());
        self.actor_id.append_option(e.actor_id.as_deref());
        self.actor_name.append_option(e.actor_name.as_deref());
        self.actor_type.append_value(e.actor_type.as_str());
        self.actor_role.append_option(e.actor_role.as_deref());
        self.actor_origin_id
            .append_option(e.actor_origin_id.as_deref());
        self.via_service.append_option(e.via_service.as_deref());
        self.credential_id.append_option(e.credential_id.as_deref());
        for g in &e.actor_groups {
            self.actor_groups.values().append_value(g);
        }
        self.actor_groups.append(true);
        self.mfa.append_option(e.mfa);
        self.src_ip.append_option(e.src_ip.as_deref());
        self.src_host.append_option(e.src_host.as_deref());
        self.user_agent.append_option(e.user_agent.as_deref());
        self.resource_type.append_value(e.resource_type.as_str());
        self.resource_id.append_option(e.resource_id.as_deref());
        self.resource_name.append_option(e.resource_name.as_deref());
        self.resource_version
            .append_option(e.resource_version.as_deref());
        self.resource_scope
            .append_option(e.resource_scope.as_deref());
        self.target_index.append_value(e.target_index);
        self.target_count.append_value(e.target_count);
        self.raw_event.append_option(e.raw_event.as_deref());
        self.raw_location.append_value(&e.raw_location);
        for w in &e.parse_warnings {
            self.parse_warnings.values().append_value(w);
        }
        self.parse_warnings.append(true);
        for (k, v) in &e.attributes {
            self.attributes.keys().append_value(k);
            self.attributes.values().append_value(v);
        }
        // A map entry list is always valid (empty when there are no attributes).
        self.attributes
            .append(true)
            .expect("map keys and values are appended in pairs");
        self.schema_version.append_value(SCHEMA_VERSION);
    }

    /// Takes the rows pushed so far as one batch and leaves the builder empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.len = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_uid.finish()),
            Arc::new(self.source_format.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.ingest_time_col.finish()),
            Arc::new(self.source_event_id.finish()),
            Arc::new(self.request_id.finish()),
            Arc::new(self.tenant.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.operation.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.is_secret_read.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.http_status.finish()),
            Arc::new(self.error_message.finish()),
            Arc::new(self.actor_id.finish()),
            Arc::new(self.actor_name.finish()),
            Arc::new(self.actor_type.finish()),
            Arc::new(self.actor_role.finish()),
            Arc::new(self.actor_origin_id.finish()),
            Arc::new(self.via_service.finish()),
            Arc::new(self.credential_id.finish()),
            Arc::new(self.actor_groups.finish()),
            Arc::new(self.mfa.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.src_host.finish()),
            Arc::new(self.user_agent.finish()),
            Arc::new(self.resource_type.finish()),
            Arc::new(self.resource_id.finish()),
            Arc::new(self.resource_name.finish()),
            Arc::new(self.resource_version.finish()),
            Arc::new(self.resource_scope.finish()),
            Arc::new(self.target_index.finish()),
            Arc::new(self.target_count.finish()),
            Arc::new(self.raw_event.finish()),
            Arc::new(self.raw_location.finish()),
            Arc::new(self.parse_warnings.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.schema_version.finish()),
        ];
        RecordBatch::try_new(file_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_output_matches_the_declared_schema() {
        let mut b = EventBatchBuilder::new(1);
        let mut e = Event::new(SourceKind::Vault, "vault_file", "vault:default:x".into(), 7);
        e.actor_groups = vec!["default".into()];
        e.attributes.insert("mount_type".into(), "kv".into());
        b.push(&e);
        b.push(&Event::new(
            SourceKind::Vault,
            "vault_file",
            "vault:default:y".into(),
            8,
        ));
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), file_schema());
        assert!(b.is_empty());
    }

    /// Guards against the schema doc drifting from the code.
    #[test]
    fn schema_doc_lists_every_column_in_order_with_its_nullability() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/event.md"))
            .unwrap();
        let section = doc
            .split("## Columns")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        let documented: Vec<(String, bool)> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_owned(), cells[3] == "yes")
            })
            .collect();
        let declared: Vec<(String, bool)> = table_schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.is_nullable()))
            .collect();
        assert_eq!(documented, declared);
    }

    #[test]
    fn date_is_the_utc_calendar_day() {
        // 2026-03-02T23:59:59.999999999Z and one nanosecond later
        let last = 1_772_495_999_999_999_999;
        assert_eq!(utc_date(last), "2026-03-02");
        assert_eq!(utc_date(last + 1), "2026-03-03");
    }
}
