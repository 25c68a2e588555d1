//! The interactive SQL shell of `vigil sql`: multi-line statements ended by `;`, history,
//! backslash commands, timing per query. Errors are printed and the shell goes on.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::prelude::SessionContext;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use crate::query::{run_sql, Limits, TABLES};
use crate::report::{write_batches_fitted, Format};

const HELP: &str = "\
Statements end with ';' and may span lines. Commands:
  \\d             list tables and views
  \\d NAME        columns of a table or view
  \\format F      output format: table, csv, json, jsonl, markdown
  \\timing        turn query timing on or off
  \\q             quit (also Ctrl-D)
Functions: vigil_off_hours(event_time, actor_id, actor_name), vigil_local_time(...),
  vigil_resource_env(resource_id, resource_name, tenant), vigil_actor_env(actor_id, actor_name, actor_role),
  vigil_is_canary(resource_id, resource_name)";

/// What one input line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep reading: the statement is not finished.
    More,
    /// Run this statement.
    Query(String),
    /// A backslash command with its argument.
    Command(String, String),
}

/// Collects lines into statements.
#[derive(Default)]
pub struct LineBuffer {
    text: String,
}

impl LineBuffer {
    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }

    pub fn clear(&mut self) {
        self.text.clear();
    }

    pub fn feed(&mut self, line: &str) -> Step {
        let trimmed = line.trim();
        if self.is_empty() {
            if let Some(cmd) = trimmed.strip_prefix('\\') {
                let (name, arg) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
                return Step::Command(name.to_owned(), arg.trim().trim_end_matches(';').to_owned());
            }
            if trimmed.eq_ignore_ascii_case("quit") || trimmed.eq_ignore_ascii_case("exit") {
                return Step::Command("q".into(), String::new());
            }
        }
        self.text.push_str(line);
        self.text.push('\n');
        if trimmed.ends_with(';') {
            let sql = self.text.trim().trim_end_matches(';').trim().to_owned();
            self.text.clear();
            if sql.is_empty() {
                return Step::More;
            }
            return Step::Query(sql);
        }
        Step::More
    }
}

fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("vigil").join("sql_history"))
}

async fn describe(
    ctx: &SessionContext,
    name: &str,
    limits: Limits,
    format: Format,
) -> anyhow::Result<()> {
    let sql = if name.is_empty() {
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name".to_owned()
    } else {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            anyhow::bail!("'{name}' is not a table name; the tables are {TABLES}");
        }
        format!("SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{name}' ORDER BY ordinal_position")
    };
    let batches = run_sql(ctx, &sql, limits).await?;
    if batches.iter().map(|b| b.num_rows()).sum::<usize>() == 0 {
        anyhow::bail!("no table named '{name}'; the tables are {TABLES}");
    }
    let mut out = std::io::stdout().lock();
    write_batches_fitted(&mut out, &batches, format, crate::report::terminal_width())?;
    Ok(())
}

/// Runs the shell until `\q` or end of input.
pub async fn run(ctx: &SessionContext, limits: Limits) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!(
        "vigil sql shell: tables {TABLES}. End statements with ';'. \\? for help, \\q to quit."
    );
    let mut buffer = LineBuffer::default();
    let mut format = Format::Table;
    let mut timing = true;
    loop {
        let prompt = if buffer.is_empty() {
            "vigil> "
        } else {
            "   ...> "
        };
        let line = match editor.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        match buffer.feed(&line) {
            Step::More => {}
            Step::Command(name, arg) => {
                let _ = editor.add_history_entry(line.trim());
                match name.as_str() {
                    "q" => break,
                    "?" | "h" | "help" => eprintln!("{HELP}"),
                    "d" => {
                        if let Err(e) = describe(ctx, &arg, limits, format).await {
                            eprintln!("error: {}", super::error_sentence(&e));
                        }
                    }
                    "timing" => {
                        timing = !timing;
                        eprintln!("timing {}", if timing { "on" } else { "off" });
                    }
                    "format" => match <Format as clap::ValueEnum>::from_str(&arg, true) {
                        Ok(Format::Html) | Err(_) => {
                            eprintln!("error: format must be table, csv, json, jsonl or markdown")
                        }
                        Ok(f) => format = f,
                    },
                    other => eprintln!("error: unknown command \\{other}; \\? lists them"),
                }
            }
            Step::Query(sql) => {
                let _ = editor.add_history_entry(format!("{sql};"));
                let started = Instant::now();
                match run_sql(ctx, &sql, limits).await {
                    Ok(batches) => {
                        let mut out = std::io::stdout().lock();
                        write_batches_fitted(
                            &mut out,
                            &batches,
                            format,
                            crate::report::terminal_width(),
                        )?;
                        out.flush()?;
                        if timing {
                            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                            eprintln!(
                                "({rows} row{} in {:.3} s)",
                                if rows == 1 { "" } else { "s" },
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    Err(e) => eprintln!("error: {e}"),
                }
            }
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_span_lines_and_commands_stand_alone() {
        let mut b = LineBuffer::default();
        assert_eq!(b.feed("SELECT count(*)"), Step::More);
        assert_eq!(
            b.feed("FROM events;"),
            Step::Query("SELECT count(*)\nFROM events".into())
        );
        assert_eq!(
            b.feed("\\d events"),
            Step::Command("d".into(), "events".into())
        );
        assert_eq!(b.feed(";"), Step::More);
        assert_eq!(b.feed("SELECT 1"), Step::More);
        // A backslash inside a statement is text, not a command.
        assert_eq!(b.feed("\\d"), Step::More);
        b.clear();
        assert_eq!(b.feed("quit"), Step::Command("q".into(), String::new()));
    }
}
