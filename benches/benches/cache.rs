//! What the build cache costs on a no-op rebuild: computing a key, looking
//! it up in the store's index, and explaining a miss over a large context.
//!
//! `cargo bench -p kiln-benches --bench cache`. The sizes follow issue 7's
//! first workload (about 46,000 files copied by one `COPY . /app`): the key
//! itself hashes one directory digest; the 46,000 per-file digests only
//! matter when a miss is explained.
use std::collections::BTreeMap;

use builder_core::cache::{CacheIndex, CacheResult, KeyChain};
use builder_core::store::Store;
use criterion::{criterion_group, criterion_main, Criterion};

const FILES: usize = 46_000;

fn listing(changed: Option<usize>) -> BTreeMap<String, String> {
    (0..FILES)
        .map(|i| {
            let v = if Some(i) == changed { i + 1 } else { i };
            (
                format!("file:lib/python3/pkg{}/mod{i}.py", i % 300),
                format!("sha256:{v:064x}"),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let index = CacheIndex::open(&store).unwrap();
    let chain = KeyChain::from_image("scratch", "linux/amd64");
    let before = listing(None);
    let (key, rec) = chain
        .copy("COPY", "COPY . /app")
        .file(".", "sha256:01")
        .detail("file:.", before)
        .build();
    index.record("s0/1", &rec, &CacheResult::default()).unwrap();

    c.bench_function("key: RUN with 20 env vars", |b| {
        let mut ch = chain.clone();
        for i in 0..20 {
            ch.set_env(&format!("VAR{i}"), "some value");
        }
        b.iter(|| ch.run("RUN make -j2 install").build().0)
    });
    c.bench_function("lookup: hit", |b| {
        b.iter(|| index.lookup(&key).unwrap().unwrap())
    });
    c.bench_function("lookup + touch: hit as a rebuild does it", |b| {
        b.iter(|| {
            index.lookup(&key).unwrap().unwrap();
            index.touch("s0/1", &key).unwrap();
        })
    });
    let (_, changed) = chain
        .copy("COPY", "COPY . /app")
        .file(".", "sha256:02")
        .detail("file:.", listing(Some(123)))
        .build();
    let mut g = c.benchmark_group("explain");
    g.sample_size(10);
    g.bench_function("explain_miss: one file of 46,000 changed", |b| {
        b.iter(|| {
            let e = index.explain_miss("s0/1", &changed).unwrap();
            assert_eq!(e.changed.len(), 1);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
