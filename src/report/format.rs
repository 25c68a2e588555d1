//! Writing query results: table, csv, json, jsonl, markdown, html. The only code that prints data.
//!
//! Timestamps are RFC 3339 UTC, lists are arrays, maps are objects (in JSON), and nested values
//! are written as JSON text in table and CSV cells.

use std::io::{self, Write};

use clap::ValueEnum;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{JsonArray, LineDelimited, WriterBuilder};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Jsonl,
    /// A GitHub-flavoured Markdown table
    Markdown,
    /// A standalone HTML page
    Html,
}

impl Format {
    /// `table` on a terminal, `jsonl` otherwise.
    pub fn default_for(stdout_is_terminal: bool) -> Format {
        if stdout_is_terminal {
            Format::Table
        } else {
            Format::Jsonl
        }
    }
}

fn format_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("")
        .with_timestamp_tz_format(Some("%Y-%m-%dT%H:%M:%S%.fZ"))
        .with_timestamp_format(Some("%Y-%m-%dT%H:%M:%S%.f"))
}

/// The width of the terminal standard output is, when it is one: tables written there fit it.
pub fn terminal_width() -> Option<u16> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return None;
    }
    Some(comfy_table::Table::new().width().unwrap_or(100))
}

/// Writes batches in `format` to `out` with every cell in full.
pub fn write_batches(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: Format,
) -> io::Result<()> {
    write_batches_fitted(out, batches, format, None)
}

/// Writes batches in `format` to `out`; a table fits `width` columns when given (a terminal),
/// its long cells cut with an ellipsis. Other formats always carry the full text.
pub fn write_batches_fitted(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: Format,
    width: Option<u16>,
) -> io::Result<()> {
    match format {
        Format::Table => write_table(out, batches, width),
        Format::Csv => write_csv(out, batches),
        Format::Json => write_json(out, batches, true),
        Format::Jsonl => write_json(out, batches, false),
        Format::Markdown => write_markdown(out, batches),
        Format::Html => {
            let now = crate::timerange::rfc3339(crate::clock::now_nanos().unwrap_or(0));
            let section = super::html::Section {
                title: "Query result",
                description: None,
                facts: Vec::new(),
                batches,
                chart: None,
                per_day: None,
            };
            out.write_all(super::html::page("Query result", &[section], &now)?.as_bytes())
        }
    }
}

/// Column names of a batch.
pub fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Every cell of a batch as display text (nested values as JSON, timestamps RFC 3339).
pub fn cell_texts(batch: &RecordBatch) -> io::Result<Vec<Vec<String>>> {
    cell_texts_with(batch, &format_options())
}

/// Every cell as text for a page people read: timestamps to the second and without the `T`
/// and `Z` (the page says its times are UTC). Files and JSON keep every digit.
pub fn compact_cell_texts(batch: &RecordBatch) -> io::Result<Vec<Vec<String>>> {
    let options = FormatOptions::default()
        .with_null("")
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S"));
    cell_texts_with(batch, &options)
}

fn cell_texts_with(batch: &RecordBatch, options: &FormatOptions) -> io::Result<Vec<Vec<String>>> {
    let formatters = formatters(batch, options)?;
    (0..batch.num_rows())
        .map(|row| row_cells(batch, &formatters, row))
        .collect()
}

/// A cell for a terminal or a Markdown table: on one line (runs of whitespace become one space),
/// and without control characters, so log content cannot move the cursor, recolour or clear a
/// terminal (escape sequences) or break the table.
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        out.push(if c.is_control() { '\u{fffd}' } else { c });
    }
    out
}

