//! Part 3: drop-to-synced latency. A running `icsync daemon` (default drop_quiet_ms) and a
//! sandbox at 0 ms; each one-record file is written beside the drop folder and renamed into
//! it (how a browser, rsync or an export job completes a file), and the clock stops when the
//! daemon's control socket reports the record made from that file synced: the record is
//! found by its external_id (`show`), and the clock stops at the synced event for its id,
//! not at any synced event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use icsync::control::{Client, Event, Reply, Request};
use icsync::store::{RecordId, RecordState};

use super::report::Row;
use super::util::{body, ms, quantile, quick, BenchResult, Daemon, Sandbox};

const WARMUP: usize = 3;
const DEADLINE: Duration = Duration::from_secs(30);

/// The id of the record whose external_id is `external_id`, once the daemon has queued it.
async fn id_of(client: &mut Client, external_id: &str) -> BenchResult<Option<RecordId>> {
    match client
        .request(Request::Show {
            id: external_id.to_string(),
        })
        .await
    {
        Ok(Reply::Record { record }) => Ok(Some(record.id)),
        Ok(Reply::Error(_)) | Err(icsync::control::ClientError::Refused(_)) => Ok(None),
        Ok(other) => Err(format!("unexpected reply to show: {other:?}").into()),
        Err(e) => Err(e.into()),
    }
}

/// Time from `start` to the synced event of the record with `external_id`. Synced events
/// are kept by id as they arrive (with when), so one that comes before the id is known
/// still counts, and one for another record never does.
async fn synced_at(
    events: &mut Client,
    lookup: &mut Client,
    external_id: &str,
    start: Instant,
) -> BenchResult<Duration> {
    let mut synced: HashMap<RecordId, Duration> = HashMap::new();
    let mut id: Option<RecordId> = None;
    loop {
        if start.elapsed() > DEADLINE {
            return Err(format!("{external_id} was not synced within {DEADLINE:?}").into());
        }
        if let Some(at) = id.and_then(|id| synced.get(&id)) {
            return Ok(*at);
        }
        let event = tokio::time::timeout(DEADLINE, events.next_event())
            .await
            .map_err(|_| format!("no event for {external_id} within {DEADLINE:?}"))??;
        if let Event::RecordChanged { id: changed, state } = event {
            if state == RecordState::Synced {
                synced.insert(changed, start.elapsed());
            }
            // The first event about a new record: its file has been taken, look it up.
            if id.is_none() {
                id = id_of(lookup, external_id).await?;
            }
        }
    }
}

pub async fn run(rows: &mut Vec<Row>) -> BenchResult<()> {
    let drops = if quick() { 10 } else { 50 };
    let home = tempfile::tempdir()?;
    let sandbox = Sandbox::start(0)?;
    let daemon = Daemon::start(home.path(), &sandbox.url, &home.path().join("data"), "")?;
    let mut events = Client::connect(&daemon.socket()).await?;
    events.subscribe().await?;
    let mut lookup = Client::connect(&daemon.socket()).await?;
    let mut samples = Vec::new();
    for i in 0..drops + WARMUP {
        let staging = home.path().join(format!("one-{i}.ndjson"));
        let record = body("lat", i);
        let external_id = record["external_id"]
            .as_str()
            .ok_or("the body has no external_id")?
            .to_string();
        std::fs::write(&staging, format!("{record}\n"))?;
        let start = Instant::now();
        std::fs::rename(&staging, daemon.drop_dir().join(format!("one-{i}.ndjson")))?;
        let took = synced_at(&mut events, &mut lookup, &external_id, start).await?;
        if i >= WARMUP {
            samples.push(took);
        }
    }
    // The events say synced; the status confirms every drop was taken exactly once.
    if let Reply::Status(s) = lookup.request(Request::Status).await? {
        if s.synced != (drops + WARMUP) as u64 {
            return Err(format!("expected {} synced, status says {s:?}", drops + WARMUP).into());
        }
    }
    daemon.stop();
    let (p50, p99) = (quantile(&samples, 0.5), quantile(&samples, 0.99));
    rows.push(
        Row::new(
            "3",
            format!(
                "drop-to-synced, one-record file renamed in, its record's id, p50 ({drops} drops)"
            ),
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
