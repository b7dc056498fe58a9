//! The registry client against the real Distribution registry (Debian's
//! `docker-registry`) on loopback: anonymous, basic auth over TLS, token
//! auth, skopeo reading what kiln pushed, faults, mirrors, and the
//! conformance images.
mod registry_support;

use std::sync::atomic::Ordering;

use builder_core::registry::sink::read_blob;
use builder_core::registry::{
    BlobOutcome, BlobSink, Client, Credential, Digest, Error, NoProgress, OciDir, Platform,
    PullPolicy,
};
use registry_support::{
    blob_files, make_image, noise, options, proxy::Proxy, r, skopeo, skopeo_inspect,
    token::TokenServer, Auth, Recorder, Registry, Tls,
};

#[test]
fn anonymous_push_then_pull_round_trip_with_chunks_mounts_and_offline_repull() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let src = OciDir::create(&work.path().join("src")).unwrap();
    let big = noise(3 << 20, 7);
    let image = make_image(
        &src,
        &[&[("hello.txt", b"hello\n")], &[("big.bin", &big)]],
        "v1",
    );
    let mut opts = options(work.path());
    opts.chunk_size = 1 << 20; // the 3 MiB layer goes up in PATCH chunks
    let client = Client::new(opts).unwrap();

    let dest = r(&format!("{}/kiln/app:v1", reg.host()));
    let rec = Recorder::default();
    let digest = client
        .push(
            &image,
            &[dest.clone(), r(&format!("{}/kiln/app:v2", reg.host()))],
            &src,
            &rec,
        )
        .unwrap();
    assert_eq!(digest, Digest::of(&image.manifest));
    let outcomes = rec.outcomes();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == BlobOutcome::Uploaded)
            .count(),
        3,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == BlobOutcome::Exists)
            .count(),
        3,
        "second tag: {outcomes:?}"
    );

    // Another repository of the same registry: blobs are mounted, not sent.
    let mut sourced = image.clone();
    sourced.sources = image
        .layers
        .iter()
        .chain([&image.config])
        .map(|d| (d.digest.clone(), dest.clone()))
        .collect();
    let rec = Recorder::default();
    client
        .push(
            &sourced,
            &[r(&format!("{}/other/app:latest", reg.host()))],
            &src,
            &rec,
        )
        .unwrap();
    assert!(
        rec.outcomes()
            .iter()
            .all(|o| matches!(o, BlobOutcome::Mounted { from } if from == "kiln/app")),
        "{:?}",
        rec.outcomes()
    );

    // Pull into an empty layout.
    let out = OciDir::create(&work.path().join("out")).unwrap();
    let pulled = client
        .pull(&dest, &Platform::host(), &out, &NoProgress)
        .unwrap();
    assert_eq!(pulled.manifest_digest, digest);
    assert_eq!(pulled.manifest, image.manifest);
    assert_eq!(pulled.layers.len(), 2);
    for l in &pulled.layers {
        assert_eq!(
            read_blob(&out, &l.digest).unwrap(),
            read_blob(&src, &l.digest).unwrap()
        );
    }
    assert!(out.has(&digest) && out.has(&pulled.config_descriptor.digest));

    // The registry goes away; the pinned image is still there.
    let pinned = pulled.reference.clone();
    drop(reg);
    let rec = Recorder::default();
    let again = client
        .pull_by_digest(&pinned, &Platform::host(), &out, &rec)
        .unwrap();
    assert_eq!(again.manifest_digest, digest);
    assert_eq!(again.config, pulled.config);
    assert!(rec
        .outcomes()
        .iter()
        .all(|o| *o == BlobOutcome::AlreadyPresent));
    // A tag with a recorded digest needs no registry either; --pull does.
    let host = Platform::host();
    let kept = client
        .ensure(
            &dest,
            &host,
            &out,
            Some(&digest),
            PullPolicy::IfMissing,
            &NoProgress,
        )
        .unwrap();
    assert_eq!(kept.manifest_digest, digest);
    assert!(client
        .ensure(
            &dest,
            &host,
            &out,
            Some(&digest),
            PullPolicy::Always,
            &NoProgress
        )
        .is_err());
    assert!(client
        .ensure(&dest, &host, &out, None, PullPolicy::IfMissing, &NoProgress)
        .is_err());
}