/// One line without control characters, its spaces kept (the indentation of a plan).
fn terminal_safe_keep_spaces(line: &str) -> String {
    line.trim_end()
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

fn markdown_cell(text: &str) -> String {
    terminal_safe(text)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
}

fn write_markdown(out: &mut dyn Write, batches: &[RecordBatch]) -> io::Result<()> {
    let Some(first) = batches.first() else {
        return writeln!(out, "(0 rows)");
    };
    let names = column_names(first);
    writeln!(
        out,
        "| {} |",
        names
            .iter()
            .map(|n| markdown_cell(n))
            .collect::<Vec<_>>()
            .join(" | ")
    )?;
    writeln!(out, "|{}", "---|".repeat(names.len()))?;
    for batch in batches {
        for row in cell_texts(batch)? {
            writeln!(
                out,
                "| {} |",
                row.iter()
                    .map(|c| markdown_cell(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )?;
        }
    }
    Ok(())
}

fn arrow_err(e: ArrowError) -> io::Error {
    io::Error::other(e)
}

fn is_nested(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_) | DataType::LargeList(_) | DataType::Map(_, _) | DataType::Struct(_)
    )
}

/// Cell texts of one row: nested values as JSON, everything else as Arrow displays it.
fn row_cells(
    batch: &RecordBatch,
    formatters: &[ArrayFormatter],
    row: usize,
) -> io::Result<Vec<String>> {
    let mut cells = Vec::with_capacity(batch.num_columns());
    for (i, col) in batch.columns().iter().enumerate() {
        if is_nested(col.data_type()) && col.is_valid(row) {
            cells.push(nested_json(&batch.slice(row, 1), i)?);
        } else {
            cells.push(
                formatters[i]
                    .value(row)
                    .try_to_string()
                    .map_err(arrow_err)?,
            );
        }
    }
    Ok(cells)
}

fn nested_json(one_row: &RecordBatch, column: usize) -> io::Result<String> {
    let single = one_row.project(&[column]).map_err(arrow_err)?;
    let mut buf = Vec::new();
    let mut w = WriterBuilder::new().build::<_, LineDelimited>(&mut buf);
    w.write(&single).map_err(arrow_err)?;
    w.finish().map_err(arrow_err)?;
    drop(w);
    let obj: serde_json::Value = serde_json::from_slice(&buf).map_err(io::Error::other)?;
    Ok(obj
        .as_object()
        .and_then(|o| o.values().next())
        .map(|v| v.to_string())
        .unwrap_or_default())
}

/// A box-drawn table. With a terminal `width`, cells are cut to half of it (one Azure error
/// message is 700 characters), and a table still wider than the terminal is shown as records,
/// one `column │ value` line each (psql's expanded display), values cut to the line: the full
/// text is in csv, json and html.
fn write_table(out: &mut dyn Write, batches: &[RecordBatch], width: Option<u16>) -> io::Result<()> {
    let Some(first) = batches.first() else {
        return writeln!(out, "(0 rows)");
    };
    let names = column_names(first);
    // The output of EXPLAIN: plans keep their lines and indentation, and their width.
    let explain = names == ["plan_type", "plan"];
    let width = width.filter(|_| !explain).map(usize::from);
    let longest = width.map(|w| (w / 2).max(24));
    let options = format_options();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in batches {
        let formatters = formatters(batch, &options)?;
        for row in 0..batch.num_rows() {
            let cells = row_cells(batch, &formatters, row)?;
            rows.push(
                cells
                    .iter()
                    .map(|c| {
                        if explain {
                            c.lines()
                                .map(terminal_safe_keep_spaces)
                                .collect::<Vec<_>>()
                                .join("\n")
                        } else {
                            terminal_safe(c)
                        }
                    })
                    .collect(),
            );
        }
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(names.iter().cloned());
    for row in &rows {
        table.add_row(row.iter().map(|c| shorten(c, longest)));
    }
    let text = table.to_string();
    match width {
        Some(w) if text.lines().any(|l| l.chars().count() > w) => {
            write_records(out, &names, &rows, w)?
        }
        _ => writeln!(out, "{text}")?,
    }
    let n = rows.len();
    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })
}

/// Rows as records, one `column │ value` line per column, each line at most `width` long.
fn write_records(
    out: &mut dyn Write,
    names: &[String],
    rows: &[Vec<String>],
    width: usize,
) -> io::Result<()> {
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let value_width = width.saturating_sub(name_width + 3).max(8);
    for (i, row) in rows.iter().enumerate() {
        let title = format!("-[ RECORD {} ]", i + 1);
        let rule = width.min(name_width + 3 + value_width).max(title.len());
        writeln!(out, "{title}{}", "-".repeat(rule - title.len()))?;
        for (name, value) in names.iter().zip(row) {
            writeln!(
                out,
                "{name:<name_width$} │ {}",
                shorten(value, Some(value_width))
            )?;
        }
    }
    Ok(())
}

/// `text` cut to `longest` characters, the last an ellipsis.
fn shorten(text: &str, longest: Option<usize>) -> String {
    match longest {
        Some(n) if text.chars().count() > n => {
            let mut cut: String = text.chars().take(n.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
        _ => text.to_owned(),
    }
}

fn formatters<'a>(
    batch: &'a RecordBatch,
    options: &'a FormatOptions<'a>,
) -> io::Result<Vec<ArrayFormatter<'a>>> {
    batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), options).map_err(arrow_err))
        .collect()
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A text cell for CSV that a spreadsheet will not run: log content starting with `=`, `+`,
/// `-`, `@`, tab or carriage return is a formula to Excel and LibreOffice (CSV injection), so
/// it gets a leading apostrophe (OWASP's advice). Numbers are written as they are.
fn csv_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_field(&format!("'{text}"))
    } else {
        csv_field(text)
    }
}

