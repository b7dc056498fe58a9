//! A build cache exported to a real registry (Debian's `docker-registry` on
//! loopback) by one store is used by a second, empty store.
mod registry_support;

use std::time::Duration;

use builder_core::cache::transfer::{self, CacheSpec};
use builder_core::cache::{CacheIndex, CacheResult, CachedLayer, KeyChain};
use builder_core::digest::Digest;
use builder_core::image::{media, Descriptor};
use builder_core::registry::{Client, ClientOptions, Credentials, NoProgress, OciDir, Reference};
use builder_core::store::Store;
use registry_support::{Auth, Registry};

fn client(dir: &std::path::Path) -> Client {
    Client::new(ClientOptions {
        credentials: Credentials {
            auth_file: None,
            docker_config: dir.join("config.json"),
            containers_auth: None,
        },
        backoff: Duration::from_millis(20),
        ..ClientOptions::default()
    })
    .unwrap()
}

#[test]
fn registry_export_by_one_store_is_used_by_a_second_empty_store() {
    let reg = Registry::start(Auth::None, None);
    let work = tempfile::tempdir().unwrap();
    let client = client(work.path());

    // Store 1 builds: COPY then RUN, each with a layer; the RUN also keeps
    // its whole config as a blob.
    let s1 = Store::open(&work.path().join("s1")).unwrap();
    let i1 = CacheIndex::open(&s1).unwrap();
    let mut chain = KeyChain::from_image("scratch", "linux/amd64");
    let (copy_key, copy_rec) = chain
        .copy("COPY", "COPY . /app")
        .file(".", "sha256:01")
        .build();
    let big: Vec<u8> = (0..(2u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let l1 = s1.put_bytes(&big).unwrap();
    let copy_result = CacheResult {
        layer: Some(CachedLayer {
            descriptor: Descriptor::new(media::OCI_LAYER_GZIP, l1.clone(), big.len() as u64),
            diff_id: Digest::of(b"tar1"),
        }),
        ..CacheResult::default()
    };
    i1.record("s0/1", &copy_rec, &copy_result).unwrap();
    chain.advance(copy_key.clone());
    let (run_key, run_rec) = chain.run("RUN make").build();
    let l2 = s1.put_bytes(b"second layer").unwrap();
    let cfg = s1
        .put_bytes(br#"{"architecture":"amd64","os":"linux"}"#)
        .unwrap();
    let run_result = CacheResult {
        layer: Some(CachedLayer {
            descriptor: Descriptor::new(media::OCI_LAYER_GZIP, l2.clone(), 12),
            diff_id: Digest::of(b"tar2"),
        }),
        config: Some(cfg.clone()),
        extra: serde_json::json!({"created_by": "RUN make"}),
    };
    i1.record("s0/2", &run_rec, &run_result).unwrap();

    let to = CacheSpec::parse_to(&format!(
        "type=registry,ref={}/kiln/cache:main,mode=max",
        reg.host()
    ))
    .unwrap();
    let rep = transfer::export(
        &i1,
        &to,
        &[copy_key.clone(), run_key.clone()],
        Some(&client),
        &NoProgress,
    )
    .unwrap();
    assert_eq!((rep.entries, rep.blobs), (2, 3));

    // Store 2 starts empty and only knows the reference.
    let s2 = Store::open(&work.path().join("s2")).unwrap();
    let i2 = CacheIndex::open(&s2).unwrap();
    assert!(i2.lookup(&run_key).unwrap().is_none());
    let from = CacheSpec::parse_from(&format!("{}/kiln/cache:main", reg.host())).unwrap();
    let rep = transfer::import(&i2, &from, Some(&client), &NoProgress).unwrap();
    assert_eq!((rep.entries, rep.added, rep.blobs), (2, 2, 3));
    assert_eq!(i2.lookup(&copy_key).unwrap(), Some(copy_result));
    assert_eq!(i2.lookup(&run_key).unwrap(), Some(run_result));
    for d in [&l1, &l2, &cfg] {
        assert_eq!(
            std::fs::read(s2.blob_path(d)).unwrap(),
            std::fs::read(s1.blob_path(d)).unwrap()
        );
    }
    // A changed RUN in store 2 is explained against store 1's build.
    let (_, changed) = chain.run("RUN make all").build();
    let e = i2.explain_miss("s0/2", &changed).unwrap();
    assert_eq!(e.reasons(), vec!["instruction text changed"]);

    // Something that is not a kiln cache is refused by name.
    let plain = Reference::parse(&format!("{}/kiln/cache:nope", reg.host())).unwrap();
    let oci = OciDir::create(&work.path().join("img")).unwrap();
    let image = registry_support::make_image(&oci, &[&[("a", b"a")]], "v1");
    client
        .push(&image, std::slice::from_ref(&plain), &oci, &NoProgress)
        .unwrap();
    let err = transfer::import_registry(&i2, &client, &plain, &NoProgress).unwrap_err();
    assert!(
        err.to_string()
            .contains("kiln/cache:nope is not a kiln cache"),
        "{err}"
    );
}
