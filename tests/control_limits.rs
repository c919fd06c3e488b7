//! The control socket under abuse, against the real `icsync daemon`: descriptor exhaustion,
//! a 100 MB request line, huge pages, malformed requests and bad id prefixes, the connection
//! cap, idle connections, and the log's rotation by size. Each test starts its own daemon
//! (no API key: sending is paused, so nothing but the socket is exercised).

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::daemon::{daemon_answers, poll_until, DaemonEnv, DaemonProcess, DAEMON_READY, POLL};
use common::mode_of;
use serde_json::{json, Value};

/// No API listens here; the daemon never gets that far without a key.
const NO_API: &str = "http://127.0.0.1:9";
const READ_DEADLINE: Duration = Duration::from_secs(20);

/// Starts `icsync daemon` in `env` with extra environment variables and waits until it
/// answers.
fn start(env: &DaemonEnv, vars: &[(&str, &str)]) -> DaemonProcess {
    let stderr_path = env.dir.path().join(format!(
        "daemon-{}.stderr",
        std::process::id() ^ Instant::now().elapsed().subsec_nanos()
    ));
    let mut cmd = env.command(&["daemon"]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&stderr_path).unwrap()))
        .spawn()
        .unwrap();
    let mut daemon = DaemonProcess { child, stderr_path };
    poll_until("the daemon to answer", DAEMON_READY, || {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("the daemon exited ({status}): {}", daemon.stderr());
        }
        if daemon_answers(&env.socket()) {
            Ok(())
        } else {
            Err(())
        }
    });
    daemon
}

/// A raw connection: the first frame the daemon sent, and the stream.
struct Conn {
    reader: BufReader<UnixStream>,
    stream: UnixStream,
    first: Value,
}

fn connect(socket: &Path) -> Conn {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(READ_DEADLINE)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let first = read_frame(&mut reader).expect("a first frame");
    Conn {
        reader,
        stream,
        first,
    }
}

fn read_frame(reader: &mut BufReader<UnixStream>) -> Option<Value> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        Err(e) => panic!("reading a frame: {e}"),
    }
}

impl Conn {
    fn greeted(&self) -> bool {
        self.first.get("hello").is_some()
    }

    /// Sends one raw line and returns the next reply frame's `reply`.
    fn send(&mut self, line: &[u8]) -> Value {
        self.stream.write_all(line).unwrap();
        self.stream.write_all(b"\n").unwrap();
        self.reply()
    }

    fn reply(&mut self) -> Value {
        loop {
            let frame = read_frame(&mut self.reader).expect("a reply before the close");
            if let Some(reply) = frame.get("reply") {
                return reply.clone();
            }
        }
    }

    fn request(&mut self, request: Value) -> Value {
        let line = serde_json::to_vec(&json!({"id": 1, "request": request})).unwrap();
        self.send(&line)
    }
}

fn code(reply: &Value) -> &str {
    assert_eq!(reply["type"], "error", "{reply}");
    reply["code"].as_str().unwrap()
}

