//! Part 3: drop-to-synced latency. A running `icsync daemon` (default drop_quiet_ms) and a
//! sandbox at 0 ms; each one-record file is written beside the drop folder and renamed into
//! it (how a browser, rsync or an export job completes a file), and the clock stops when the
//! daemon's control socket reports that record synced.

use std::time::{Duration, Instant};

use icsync::control::{Client, Event, Request};
use icsync::store::RecordState;

use super::report::Row;
use super::util::{body, ms, quantile, quick, BenchResult, Daemon, Sandbox};

const WARMUP: usize = 3;

pub async fn run(rows: &mut Vec<Row>) -> BenchResult<()> {
    let drops = if quick() { 10 } else { 50 };
    let home = tempfile::tempdir()?;
    let sandbox = Sandbox::start(0)?;
    let daemon = Daemon::start(home.path(), &sandbox.url, &home.path().join("data"), "")?;
    let mut client = Client::connect(&daemon.socket()).await?;
    client.subscribe().await?;
    let mut samples = Vec::new();
    for i in 0..drops + WARMUP {
        let staging = home.path().join(format!("one-{i}.ndjson"));
        std::fs::write(&staging, format!("{}\n", body("lat", i)))?;
        let start = Instant::now();
        std::fs::rename(&staging, daemon.drop_dir().join(format!("one-{i}.ndjson")))?;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), client.next_event())
                .await
                .map_err(|_| format!("drop {i} was not synced within 30 s"))??;
            if let Event::RecordChanged {
                state: RecordState::Synced,
                ..
            } = event
            {
                break;
            }
        }
        if i >= WARMUP {
            samples.push(start.elapsed());
        }
    }
    // The events say synced; the status confirms every drop was taken exactly once.
    let mut check = Client::connect(&daemon.socket()).await?;
    if let icsync::control::Reply::Status(s) = check.request(Request::Status).await? {
        if s.synced != (drops + WARMUP) as u64 {
            return Err(format!("expected {} synced, status says {s:?}", drops + WARMUP).into());
        }
    }
    daemon.stop();
    let (p50, p99) = (quantile(&samples, 0.5), quantile(&samples, 0.99));
    rows.push(
        Row::new(
            "3",
            format!("drop-to-synced, one-record file renamed in, p50 ({drops} drops)"),
            format!("{:.1} ms", ms(p50)),
        )
        .goal("< 100 ms", ms(p50) < 100.0),
    );
    rows.push(Row::new(
        "3",
        "drop-to-synced p99",
        format!("{:.1} ms", ms(p99)),
    ));
    Ok(())
}
