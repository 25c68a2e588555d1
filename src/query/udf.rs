//! SQL functions that apply `vigil.toml` to rows, so reports stay plain SQL and analysts can use
//! the same rules in `vigil sql`:
//!
//! - `vigil_off_hours(event_time, actor_id, actor_name)` → boolean, per `[calendar]`
//! - `vigil_local_time(event_time, actor_id, actor_name)` → `Sat 23:14 Europe/Paris`
//! - `vigil_resource_env(resource_id, resource_name, tenant)` → environment or NULL
//! - `vigil_actor_env(actor_id, actor_name, actor_role)` → environment or NULL
//! - `vigil_is_canary(resource_id, resource_name)` → boolean, per `[canaries]`

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, StringArray, StringBuilder, TimestampNanosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::config::Config;

type Body = dyn Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync;

/// A function of fixed arity whose arguments are cast to `inputs` (strings from Utf8View or
/// dictionary columns, timestamps of any unit), evaluated on arrays.
struct ConfigFn {
    name: &'static str,
    inputs: Vec<DataType>,
    output: DataType,
    signature: Signature,
    body: Box<Body>,
}

impl std::fmt::Debug for ConfigFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for ConfigFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for ConfigFn {}
impl Hash for ConfigFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for ConfigFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.output.clone())
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != self.inputs.len() {
            return plan_err!(
                "{} takes {} arguments, not {}",
                self.name,
                self.inputs.len(),
                arg_types.len()
            );
        }
        Ok(self.inputs.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let arrays = arrays
            .iter()
            .zip(&self.inputs)
            .map(|(a, t)| {
                Ok(if a.data_type() == t {
                    a.clone()
                } else {
                    cast(a, t)?
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ColumnarValue::Array((self.body)(&arrays, rows)?))
    }
}

fn strings(a: &ArrayRef) -> Result<&StringArray> {
    match a.as_any().downcast_ref::<StringArray>() {
        Some(s) => Ok(s),
        None => exec_err!("expected a string argument, got {}", a.data_type()),
    }
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn utc_nanos() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn register(
    ctx: &SessionContext,
    name: &'static str,
    inputs: Vec<DataType>,
    output: DataType,
    body: Box<Body>,
) {
    let f = ConfigFn {
        name,
        inputs,
        output,
        signature: Signature::user_defined(Volatility::Immutable),
        body,
    };
    ctx.register_udf(ScalarUDF::new_from_impl(f));
}

/// Three string columns in, one string (or NULL) out.
fn string_fn(
    f: impl Fn(Option<&str>, Option<&str>, Option<&str>) -> Option<String> + Send + Sync + 'static,
) -> Box<Body> {
    Box::new(move |a: &[ArrayRef], rows: usize| {
        let (x, y, z) = (strings(&a[0])?, strings(&a[1])?, strings(&a[2])?);
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for i in 0..rows {
            out.append_option(f(opt(x, i), opt(y, i), opt(z, i)));
        }
        Ok(Arc::new(out.finish()) as ArrayRef)
    })
}

/// Registers the functions with the settings of `config`.
pub fn register_all(ctx: &SessionContext, config: &Config) {
    let s = || DataType::Utf8;
    let calendar = Arc::new(config.calendar.clone());
    let c = calendar.clone();
    register(
        ctx,
        "vigil_off_hours",
        vec![utc_nanos(), s(), s()],
        DataType::Boolean,
        Box::new(move |a: &[ArrayRef], rows: usize| {
            let (t, id, name) = (timestamps(&a[0])?, strings(&a[1])?, strings(&a[2])?);
            let mut out = BooleanBuilder::with_capacity(rows);
            for i in 0..rows {
                out.append_option(
                    t.is_valid(i)
                        .then(|| c.is_off_hours(t.value(i), opt(id, i), opt(name, i))),
                );
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }),
    );
    let c = calendar;
    register(
        ctx,
        "vigil_local_time",
        vec![utc_nanos(), s(), s()],
        DataType::Utf8,
        Box::new(move |a: &[ArrayRef], rows: usize| {
            let (t, id, name) = (timestamps(&a[0])?, strings(&a[1])?, strings(&a[2])?);
            let mut out = StringBuilder::with_capacity(rows, rows * 24);
            for i in 0..rows {
                out.append_option(
                    t.is_valid(i)
                        .then(|| c.local_label(t.value(i), opt(id, i), opt(name, i))),
                );
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }),
    );
    let envs = Arc::new(config.environments.clone());
    let e = envs.clone();
    register(
        ctx,
        "vigil_resource_env",
        vec![s(), s(), s()],
        DataType::Utf8,
        string_fn(move |id, name, tenant| e.of_resource(id, name, tenant)),
    );
    let e = envs;
    register(
        ctx,
        "vigil_actor_env",
        vec![s(), s(), s()],
        DataType::Utf8,
        string_fn(move |id, name, role| e.of_actor(id, name, role)),
    );
    let canaries = config.canaries.clone();
    register(
        ctx,
        "vigil_is_canary",
        vec![s(), s()],
        DataType::Boolean,
        Box::new(move |a: &[ArrayRef], rows: usize| {
            let (id, name) = (strings(&a[0])?, strings(&a[1])?);
            let mut out = BooleanBuilder::with_capacity(rows);
            for i in 0..rows {
                let hit = [opt(id, i), opt(name, i)]
                    .into_iter()
                    .flatten()
                    .any(|v| canaries.iter().any(|p| crate::glob::matches(p, v)));
                out.append_value(hit);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }),
    );
}

fn timestamps(a: &ArrayRef) -> Result<&TimestampNanosecondArray> {
    match a.as_any().downcast_ref::<TimestampNanosecondArray>() {
        Some(t) => Ok(t),
        None => exec_err!("expected a timestamp argument, got {}", a.data_type()),
    }
}
