use std::collections::BTreeMap;

use super::transfer::{self, CacheLocation, CacheSpec, ExportMode};
use super::*;
use crate::image::{media, Descriptor};
use crate::store::Store;

/// The inputs of a small Dockerfile the tests vary one at a time:
///
/// ```text
/// FROM base
/// ARG VERSION
/// ENV FOO
/// LABEL x            (metadata)
/// COPY src /app
/// EXPOSE 80          (metadata)
/// RUN make
/// CMD ["app"]        (metadata)
/// RUN test
/// ```
#[derive(Clone)]
struct Df {
    base: &'static str,
    version: &'static str,
    foo: &'static str,
    label: &'static str,
    expose: &'static str,
    files: Vec<(&'static str, &'static str)>,
    run_test: &'static str,
    proxy: &'static str,
    secret_env: &'static str,
}

fn df() -> Df {
    Df {
        base: "sha256:aaaa",
        version: "1",
        foo: "bar",
        label: "x=1",
        expose: "80",
        files: vec![("src/a.rs", "sha256:01"), ("src/b.rs", "sha256:02")],
        run_test: "RUN make test",
        proxy: "http://proxy:3128",
        secret_env: "s3cret",
    }
}

/// Keys of COPY, RUN make, RUN test, with their records; the way the
/// engine builds them (metadata steps leave the chain alone).
fn keys(d: &Df) -> Vec<(CacheKey, InputsRecord)> {
    let mut chain = KeyChain::from_image(d.base, "linux/amd64");
    chain.exclude(&["TOKEN".to_string()]);
    chain.set_arg("VERSION", d.version);
    chain.set_arg("HTTP_PROXY", d.proxy);
    chain.set_env("FOO", d.foo);
    chain.set_env("TOKEN", d.secret_env);
    let _ = (d.label, d.expose); // LABEL/EXPOSE/CMD: config only
    let listing: BTreeMap<String, String> = d
        .files
        .iter()
        .map(|(p, h)| (format!("file:{p}"), h.to_string()))
        .collect();
    let summary = crate::digest::Digest::of(format!("{listing:?}").as_bytes()).to_string();
    let mut out = Vec::new();
    let copy = chain
        .copy("COPY", "COPY src /app")
        .file("src", summary)
        .detail("file:src", listing)
        .build();
    chain.advance(copy.0.clone());
    out.push(copy);
    let make = chain.run("RUN make").build();
    chain.advance(make.0.clone());
    out.push(make);
    let test = chain.run(d.run_test).build();
    chain.advance(test.0.clone());
    out.push(test);
    out
}

fn changed(a: &Df, b: &Df) -> Vec<bool> {
    keys(a)
        .iter()
        .zip(keys(b).iter())
        .map(|(x, y)| x.0 != y.0)
        .collect()
}

#[test]
fn each_input_invalidates_exactly_what_it_should() {
    let base = df();
    let same = vec![false, false, false];
    let mut d = base.clone();
    d.label = "x=2";
    d.expose = "8080";
    assert_eq!(changed(&base, &d), same, "metadata changes nothing");
    let mut d = base.clone();
    d.proxy = "http://other:3128";
    d.secret_env = "other";
    assert_eq!(changed(&base, &d), same, "proxy args and secrets stay out");
    let mut d = base.clone();
    d.files[1].1 = "sha256:03";
    assert_eq!(changed(&base, &d), vec![true, true, true], "a file");
    let mut d = base.clone();
    d.version = "2";
    assert_eq!(changed(&base, &d), vec![false, true, true], "a build arg");
    let mut d = base.clone();
    d.foo = "baz";
    assert_eq!(changed(&base, &d), vec![false, true, true], "an env var");
    let mut d = base.clone();
    d.base = "sha256:bbbb";
    assert_eq!(changed(&base, &d), vec![true, true, true], "the base");
    let mut d = base.clone();
    d.run_test = "RUN make check";
    assert_eq!(changed(&base, &d), vec![false, false, true], "one RUN");
    // Same inputs, same keys: the key is a pure function of the inputs.
    assert_eq!(keys(&base)[2].0, keys(&base)[2].1.key());
}

#[test]
fn keys_do_not_collide_across_name_value_boundaries() {
    let (a, _) = KeyBuilder::new("RUN").input("ab", "c").build();
    let (b, _) = KeyBuilder::new("RUN").input("a", "bc").build();
    let (c, _) = KeyBuilder::new("COPY").input("ab", "c").build();
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.to_string().parse::<CacheKey>().unwrap(), a);
}

