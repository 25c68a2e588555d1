//! Tables of counts read from the rollups written at ingest (`store::rollup`), exact for any
//! period: `event_counts` (events per hour, principal, secret, action and outcome) and
//! `client_counts` (events per hour, principal, source address and user agent).
//!
//! A query states its period by comparing `first_time` or `last_time` with timestamps, as
//! `last_time >= $from AND first_time < $to` (either side may be left out; `>`, `<=` and
//! `BETWEEN` too). Hours wholly inside the period come from the rollup files; the hours cut by its
//! edges, and data files that have no rollup (written by an older vigil), are counted from
//! `events` restricted to the period. So the rows always count exactly the events of the period,
//! and a report over a month reads tens of thousands of rows instead of millions. Without such
//! filters the rows are the plain hourly counts of all history.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::datasource::physical_plan::FileScanConfigBuilder;
use datafusion::datasource::provider_as_source;
use datafusion::datasource::source::DataSourceExec;
use datafusion::functions::expr_fn::date_trunc;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    cast, col, lit, Expr, LogicalPlanBuilder, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;

use super::table::{
    bounds_on, file_groups, parquet_source, partition_fields, string_views, EventsTable, ScanFile,
};
use crate::event::PARTITION_COLUMNS;
use crate::store::rollup::{hour_start, Kind, NANOS_PER_HOUR};

#[derive(Debug)]
pub struct CountsTable {
    events: Arc<EventsTable>,
    kind: Kind,
    /// Rollup columns as scanned (strings as views).
    file_schema: SchemaRef,
    /// `file_schema` plus the partition columns.
    schema: SchemaRef,
}

impl CountsTable {
    /// The counts of the rollups of `kind`.
    pub fn new(events: Arc<EventsTable>, kind: Kind) -> Self {
        let file_schema = string_views(&kind.file_schema());
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(partition_fields().iter().map(|f| f.as_ref().clone()));
        CountsTable {
            events,
            kind,
            file_schema,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// The rollups of `files` for the hours in `[h1, h2)`.
    fn rollup_scan(
        &self,
        state: &dyn Session,
        files: &[&ScanFile],
        filters: &[Expr],
        (h1, h2): (i64, i64),
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = files
            .iter()
            .filter_map(|f| {
                f.rollup(self.kind)
                    .map(|(loc, size)| f.partitioned(loc, *size))
            })
            .collect();
        let mut hours = Vec::new();
        if h1 != i64::MIN {
            hours.push(col("hour").gt_eq(lit(timestamp(h1))));
        }
        if h2 != i64::MAX {
            hours.push(col("hour").lt(lit(timestamp(h2))));
        }
        // The filters and the hour bounds prune row groups; the hour bounds are also applied
        // exactly below.
        let source = parquet_source(
            state,
            &self.file_schema,
            filters.iter().cloned().chain(hours.iter().cloned()),
        )?;
        let config = FileScanConfigBuilder::new(self.events.url.clone(), source)
            .with_file_groups(file_groups(state, files))
            .build();
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        match conjunction(hours) {
            Some(predicate) => {
                let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
                let predicate = state.create_physical_expr(predicate, &df_schema)?;
                Ok(Arc::new(FilterExec::try_new(predicate, scan)?))
            }
            None => Ok(scan),
        }
    }

    /// The same rows counted from the events of `files` in `[lo, hi)`, leaving out `[h1, h2)`
    /// when given (the hours the rollups cover). `key_filters` (on grouping columns only) mean
    /// the same on events and are applied before counting.
    async fn count_events(
        &self,
        state: &dyn Session,
        files: Vec<ScanFile>,
        (lo, hi): (i64, i64),
        skip: Option<(i64, i64)>,
        key_filters: &[Expr],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let t = || col("event_time");
        let mut conditions = key_filters.to_vec();
        if lo != i64::MIN {
            conditions.push(t().gt_eq(lit(timestamp(lo))));
        }
        if hi != i64::MAX {
            conditions.push(t().lt(lit(timestamp(hi))));
        }
        if let Some((h1, h2)) = skip {
            conditions.push(t().lt(lit(timestamp(h1))).or(t().gt_eq(lit(timestamp(h2)))));
        }
        let events = Arc::new(EventsTable::with_files(self.events.url.clone(), files));
        let mut plan = LogicalPlanBuilder::scan("events", provider_as_source(events), None)?;
        if let Some(c) = conjunction(conditions) {
            plan = plan.filter(c)?;
        }
        let mut group = vec![date_trunc(lit("hour"), t()).alias("hour")];
        group.extend(self.kind.key_columns().iter().map(|c| col(*c)));
        group.extend(PARTITION_COLUMNS.iter().map(|c| col(*c)));
        let mut aggregates: Vec<Expr> = (self.kind.name_columns().iter())
            .map(|c| max(col(*c)).alias(*c))
            .collect();
        aggregates.extend([
            count(lit(1)).alias("events"),
            min(t()).alias("first_time"),
            max(t()).alias("last_time"),
        ]);
        let plan = plan.aggregate(group, aggregates)?;
        // In the table's column order, with its types.
        let projection = self
            .schema
            .fields()
            .iter()
            .map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name()));
        let plan = plan.project(projection)?.build()?;
        state.create_physical_plan(&plan).await
    }
}

