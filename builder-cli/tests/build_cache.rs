//! `kiln build` with the layer cache: what a rebuild reuses, what it runs
//! again, and why (read from `--progress=rawjson` events).
mod build_support;

use std::path::{Path, PathBuf};

use build_support::cache::{build, context_with_busybox};
use build_support::*;

fn context(work: &Path) -> PathBuf {
    context_with_busybox(
        work,
        &[("src/a.txt", "a\n"), ("src/b.txt", "b\n"), ("c.txt", "c\n")],
    )
}

const DF: &str = "FROM scratch\n\
    COPY busybox /bin/busybox\n\
    ARG V=1\n\
    COPY src /src/\n\
    LABEL x=1\n\
    COPY c.txt /c.txt\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo $V > /v\"]\n\
    WORKDIR /w\n";

const LAYER_STEPS: usize = 5;

#[test]
fn a_no_op_rebuild_is_all_hits_with_the_same_digest() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let first = build(work.path(), &ctx, DF, &[]);
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(first.steps("cache_miss").len(), LAYER_STEPS);
    assert!(first.steps("step_cached").is_empty());

    let second = build(work.path(), &ctx, DF, &[]);
    assert!(second.ok, "{}", second.stderr);
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.steps("step_cached").len(), LAYER_STEPS);
    assert!(second.steps("cache_miss").is_empty());

    // --no-cache looks nothing up but builds the same image.
    let third = build(work.path(), &ctx, DF, &["--no-cache"]);
    assert!(third.ok, "{}", third.stderr);
    assert_eq!(third.digest, first.digest);
    assert!(third.steps("step_cached").is_empty());
}

#[test]
fn one_changed_file_invalidates_its_copy_and_later_layer_steps_only() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let first = build(work.path(), &ctx, DF, &[]);
    assert!(first.ok, "{}", first.stderr);
    std::fs::write(ctx.join("src/b.txt"), "b changed\n").unwrap();
    let explain = work.path().join("explain.json");
    let flag = format!("--explain-cache={}", explain.display());
    let second = build(work.path(), &ctx, DF, &[&flag]);
    assert!(second.ok, "{}", second.stderr);
    assert_ne!(second.digest, first.digest);
    assert_eq!(second.steps("step_cached"), ["COPY busybox /bin/busybox"]);
    assert_eq!(
        second.steps("cache_miss"),
        [
            "COPY src /src/",
            "COPY c.txt /c.txt",
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo $V > /v\"]",
            "WORKDIR /w"
        ]
    );
    assert_eq!(second.reasons("COPY src"), ["file src/b.txt changed"]);
    assert_eq!(second.reasons("COPY c.txt"), ["an earlier step changed"]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&explain).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
    assert!(json.to_string().contains("file:src/b.txt"), "{json}");
}

#[test]
fn a_build_arg_invalidates_only_the_steps_that_see_it() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let first = build(work.path(), &ctx, DF, &[]);
    assert!(first.ok, "{}", first.stderr);
    let second = build(work.path(), &ctx, DF, &["--build-arg", "V=2"]);
    assert!(second.ok, "{}", second.stderr);
    assert_eq!(
        second.steps("cache_miss"),
        [
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo $V > /v\"]",
            "WORKDIR /w"
        ]
    );
    assert_eq!(
        second.reasons("RUN"),
        ["build arg V changed"],
        "{:?}",
        second.events
    );
    assert_eq!(second.steps("step_cached").len(), 3);
}

#[test]
fn a_label_change_invalidates_nothing() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let first = build(work.path(), &ctx, DF, &[]);
    assert!(first.ok, "{}", first.stderr);
    let second = build(
        work.path(),
        &ctx,
        &DF.replace("LABEL x=1", "LABEL x=2"),
        &[],
    );
    assert!(second.ok, "{}", second.stderr);
    assert!(second.steps("cache_miss").is_empty());
    assert_eq!(second.steps("step_cached").len(), LAYER_STEPS);
    assert_ne!(second.digest, first.digest, "the label is in the config");
}

#[test]
fn a_failing_step_leaves_no_cache_entry() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let df = "FROM scratch\n\
        COPY busybox /bin/busybox\n\
        RUN [\"/bin/busybox\", \"sh\", \"-c\", \"touch /x; exit 3\"]\n";
    let first = build(work.path(), &ctx, df, &[]);
    assert!(!first.ok);
    assert_eq!(first.steps("step_failed").len(), 1);
    let second = build(work.path(), &ctx, df, &[]);
    assert!(!second.ok);
    assert_eq!(second.steps("step_cached"), ["COPY busybox /bin/busybox"]);
    assert_eq!(
        second.steps("step_failed").len(),
        1,
        "ran again, not cached"
    );
}

#[test]
fn a_local_cache_export_makes_an_empty_store_hit_everything() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let dir = work.path().join("exported-cache");
    let to = format!("--cache-to=type=local,dest={},mode=max", dir.display());
    let first = build(work.path(), &ctx, DF, &[&to]);
    assert!(first.ok, "{}", first.stderr);
    assert!(
        dir.join("index.json").is_file(),
        "an OCI layout was written"
    );

    // Another work directory: a new, empty store.
    let other = tempfile::tempdir().unwrap();
    let from = format!("--cache-from=type=local,src={}", dir.display());
    let second = build(other.path(), &ctx, DF, &[&from]);
    assert!(second.ok, "{}", second.stderr);
    assert!(second.steps("cache_miss").is_empty(), "{:?}", second.events);
    assert_eq!(second.steps("step_cached").len(), LAYER_STEPS);
    assert_eq!(second.digest, first.digest);
}

#[test]
fn plain_progress_names_steps_hits_and_misses() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, DF).unwrap();
    let root = work.path().join("store");
    let args = [
        "build",
        "--root",
        root.to_str().unwrap(),
        "--progress=plain",
        "-f",
        df.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ];
    let (ok, _, first) = kiln(&args, &[]);
    assert!(ok, "{first}");
    assert!(first.contains("COPY src /src/"), "{first}");
    assert!(
        first.contains("cache miss: no earlier build of this step"),
        "{first}"
    );
    let (ok, _, second) = kiln(&args, &[]);
    assert!(ok, "{second}");
    assert_eq!(second.matches("CACHED").count(), LAYER_STEPS, "{second}");
    let (ok, _, quiet) = kiln(
        &[&args[..3], &["--progress=quiet"], &args[4..]].concat(),
        &[],
    );
    assert!(ok);
    assert_eq!(quiet, "", "quiet prints nothing on success");
}
