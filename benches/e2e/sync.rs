//! Part 1: sync throughput. N records queued in a sealed store are sent by the real engine to
//! a fresh `icsync sandbox` process; the ceiling is a bare reqwest loop posting the same
//! bodies with the same Idempotency-Key shape and concurrency to another fresh sandbox (so
//! creates stay creates) in the same run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use icsync::api::{ApiClient, ApiKey, ApiTimeouts, InsecureHttp};
use icsync::store::{Origin, Payload, RecordState, Store, StoreOptions};
use icsync::sync::{Engine, EngineConfig, Work};
use serde_json::Value;

use super::report::Row;
use super::util::{
    keys, payloads, process_cpu, quick, selected, selection, threads_cpu, BenchResult, Sandbox,
    DEMO_KEY,
};

const TIMEOUTS: ApiTimeouts = ApiTimeouts {
    connect: Duration::from_secs(5),
    request: Duration::from_secs(30),
};

/// Records per configuration: 20k, except concurrency 1 at 5 ms, which would take
/// 2 x 20k x 5 ms = 200 s of pure waiting on its own (see docs/benchmarks.md).
fn records_for(latency_ms: u64, concurrency: usize) -> usize {
    if quick() {
        return 1_000;
    }
    if concurrency == 1 && latency_ms > 0 {
        2_000
    } else {
        20_000
    }
}

/// Which store the engine sends from: sealed (today's layout, encryption on) or plain (the
/// pre-encryption layout), for the cost of encryption.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Sealed,
    Plain,
}

/// What one run took: wall time, and this process's CPU time over it (the sandbox is a
/// process of its own, so neither counts its work); for an engine run, also where the CPU
/// went: the engine's own store work, by part, and sled's background threads.
#[derive(Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Duration,
    work: Work,
    sled_threads: Duration,
}

