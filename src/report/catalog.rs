//! The shipped reports: `queries/*.sql`, built into the binary, each with a header that names it,
//! describes it, declares its parameters and the control it evidences.

use std::collections::HashMap;
use std::fmt;

use datafusion::common::ScalarValue;

/// A report header parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Float,
    String,
    Bool,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::String => "string",
            ParamType::Bool => "bool",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub ty: ParamType,
    pub default: String,
}

impl ParamSpec {
    /// The value `text` as this parameter's type, for binding; never SQL text.
    pub fn value(&self, text: &str) -> Result<ScalarValue, String> {
        let bad = || match self.ty {
            ParamType::Int => format!(
                "parameter {} must be int (a whole number, 0 or more), not '{text}'",
                self.name
            ),
            _ => format!("parameter {} must be {}, not '{text}'", self.name, self.ty),
        };
        Ok(match self.ty {
            // Every shipped int parameter is a count or a number of days: never negative.
            ParamType::Int => {
                ScalarValue::Int64(Some(text.trim().parse::<u32>().map_err(|_| bad())?.into()))
            }
            ParamType::Float => {
                let v: f64 = text.trim().parse().map_err(|_| bad())?;
                if !v.is_finite() {
                    return Err(bad());
                }
                ScalarValue::Float64(Some(v))
            }
            ParamType::Bool => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => ScalarValue::Boolean(Some(true)),
                "false" | "no" | "0" => ScalarValue::Boolean(Some(false)),
                _ => {
                    return Err(format!(
                        "parameter {} must be true or false, not '{text}'",
                        self.name
                    ))
                }
            },
            ParamType::String => ScalarValue::Utf8(Some(text.to_owned())),
        })
    }
}

/// How to draw the result, when a chart helps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chart {
    /// A ranking: one bar per row, named by the first of the `label` columns (a comma-separated
    /// list) that is not empty in that row: a name where the logs give one, else the id.
    Bar { label: String, value: String },
    /// A time series.
    Line { x: String, y: String },
}

#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub title: String,
    pub description: String,
    pub params: Vec<ParamSpec>,
    pub control: Option<String>,
    pub chart: Option<Chart>,
    /// `-- per_day:`: a query over the same period and parameters giving one row per UTC day
    /// (a timestamp, then a number) for the page's per-day chart, when the report is about
    /// time (reads, denials, changes).
    pub per_day: Option<String>,
    /// The statement, header included (comments are ignored by the parser).
    pub sql: String,
}

/// The shipped report files, in `vigil report list` order.
const SHIPPED: [(&str, &str); 15] = [
    (
        "access-summary",
        include_str!("../../queries/access-summary.sql"),
    ),
    (
        "prod-secret-readers",
        include_str!("../../queries/prod-secret-readers.sql"),
    ),
    (
        "denied-access",
        include_str!("../../queries/denied-access.sql"),
    ),
    (
        "privileged-activity",
        include_str!("../../queries/privileged-activity.sql"),
    ),
    (
        "human-reads-workload-secrets",
        include_str!("../../queries/human-reads-workload-secrets.sql"),
    ),
    (
        "off-hours-access",
        include_str!("../../queries/off-hours-access.sql"),
    ),
    ("new-callers", include_str!("../../queries/new-callers.sql")),
    (
        "dormant-principals",
        include_str!("../../queries/dormant-principals.sql"),
    ),
    (
        "dormant-secrets",
        include_str!("../../queries/dormant-secrets.sql"),
    ),
    (
        "secret-changes",
        include_str!("../../queries/secret-changes.sql"),
    ),
    (
        "rotation-hygiene",
        include_str!("../../queries/rotation-hygiene.sql"),
    ),
    (
        "cross-environment",
        include_str!("../../queries/cross-environment.sql"),
    ),
    (
        "shared-secrets",
        include_str!("../../queries/shared-secrets.sql"),
    ),
    ("top-talkers", include_str!("../../queries/top-talkers.sql")),
    (
        "open-findings",
        include_str!("../../queries/open-findings.sql"),
    ),
];

/// Every shipped report, parsed. A header error is a bug in a shipped file (a unit test loads
/// them all), reported with the file name.
pub fn shipped() -> Result<Vec<Report>, String> {
    SHIPPED
        .iter()
        .map(|(file, text)| {
            let r = parse(text).map_err(|e| format!("queries/{file}.sql: {e}"))?;
            if r.name != *file {
                return Err(format!("queries/{file}.sql: header name is '{}'", r.name));
            }
            Ok(r)
        })
        .collect()
}

/// Finds reports by name; an unknown name lists the valid ones.
pub fn find<'a>(reports: &'a [Report], name: &str) -> Result<&'a Report, String> {
    reports.iter().find(|r| r.name == name).ok_or_else(|| {
        let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        format!(
            "no report named '{name}'; the reports are: {}",
            names.join(", ")
        )
    })
}

