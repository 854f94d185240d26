//! Tidy checks that run as tests: every source file opens with a `//!` doc, the engine
//! core imports no I/O crate (ARCHITECTURE.md invariants), no test hides behind
//! `#[ignore]` or `#[should_panic]`, and library code never prints to stdout.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let mut missing = Vec::new();
    for dir in ["src", "tests", "benches"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let first = text
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("");
            if !first.starts_with("//!") {
                missing.push(file.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a leading //! doc: {missing:?}"
    );
}

#[test]
fn the_engine_core_does_no_io() {
    let forbidden = [
        "tokio",
        "reqwest",
        "rusqlite",
        "pcsc",
        "hidapi",
        "evdev",
        "ratatui",
        "crossterm",
        "axum",
        "sd_notify",
        "std::fs",
        "std::net",
        "std::time::SystemTime",
        "Instant::now",
        "std::env",
        "std::process",
        "std::thread",
    ];
    let mut core = rust_files(&root().join("src/checkout"));
    core.extend(rust_files(&root().join("src/badges")));
    core.extend(rust_files(&root().join("src/outbox")));
    core.push(root().join("src/domain.rs"));
    let mut violations = Vec::new();
    for file in core {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    violations.push(format!(
                        "{}:{}: {word}",
                        file.strip_prefix(root()).unwrap().display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the core must stay free of I/O: {violations:#?}"
    );
}

#[test]
fn edges_do_not_import_each_other() {
    // Readers, docks, the Workspace ONE client, the store, the directory, the control
    // protocol and the dashboard meet only in the engine's types and the daemon's
    // wiring. The one allowed link: the dashboard speaks the control protocol.
    let edges = [
        "readers",
        "dock",
        "mdm",
        "store",
        "directory",
        "control",
        "dashboard",
    ];
    let mut violations = Vec::new();
    for edge in edges {
        for file in rust_files(&root().join("src").join(edge)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for other in edges.iter().chain(["daemon"].iter()) {
                    if *other == edge || (edge == "dashboard" && *other == "control") {
                        continue;
                    }
                    if code.contains(&format!("crate::{other}::"))
                        || code.contains(&format!("crate::{other}}}"))
                        || code.contains(&format!("crate::{other};"))
                    {
                        violations.push(format!(
                            "{}:{}: uses {other}",
                            file.strip_prefix(root()).unwrap().display(),
                            number + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "edges must not know each other: {violations:#?}"
    );
}

#[test]
fn no_ignored_or_should_panic_tests() {
    let mut found = Vec::new();
    for dir in ["src", "tests"] {
        for file in rust_files(&root().join(dir)) {
            if file.ends_with("tidy.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for marker in ["#[ignore", "#[should_panic"] {
                if text.contains(marker) {
                    found.push(format!("{}: {marker}", file.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "assert the current behaviour with a FIXME instead: {found:?}"
    );
}

#[test]
fn only_main_prints_to_stdout() {
    let mut found = Vec::new();
    for file in rust_files(&root().join("src")) {
        if file.ends_with("main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.contains("println!") || line.contains("print!(") {
                found.push(format!("{}:{}", file.display(), number + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "stdout belongs to the dashboard and command output: {found:?}"
    );
}