/// `VmHWM` (peak resident memory) of `pid`, in kB.
fn peak_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn malformed_requests_huge_pages_and_bad_ids_are_each_told_why() {
    let env = DaemonEnv::new(NO_API, "");
    let _daemon = start(&env, &[]);
    let mut c = connect(&env.socket());
    assert!(c.greeted(), "{}", c.first);

    let r = c.send(b"{\"id\": 3, \"request\": {\"method\": ");
    assert_eq!(code(&r), "malformed");
    assert!(r["message"].as_str().unwrap().contains("column"), "{r}");

    let r = c.send(br#"{"id": 4, "request": {"method": "launch_rockets"}}"#);
    assert_eq!(code(&r), "unknown_method");
    assert!(
        r["message"].as_str().unwrap().contains("launch_rockets"),
        "{r}"
    );

    let r = c.send(br#"{"id": 5, "request": {"method": "list", "limit": "all"}}"#);
    assert_eq!(code(&r), "invalid");
    assert!(r["message"].as_str().unwrap().contains("list"), "{r}");

    // A page of a million records is refused before anything is read for it.
    let r = c.request(json!({"method": "list", "state": null, "after": null, "limit": 1_000_000}));
    assert_eq!(code(&r), "too_large");
    assert!(r["message"].as_str().unwrap().contains("5000"), "{r}");
    let r = c.request(json!({"method": "list", "state": null, "after": null, "limit": 5000}));
    assert_eq!(r["type"], "records", "{r}");

    // Bad handles are the user's error, each with its code: anything up to 255 characters
    // may be an external_id, so only an empty or longer one cannot name a record.
    for (prefix, want) in [
        ("zzzzzzzz", "not_found"),
        ("01", "not_found"),
        ("", "bad_id"),
        (&"f".repeat(5000), "bad_id"),
        ("ffffffff", "not_found"),
    ] {
        let r = c.request(json!({"method": "show", "id": prefix}));
        assert_eq!(code(&r), want, "{prefix:.20}: {r}");
        assert!(r["message"].as_str().unwrap().len() <= 1024, "{r}");
    }
    // The connection is still good after all that.
    let r = c.request(json!({"method": "status"}));
    assert_eq!(r["type"], "status", "{r}");

    // The CLI says it in words, with the same distinction.
    let out = env.cli(&["show", "zzzzzzzz"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no record matches \"zzzzzzzz\""),
        "{stderr}"
    );
    assert!(stderr.contains("external_id"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("internal"), "{stderr}");
}

#[test]
fn a_100_mb_request_line_is_refused_without_being_held() {
    let env = DaemonEnv::new(NO_API, "");
    let daemon = start(&env, &[]);
    let before = peak_kb(daemon.pid());
    let mut c = connect(&env.socket());
    let mut writer = c.stream.try_clone().unwrap();
    let sent = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            writer.write_all(&chunk)?;
        }
        writer.write_all(b"\n")
    });
    // The reason comes as soon as the line is over the limit, while it is still being sent.
    let r = c.reply();
    assert_eq!(code(&r), "too_large");
    assert!(r["message"].as_str().unwrap().contains("8388608"), "{r}");
    sent.join().unwrap().unwrap();
    // The rest of the line was skipped, and the connection serves the next request.
    let r = c.request(json!({"method": "status"}));
    assert_eq!(r["type"], "status", "{r}");
    let after = peak_kb(daemon.pid());
    eprintln!("daemon VmHWM: {before} kB before, {after} kB after a 100 MB line");
    assert!(
        after < before + 48 * 1024,
        "the daemon's peak memory grew from {before} kB to {after} kB"
    );
}

