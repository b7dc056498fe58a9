//! `kiln build --cache-to/--cache-from type=registry` against a real
//! Distribution registry on loopback: a cache exported by one store is used
//! by a second, empty one; `mode=min` carries only what the image is made
//! of; a tampered blob is refused by digest, never used.
//!
//! The RUN steps write a random id (`/proc/sys/kernel/random/uuid`), so an
//! image digest equal to the first build's proves they did not run again.
mod build_support;
#[path = "../../builder-core/tests/registry_support/mod.rs"]
mod registry_support;

use std::path::{Path, PathBuf};

use build_support::cache::{build_env, context_with_busybox, Build};
use registry_support::{Auth, Registry};

const DF: &str = "FROM scratch AS tools\n\
    COPY busybox /tools/busybox\n\
    RUN [\"/tools/busybox\", \"sh\", \"-c\", \"/tools/busybox cat /proc/sys/kernel/random/uuid > /tools-id\"]\n\
    FROM scratch\n\
    COPY busybox /bin/busybox\n\
    COPY --from=tools /tools-id /tools-id\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /proc/sys/kernel/random/uuid > /id\"]\n\
    WORKDIR /w\n";

const TOOLS_RUN: &str = "RUN [\"/tools/busybox\"";
const FINAL_RUN: &str = "RUN [\"/bin/busybox\"";

/// A build in WORK/store (its own registry credentials file).
fn build(work: &Path, ctx: &Path, df: &str, extra: &[&str]) -> Build {
    let docker = work.join("docker");
    let b = build_env(
        work,
        ctx,
        df,
        extra,
        &[("DOCKER_CONFIG", docker.to_str().unwrap())],
    );
    assert!(b.ok, "{}", b.stderr);
    b
}

fn context(work: &Path) -> PathBuf {
    context_with_busybox(work, &[])
}

#[test]
fn mode_max_lets_an_empty_store_hit_every_layer_step_without_running_them() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let cache = format!("{}/x/cache:max", reg.host());
    let to = format!("--cache-to=type=registry,ref={cache},mode=max");
    let first = build(work.path(), &ctx, DF, &[&to]);
    assert_eq!(first.steps("cache_miss").len(), 6, "{:?}", first.events);

    // A second machine: an empty store that only knows the reference.
    let other = tempfile::tempdir().unwrap();
    let from = format!("--cache-from=type=registry,ref={cache}");
    let second = build(other.path(), &ctx, DF, &[&from]);
    assert!(second.steps("cache_miss").is_empty(), "{:?}", second.events);
    let mut all = [
        "COPY busybox /bin/busybox",
        "COPY busybox /tools/busybox",
        DF.lines().nth(2).unwrap().trim(),
        "COPY --from=tools /tools-id /tools-id",
        DF.lines().nth(6).unwrap().trim(),
        "WORKDIR /w",
    ];
    all.sort();
    // The two stages run at the same time: their steps interleave.
    let mut cached = second.steps("step_cached");
    cached.sort();
    assert_eq!(cached, all);
    assert_eq!(second.digest, first.digest, "no RUN ran again");
    assert!(second.warnings().is_empty(), "{:?}", second.warnings());

    // The imported records explain a miss in another new store, whose
    // Dockerfile is elsewhere.
    let third = tempfile::tempdir().unwrap();
    let changed = build(third.path(), &ctx, &DF.replace("/w", "/w2"), &[&from]);
    assert_eq!(changed.steps("cache_miss"), ["WORKDIR /w2"]);
    assert_eq!(
        changed.reasons("WORKDIR"),
        ["instruction text changed"],
        "{:?}",
        changed.events
    );

    // The control: without the cache a fresh store runs both RUNs and
    // gets other random ids, so the equal digest above is meaningful.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = build(fresh_dir.path(), &ctx, DF, &[]);
    assert_eq!(fresh.steps("cache_miss").len(), 6);
    assert_ne!(fresh.digest, first.digest);
}

#[test]
fn mode_min_carries_the_target_stage_only() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    // The tools stage is reproducible here: rerun, it gives the same
    // layer, so what the final stage copies from it is unchanged.
    let df = DF.replace(
        "/tools/busybox cat /proc/sys/kernel/random/uuid > /tools-id",
        "echo tools > /tools-id",
    );
    let cache = format!("{}/x/cache:min", reg.host());
    let to = format!("--cache-to=type=registry,ref={cache},mode=min");
    let first = build(work.path(), &ctx, &df, &[&to]);

    let other = tempfile::tempdir().unwrap();
    let from = format!("--cache-from=type=registry,ref={cache}");
    let second = build(other.path(), &ctx, &df, &[&from]);
    // The intermediate stage was not exported: it runs again...
    assert_eq!(
        second.steps("cache_miss"),
        [
            "COPY busybox /tools/busybox",
            df.lines().nth(2).unwrap().trim()
        ],
        "{:?}",
        second.events
    );
    assert_eq!(second.reasons(TOOLS_RUN), ["no earlier build of this step"]);
    // ...and every step of the final stage is a hit, the random id of its
    // RUN included.
    assert_eq!(
        second.steps("step_cached"),
        [
            "COPY busybox /bin/busybox",
            "COPY --from=tools /tools-id /tools-id",
            df.lines().nth(6).unwrap().trim(),
            "WORKDIR /w",
        ]
    );
    assert!(second.reasons(FINAL_RUN).is_empty());
    assert_eq!(second.digest, first.digest);
}