/// Parses a report file: `-- key: value` header lines, then the SQL.
pub fn parse(text: &str) -> Result<Report, String> {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        if let Some((key, value)) = comment.trim().split_once(':') {
            let key = key.trim();
            if [
                "name",
                "title",
                "description",
                "params",
                "control",
                "chart",
                "per_day",
            ]
            .contains(&key)
                && fields.insert(key, value.trim()).is_some()
            {
                return Err(format!("header key '{key}' appears twice"));
            }
        }
    }
    let need = |k: &str| {
        fields
            .get(k)
            .filter(|v| !v.is_empty())
            .map(|v| (*v).to_owned())
            .ok_or_else(|| format!("header '-- {k}:' is missing"))
    };
    let params = match fields.get("params") {
        Some(p) if !p.is_empty() => parse_params(p)?,
        _ => Vec::new(),
    };
    Ok(Report {
        name: need("name")?,
        title: need("title")?,
        description: need("description")?,
        params,
        control: fields
            .get("control")
            .map(|c| (*c).to_owned())
            .filter(|c| !c.is_empty()),
        chart: fields.get("chart").map(|c| parse_chart(c)).transpose()?,
        per_day: match fields.get("per_day") {
            Some(q)
                if q.get(..7)
                    .is_some_and(|h| h.eq_ignore_ascii_case("SELECT ")) =>
            {
                Some((*q).to_owned())
            }
            Some(q) => return Err(format!("per_day '{q}' must be a SELECT")),
            None => None,
        },
        sql: text.trim().trim_end_matches(';').to_owned(),
    })
}

fn parse_params(text: &str) -> Result<Vec<ParamSpec>, String> {
    let mut out: Vec<ParamSpec> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let (name, rest) = item
            .split_once(':')
            .ok_or_else(|| format!("param '{item}' is not name:type=default"))?;
        let (ty, default) = rest
            .split_once('=')
            .ok_or_else(|| format!("param '{item}' has no default"))?;
        let ty = match ty.trim() {
            "int" => ParamType::Int,
            "float" => ParamType::Float,
            "string" => ParamType::String,
            "bool" => ParamType::Bool,
            other => {
                return Err(format!(
                    "param '{item}': type '{other}' is not int, float, string or bool"
                ))
            }
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || ["from", "to"].contains(&name)
            || out.iter().any(|p| p.name == name)
        {
            return Err(format!("param '{item}': bad or repeated name"));
        }
        let spec = ParamSpec {
            name: name.to_owned(),
            ty,
            default: default.trim().to_owned(),
        };
        spec.value(&spec.default)?;
        out.push(spec);
    }
    Ok(out)
}

fn parse_chart(text: &str) -> Result<Chart, String> {
    let mut words = text.split_whitespace();
    let kind = words.next().unwrap_or("");
    let kv: HashMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
    let get = |k: &str| {
        kv.get(k)
            .map(|v| (*v).to_owned())
            .ok_or_else(|| format!("chart '{text}' needs {k}=<column>"))
    };
    match kind {
        "bar" => Ok(Chart::Bar {
            label: get("label")?,
            value: get("value")?,
        }),
        "line" => Ok(Chart::Line {
            x: get("x")?,
            y: get("y")?,
        }),
        _ => Err(format!("chart '{text}' must start with bar or line")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_report_parses() {
        let reports = shipped().unwrap();
        // Every file of queries/ is shipped, under its own name, and nothing else is.
        let mut files: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter_map(|n| n.strip_suffix(".sql").map(str::to_owned))
                .collect();
        files.sort();
        let mut names: Vec<String> = reports.iter().map(|r| r.name.clone()).collect();
        names.sort();
        assert_eq!(names, files);
        assert!(
            reports.iter().all(|r| r.sql.contains("ORDER BY")),
            "every report orders its rows"
        );
        assert!(find(&reports, "nope").unwrap_err().contains("top-talkers"));
    }

    #[test]
    fn header_errors_are_named() {
        let ok = "-- name: x\n-- title: X\n-- description: d\n-- params: n:int=3, who:string=o'brien\n-- chart: bar label=a value=b\nSELECT 1 ORDER BY 1";
        let r = parse(ok).unwrap();
        assert_eq!(r.params[1].default, "o'brien");
        assert_eq!(
            r.chart,
            Some(Chart::Bar {
                label: "a".into(),
                value: "b".into()
            })
        );
        assert!(parse("-- name: x\nSELECT 1").unwrap_err().contains("title"));
        assert!(parse(&ok.replace("n:int=3", "n:int=three"))
            .unwrap_err()
            .contains("must be int"));
        assert!(parse(&ok.replace("n:int=3", "from:int=3")).is_err());
        assert!(parse(&ok.replace("bar label=a", "pie label=a")).is_err());
        assert_eq!(
            r.params[0].value("12").unwrap(),
            ScalarValue::Int64(Some(12))
        );
        assert!(r.params[0].value("1 OR 1=1").is_err());
    }
}
