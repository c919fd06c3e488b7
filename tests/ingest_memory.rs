//! Memory bound: a ~200 MB NDJSON stream, generated on the fly by a `Read` (no file), is
//! read in batches while the process's peak resident memory grows by less than 64 MB.
//!
//! The measurement runs in a child process (this test binary re-executed on one ignored
//! test), so other tests running in parallel threads cannot disturb the peak.

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::process::Command;

use icsync::ingest::{read_batches, Format};

const TOTAL_BYTES: u64 = 200 << 20;
const BOUND_BYTES: u64 = 64 << 20;
const CHILD_TEST: &str = "streaming_200mb_ndjson_in_this_process";

/// Every 97th line is malformed JSON and every 89th has a bad email; the rest are valid.
struct GeneratedNdjson {
    remaining: u64,
    line: Vec<u8>,
    at: usize,
    number: u64,
}

impl GeneratedNdjson {
    fn new(total: u64) -> Self {
        GeneratedNdjson {
            remaining: total,
            line: Vec::new(),
            at: 0,
            number: 0,
        }
    }

    fn next_line(&mut self) {
        self.number += 1;
        let n = self.number;
        self.line.clear();
        let text = if n % 97 == 0 {
            format!("{{\"full_name\": \"Broken {n}\", \n")
        } else {
            let email = if n % 89 == 0 {
                "not-an-email".to_string()
            } else {
                format!("p{n}@example.com")
            };
            // The note is ignored by the reader; it makes lines long like real exports.
            format!(
                "{{\"fullName\":\"Person {n}\",\"email\":\"{email}\",\"externalId\":\"EXT-{n:010}\",\
                 \"risk\":{{\"occupation\":\"Engineer\",\"countryOfResidence\":\"GB\",\
                 \"expectedMonthlyVolume\":{},\"isPep\":false}},\"_error\":\"{}\"}}\r\n",
                n * 7,
                "x".repeat(200 + (n % 50) as usize),
            )
        };
        self.line.extend_from_slice(text.as_bytes());
        self.at = 0;
    }
}

impl Read for GeneratedNdjson {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.line.len() {
            if self.remaining == 0 {
                return Ok(0);
            }
            self.next_line();
        }
        let n = (self.line.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at += n;
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

/// A `VmHWM:` / `VmRSS:` value from /proc/self/status, in bytes.
fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} not in /proc/self/status"));
    let kb: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
#[ignore = "the measurement itself; run in a child process by memory_stays_bounded_on_a_200mb_ndjson"]
fn streaming_200mb_ndjson_in_this_process() {
    // Warm up once so one-off allocations (lazy statics, the first buffers) are in the
    // baseline rather than counted as growth.
    let _ = read_batches(Format::Ndjson, GeneratedNdjson::new(1 << 20), 1000, |_| {
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    let baseline = status_bytes("VmRSS:");

    let (mut accepted, mut rejected, mut batches) = (0u64, 0u64, 0u64);
    let mut source = GeneratedNdjson::new(TOTAL_BYTES);
    let flow = read_batches(Format::Ndjson, &mut source, 1000, |batch| {
        batches += 1;
        accepted += batch.accepted.len() as u64;
        rejected += batch.rejected.len() as u64;
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(flow, ControlFlow::Continue(()));

    // VmHWM is the peak since the process started, so this overstates growth if anything.
    let growth = status_bytes("VmHWM:").saturating_sub(baseline);
    let lines = source.number;
    let bad_json = lines / 97;
    let bad_email = (1..=lines).filter(|n| n % 89 == 0 && n % 97 != 0).count() as u64;
    assert_eq!(rejected, bad_json + bad_email);
    assert_eq!(accepted + rejected, lines);
    assert!(batches >= accepted / 1000);
    println!(
        "streamed {lines} lines ({} MB) in {batches} batches: {accepted} accepted, {rejected} \
         rejected; peak RSS growth {} KB",
        TOTAL_BYTES >> 20,
        growth >> 10
    );
    assert!(
        growth < BOUND_BYTES,
        "peak RSS grew by {} MB while streaming {} MB",
        growth >> 20,
        TOTAL_BYTES >> 20
    );
}

#[test]
fn memory_stays_bounded_on_a_200mb_ndjson() {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args([
            CHILD_TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Guard against the child silently running no test at all.
    assert!(
        stdout.contains("streamed ") && stdout.contains("1 passed"),
        "the measurement did not run\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    if let Some(at) = stdout.find("streamed ") {
        println!("{}", stdout[at..].lines().next().unwrap_or_default());
    }
}
