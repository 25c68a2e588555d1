//! Tables `finding_history` (every row of the findings files the commit log lists) and
//! `findings` (the latest row of each finding: its status), and the columns of those files.
//! What writes them (`crate::findings`) comes after detection; reading them belongs here, so
//! that queries do not depend on detection.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::ObjectMeta;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::store::{CommitLog, Store};

#[derive(Debug)]
struct FindingsHistory {
    url: ObjectStoreUrl,
    files: Vec<(ObjectPath, u64)>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for FindingsHistory {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // One group: the findings of a year are a few files of a few MB, read in one pass.
        let files: Vec<PartitionedFile> = self
            .files
            .iter()
            .map(|(location, size)| {
                PartitionedFile::new_from_meta(ObjectMeta {
                    location: location.clone(),
                    last_modified: chrono::DateTime::UNIX_EPOCH,
                    size: *size,
                    e_tag: None,
                    version: None,
                })
            })
            .collect();
        let source = ParquetSource::new(TableSchema::builder(Arc::clone(&self.schema)).build());
        let config = FileScanConfigBuilder::new(self.url.clone(), Arc::new(source))
            .with_file_groups(vec![FileGroup::new(files)])
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Registers `finding_history` and `findings` for the findings files of `log`.
pub async fn register(ctx: &SessionContext, store: &Store, log: &CommitLog) -> Result<()> {
    let files = log
        .state
        .findings
        .iter()
        .map(|f| {
            store
                .object_path(&f.path)
                .map(|p| (p, f.bytes))
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
        })
        .collect::<Result<Vec<_>>>()?;
    let schema = schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    ctx.register_table(
        "finding_history",
        Arc::new(FindingsHistory {
            url: store.object_store_url(),
            files,
            schema: Arc::clone(&schema),
        }),
    )?;
    let latest = format!(
        "SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY key, window_start, window_end ORDER BY commit_seq DESC) AS latest_row FROM finding_history) WHERE latest_row = 1",
        cols = columns.join(", ")
    );
    let view = ctx.sql(&latest).await?.into_view();
    ctx.register_table("findings", view)?;
    Ok(())
}

/// A session with only the findings tables, over `log` (a writer's, under its lock), whose
/// operators spill and then fail past `memory_limit` bytes (`[query] memory_limit`).
pub async fn session(
    store: &Store,
    log: &CommitLog,
    memory_limit: usize,
) -> Result<SessionContext> {
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(
            datafusion::execution::memory_pool::FairSpillPool::new(memory_limit),
        ))
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(Default::default(), runtime);
    super::register_object_store(&ctx, store);
    register(&ctx, store, log).await?;
    Ok(ctx)
}

pub(crate) fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

pub(crate) fn strings() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The columns of the findings files, in order.
pub fn schema() -> SchemaRef {
    let f = |name: &str, t: DataType, nullable: bool| Field::new(name, t, nullable);
    Arc::new(Schema::new(vec![
        f("key", DataType::Utf8, false),
        f("window_start", utc(), false),
        f("window_end", utc(), false),
        f("code", DataType::Utf8, false),
        f("detector", DataType::Utf8, false),
        f("severity", DataType::Utf8, true),
        f("actor_id", DataType::Utf8, false),
        f("actor_name", DataType::Utf8, true),
        f("resources", strings(), false),
        f("score", DataType::Float64, true),
        f("observed", DataType::Utf8, true),
        f("baseline", DataType::Utf8, true),
        f("explanation", DataType::Utf8, false),
        f("investigate_sql", DataType::Utf8, true),
        f("cold_start", DataType::Boolean, false),
        f("part_keys", strings(), false),
        f("detected_at", utc(), false),
        f("status", DataType::Utf8, false),
        f("status_by", DataType::Utf8, true),
        f("status_reason", DataType::Utf8, true),
        f("status_at", utc(), false),
        f("status_until", utc(), true),
        f("alert_id", DataType::Utf8, true),
        f("commit_seq", DataType::UInt64, false),
    ]))
}