fn layer(store: &Store, content: &[u8]) -> CacheResult {
    let d = store.put_bytes(content).unwrap();
    CacheResult {
        layer: Some(CachedLayer {
            descriptor: Descriptor::new(media::OCI_LAYER_GZIP, d.clone(), content.len() as u64),
            diff_id: crate::digest::Digest::of(b"tar"),
        }),
        config: None,
        extra: serde_json::json!({"history": "COPY src /app"}),
    }
}

/// Records the three steps of `d` as one build.
fn record_build(index: &CacheIndex, d: &Df) {
    for (i, (_, rec)) in keys(d).iter().enumerate() {
        let r = layer(index.store(), format!("layer {i} {}", rec.label).as_bytes());
        index.record(&format!("stage0/{i}"), rec, &r).unwrap();
    }
}

#[test]
fn misses_name_the_changed_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let index = CacheIndex::open(&store).unwrap();
    let base = df();

    let first = index.explain_miss("stage0/0", &keys(&base)[0].1).unwrap();
    assert_eq!(first.reasons(), vec!["no earlier build of this step"]);
    record_build(&index, &base);
    for (k, _) in keys(&base) {
        assert!(index.lookup(&k).unwrap().is_some());
    }

    let mut d = base.clone();
    d.files[1].1 = "sha256:03";
    d.files.push(("src/c.rs", "sha256:04"));
    let e = index.explain_miss("stage0/0", &keys(&d)[0].1).unwrap();
    assert_eq!(
        e.render_text(),
        "COPY src /app: file src/b.rs changed; file src/c.rs added"
    );
    let json = e.to_json();
    assert_eq!(json["changed"][0]["name"], "file:src/b.rs");
    assert_eq!(json["changed"][0]["old"], "sha256:02");
    assert_eq!(json["reasons"][1], "file src/c.rs added");
    let e = index.explain_miss("stage0/1", &keys(&d)[1].1).unwrap();
    assert_eq!(e.reasons(), vec!["an earlier step changed"]);

    let mut d = base.clone();
    d.version = "2";
    let e = index.explain_miss("stage0/1", &keys(&d)[1].1).unwrap();
    assert_eq!(e.render_text(), "RUN make: build arg VERSION changed");
    assert_eq!(e.changed_inputs()[0].new.as_deref(), Some("2"));

    let mut d = base.clone();
    d.base = "sha256:bbbb";
    let from = |d: &Df| {
        KeyBuilder::new("FROM")
            .label("FROM base")
            .base(d.base)
            .build()
            .1
    };
    index
        .record("stage0/from", &from(&base), &CacheResult::default())
        .unwrap();
    let e = index.explain_miss("stage0/from", &from(&d)).unwrap();
    assert_eq!(
        e.render_text(),
        "FROM base: base image changed (aaaa -> bbbb)"
    );

    let mut d = base.clone();
    d.run_test = "RUN make check";
    let e = index.explain_miss("stage0/2", &keys(&d)[2].1).unwrap();
    assert_eq!(e.render_text(), "RUN make check: instruction text changed");

    // After a second build the closest earlier build is chosen, not the
    // newest: going back to VERSION=1 compares with the first build.
    let mut v2 = base.clone();
    v2.version = "2";
    record_build(&index, &v2);
    let mut d = base.clone();
    d.foo = "baz";
    let e = index.explain_miss("stage0/1", &keys(&d)[1].1).unwrap();
    assert_eq!(e.reasons(), vec!["env FOO changed"]);
}

#[test]
fn lookups_need_the_blobs_and_roots_keep_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let index = CacheIndex::open(&store).unwrap();
    let (key, rec) = KeyBuilder::new("RUN")
        .label("RUN x")
        .instruction("x")
        .build();
    let missing = CacheResult {
        config: Some(crate::digest::Digest::of(b"not stored")),
        ..CacheResult::default()
    };
    assert!(matches!(
        index.record("s/0", &rec, &missing),
        Err(CacheError::BlobMissing(_))
    ));
    assert_eq!(index.lookup(&key).unwrap(), None, "nothing half-written");
    let r = layer(&store, b"layer");
    assert_eq!(index.record("s/0", &rec, &r).unwrap(), key);
    assert_eq!(index.lookup(&key).unwrap(), Some(r.clone()));
    assert_eq!(index.keys().unwrap(), vec![key.clone()]);
    index.update_roots().unwrap();
    drop(index);
    let report = store.prune().unwrap();
    assert_eq!(report.blobs_removed, 0, "cached layers are GC roots");
    let index = CacheIndex::open(&store).unwrap();
    assert!(index.lookup(&key).unwrap().is_some());
    // The blob gone (another tool deleted it): a miss, explained as such.
    let blob = r.layer.as_ref().unwrap().descriptor.digest.clone();
    std::fs::remove_file(store.blob_path(&blob)).unwrap();
    assert_eq!(index.lookup(&key).unwrap(), None);
    let e = index.explain_miss("s/0", &rec).unwrap();
    assert!(e.result_missing);
    assert_eq!(
        e.reasons(),
        vec!["the earlier result is no longer in the store"]
    );
}

