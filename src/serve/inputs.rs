//! The files and objects `[[serve.inputs]]` name at this moment: found anew before every commit
//! (an object prefix every `poll_every`), so a file that appears (a rotation, a new day's log)
//! or an object delivered is read from the next commit on. An input that cannot be read (a
//! bucket unreachable or denied) is reported and never stops the others.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::config::serve::ServeInput;
use crate::ingest::inputs::{self, InputFile};
use crate::ingest::objects::{self, ObjectInput};
use crate::ingest::run::SkippedInput;
use crate::object_storage::ObjectStoreSettings;

#[derive(Default)]
pub struct Found {
    pub files: Vec<InputFile>,
    pub objects: Vec<ObjectInput>,
    pub skipped: Vec<SkippedInput>,
    /// Inputs that cannot be read: "path: why".
    pub unreadable: Vec<String>,
}

/// The files and objects of every input, each once; an input that cannot be read as
/// "path: why".
pub fn find(configured: &[&ServeInput], object_store: &ObjectStoreSettings) -> Found {
    let mut out = Found::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut seen_objects: HashSet<String> = HashSet::new();
    for input in configured {
        if let Some(url) = &input.object {
            match objects::expand(std::slice::from_ref(url), object_store) {
                Ok((found, skipped)) => {
                    out.skipped
                        .extend(skipped.into_iter().map(SkippedInput::from));
                    for mut o in found {
                        if seen_objects.insert(o.url.clone()) {
                            o.source = input.source;
                            out.objects.push(o);
                        }
                    }
                }
                Err(e) => out.unreadable.push(format!("{url}: {e}")),
            }
            continue;
        }
        let files = match of_input(&input.path) {
            Ok((files, skipped)) => {
                out.skipped
                    .extend(skipped.into_iter().map(SkippedInput::from));
                files
            }
            Err(why) => {
                out.unreadable.push(why);
                continue;
            }
        };
        for mut f in files {
            // A file that vanished or cannot be opened between the listing and here.
            if let Err(e) = std::fs::File::open(&f.path) {
                out.unreadable.push(format!("{}: {e}", f.path.display()));
                continue;
            }
            if seen.insert(f.path.clone()) {
                f.source = input.source;
                out.files.push(f);
            }
        }
    }
    out
}

fn of_input(path: &Path) -> Result<(Vec<InputFile>, Vec<inputs::Skipped>), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        // Its errors name the path.
        return inputs::expand(&[path.to_owned()]).map_err(|e| e.to_string());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut matched: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| crate::glob::matches(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    matched.sort();
    Ok((
        matched
            .into_iter()
            .map(|p| InputFile {
                display: p.display().to_string(),
                path: p,
                stream: false,
                source: None,
            })
            .collect(),
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_directories_and_missing_inputs() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["audit.log", "audit.log.1", "other.txt"] {
            std::fs::write(dir.path().join(n), "{}\n").unwrap();
        }
        let input = |p: PathBuf| ServeInput {
            path: p,
            object: None,
            source: Some(crate::event::SourceKind::Vault),
            poll_every: None,
        };
        let configured = [
            input(dir.path().join("audit.log*")),
            input(dir.path().join("audit.log")),
            input(dir.path().join("missing.log")),
        ];
        let found = find(
            &configured.iter().collect::<Vec<_>>(),
            &ObjectStoreSettings::default(),
        );
        let names: Vec<String> = found
            .files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["audit.log", "audit.log.1"]);
        assert!(found.files.iter().all(|f| f.source.is_some()));
        assert_eq!(found.unreadable.len(), 1, "{:?}", found.unreadable);
        assert!(found.unreadable[0].contains("missing.log"));
    }
}