fn write_csv(out: &mut dyn Write, batches: &[RecordBatch]) -> io::Result<()> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let header: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| csv_field(f.name()))
        .collect();
    writeln!(out, "{}", header.join(","))?;
    let options = format_options();
    for batch in batches {
        let formatters = formatters(batch, &options)?;
        let text: Vec<bool> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| !f.data_type().is_numeric())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = row_cells(batch, &formatters, row)?
                .iter()
                .zip(&text)
                .map(|(c, t)| if *t { csv_text(c) } else { csv_field(c) })
                .collect();
            writeln!(out, "{}", cells.join(","))?;
        }
    }
    Ok(())
}

fn write_json(out: &mut dyn Write, batches: &[RecordBatch], array: bool) -> io::Result<()> {
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let builder = WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.fZ".into());
    if array {
        let mut w = builder.build::<_, JsonArray>(&mut *out);
        w.write_batches(&refs).map_err(arrow_err)?;
        w.finish().map_err(arrow_err)?;
        drop(w);
        writeln!(out)
    } else {
        let mut w = builder.build::<_, LineDelimited>(&mut *out);
        w.write_batches(&refs).map_err(arrow_err)?;
        w.finish().map_err(arrow_err)
    }
}

#[cfg(test)]
mod tests {
    use super::{csv_text, terminal_safe};

    #[test]
    fn csv_cells_are_not_formulas() {
        assert_eq!(
            csv_text("=HYPERLINK(\"http://evil\",\"x\")"),
            "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""
        );
        assert_eq!(csv_text("+cmd|calc!A1"), "'+cmd|calc!A1");
        assert_eq!(csv_text("alice"), "alice");
    }

    #[test]
    fn terminal_cells_carry_no_control_characters() {
        assert_eq!(
            terminal_safe("1 error occurred:\n\t* permission denied\n\n"),
            "1 error occurred: * permission denied"
        );
        assert_eq!(terminal_safe("evil\u{1b}[2Jname"), "evil\u{fffd}[2Jname");
    }

    /// On a terminal a table fits its width and a long cell ends in an ellipsis; written
    /// elsewhere it keeps every character.
    #[test]
    fn terminal_tables_fit_the_width() {
        use std::sync::Arc;

        use datafusion::arrow::array::{RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};

        let error = format!(
            "AuthorizationFailed: {}",
            "the client lacks access ".repeat(30)
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("actor_type", DataType::Utf8, true),
            Field::new("actor_name", DataType::Utf8, true),
            Field::new("error_message", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["service"])),
                Arc::new(StringArray::from(vec!["ci-deployer@acme.example"])),
                Arc::new(StringArray::from(vec![error.as_str()])),
            ],
        )
        .unwrap();
        // Fits in 120 columns once the error is cut: a table.
        let mut fitted = Vec::new();
        super::write_table(&mut fitted, std::slice::from_ref(&batch), Some(120)).unwrap();
        let fitted = String::from_utf8(fitted).unwrap();
        for line in fitted.lines() {
            assert!(line.chars().count() <= 120, "{line}\n{fitted}");
        }
        assert!(fitted.contains("┆ ci-deployer@acme.example ┆"), "{fitted}");
        assert!(fitted.contains('…'), "{fitted}");
        // Not in 50: records, one line per column, values cut to the line.
        let mut narrow = Vec::new();
        super::write_table(&mut narrow, std::slice::from_ref(&batch), Some(50)).unwrap();
        let narrow = String::from_utf8(narrow).unwrap();
        for line in narrow.lines() {
            assert!(line.chars().count() <= 50, "{line}\n{narrow}");
        }
        assert!(narrow.starts_with("-[ RECORD 1 ]"), "{narrow}");
        assert!(
            narrow.contains("actor_name    │ ci-deployer@acme.example\n"),
            "{narrow}"
        );
        assert!(
            narrow.contains("error_message │ AuthorizationFailed: the client l…\n"),
            "{narrow}"
        );
        assert!(narrow.ends_with("(1 row)\n"), "{narrow}");
        let mut full = Vec::new();
        super::write_table(&mut full, &[batch], None).unwrap();
        assert!(String::from_utf8(full).unwrap().contains(error.trim()));
    }
}
