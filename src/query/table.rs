//! Table `events`: the data files named by the commit log, with `source` and `date` taken from
//! the commit (the Hive partition values) and files pruned on them before any is opened.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::ObjectMeta;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;

use crate::event::{file_schema, table_schema, PARTITION_COLUMNS};
use crate::store::{CommitLog, Store};

/// One committed data file as the scan needs it.
#[derive(Debug, Clone)]
struct ScanFile {
    location: ObjectPath,
    size: u64,
    source: String,
    date: String,
}

#[derive(Debug)]
pub struct EventsTable {
    files: Vec<ScanFile>,
}

impl EventsTable {
    pub fn from_log(store: &Store, log: &CommitLog) -> Result<Self> {
        let root = std::path::absolute(store.root())?;
        let mut files = Vec::new();
        for f in log.files() {
            let abs = root.join(&f.path);
            let location = ObjectPath::from_absolute_path(&abs)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            files.push(ScanFile {
                location,
                size: f.bytes,
                source: f.source.clone(),
                date: f.date.clone(),
            });
        }
        Ok(EventsTable { files })
    }

    /// Files whose (source, date) pass every filter that uses only those two columns.
    fn prune(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<&ScanFile>> {
        let partition_only: Vec<&Expr> = filters
            .iter()
            .filter(|f| {
                let cols = f.column_refs();
                !cols.is_empty()
                    && cols
                        .iter()
                        .all(|c| PARTITION_COLUMNS.contains(&c.name.as_str()))
            })
            .collect();
        if partition_only.is_empty() || self.files.is_empty() {
            return Ok(self.files.iter().collect());
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("date", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                self.files.iter().map(|f| f.source.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                self.files.iter().map(|f| f.date.as_str()),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        let df_schema = DFSchema::try_from(schema)?;
        let mut keep = vec![true; self.files.len()];
        for f in partition_only {
            let expr = state.create_physical_expr(f.clone(), &df_schema)?;
            let result = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
            let Some(mask) = result.as_boolean_opt() else {
                continue;
            };
            for (i, k) in keep.iter_mut().enumerate() {
                *k &= mask.is_valid(i) && mask.value(i);
            }
        }
        Ok(self
            .files
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(f, _)| f)
            .collect())
    }
}

#[async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filter is still applied above the scan; the scan uses it to skip files
        // (partition columns) and row groups (Parquet statistics).
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.prune(state, filters)?;
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(table_schema().project(p)?),
                None => table_schema(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let groups_wanted = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> =
            vec![Vec::new(); groups_wanted.min(files.len())];
        let n = groups.len();
        for (i, f) in files.into_iter().enumerate() {
            let meta = ObjectMeta {
                location: f.location.clone(),
                last_modified: chrono::DateTime::UNIX_EPOCH,
                size: f.size,
                e_tag: None,
                version: None,
            };
            let pf = PartitionedFile::new_from_meta(meta).with_partition_values(vec![
                ScalarValue::Utf8(Some(f.source.clone())),
                ScalarValue::Utf8(Some(f.date.clone())),
            ]);
            groups[i % n].push(pf);
        }
        let partition_fields = PARTITION_COLUMNS
            .iter()
            .map(|c| Arc::new(Field::new(*c, DataType::Utf8, false)))
            .collect::<Vec<_>>();
        let schema = TableSchema::builder(file_schema())
            .with_table_partition_cols(partition_fields)
            .build();
        let source = Arc::new(ParquetSource::new(schema));
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