#[test]
fn mode_min_includes_the_stages_the_target_is_built_on() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let df = "FROM scratch AS base\n\
        COPY busybox /bin/busybox\n\
        RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /proc/sys/kernel/random/uuid > /base-id\"]\n\
        FROM scratch AS unused-by-the-image\n\
        COPY busybox /x/busybox\n\
        FROM base\n\
        COPY --from=unused-by-the-image /x/busybox /y\n\
        RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /proc/sys/kernel/random/uuid > /id\"]\n";
    let cache = format!("{}/x/cache:min-from", reg.host());
    let to = format!("--cache-to=type=registry,ref={cache},mode=min");
    let first = build(work.path(), &ctx, df, &[&to]);
    assert_eq!(first.steps("cache_miss").len(), 5);

    let other = tempfile::tempdir().unwrap();
    let from = format!("--cache-from=type=registry,ref={cache}");
    let second = build(other.path(), &ctx, df, &[&from]);
    // The base stage's layers are the image's first layers: exported and
    // hit. The stage only copied from is not part of the image.
    assert_eq!(
        second.steps("cache_miss"),
        ["COPY busybox /x/busybox"],
        "{:?}",
        second.events
    );
    assert_eq!(second.steps("step_cached").len(), 4);
    assert_eq!(second.digest, first.digest, "no RUN ran again");
}

/// The registry's data file of blob `digest`.
fn registry_blob(reg: &Registry, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.dir
        .path()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// The layer digests of the image `digest` in the store WORK/store.
fn image_layers(work: &Path, digest: &str) -> Vec<String> {
    let blob = |d: &str| {
        let hex = d.strip_prefix("sha256:").unwrap();
        std::fs::read(work.join("store/blobs/sha256").join(hex)).unwrap()
    };
    let m: serde_json::Value = serde_json::from_slice(&blob(digest)).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_tampered_cache_blob_is_refused_by_digest_and_never_used() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let cache = format!("{}/x/cache:tampered", reg.host());
    let to = format!("--cache-to=type=registry,ref={cache},mode=max");
    let first = build(work.path(), &ctx, DF, &[&to]);

    // The final RUN's layer: same length, other bytes.
    let layers = image_layers(work.path(), &first.digest);
    let run_layer = &layers[layers.len() - 2];
    let path = registry_blob(&reg, run_layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let other = tempfile::tempdir().unwrap();
    let from = format!("--cache-from=type=registry,ref={cache}");
    let second = build(other.path(), &ctx, DF, &[&from]);
    // Like BuildKit, an unusable cache source is a warning, not a failed
    // build; the warning names the blob.
    let warnings = second.warnings().join("\n");
    assert!(warnings.contains(run_layer.as_str()), "{warnings}");
    assert!(warnings.contains("does not match"), "{warnings}");
    assert!(
        second.steps("step_cached").is_empty(),
        "{:?}",
        second.events
    );
    assert_eq!(second.steps("cache_miss").len(), 6);
    assert_ne!(second.digest, first.digest, "the RUNs ran");
    let hex = run_layer.strip_prefix("sha256:").unwrap();
    let in_store = other.path().join("store/blobs/sha256").join(hex);
    assert!(
        !in_store.exists() || std::fs::read(&in_store).unwrap() != bytes,
        "the tampered bytes never entered the store"
    );
}

#[test]
fn a_missing_cache_reference_is_a_warning_not_a_failure() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let from = format!("--cache-from=type=registry,ref={}/x/none:yet", reg.host());
    let b = build(work.path(), &ctx, DF, &[&from]);
    assert_eq!(b.steps("cache_miss").len(), 6);
    let warnings = b.warnings().join("\n");
    assert!(warnings.contains("x/none:yet"), "{warnings}");
}

#[test]
fn a_tampered_cache_bundle_is_refused_by_digest() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    let cache = format!("{}/x/cache:bundle", reg.host());
    let to = format!("--cache-to=type=registry,ref={cache},mode=max");
    build(work.path(), &ctx, DF, &[&to]);

    // The cache manifest's config is the bundle: entries and their inputs.
    let repo = reg
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/x/cache");
    let link = std::fs::read_to_string(repo.join("_manifests/tags/bundle/current/link")).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry_blob(&reg, link.trim())).unwrap()).unwrap();
    let bundle = manifest["config"]["digest"].as_str().unwrap().to_string();
    let path = registry_blob(&reg, &bundle);
    let text = std::fs::read_to_string(&path).unwrap();
    // Still JSON, same length: only the digest can tell.
    let forged = text.replacen("\"version\":1", "\"version\":2", 1);
    assert_ne!(forged, text);
    std::fs::write(&path, forged).unwrap();

    let other = tempfile::tempdir().unwrap();
    let from = format!("--cache-from=type=registry,ref={cache}");
    let second = build(other.path(), &ctx, DF, &[&from]);
    let warnings = second.warnings().join("\n");
    assert!(warnings.contains("does not match"), "{warnings}");
    assert!(
        second.steps("step_cached").is_empty(),
        "{:?}",
        second.events
    );
}