#[test]
fn connections_over_the_cap_are_told_why_and_closed() {
    let env = DaemonEnv::new(NO_API, "");
    let _daemon = start(&env, &[("ICSYNC_CONTROL_MAX_CONNECTIONS", "3")]);
    // daemon_answers' probe connection may still hold a slot for a moment.
    let held: Vec<Conn> = poll_until("three connections served", READ_DEADLINE, || {
        let conns: Vec<Conn> = (0..3).map(|_| connect(&env.socket())).collect();
        if conns.iter().all(Conn::greeted) {
            Ok(conns)
        } else {
            Err(conns.iter().map(|c| c.first.clone()).collect::<Vec<_>>())
        }
    });
    let mut over = connect(&env.socket());
    assert_eq!(code(&over.first["reply"]), "busy", "{}", over.first);
    assert!(over.first["reply"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum of 3"));
    assert!(
        read_frame(&mut over.reader).is_none(),
        "closed after the refusal"
    );
    // The CLI says why too.
    let out = env.cli(&["status"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("maximum of 3"), "{stderr}");

    // A slot freed is a slot served.
    drop(held);
    poll_until(
        "a connection served after others closed",
        READ_DEADLINE,
        || {
            let c = connect(&env.socket());
            if c.greeted() {
                Ok(())
            } else {
                Err(c.first)
            }
        },
    );
}

#[test]
fn idle_connections_are_closed_but_subscribers_and_clients_carry_on() {
    let env = DaemonEnv::new(NO_API, "");
    let _daemon = start(&env, &[("ICSYNC_CONTROL_IDLE_MS", "400")]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = runtime
        .block_on(icsync::control::Client::connect(&env.socket()))
        .unwrap();
    let mut subscriber = connect(&env.socket());
    let r = subscriber.request(json!({"method": "subscribe"}));
    assert_eq!(r["type"], "subscribed", "{r}");
    let started = Instant::now();
    let mut silent = connect(&env.socket());
    let mut partial = connect(&env.socket());
    partial.stream.write_all(b"{\"id\": 1, \"requ").unwrap();
    for c in [&mut silent, &mut partial] {
        let r = c.reply();
        assert_eq!(code(&r), "idle_timeout", "{r}");
        assert!(read_frame(&mut c.reader).is_none(), "closed after idling");
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
    // The subscriber was idle as long, and is still served.
    let r = subscriber.request(json!({"method": "status"}));
    assert_eq!(r["type"], "status", "{r}");
    // The library client was closed as idle too, and opens again by itself.
    let reply = runtime
        .block_on(client.request(icsync::control::Request::Status))
        .unwrap();
    assert!(
        matches!(reply, icsync::control::Reply::Status(_)),
        "{reply:?}"
    );
}

#[test]
fn descriptor_exhaustion_backs_off_with_a_small_log_and_recovers() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let env = DaemonEnv::new(NO_API, "");
    let daemon = start(&env, &[("ICSYNC_CONTROL_MAX_CONNECTIONS", "10000")]);
    let pid = daemon.pid();
    // The socket answers before the store and engine are open: wait for the whole daemon,
    // so the descriptors it needs for its own work are counted before the limit is set.
    env.wait_status("the daemon's store open", READ_DEADLINE, |s| {
        s["daemon"] == true
    });
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = open_fds + 12;
    let set = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .output()
        .unwrap();
    if !set.status.success() {
        eprintln!(
            "skipped: prlimit refused: {}",
            String::from_utf8_lossy(&set.stderr)
        );
        return;
    }
    // Far more connections than descriptors: the rest wait in the listen queue, and every
    // accept fails with EMFILE while they do.
    let held: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(env.socket()).unwrap())
        .collect();
    let log = env.log_file();
    let size = || std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(size() < 1 << 20, "the log grew to {} bytes", size());
        std::thread::sleep(POLL);
    }
    drop(held);
    poll_until("the daemon answering again", READ_DEADLINE, || {
        if daemon_answers(&env.socket()) {
            Ok(())
        } else {
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
            Err(format!(
                "{fds} descriptors open (limit {limit}); log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let episodes = text.matches("cannot accept connections").count();
    eprintln!(
        "log after exhaustion: {} bytes, {episodes} back-off episode line(s)",
        text.len()
    );
    assert!(text.len() < 1 << 20);
    assert!(
        (1..=2).contains(&episodes),
        "{episodes} accept warnings:\n{text}"
    );
    let status = env.status();
    assert_eq!(status["daemon"], true, "{status}");
}

#[test]
fn the_log_rotates_by_size_and_keeps_a_capped_number_of_private_files() {
    let env = DaemonEnv::new(NO_API, "");
    let _daemon = start(
        &env,
        &[("ICSYNC_LOG_MAX_BYTES", "4096"), ("ICSYNC_LOG_KEEP", "2")],
    );
    let mut c = connect(&env.socket());
    // Each refused request is a debug line (LOG_FILTER has icsync at debug).
    for _ in 0..400 {
        let r = c.send(b"not json");
        assert_eq!(code(&r), "malformed");
    }
    let dir = env.log_file().parent().unwrap().to_path_buf();
    let rotated = |n: u32| dir.join(format!("icsync.log.{n}"));
    poll_until("two rotated files", READ_DEADLINE, || {
        if rotated(2).exists() {
            Ok(())
        } else {
            Err(std::fs::read_dir(&dir).unwrap().count())
        }
    });
    assert!(!rotated(3).exists(), "only 2 rotated files are kept");
    for path in [env.log_file(), rotated(1), rotated(2)] {
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < 4096 + 1024, "{} is {len} bytes", path.display());
        assert_eq!(mode_of(&path), 0o600, "{}", path.display());
    }
    let old = std::fs::read_to_string(rotated(1)).unwrap();
    assert!(old.contains("control request refused"), "{old}");
}
