//! Parser throughput on a generated 10,000-instruction Dockerfile.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kiln_benches::generated_dockerfile;

fn parse(c: &mut Criterion) {
    let text = generated_dockerfile(10_000);
    let nodes = builder_core::parser::parse(text.as_bytes())
        .expect("the generated Dockerfile parses")
        .nodes
        .len();
    assert_eq!(nodes, 10_000);
    eprintln!(
        "parse: {} bytes, {nodes} instructions (instructions/s = {nodes} / time per iteration)",
        text.len()
    );
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("10k-instructions", |b| {
        b.iter(|| builder_core::parser::parse(std::hint::black_box(text.as_bytes())))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