#[test]
fn skopeo_reads_what_kiln_pushed() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let src = OciDir::create(&work.path().join("src")).unwrap();
    let image = make_image(&src, &[&[("a", b"a\n")], &[("b/c", b"c\n")]], "x");
    let client = Client::new(options(work.path())).unwrap();
    let name = format!("{}/skopeo/check:1", reg.host());
    let digest = client.push(&image, &[r(&name)], &src, &NoProgress).unwrap();

    let info = skopeo_inspect(&[&format!("docker://{name}")]);
    assert_eq!(info["Digest"], digest.to_string());
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(info["Architecture"], "amd64");

    let dir = work.path().join("copied");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:copied", dir.display()),
    ]);
    for l in &image.layers {
        assert!(
            dir.join("blobs/sha256").join(l.digest.hex()).is_file(),
            "layer {} copied",
            l.digest
        );
    }
}

#[test]
fn basic_auth_over_tls_with_own_ca_and_login() {
    let tls = Tls::new();
    let reg = Registry::start(Auth::Basic("kiln".into(), "s3cret".into()), Some(&tls));
    let work = tempfile::tempdir().unwrap();
    let src = OciDir::create(&work.path().join("src")).unwrap();
    let image = make_image(&src, &[&[("f", b"tls\n")]], "t");
    let name = r(&format!("{}/secure/app:1", reg.host()));

    // Without the CA the certificate is refused (and plain HTTP does not answer).
    let err = Client::new(options(work.path()))
        .unwrap()
        .push(&image, std::slice::from_ref(&name), &src, &NoProgress)
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate")
            || err.to_string().contains("UnknownIssuer"),
        "{err}"
    );

    let mut opts = options(work.path());
    opts.ca_files = vec![tls.ca.clone()];
    // With the CA but no credentials: refused.
    let err = Client::new(opts.clone())
        .unwrap()
        .push(&image, std::slice::from_ref(&name), &src, &NoProgress)
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");

    // `kiln login` checks the password before storing it.
    let client = Client::new(opts.clone()).unwrap();
    let wrong = Credential::Basic {
        username: "kiln".into(),
        password: "nope".into(),
    };
    assert!(client.verify_login(&reg.host(), &wrong).is_err());
    let right = Credential::Basic {
        username: "kiln".into(),
        password: "s3cret".into(),
    };
    Client::new(opts.clone())
        .unwrap()
        .verify_login(&reg.host(), &right)
        .unwrap();
    opts.credentials.store(&reg.host(), &right).unwrap();

    let client = Client::new(opts.clone()).unwrap();
    let digest = client
        .push(&image, std::slice::from_ref(&name), &src, &NoProgress)
        .unwrap();
    let out = OciDir::create(&work.path().join("out")).unwrap();
    let pulled = client
        .pull(&name, &Platform::host(), &out, &NoProgress)
        .unwrap();
    assert_eq!(pulled.manifest_digest, digest);
    assert!(opts.credentials.erase(&reg.host()).unwrap());
}

#[test]
fn token_auth_with_cached_tokens() {
    let tokens = TokenServer::start("tok-user", "tok-pass");
    let reg = Registry::start(
        Auth::Token {
            realm: tokens.realm(),
            service: tokens.service.clone(),
            issuer: tokens.issuer.clone(),
            cert: tokens.cert.clone(),
        },
        None,
    );
    let work = tempfile::tempdir().unwrap();
    let src = OciDir::create(&work.path().join("src")).unwrap();
    let image = make_image(&src, &[&[("1", b"1")], &[("2", b"2")], &[("3", b"3")]], "t");
    let name = r(&format!("{}/tokens/app:1", reg.host()));

    let anonymous = Client::new(options(work.path())).unwrap();
    let err = anonymous
        .push(&image, std::slice::from_ref(&name), &src, &NoProgress)
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");

    let opts = options(work.path());
    opts.credentials
        .store(
            &reg.host(),
            &Credential::Basic {
                username: "tok-user".into(),
                password: "tok-pass".into(),
            },
        )
        .unwrap();
    let client = Client::new(opts).unwrap();
    let before = tokens.requests.load(Ordering::SeqCst);
    let digest = client
        .push(&image, std::slice::from_ref(&name), &src, &NoProgress)
        .unwrap();
    let out = OciDir::create(&work.path().join("out")).unwrap();
    let pulled = client
        .pull(&name, &Platform::host(), &out, &NoProgress)
        .unwrap();
    assert_eq!(pulled.manifest_digest, digest);
    let used = tokens.requests.load(Ordering::SeqCst) - before;
    // One token for push scope, one for pull scope; reused for every blob.
    assert!(used <= 3, "token requests: {used}");

    // An identity token (from an earlier OAuth login) is exchanged by POST.
    let other = tempfile::tempdir().unwrap();
    let opts = options(other.path());
    let refresh = registry_support::token::REFRESH.to_string();
    opts.credentials
        .store(
            &reg.host(),
            &Credential::IdentityToken {
                username: "tok-user".into(),
                token: refresh,
            },
        )
        .unwrap();
    let out = OciDir::create(&work.path().join("out2")).unwrap();
    let pulled = Client::new(opts)
        .unwrap()
        .pull(&name, &Platform::host(), &out, &NoProgress)
        .unwrap();
    assert_eq!(pulled.manifest_digest, digest);

    // Mounting needs a token for two repositories at once.
    let mut sourced = image.clone();
    sourced.sources = image
        .layers
        .iter()
        .map(|d| (d.digest.clone(), name.clone()))
        .collect();
    let rec = Recorder::default();
    client
        .push(
            &sourced,
            &[r(&format!("{}/tokens/copy:1", reg.host()))],
            &src,
            &rec,
        )
        .unwrap();
    let mounted = rec
        .outcomes()
        .iter()
        .filter(|o| matches!(o, BlobOutcome::Mounted { .. }))
        .count();
    assert_eq!(mounted, 3, "{:?}", rec.outcomes());
}

