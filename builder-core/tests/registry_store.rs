//! The registry client with kiln's content store: pulls land in the store
//! verified and record their tag, a rebuild needs no network, a corrupt blob
//! leaves nothing behind, and images the store names push to a real
//! Distribution registry that skopeo then reads.
mod registry_support;

use std::sync::atomic::Ordering;

use builder_core::digest::Digest;
use builder_core::image::{media, Index};
use builder_core::registry::{
    pull_into_store, push_from_store, BlobOutcome, Client, Error, NoProgress, Platform, PullPolicy,
};
use builder_core::store::Store;
use registry_support::{
    noise, options, proxy::Proxy, r, skopeo_inspect, store_image, Auth, Recorder, Registry,
};

/// Every file under `blobs/sha256/` hashes to its name, and no temp file is
/// left in the store.
fn assert_store_verifies(store: &Store) {
    let dir = store.root().join("blobs/sha256");
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let d: Digest = format!("sha256:{name}")
            .parse()
            .unwrap_or_else(|_| panic!("stray file {name}"));
        assert_eq!(Digest::of(&std::fs::read(e.path()).unwrap()), d);
    }
    let temps: Vec<_> = std::fs::read_dir(store.temp_dir()).unwrap().collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
}

#[test]
fn push_from_store_is_read_back_by_skopeo_and_pulls_into_another_store() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let md = store_image(&store, "amd64", &[("app", b"built\n")]);
    store.tag("myapp:1", &md).unwrap();
    let client = Client::new(options(work.path())).unwrap();

    let a = format!("{}/pushed/a:1", reg.host());
    let b = format!("{}/pushed/b:2", reg.host());
    let rec = Recorder::default();
    let digest = push_from_store(&client, &store, "myapp:1", &[r(&a), r(&b)], &rec).unwrap();
    assert_eq!(
        digest, md.digest,
        "the stored manifest is pushed byte for byte"
    );
    let outcomes = rec.outcomes();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == BlobOutcome::Uploaded)
            .count(),
        2,
        "config and layer go up once: {outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, BlobOutcome::Mounted { .. }))
            .count(),
        2,
        "the second repository mounts them: {outcomes:?}"
    );
    for name in [&a, &b] {
        let info = skopeo_inspect(&[&format!("docker://{name}")]);
        assert_eq!(info["Digest"], md.digest.to_string());
        assert_eq!(info["Architecture"], "amd64");
        assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1));
    }

    // By digest prefix works as well as by name.
    let c = format!("{}/pushed/c:3", reg.host());
    let by_prefix = &md.digest.hex()[..12];
    assert_eq!(
        push_from_store(&client, &store, by_prefix, &[r(&c)], &NoProgress).unwrap(),
        md.digest
    );
    let err = push_from_store(&client, &store, "absent:1", &[r(&c)], &NoProgress).unwrap_err();
    assert!(err.to_string().contains("absent"), "{err}");

    // The pushed image pulls into a fresh store, which records the tag.
    let other = Store::open(&work.path().join("other")).unwrap();
    let pulled = pull_into_store(
        &client,
        &other,
        &r(&a),
        &Platform::host(),
        PullPolicy::IfMissing,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(pulled.record.name, a);
    assert_eq!(pulled.record.descriptor.digest, md.digest);
    assert_eq!(other.resolve(&a).unwrap().descriptor.digest, md.digest);
    let (_, m, config) = other
        .load_image(&pulled.record.descriptor, &Platform::host().to_image())
        .unwrap();
    assert_eq!(config.platform.architecture, "amd64");
    assert!(m.layers.iter().all(|l| other.has_blob(&l.digest)));
    assert_store_verifies(&other);
}

