//! The front end (parser → stages → global scope → per-stage expansion)
//! over every build case of the shared conformance suite
//! (`../shared/conformance/{cases,upstream}.tar.gz`, read in place):
//! every Dockerfile the reference BuildKit builds must pass it, and every one
//! the reference refuses must be refused by it, except the cases that fail
//! only while building (missing files, failing RUN, bad .dockerignore).
//! Under CI (`CI=true`) a missing suite is a failure.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use builder_core::instructions::*;
use builder_core::parser::parse;

/// Refused by the reference only at build time, so the front end accepts
/// them: a COPY/ADD source that does not exist, a failing RUN, a
/// .dockerignore the context reader rejects.
const BUILD_TIME_FAILURES: [&str; 11] = [
    "copy-missing-source-error",
    "run-exit-code-error",
    "bah-050-copy-multiple-some-missing",
    "bah-051-copy-multiple-missing-file-with-glob",
    "bah-055-copy-integration1",
    "bah-057-copy-integration3",
    "bah-151-dockerignore-allowlist-alternating-nothing",
    "bah-152-dockerignore-allowlist-alternating-other",
    "moby-045-add-missing-source-error",
    "moby-052-dockerignore-bad-exclusion",
    "moby-139-run-nonzero-exit",
];

fn conformance_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut candidates = Vec::new();
    if let Some(d) = std::env::var_os("KILN_SHARED_DIR") {
        candidates.push(PathBuf::from(d));
    }
    candidates.push(root.join("../shared"));
    candidates.push(root.join("../../shared"));
    let found = candidates
        .into_iter()
        .map(|d| d.join("conformance"))
        .find(|d| d.join("cases.tar.gz").is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "shared conformance suite ../shared/conformance is missing under CI"
        );
        eprintln!("shared conformance suite not found; set KILN_SHARED_DIR to run it");
    }
    found
}

#[derive(Default)]
struct Case {
    dockerfile: Vec<u8>,
    flags: Vec<String>,
    has_partial_expectation: bool,
}

/// Each case's Dockerfile and flags, straight from the tarball.
fn read_cases(tarball: &Path) -> BTreeMap<String, Case> {
    let file = std::fs::File::open(tarball).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut cases: BTreeMap<String, Case> = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let parts: Vec<String> = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let [_, name, file] = parts.as_slice() else {
            continue;
        };
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let case = cases.entry(name.clone()).or_default();
        match file.as_str() {
            "Dockerfile" => case.dockerfile = data,
            "flags" => case.flags = serde_json::from_slice(&data).unwrap_or_default(),
            "expect.json" => case.has_partial_expectation = true,
            _ => {}
        }
    }
    cases
}

fn front_end(case: &Case) -> Result<(), String> {
    let mut build_args = BuildArgs::new();
    let mut target = None;
    let mut flags = case.flags.iter();
    while let Some(f) = flags.next() {
        match f.as_str() {
            "--build-arg" => {
                let v = flags.next().cloned().unwrap_or_default();
                let (k, v) = v.split_once('=').unwrap_or((&v, ""));
                build_args.insert(k.to_string(), v.to_string());
            }
            "--target" => target = flags.next().cloned(),
            _ => {}
        }
    }
    let df = parse(&case.dockerfile).map_err(|e| format!("parse: {e}"))?;
    let stages = parse_dockerfile(&df).map_err(|e| e.to_string())?;
    let platform = Platform::parse("linux/amd64").map_err(|e| e.to_string())?;
    let global = GlobalScope::new(&stages, &build_args, &platform, None, target.as_deref())
        .map_err(|e| e.to_string())?;
    stages
        .target(target.as_deref())
        .map_err(|e| e.to_string())?;
    let mut done: Vec<StageState> = Vec::new();
    for stage in &stages.stages {
        let from = global.resolve_from(stage).map_err(|e| e.to_string())?;
        let mut state = match stages.resolve_base(&from.base, stage.index) {
            StageRef::Stage(i) => StageState::from_parent(&done[i]),
            StageRef::Image(_) => StageState::new(&global, vec![], ""),
        };
        for cmd in &stage.commands {
            state.apply(cmd).map_err(|e| e.to_string())?;
        }
        done.push(state);
    }
    Ok(())
}

#[test]
fn front_end_agrees_with_reference() {
    let Some(dir) = conformance_dir() else { return };
    let mut failures = Vec::new();
    let mut checked = 0;
    for (tarball, expected) in [
        ("cases.tar.gz", "expected"),
        ("upstream.tar.gz", "upstream-expected"),
    ] {
        for (name, case) in read_cases(&dir.join(tarball)) {
            let refused = dir.join(expected).join(format!("{name}.error")).exists();
            let has_json = dir.join(expected).join(format!("{name}.json")).exists();
            let ours = front_end(&case);
            // A hand-written partial expectation wins over the reference's
            // result (it covers syntax newer than the reference), as in
            // conform.py.
            if case.has_partial_expectation || (has_json && !refused) {
                checked += 1;
                if let Err(e) = ours {
                    failures.push(format!("{name}: reference builds it, we refuse: {e}"));
                }
            } else if refused {
                checked += 1;
                let build_time = BUILD_TIME_FAILURES.contains(&name.as_str());
                match (ours, build_time) {
                    (Ok(()), false) => {
                        failures.push(format!("{name}: reference refuses, we accept"))
                    }
                    (Err(e), true) => {
                        failures.push(format!("{name}: should pass the front end: {e}"))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 300, "only {checked} cases checked");
}