async fn engine_run(
    url: &str,
    items: &[Payload],
    concurrency: usize,
    layout: Layout,
) -> BenchResult<Took> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let store = match layout {
        Layout::Sealed => {
            Store::open_with_key(&dir, StoreOptions::default(), &keys(tmp.path()), None)?
        }
        Layout::Plain => Store::open_legacy_plain(&dir, StoreOptions::default())?,
    };
    let n = items.len() as u64;
    store.submit_batch(
        items.iter().map(|p| (p.clone(), Origin::Cli)).collect(),
        Utc::now(),
    )?;
    // As the daemon does once an import's requests stop.
    store.fold_pending()?;
    let client = ApiClient::new(url, ApiKey::new(DEMO_KEY)?, TIMEOUTS, InsecureHttp::Allow)?;
    let engine = Engine::new(
        store.clone(),
        client,
        EngineConfig {
            concurrency,
            ..EngineConfig::default()
        },
    );
    let handle = engine.handle();
    handle.measure_work();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sled_threads = threads_cpu("sled-");
    let cpu = process_cpu();
    let start = Instant::now();
    let task = tokio::spawn(engine.run(async move {
        let _ = stopped.await;
    }));
    let deadline = start + Duration::from_secs(600);
    let elapsed = loop {
        let counts = store.counts()?;
        if counts.get(RecordState::Synced) == n {
            break Took {
                wall: start.elapsed(),
                cpu: process_cpu().saturating_sub(cpu),
                work: handle.work(),
                sled_threads: threads_cpu("sled-").saturating_sub(sled_threads),
            };
        }
        if counts.get(RecordState::Queued) + counts.get(RecordState::Sending) == 0
            || Instant::now() > deadline
        {
            return Err(format!("engine run did not sync everything: {counts:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = stop.send(());
    task.await??;
    Ok(elapsed)
}

async fn bare_run(url: &str, bodies: Arc<Vec<Value>>, concurrency: usize) -> BenchResult<Took> {
    // Built as `ApiClient` builds its client, so the ceiling pays the same TLS-capable stack.
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(TIMEOUTS.connect)
        .timeout(TIMEOUTS.request)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let customers = format!("{url}/v1/customers");
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = process_cpu();
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, customers, next, bodies) = (
                http.clone(),
                customers.clone(),
                next.clone(),
                bodies.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return Ok::<(), reqwest::Error>(());
                    };
                    let key = format!("icsync-{}-r1", uuid::Uuid::now_v7().hyphenated());
                    let response = http
                        .post(&customers)
                        .bearer_auth(DEMO_KEY)
                        .header("Idempotency-Key", key)
                        .json(body)
                        .send()
                        .await?
                        .error_for_status()?;
                    response.bytes().await?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(Took {
        wall: start.elapsed(),
        cpu: process_cpu().saturating_sub(cpu),
        work: Work::default(),
        sled_threads: Duration::ZERO,
    })
}

pub async fn run(rows: &mut Vec<Row>, extra: &mut Vec<String>) -> BenchResult<()> {
    for latency_ms in [0u64, 5] {
        for concurrency in [1usize, 8, 32] {
            if !config_wanted(latency_ms, concurrency) {
                continue;
            }
            let n = records_for(latency_ms, concurrency);
            let tag = format!("s{latency_ms}c{concurrency}");
            let items = payloads(&tag, n)?;
            let bodies: Arc<Vec<Value>> = Arc::new(items.iter().map(Payload::to_value).collect());
            let bare = {
                let sandbox = Sandbox::start(latency_ms)?;
                bare_run(&sandbox.url, bodies, concurrency).await?
            };
            let engine = {
                let sandbox = Sandbox::start(latency_ms)?;
                engine_run(&sandbox.url, &items, concurrency, Layout::Sealed).await?
            };
            let rate = |t: Took| n as f64 / t.wall.as_secs_f64();
            let cpu_us = |t: Took| t.cpu.as_secs_f64() * 1e6 / n as f64;
            let ratio = rate(engine) / rate(bare);
            eprintln!(
                "sync {latency_ms} ms c{concurrency} n={n}: engine {:.0}/s {:.0} us CPU/rec, \
                 bare {:.0}/s {:.0} us CPU/rec",
                rate(engine),
                cpu_us(engine),
                rate(bare),
                cpu_us(bare)
            );
            rows.push(
                Row::new(
                    "1",
                    format!("sync {n} records, latency {latency_ms} ms, concurrency {concurrency}"),
                    format!("{:.0} rec/s", rate(engine)),
                )
                .ceiling(format!("{:.0} rec/s bare reqwest", rate(bare)), ratio)
                .goal(">= 0.85", ratio >= 0.85),
            );
            if latency_ms == 0 {
                // Where the rate at 0 ms is lost: the CPU this process spent per record (the
                // engine with its store, against the bare loop), steadier than the rates on
                // a noisy machine, and what the profiles in docs/benchmarks.md break down.
                rows.push(
                    Row::new(
                        "1",
                        "  CPU per record of that run, engine with its store",
                        format!("{:.0} us", cpu_us(engine)),
                    )
                    .ceiling(
                        format!("{:.0} us bare reqwest", cpu_us(bare)),
                        cpu_us(bare) / cpu_us(engine),
                    ),
                );
                rows.push(Row::new("1", "    of which, by part", breakdown(engine, n)));
            }
        }
    }
    if selection("BENCH_SYNC").is_none() {
        encryption_cost(rows).await?;
    }
    extra.push(
        "Sync: the engine run includes every store write (nothing before a request; the \
         outcomes of the requests that finished while the writer was busy in one transaction, \
         every record re-sealed) and the store's flushes; the bare loop writes nothing."
            .into(),
    );
    Ok(())
}

/// Whether a configuration was asked for: `BENCH_SYNC=0:8,0:32` (latency in ms, concurrency)
/// runs only those, for an A/B of one change, and skips the encryption cost; all by default.
fn config_wanted(latency_ms: u64, concurrency: usize) -> bool {
    selected("BENCH_SYNC", &format!("{latency_ms}:{concurrency}"))
}

/// An engine run's CPU per record by part: the engine's outcome writes (preparing each record's
/// new value and the transaction, on the writer's thread), its reads of the queue, sled's own
/// threads (log buffers written out, the flusher), and the rest (HTTP, JSON, the engine's
/// loop, task scheduling, this bench's polling of the counts).
fn breakdown(took: Took, n: usize) -> String {
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let parts = took.work.outcome_writes + took.work.queue_reads + took.sled_threads;
    format!(
        "outcome writes {:.0} us, queue reads {:.0} us, sled's threads {:.0} us, the rest {:.0} us",
        us(took.work.outcome_writes),
        us(took.work.queue_reads),
        us(took.sled_threads),
        us(took.cpu.saturating_sub(parts)),
    )
}

/// The cost of encryption in sync: the same records sent by the engine from a sealed store
/// and from a plain one (pre-encryption layout), at 0 ms and concurrency 8, alternately in
/// this run (each a fresh sandbox), as a ratio of rates (plain = 1).
async fn encryption_cost(rows: &mut Vec<Row>) -> BenchResult<()> {
    let (concurrency, rounds) = (8, 2);
    let n = records_for(0, concurrency);
    let items = payloads("crypto", n)?;
    let (mut sealed, mut plain) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        for layout in [Layout::Sealed, Layout::Plain] {
            let sandbox = Sandbox::start(0)?;
            let took = engine_run(&sandbox.url, &items, concurrency, layout)
                .await?
                .wall;
            match layout {
                Layout::Sealed => sealed += took,
                Layout::Plain => plain += took,
            }
        }
    }
    let rate = |d: Duration| (n * rounds) as f64 / d.as_secs_f64();
    rows.push(
        Row::new(
            "1",
            format!("sync cost of encryption: {n} records, 0 ms, c={concurrency}, sealed store"),
            format!("{:.0} rec/s", rate(sealed)),
        )
        .ceiling(
            format!("{:.0} rec/s plain store", rate(plain)),
            rate(sealed) / rate(plain),
        ),
    );
    Ok(())
}