#[test]
fn pulls_record_the_tag_and_the_next_build_needs_no_network() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let client = Client::new(options(work.path())).unwrap();

    // A two-platform image: an OCI index over amd64 and arm64 manifests.
    let src = Store::open(&work.path().join("src")).unwrap();
    let amd = store_image(&src, "amd64", &[("arch", b"amd64\n")]);
    let arm = store_image(&src, "arm64", &[("arch", b"arm64\n")]);
    let index = src
        .put_json(
            media::OCI_INDEX,
            &Index::oci(vec![amd.clone(), arm.clone()]),
        )
        .unwrap();
    src.tag("multi:1", &index).unwrap();
    let name = format!("{}/base/multi:1", reg.host());
    let pushed = push_from_store(&client, &src, "multi:1", &[r(&name)], &NoProgress).unwrap();
    assert_eq!(pushed, index.digest);
    let raw = skopeo_inspect(&["--raw", &format!("docker://{name}")]);
    assert_eq!(raw["manifests"].as_array().map(Vec::len), Some(2));

    // Through a proxy, so the network can be counted and then taken away.
    let proxy = Proxy::start(reg.port);
    let via = format!("{}/base/multi:1", proxy.host());
    let store = Store::open(&work.path().join("store")).unwrap();
    let arm64: Platform = "linux/arm64".parse().unwrap();
    let pull = |client: &Client, platform: &Platform, policy| {
        pull_into_store(client, &store, &r(&via), platform, policy, &NoProgress)
    };
    let rec = Recorder::default();
    let first = pull_into_store(
        &client,
        &store,
        &r(&via),
        &arm64,
        PullPolicy::IfMissing,
        &rec,
    )
    .unwrap();
    assert_eq!(first.image.manifest_digest, arm.digest);
    assert_eq!(
        first.record.descriptor.digest, index.digest,
        "the tag is recorded as the index, so every platform resolves from it"
    );
    assert_eq!(first.record.descriptor.media_type, media::OCI_INDEX);
    assert!(store.has_blob(&index.digest));
    assert!(!store.has_blob(&amd.digest), "only the platform asked for");
    assert!(rec.outcomes().contains(&BlobOutcome::Downloaded));
    assert_store_verifies(&store);

    // Same platform again: the store answers, the proxy sees no connection
    // (a new client, so no pooled connection could hide a request).
    let before = proxy.faults.connections.load(Ordering::SeqCst);
    let again = pull(
        &Client::new(options(work.path())).unwrap(),
        &arm64,
        PullPolicy::IfMissing,
    )
    .unwrap();
    assert_eq!(again.image.manifest_digest, arm.digest);
    assert_eq!(again.image.config, first.image.config);
    assert_eq!(proxy.faults.connections.load(Ordering::SeqCst), before);

    // The index cannot be pushed from a store holding one of its platforms.
    let err = push_from_store(&client, &store, &via, &[r(&name)], &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains(&amd.digest.to_string())
            && err.to_string().contains("linux/amd64"),
        "{err}"
    );

    // Another platform of the recorded index: fetched by the index's digest.
    let amd64: Platform = "linux/amd64".parse().unwrap();
    let other = pull(&client, &amd64, PullPolicy::IfMissing).unwrap();
    assert_eq!(other.image.manifest_digest, amd.digest);
    assert_eq!(other.record.descriptor.digest, index.digest);

    // The registry moves the tag; only --pull (Always) notices.
    let moved = store_image(&src, "arm64", &[("arch", b"arm64 v2\n")]);
    src.tag("single:2", &moved).unwrap();
    push_from_store(&client, &src, "single:2", &[r(&name)], &NoProgress).unwrap();
    let cached = pull(&client, &arm64, PullPolicy::IfMissing).unwrap();
    assert_eq!(cached.image.manifest_digest, arm.digest);
    let fresh = pull(&client, &arm64, PullPolicy::Always).unwrap();
    assert_eq!(fresh.image.manifest_digest, moved.digest);
    assert_eq!(fresh.record.descriptor.digest, moved.digest);
    assert_eq!(store.resolve(&via).unwrap().descriptor.digest, moved.digest);

    // Without the registry, the recorded tag still builds; --pull cannot.
    drop(reg);
    let offline = pull(&client, &arm64, PullPolicy::IfMissing).unwrap();
    assert_eq!(offline.image.manifest_digest, moved.digest);
    assert!(pull(&client, &arm64, PullPolicy::Always).is_err());
    assert_store_verifies(&store);

    // A reference pinned by digest is recorded under that name too, so
    // prune keeps it; it needs no registry.
    let pinned = format!("{via}@{}", arm.digest);
    let by_digest = pull_into_store(
        &client,
        &store,
        &r(&pinned),
        &arm64,
        PullPolicy::Always,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(by_digest.image.manifest_digest, arm.digest);
    assert_eq!(by_digest.record.name, pinned);
    assert_eq!(
        store.resolve(&pinned).unwrap().descriptor.digest,
        arm.digest
    );
}

#[test]
fn a_corrupt_blob_leaves_nothing_in_the_store() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let client = Client::new(options(work.path())).unwrap();
    let src = Store::open(&work.path().join("src")).unwrap();
    let big = noise(300_000, 5);
    let md = store_image(&src, "amd64", &[("big", &big)]);
    src.tag("bad:1", &md).unwrap();
    let name = format!("{}/faults/bad:1", reg.host());
    push_from_store(&client, &src, "bad:1", &[r(&name)], &NoProgress).unwrap();
    let manifest: builder_core::image::Manifest = src.read_json(&md.digest).unwrap();
    let victim = manifest.layers[0].digest.clone();

    let proxy = Proxy::start(reg.port);
    *proxy.faults.corrupt.lock().unwrap() = Some(victim.to_string());
    let store = Store::open(&work.path().join("store")).unwrap();
    let via = format!("{}/faults/bad:1", proxy.host());
    let err = pull_into_store(
        &client,
        &store,
        &r(&via),
        &Platform::host(),
        PullPolicy::IfMissing,
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&victim.to_string()), "{err}");
    assert!(!store.has_blob(&victim));
    assert!(
        !store.has_blob(&md.digest),
        "no manifest for an incomplete image"
    );
    assert!(store.images().unwrap().is_empty(), "no name recorded");
    assert_store_verifies(&store);

    // Once the corruption stops, the same pull completes.
    *proxy.faults.corrupt.lock().unwrap() = None;
    let ok = pull_into_store(
        &client,
        &store,
        &r(&via),
        &Platform::host(),
        PullPolicy::IfMissing,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(ok.image.manifest_digest, md.digest);
    assert!(store.has_blob(&victim));
    assert_store_verifies(&store);
}
