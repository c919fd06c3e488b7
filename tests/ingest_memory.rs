//! Memory bound: large inputs, generated on the fly by a `Read` (no file), are read in
//! batches while the process's peak resident memory grows by less than 64 MB: a ~200 MB
//! NDJSON, a ~100 MB JSON array (streamed element by element) and a 1M-row CSV.
//!
//! Each measurement runs in a child process (this test binary re-executed on one ignored
//! test), so other tests running in parallel threads cannot disturb the peak.

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::process::Command;

use icsync::ingest::{read_batches, Format, ReadOptions};

const BOUND_BYTES: u64 = 64 << 20;

/// Every 97th record is broken (malformed NDJSON line, ragged CSV row; none in JSON, where a
/// broken element would end the file) and every 89th has a bad email.
fn broken(format: Format, n: u64) -> bool {
    format != Format::Json && n.is_multiple_of(97)
}

fn bad_email(n: u64) -> bool {
    n.is_multiple_of(89)
}

fn email(n: u64) -> String {
    if bad_email(n) {
        "not-an-email".to_string()
    } else {
        format!("p{n}@example.com")
    }
}

/// Record `n` (from 1) as it appears in the file, separators included.
fn record_text(format: Format, n: u64) -> String {
    let email = email(n);
    match format {
        Format::Ndjson if broken(format, n) => format!("{{\"full_name\": \"Broken {n}\", \n"),
        // The note is ignored by the reader; it makes lines as long as real exports.
        Format::Ndjson => format!(
            "{{\"fullName\":\"Person {n}\",\"email\":\"{email}\",\"externalId\":\"EXT-{n:010}\",\
             \"risk\":{{\"occupation\":\"Engineer\",\"countryOfResidence\":\"GB\",\
             \"expectedMonthlyVolume\":{},\"isPep\":false}},\"_error\":\"{}\"}}\r\n",
            n * 7,
            "x".repeat(200 + (n % 50) as usize),
        ),
        Format::Json => format!(
            "{}{{\"full_name\":\"Person {n}\",\"email\":\"{email}\",\"external_id\":\"EXT-{n:010}\",\
             \"risk\":{{\"occupation\":\"Engineer\",\"is_pep\":true}},\"_error\":\"{}\"}}",
            if n == 1 { "" } else { ",\n" },
            "y".repeat(100 + (n % 50) as usize),
        ),
        Format::Csv if broken(format, n) => format!("Broken {n},only two\r\n"),
        Format::Csv => format!(
            // A quoted multi-line cell in the ignored note column (field values may not hold
            // a newline).
            "Person {n},{email},EXT-{n:010},\"Engineer, senior\",GB,{},no,\"{}\nsee above\"\r\n",
            n * 3,
            "z".repeat(20 + (n % 20) as usize)
        ),
        Format::Tsv | Format::Xlsx => unreachable!("not generated"),
    }
}

fn head(format: Format) -> &'static str {
    match format {
        Format::Ndjson => "",
        Format::Json => "\u{feff}[\n",
        Format::Csv => {
            "\u{feff}fullName,email,externalId,risk.occupation,risk.countryOfResidence,\
             risk.expectedMonthlyVolume,risk.isPep,_error\r\n"
        }
        Format::Tsv | Format::Xlsx => unreachable!("not generated"),
    }
}

fn tail(format: Format) -> &'static str {
    match format {
        Format::Json => "\n]\n",
        _ => "",
    }
}

/// A file of `format` with `records` records, produced as it is read.
struct Generated {
    format: Format,
    records: u64,
    produced: u64,
    chunk: Vec<u8>,
    at: usize,
    finished: bool,
}

impl Generated {
    fn new(format: Format, records: u64) -> Self {
        Generated {
            format,
            records,
            produced: 0,
            chunk: head(format).as_bytes().to_vec(),
            at: 0,
            finished: false,
        }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            self.chunk.clear();
            self.at = 0;
            if self.produced < self.records {
                self.produced += 1;
                let text = record_text(self.format, self.produced);
                self.chunk.extend_from_slice(text.as_bytes());
            } else if !self.finished {
                self.finished = true;
                self.chunk.extend_from_slice(tail(self.format).as_bytes());
            } else {
                return Ok(0);
            }
        }
        let n = (self.chunk.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
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

/// Streams `records` records and checks the counts and the peak memory growth.
fn measure(format: Format, records: u64) {
    // Warm up once so one-off allocations (lazy statics, the first buffers) are in the
    // baseline rather than counted as growth.
    let _ = read_batches(
        format,
        Generated::new(format, 2000),
        &ReadOptions::default(),
        1000,
        |_| ControlFlow::<()>::Continue(()),
    )
    .unwrap();
    let baseline = status_bytes("VmRSS:");

    let (mut accepted, mut rejected, mut bytes) = (0u64, 0u64, 0u64);
    let mut source = Generated::new(format, records);
    let counting = io::Read::by_ref(&mut source).inspect_bytes(&mut bytes);
    let flow = read_batches(format, counting, &ReadOptions::default(), 1000, |batch| {
        accepted += batch.accepted.len() as u64;
        rejected += batch.rejected.len() as u64;
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(flow, ControlFlow::Continue(()));

    // VmHWM is the peak since the process started, so this overstates growth if anything.
    let growth = status_bytes("VmHWM:").saturating_sub(baseline);
    let expected_rejected = (1..=records)
        .filter(|&n| broken(format, n) || bad_email(n))
        .count() as u64;
    assert_eq!(rejected, expected_rejected);
    assert_eq!(accepted + rejected, records);
    println!(
        "streamed {records} {format:?} records ({} MB): {accepted} accepted, {rejected} \
         rejected; peak RSS growth {} KB",
        bytes >> 20,
        growth >> 10
    );
    assert!(
        bytes > BOUND_BYTES * 3 / 2,
        "the input must be far larger than the bound"
    );
    assert!(
        growth < BOUND_BYTES,
        "peak RSS grew by {} MB while streaming {} MB",
        growth >> 20,
        bytes >> 20
    );
}

/// Counts the bytes read through it.
trait InspectBytes: Read + Sized {
    fn inspect_bytes(self, count: &mut u64) -> Counting<'_, Self> {
        Counting { inner: self, count }
    }
}

impl<R: Read> InspectBytes for R {}

struct Counting<'a, R> {
    inner: R,
    count: &'a mut u64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.count += n as u64;
        Ok(n)
    }
}

#[test]
#[ignore = "a measurement; run in a child process by the tests below"]
fn measure_ndjson_in_this_process() {
    measure(Format::Ndjson, 490_000); // ~200 MB
}

#[test]
#[ignore = "a measurement; run in a child process by the tests below"]
fn measure_json_array_in_this_process() {
    measure(Format::Json, 420_000); // ~100 MB
}

#[test]
#[ignore = "a measurement; run in a child process by the tests below"]
fn measure_csv_in_this_process() {
    measure(Format::Csv, 1_000_000); // ~110 MB
}

fn run_child(test: &str) {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args([
            test,
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
    let Some(at) = stdout.find("streamed ") else {
        panic!("the measurement did not run\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    assert!(stdout.contains("1 passed"), "{stdout}");
    println!("{}", stdout[at..].lines().next().unwrap_or_default());
}

#[test]
fn memory_stays_bounded_on_a_200mb_ndjson() {
    run_child("measure_ndjson_in_this_process");
}

#[test]
fn memory_stays_bounded_on_a_100mb_json_array() {
    run_child("measure_json_array_in_this_process");
}

#[test]
fn memory_stays_bounded_on_a_1m_row_csv() {
    run_child("measure_csv_in_this_process");
}
