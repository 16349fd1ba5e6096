//! The layering every change keeps (see `src/lib.rs`): no two top-level
//! modules of `src/` use each other, the low floor (`domain`, `protocol`,
//! `error`, `outbound`) uses nothing above it, the store only the floors
//! below it, and only `actors` names actix. Read from the
//! source text: every `crate::<module>` path a file names counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that may use only each other (and `postgres`, `config`).
const LOW_FLOOR: &[&str] = &["domain", "protocol", "error", "outbound"];
const BELOW_LOW_FLOOR: &[&str] = &["postgres", "config", "telemetry"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/ws/visitor.rs` → `ws`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_str().unwrap();
    first.trim_end_matches(".rs").to_owned()
}

/// Which top-level modules each module names through `crate::…`.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        if ["main", "lib"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let names = uses.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != module {
                names.insert(name);
            }
        }
    }
    uses
}

#[test]
fn no_two_top_level_modules_use_each_other() {
    let uses = uses();
    let mut loops = Vec::new();
    for (a, names) in &uses {
        for b in names {
            if a < b && uses.get(b).is_some_and(|theirs| theirs.contains(a)) {
                loops.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(loops.is_empty(), "modules that use each other: {loops:?}");
}

#[test]
fn the_low_floor_uses_nothing_above_it() {
    let uses = uses();
    let mut upward = Vec::new();
    for module in LOW_FLOOR {
        for name in uses.get(*module).into_iter().flatten() {
            if !LOW_FLOOR.contains(&name.as_str()) && !BELOW_LOW_FLOOR.contains(&name.as_str()) {
                upward.push(format!("{module} -> {name}"));
            }
        }
    }
    assert!(upward.is_empty(), "the low floor uses modules above it: {upward:?}");
}

#[test]
fn the_store_uses_only_the_floors_below_it() {
    let uses = uses();
    let upward: Vec<&String> = uses
        .get("store")
        .into_iter()
        .flatten()
        .filter(|name| !LOW_FLOOR.contains(&name.as_str()) && !BELOW_LOW_FLOOR.contains(&name.as_str()))
        .collect();
    assert!(upward.is_empty(), "the store uses modules above it: {upward:?}");
}

#[test]
fn no_actix_actor_type_is_named_outside_the_actors() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| module_of(&src, f) != "actors")
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.contains("Addr<") || text.contains("actix::") || text.contains("use actix;")
        })
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(offenders.is_empty(), "only src/actors/ may name actix (use the typed handles): {offenders:?}");
}