#[test]
fn local_export_then_import_into_an_empty_store() {
    let work = tempfile::tempdir().unwrap();
    let s1 = Store::open(&work.path().join("s1")).unwrap();
    let i1 = CacheIndex::open(&s1).unwrap();
    let base = df();
    record_build(&i1, &base);
    let all: Vec<CacheKey> = keys(&base).into_iter().map(|(k, _)| k).collect();
    let out = work.path().join("cache");
    let spec = CacheSpec::parse_to(&format!("type=local,dest={},mode=max", out.display())).unwrap();
    assert_eq!(spec.mode, ExportMode::Max);
    let rep = transfer::export(&i1, &spec, &all, None, &crate::registry::NoProgress).unwrap();
    assert_eq!((rep.entries, rep.blobs), (3, 3));

    let s2 = Store::open(&work.path().join("s2")).unwrap();
    let i2 = CacheIndex::open(&s2).unwrap();
    let from = CacheSpec::parse_from(&format!("type=local,src={}", out.display())).unwrap();
    let rep = transfer::import(&i2, &from, None, &crate::registry::NoProgress).unwrap();
    assert_eq!((rep.entries, rep.added, rep.blobs), (3, 3, 3));
    for k in &all {
        let r = i2.lookup(k).unwrap().expect("imported entry hits");
        assert_eq!(r, i1.lookup(k).unwrap().unwrap());
    }
    // Explanations work against the imported builds too.
    let mut d = base.clone();
    d.version = "3";
    let e = i2.explain_miss("stage0/1", &keys(&d)[1].1).unwrap();
    assert_eq!(e.reasons(), vec!["build arg VERSION changed"]);
    // Importing again adds nothing.
    let rep = transfer::import(&i2, &from, None, &crate::registry::NoProgress).unwrap();
    assert_eq!(rep.added, 0);
}

#[test]
fn a_tampered_local_cache_is_refused_and_nothing_is_imported() {
    let work = tempfile::tempdir().unwrap();
    let s1 = Store::open(&work.path().join("s1")).unwrap();
    let i1 = CacheIndex::open(&s1).unwrap();
    record_build(&i1, &df());
    let all: Vec<CacheKey> = keys(&df()).into_iter().map(|(k, _)| k).collect();
    let out = work.path().join("cache");
    transfer::export_local(&i1, &all, &out, None).unwrap();
    let victim = i1
        .lookup(&all[1])
        .unwrap()
        .unwrap()
        .layer
        .unwrap()
        .descriptor;
    let p = out.join("blobs/sha256").join(victim.digest.hex());
    std::fs::write(&p, b"evil bytes, same length?").unwrap();

    let s2 = Store::open(&work.path().join("s2")).unwrap();
    let i2 = CacheIndex::open(&s2).unwrap();
    let err = transfer::import_local(&i2, &out, None).unwrap_err();
    assert!(
        err.to_string().contains(&victim.digest.to_string()),
        "{err}"
    );
    assert!(i2.keys().unwrap().is_empty(), "no entry from a bad cache");
    assert!(i2.lookup(&all[1]).unwrap().is_none());
    assert!(!s2.has_blob(&victim.digest));
}

#[test]
fn cache_specs_parse_like_buildkit_flags() {
    assert_eq!(
        CacheSpec::parse_from("registry.example/app:cache").unwrap(),
        CacheSpec {
            location: CacheLocation::Registry {
                reference: "registry.example/app:cache".into()
            },
            mode: ExportMode::Min,
        }
    );
    let s = CacheSpec::parse_to("type=registry,ref=r/app:c,mode=max").unwrap();
    assert_eq!(s.mode, ExportMode::Max);
    for bad in [
        "type=local",
        "type=s3,ref=x",
        "type=registry",
        "type=local,dest=d,mode=all",
        "type=local,dest=d,what=1",
        "dest=d",
        "",
    ] {
        let e = CacheSpec::parse_to(bad).unwrap_err().to_string();
        assert!(e.contains("invalid cache option"), "{bad}: {e}");
    }
}
