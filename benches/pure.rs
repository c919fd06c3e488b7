//! Criterion benchmarks of the pure parts the end-to-end figures are made of: parsing a
//! dropped file's records (NDJSON and CSV), validating a request body into a payload, and
//! normalising the values of a row (phone numbers, countries).
//! No disk, no network: those are measured by the `e2e` bench against their ceilings.

use std::hint::black_box;
use std::io::Write;
use std::ops::ControlFlow;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use icsync::ingest::{read_records, values, Format};
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
    // The same columns with phones as people write them, each with its row's country: the
    // phone normalisation is the cost to watch.
    let national = csv_national_phones();
    assert_eq!(count(Format::Csv, &national), ROWS);
    g.bench_function("csv_1k_rows_national_phones", |b| {
        b.iter(|| count(Format::Csv, black_box(&national)))
    });
    // A vendor export: 40 columns of which 7 feed fields, recognised by its preset.
    let salesforce = salesforce();
    assert_eq!(count(Format::Csv, &salesforce), ROWS);
    g.bench_function("salesforce_1k_rows", |b| {
        b.iter(|| count(Format::Csv, black_box(&salesforce)))
    });
    g.finish();
}

fn csv_national_phones() -> Vec<u8> {
    let mut out = b"full_name,email,external_id,phone,risk.country_of_residence\n".to_vec();
    for (i, (phone, country)) in phones().into_iter().enumerate() {
        let country = country.unwrap_or("");
        writeln!(
            out,
            "Person {i},p{i}@example.org,crm-{i},\"{phone}\",{country}"
        )
        .unwrap();
    }
    out
}

fn salesforce() -> Vec<u8> {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/exports/salesforce-contacts.csv"
    );
    let text = std::fs::read_to_string(fixture).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    // The fixture's good rows (its bad ones are refused on purpose), the first 1k.
    let mut out = format!("{header}\n").into_bytes();
    let mut rows = 0;
    for line in lines {
        let one = format!("{header}\n{line}\n");
        if line.contains('"') || count(Format::Csv, one.as_bytes()) != 1 {
            continue;
        }
        writeln!(out, "{line}").unwrap();
        rows += 1;
        if rows == ROWS {
            break;
        }
    }
    out
}

fn validation(c: &mut Criterion) {
    let v = body(42);
    c.bench_function("payload_parse", |b| {
        b.iter(|| Payload::parse(black_box(&v)).unwrap())
    });
}

/// 1k phone numbers as CRM exports hold them, each with its row's country: national
/// formats of the US, Germany, the UK and France, international ones with `(0)`, `00` and
/// extensions, and a share already in E.164.
fn phones() -> Vec<(String, Option<&'static str>)> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut digits = |n: usize| -> String {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                char::from(b'0' + ((seed >> 33) % 10) as u8)
            })
            .collect()
    };
    (0..ROWS)
        .map(|i| {
            let (a, b, c) = (digits(3), digits(3), digits(4));
            match i % 10 {
                0 => (format!("({}{}) {b}-{c}", 2 + i % 8, &a[1..]), Some("US")),
                1 => (format!("{}{}.{b}.{c}", 2 + i % 8, &a[1..]), Some("US")),
                2 => (
                    format!("+1-{}{}-{b}-{c} x{}", 2 + i % 8, &a[1..], &c[..3]),
                    None,
                ),
                3 => (format!("0151 {b}{c}{}", &a[..1]), Some("DE")),
                4 => (format!("+49 (0) 30 {b}{c}"), None),
                5 => (format!("020 7946 {c}"), Some("GB")),
                6 => (format!("07700 900{}", &b[..3]), Some("GB")),
                7 => (
                    format!("06 {} {} {} {}", &a[..2], &b[..2], &c[..2], &c[2..]),
                    Some("FR"),
                ),
                8 => (format!("0044 7700 900{}", &b[..3]), Some("DE")),
                _ => (format!("+4915{b}{c}{}", &a[..1]), Some("DE")),
            }
        })
        .collect()
}

fn countries() -> Vec<&'static str> {
    const WRITTEN: [&str; 10] = [
        "DE",
        "de",
        "GBR",
        "Germany",
        "United Kingdom",
        "USA",
        "Deutschland",
        "Côte d'Ivoire",
        "Korea, Republic of",
        "the Netherlands",
    ];
    (0..ROWS).map(|i| WRITTEN[i % WRITTEN.len()]).collect()
}

fn normalising(c: &mut Criterion) {
    let mut g = c.benchmark_group("values");
    g.throughput(Throughput::Elements(ROWS as u64));
    let phones = phones();
    assert!(phones.iter().all(|(p, c)| values::phone(p, *c).is_ok()));
    g.bench_function("phone_1k_mixed", |b| {
        b.iter(|| {
            phones
                .iter()
                .filter(|(p, c)| values::phone(black_box(p), *c).is_ok())
                .count()
        })
    });
    let e164: Vec<String> = phones
        .iter()
        .filter_map(|(p, c)| values::phone(p, *c).ok().map(|n| n.value))
        .collect();
    g.bench_function("phone_1k_e164", |b| {
        b.iter(|| {
            e164.iter()
                .filter(|p| values::phone(black_box(p), None).is_ok())
                .count()
        })
    });
    let countries = countries();
    g.bench_function("country_1k_mixed", |b| {
        b.iter(|| {
            countries
                .iter()
                .filter(|c| values::country(black_box(c)).is_ok())
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, parsing, validation, normalising);
criterion_main!(benches);