#[test]
fn dropped_connections_are_retried_and_downloads_resume() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let src = OciDir::create(&work.path().join("src")).unwrap();
    let big = noise(1 << 20, 3);
    let image = make_image(&src, &[&[("big", &big)]], "t");
    let client = Client::new(options(work.path())).unwrap();
    client
        .push(
            &image,
            &[r(&format!("{}/faults/app:1", reg.host()))],
            &src,
            &NoProgress,
        )
        .unwrap();

    let proxy = Proxy::start(reg.port);
    proxy.faults.refuse.store(2, Ordering::SeqCst);
    proxy.faults.cut.store(1, Ordering::SeqCst);
    let client = Client::new(options(work.path())).unwrap();
    let out = OciDir::create(&work.path().join("out")).unwrap();
    let rec = Recorder::default();
    let pulled = client
        .pull(
            &r(&format!("{}/faults/app:1", proxy.host())),
            &Platform::host(),
            &out,
            &rec,
        )
        .unwrap();
    assert_eq!(pulled.manifest, image.manifest);
    assert_eq!(
        read_blob(&out, &image.layers[0].digest).unwrap(),
        read_blob(&src, &image.layers[0].digest).unwrap()
    );
    assert_eq!(
        proxy.faults.refuse.load(Ordering::SeqCst),
        0,
        "refused connections were retried"
    );
    assert!(
        proxy.faults.ranged.load(Ordering::SeqCst) >= 1,
        "the cut download resumed with Range"
    );
    assert!(*rec.1.lock().unwrap() >= 1);
}

#[test]
fn unavailable_and_throttled_answers_are_retried() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let src = OciDir::create(&work.path().join("src")).unwrap();
    let image = make_image(&src, &[&[("r", b"retry\n")]], "t");
    let proxy = Proxy::start(reg.port);
    let client = Client::new(options(work.path())).unwrap();
    let name = r(&format!("{}/faults/busy:1", proxy.host()));
    proxy.faults.unavailable.store(2, Ordering::SeqCst);
    client
        .push(&image, std::slice::from_ref(&name), &src, &NoProgress)
        .unwrap();
    assert_eq!(proxy.faults.unavailable.load(Ordering::SeqCst), 0);
    proxy.faults.throttle.store(true, Ordering::SeqCst);
    proxy.faults.unavailable.store(3, Ordering::SeqCst);
    let out = OciDir::create(&work.path().join("out")).unwrap();
    let pulled = client
        .pull(&name, &Platform::host(), &out, &NoProgress)
        .unwrap();
    assert_eq!(pulled.manifest, image.manifest);
    assert_eq!(proxy.faults.unavailable.load(Ordering::SeqCst), 0);

    // Retries are bounded: a registry that never recovers is an error.
    proxy.faults.throttle.store(false, Ordering::SeqCst);
    proxy.faults.unavailable.store(1000, Ordering::SeqCst);
    let out = OciDir::create(&work.path().join("out2")).unwrap();
    let err = client
        .pull(&name, &Platform::host(), &out, &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
}

