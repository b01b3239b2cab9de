//! Criterion benches of signing and webhook verification, both schemes, on the ~1 KB webhook
//! body the bench binary uses: `cargo bench -p bench --bench signing`.

use std::hint::black_box;

use bench::fixtures;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn signing(c: &mut Criterion) {
    let body = fixtures::webhook_body();
    let mut group = c.benchmark_group("sign");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let hmac = fixtures::hmac_signer();
    group.bench_function("hmac-sha256", |b| b.iter(|| hmac.sign(black_box(&body))));
    let rsa = fixtures::rsa_signer();
    group.bench_function("rsa-2048", |b| b.iter(|| rsa.sign(black_box(&body))));
    group.finish();
}

fn verification(c: &mut Criterion) {
    let body = fixtures::webhook_body();
    let mut group = c.benchmark_group("verify webhook");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let hmac_signature = fixtures::hmac_signer().sign(&body);
    let hmac = fixtures::hmac_verifier();
    group.bench_function("hmac-sha256", |b| {
        b.iter(|| hmac.verify(black_box(&body), Some(&hmac_signature)))
    });
    let rsa_signature = fixtures::rsa_signer().sign(&body);
    let rsa = fixtures::rsa_verifier();
    group.bench_function("rsa-2048", |b| {
        b.iter(|| rsa.verify(black_box(&body), Some(&rsa_signature)))
    });
    group.finish();
}

criterion_group!(benches, signing, verification);
criterion_main!(benches);