fn timestamp(nanos: i64) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(nanos), Some("UTC".into()))
}

/// The start of the first whole hour at or after `t`.
fn ceil_hour(t: i64) -> i64 {
    if t == i64::MIN {
        return t;
    }
    let r = t.rem_euclid(NANOS_PER_HOUR);
    if r == 0 {
        t
    } else {
        t.saturating_add(NANOS_PER_HOUR - r)
    }
}

/// The start of the hour holding `t` (the end of the last whole hour before `t`).
fn floor_hour(t: i64) -> i64 {
    if t == i64::MAX {
        return t;
    }
    hour_start(t)
}

#[async_trait]
impl TableProvider for CountsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: applied again above the scan, which uses them for the period, to skip files
        // and to prune row groups.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Either column bounds the period: once the edge hours are cut to it, every row's first
        // and last time lie inside it, so each such filter holds on the rows returned.
        let (lo, hi) = bounds_on(filters, &["first_time", "last_time"]);
        let files = self.events.prune(state, filters, (lo, hi))?;
        let (h1, h2) = (ceil_hour(lo), floor_hour(hi));
        let whole_hours = h1 < h2;
        let meets_whole_hours = |f: &ScanFile| whole_hours && f.max_time >= h1 && f.min_time < h2;
        let mut parts = Vec::new();
        let rolled: Vec<&ScanFile> = files
            .iter()
            .copied()
            .filter(|f| f.rollup(self.kind).is_some() && meets_whole_hours(f))
            .collect();
        if !rolled.is_empty() {
            parts.push(self.rollup_scan(state, &rolled, filters, (h1, h2))?);
        }
        let unrolled: Vec<ScanFile> = files
            .iter()
            .filter(|f| f.rollup(self.kind).is_none())
            .map(|f| (*f).clone())
            .collect();
        // Filters on the grouping columns select the same rows from events: counting only
        // those keeps a store without rollups as fast as a direct query.
        let key_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                f.column_refs().iter().all(|c| {
                    self.kind.key_columns().contains(&c.name.as_str())
                        || PARTITION_COLUMNS.contains(&c.name.as_str())
                })
            })
            .cloned()
            .collect();
        if !unrolled.is_empty() {
            parts.push(
                self.count_events(state, unrolled, (lo, hi), None, &key_filters)
                    .await?,
            );
        }
        // Files with a rollup that hold events of the period outside its whole hours.
        let edges: Vec<ScanFile> = files
            .iter()
            .filter(|f| {
                f.rollup(self.kind).is_some()
                    && (!whole_hours || f.min_time < h1 || f.max_time >= h2)
            })
            .map(|f| (*f).clone())
            .collect();
        if !edges.is_empty() {
            let skip = whole_hours.then_some((h1, h2));
            parts.push(
                self.count_events(state, edges, (lo, hi), skip, &key_filters)
                    .await?,
            );
        }
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        if parts.is_empty() {
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let all = UnionExec::try_new(parts)?;
        let Some(p) = projection else {
            return Ok(all);
        };
        let columns = p.iter().map(|&i| {
            let name = self.schema.field(i).name().clone();
            (
                Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                name,
            )
        });
        Ok(Arc::new(ProjectionExec::try_new(columns, all)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_round_inwards_and_unbounded_sides_stay_unbounded() {
        let h = NANOS_PER_HOUR;
        assert_eq!(ceil_hour(3 * h), 3 * h);
        assert_eq!(ceil_hour(3 * h + 1), 4 * h);
        assert_eq!(floor_hour(3 * h + 1), 3 * h);
        assert_eq!(floor_hour(-1), -h);
        assert_eq!(ceil_hour(i64::MIN), i64::MIN);
        assert_eq!(floor_hour(i64::MAX), i64::MAX);
    }
}
