//! The control socket over a real Unix socket: binding rules, request/reply, events, versions.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use icsync::control::{
    bind, serve, BindError, Client, ClientError, Event, Handler, Reply, Request, StatusReport,
};
use icsync::store::{RecordId, RecordState};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, oneshot};

struct Echo {
    events: broadcast::Sender<Event>,
}

impl Handler for Echo {
    async fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Status => Reply::Status(StatusReport {
                queued: 42,
                ..StatusReport::default()
            }),
            _ => Reply::Resolved { ids: vec![] },
        }
    }
    fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

async fn start(path: &std::path::Path) -> (Arc<Echo>, oneshot::Sender<()>) {
    let listener = bind(path).await.unwrap();
    let (tx, _) = broadcast::channel(16);
    let handler = Arc::new(Echo { events: tx });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, handler.clone(), async {
        let _ = stopped.await;
    }));
    (handler, stop)
}

#[tokio::test]
async fn socket_is_private_and_answers_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("icsync.sock");
    let (_h, _stop) = start(&path).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut client = Client::connect(&path).await.unwrap();
    match client.request(Request::Status).await.unwrap() {
        Reply::Status(s) => assert_eq!(s.queued, 42),
        other => panic!("unexpected {other:?}"),
    }
    // Replies keep coming on the same connection.
    assert!(matches!(
        client.request(Request::Status).await.unwrap(),
        Reply::Status(_)
    ));
}

#[tokio::test]
async fn a_live_daemon_is_detected_and_a_stale_socket_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("icsync.sock");
    let (_h, stop) = start(&path).await;
    assert!(matches!(bind(&path).await, Err(BindError::InUse(_))));
    stop.send(()).unwrap();
    // Simulate a crash: the listener is gone but its socket file stays.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::UnixStream::connect(&path).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server did not stop"
        );
        tokio::task::yield_now().await;
    }
    assert!(path.exists());
    assert!(matches!(
        Client::connect(&path).await,
        Err(ClientError::NotRunning(_))
    ));
    let (_h2, _stop2) = start(&path).await;
    assert!(Client::connect(&path).await.is_ok());
}

#[tokio::test]
async fn subscribers_receive_pushed_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("icsync.sock");
    let (handler, _stop) = start(&path).await;
    let mut client = Client::connect(&path).await.unwrap();
    client.subscribe().await.unwrap();
    let id = RecordId::new();
    handler
        .events
        .send(Event::RecordChanged {
            id,
            state: RecordState::Synced,
        })
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), client.next_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        Event::RecordChanged {
            id,
            state: RecordState::Synced
        }
    );
}

#[tokio::test]
async fn a_daemon_of_another_protocol_version_is_named_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("icsync.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"{\"hello\":{\"protocol\":99,\"version\":\"9.9.9\"}}\n")
            .await
            .unwrap();
        // Keep the connection open while the client reads.
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    match Client::connect(&path).await {
        Err(e @ ClientError::VersionMismatch { daemon: 99, .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("9.9.9") && text.contains("restart the daemon"),
                "{text}"
            );
        }
        other => panic!("expected a version mismatch, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn a_silent_socket_times_out_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("icsync.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let _keep = tokio::spawn(async move {
        let _conn = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let started = std::time::Instant::now();
    assert!(matches!(
        Client::connect(&path).await,
        Err(ClientError::Timeout(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
}
