//! SQL functions that apply `vigil.toml` to rows, so reports stay plain SQL and analysts can use
//! the same rules in `vigil sql`:
//!
//! - `vigil_off_hours(event_time, actor_id, actor_name)` → boolean, per `[calendar]`
//! - `vigil_local_time(event_time, actor_id, actor_name)` → `Sat 23:14 Europe/Paris`
//! - `vigil_resource_env(resource_id, resource_name, tenant)` → environment or NULL
//! - `vigil_actor_env(actor_id, actor_name, actor_role)` → environment or NULL
//! - `vigil_is_canary(resource_id, resource_name)` → boolean, per `[canaries]`
//! - `vigil_network(src_ip)` → `10.1.2.0/24` (IPv4 /24, IPv6 /48), NULL when not an address
//! - `vigil_is_private(network)` → boolean: private, loopback or link-local
//! - `vigil_ua_family(user_agent)` → the client product, lower case (`aws-cli`, `curl`)
//! - `vigil_peer_groups(source, actor_id, actor_name, actor_role, tenant, actor_groups)` → the
//!   principal's peer groups, derived and per `[[peer_groups]]` (`crate::peer_groups`)

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, ListBuilder, StringBuilder, StringViewArray,
    TimestampNanosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::QuerySettings;

type Body = dyn Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync;

/// A function of fixed arity whose arguments are cast to `inputs` (strings from Utf8 or
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

fn strings(a: &ArrayRef) -> Result<&StringViewArray> {
    match a.as_any().downcast_ref::<StringViewArray>() {
        Some(s) => Ok(s),
        None => exec_err!("expected a string argument, got {}", a.data_type()),
    }
}

fn opt(a: &StringViewArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn string_list() -> DataType {
    DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new(
        "item",
        DataType::Utf8,
        true,
    )))
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
pub fn register_all(ctx: &SessionContext, config: &QuerySettings) {
    // String arguments are taken as views, the type table `events` has: no copy for columns.
    let s = || DataType::Utf8View;
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
    register(
        ctx,
        "vigil_network",
        vec![s()],
        DataType::Utf8,
        unary_string(network),
    );
    register(
        ctx,
        "vigil_ua_family",
        vec![s()],
        DataType::Utf8,
        unary_string(ua_family),
    );
    register(
        ctx,
        "vigil_is_private",
        vec![s()],
        DataType::Boolean,
        Box::new(move |a: &[ArrayRef], rows: usize| {
            let x = strings(&a[0])?;
            let mut out = BooleanBuilder::with_capacity(rows);
            for i in 0..rows {
                out.append_option(opt(x, i).map(crate::net::is_private_network));
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }),
    );
    let groups = config.peer_groups.clone();
    register(
        ctx,
        "vigil_peer_groups",
        vec![s(), s(), s(), s(), s(), string_list()],
        string_list(),
        Box::new(move |a: &[ArrayRef], rows: usize| {
            let [source, id, name, role, tenant] = [&a[0], &a[1], &a[2], &a[3], &a[4]].map(strings);
            let (source, id, name, role, tenant) = (source?, id?, name?, role?, tenant?);
            let Some(lists) = a[5].as_list_opt::<i32>() else {
                return exec_err!("expected a list of strings, got {}", a[5].data_type());
            };
            // The argument is coerced to a list of Utf8: its items are borrowed, not copied.
            let Some(items) = lists.values().as_string_opt::<i32>() else {
                return exec_err!("expected list items of Utf8, got {}", lists.value_type());
            };
            let offsets = lists.value_offsets();
            let mut out = ListBuilder::new(StringBuilder::new());
            for i in 0..rows {
                let range = if lists.is_valid(i) {
                    offsets[i] as usize..offsets[i + 1] as usize
                } else {
                    0..0
                };
                let items: Vec<Option<&str>> = range
                    .map(|j| items.is_valid(j).then(|| items.value(j)))
                    .collect();
                let principal = crate::peer_groups::Principal {
                    source: opt(source, i),
                    actor_id: opt(id, i),
                    actor_name: opt(name, i),
                    actor_role: opt(role, i),
                    tenant: opt(tenant, i),
                    groups: &items,
                };
                for g in groups.of(&principal) {
                    out.values().append_value(g);
                }
                out.append(true);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }),
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

/// One string column in, one value out per row.
fn unary_string(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Box<Body> {
    Box::new(move |a: &[ArrayRef], rows: usize| {
        let x = strings(&a[0])?;
        let mut out = StringBuilder::with_capacity(rows, rows * 12);
        for i in 0..rows {
            out.append_option(opt(x, i).and_then(&f));
        }
        Ok(Arc::new(out.finish()) as ArrayRef)
    })
}

/// `10.1.2.0/24` for IPv4, the /48 for IPv6.
pub fn network(ip: &str) -> Option<String> {
    match ip.trim().parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]))
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            Some(format!("{net}/48"))
        }
    }
}

/// The client product of a user agent: what comes before the first `/`, space or `(`, lower case.
pub fn ua_family(ua: &str) -> Option<String> {
    let first = ua
        .trim()
        .split(|c: char| c == '/' || c.is_whitespace() || c == '(' || c == ',')
        .find(|s| !s.is_empty())?;
    Some(first.to_ascii_lowercase())
}

fn timestamps(a: &ArrayRef) -> Result<&TimestampNanosecondArray> {
    match a.as_any().downcast_ref::<TimestampNanosecondArray>() {
        Some(t) => Ok(t),
        None => exec_err!("expected a timestamp argument, got {}", a.data_type()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_clients() {
        assert_eq!(network("10.20.7.201").as_deref(), Some("10.20.7.0/24"));
        assert_eq!(
            network("2001:db8:abcd:12::1").as_deref(),
            Some("2001:db8:abcd::/48")
        );
        assert_eq!(network("AWS Internal"), None);
        assert_eq!(
            ua_family("aws-cli/2.15.30 Python/3.11.8").as_deref(),
            Some("aws-cli")
        );
        assert_eq!(
            ua_family("grpc-go/1.64.0,gzip(gfe)").as_deref(),
            Some("grpc-go")
        );
        assert_eq!(ua_family("curl/8.5.0").as_deref(), Some("curl"));
        assert_eq!(
            ua_family("Boto3/1.34.0 md/Botocore#1.34.0").as_deref(),
            Some("boto3")
        );
        assert_eq!(ua_family("  "), None);
    }
}