#[test]
fn corrupted_blob_is_refused_and_nothing_is_kept() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let src = OciDir::create(&work.path().join("src")).unwrap();
    let image = make_image(
        &src,
        &[&[("ok", b"fine\n")], &[("bad", &noise(200_000, 9))]],
        "t",
    );
    let client = Client::new(options(work.path())).unwrap();
    client
        .push(
            &image,
            &[r(&format!("{}/faults/bad:1", reg.host()))],
            &src,
            &NoProgress,
        )
        .unwrap();

    let proxy = Proxy::start(reg.port);
    let victim = image.layers[1].digest.clone();
    *proxy.faults.corrupt.lock().unwrap() = Some(victim.to_string());
    let out_dir = work.path().join("out");
    let out = OciDir::create(&out_dir).unwrap();
    let err = client
        .pull(
            &r(&format!("{}/faults/bad:1", proxy.host())),
            &Platform::host(),
            &out,
            &NoProgress,
        )
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&victim.to_string()), "{err}");
    assert!(!out.has(&victim));
    // Only verified blobs remain: each file's name is its content's digest.
    for f in blob_files(&out_dir) {
        let d: Digest = format!("sha256:{f}")
            .parse()
            .unwrap_or_else(|_| panic!("stray file {f}"));
        assert_eq!(Digest::of(&read_blob(&out, &d).unwrap()), d);
    }
    assert!(
        !out.has(&Digest::of(&image.manifest)),
        "no manifest for an incomplete image"
    );
}

#[test]
fn mirrors_serve_and_fall_back_to_upstream() {
    let upstream = Registry::start(Auth::None, None);
    let mirror = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let src = OciDir::create(&work.path().join("src")).unwrap();
    let image = make_image(&src, &[&[("m", b"mirror\n")]], "t");
    let plain = Client::new(options(work.path())).unwrap();
    plain
        .push(
            &image,
            &[r(&format!("{}/library/tool:1", upstream.host()))],
            &src,
            &NoProgress,
        )
        .unwrap();
    plain
        .push(
            &image,
            &[r(&format!("{}/library/tool:1", mirror.host()))],
            &src,
            &NoProgress,
        )
        .unwrap();

    // docker.io names resolve through the mirror alone (no internet here).
    let mut opts = options(work.path());
    opts.mirrors = vec![("docker.io".into(), mirror.host())];
    let out = OciDir::create(&work.path().join("a")).unwrap();
    let pulled = Client::new(opts)
        .unwrap()
        .pull(&r("tool:1"), &Platform::host(), &out, &NoProgress)
        .unwrap();
    assert_eq!(pulled.manifest, image.manifest);

    // A dead mirror and one without the image: the registry itself answers.
    let empty = Registry::start(Auth::None, None);
    let dead = registry_support::free_port();
    let mut opts = options(work.path());
    opts.max_attempts = 2;
    opts.mirrors = vec![
        (upstream.host(), format!("127.0.0.1:{dead}")),
        (upstream.host(), empty.host()),
    ];
    let out = OciDir::create(&work.path().join("b")).unwrap();
    let pulled = Client::new(opts)
        .unwrap()
        .pull(
            &r(&format!("{}/library/tool:1", upstream.host())),
            &Platform::host(),
            &out,
            &NoProgress,
        )
        .unwrap();
    assert_eq!(pulled.manifest, image.manifest);
}

#[test]
fn conformance_images_pull_through_a_mirror() {
    let Some(storage) = registry_support::conformance_storage() else {
        eprintln!("conformance registry storage not present; CI=true makes this a failure");
        return;
    };
    let reg = Registry::start_with_storage(Auth::None, None, Some(&storage));
    let work = tempfile::tempdir().unwrap();
    let mut opts = options(work.path());
    opts.mirrors = vec![("docker.io".into(), reg.host())];
    let client = Client::new(opts).unwrap();
    for name in ["debian:bookworm", "busybox:latest", "busybox"] {
        let out = OciDir::create(&work.path().join(name.replace(':', "_"))).unwrap();
        let pulled = client
            .pull(&r(name), &"linux/amd64".parse().unwrap(), &out, &NoProgress)
            .unwrap();
        assert!(!pulled.layers.is_empty(), "{name}");
        let config: serde_json::Value = serde_json::from_slice(&pulled.config).unwrap();
        assert_eq!(config["os"], "linux", "{name}");
        for l in &pulled.layers {
            assert!(out.has(&l.digest), "{name}: {}", l.digest);
        }
    }
}
