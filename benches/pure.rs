//! Criterion benchmarks of the pure parts the end-to-end figures are made of: parsing a
//! dropped file's records (NDJSON and CSV) and validating a request body into a payload.
//! No disk, no network: those are measured by the `e2e` bench against their ceilings.

use std::hint::black_box;
use std::io::Write;
use std::ops::ControlFlow;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use icsync::ingest::{read_records, Format};
use icsync::store::Payload;
use serde_json::json;

const ROWS: usize = 1_000;

fn body(i: usize) -> serde_json::Value {
    json!({
        "full_name": format!("Person {i}"),
        "email": format!("p{i}@example.org"),
        "external_id": format!("crm-{i}"),
        "phone": "+44 7700 900123",
    })
}

fn ndjson() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..ROWS {
        serde_json::to_writer(&mut out, &body(i)).unwrap();
        out.push(b'\n');
    }
    out
}

fn csv() -> Vec<u8> {
    let mut out = b"full_name,email,external_id,phone\n".to_vec();
    for i in 0..ROWS {
        writeln!(out, "Person {i},p{i}@example.org,crm-{i},+44 7700 900123").unwrap();
    }
    out
}

fn count(format: Format, bytes: &[u8]) -> usize {
    let mut n = 0;
    let _ = read_records::<_, (), _>(format, bytes, |p| {
        n += usize::from(p.result.is_ok());
        ControlFlow::Continue(())
    })
    .unwrap();
    n
}

fn parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(ROWS as u64));
    let (nd, cs) = (ndjson(), csv());
    g.bench_function("ndjson_1k_rows", |b| {
        b.iter(|| count(Format::Ndjson, black_box(&nd)))
    });
    g.bench_function("csv_1k_rows", |b| {
        b.iter(|| count(Format::Csv, black_box(&cs)))
    });
    g.finish();
}

fn validation(c: &mut Criterion) {
    let v = body(42);
    c.bench_function("payload_parse", |b| {
        b.iter(|| Payload::parse(black_box(&v)).unwrap())
    });
}

criterion_group!(benches, parsing, validation);
criterion_main!(benches);
