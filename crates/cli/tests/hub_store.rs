//! The embedded store of the real `herald serve` when its disk or its data directory goes wrong:
//! a full disk (a small tmpfs the test mounts) answers 503 and `/healthz` fails until space is
//! freed, then the same process publishes again with nothing acknowledged lost; a damaged data
//! directory (empty, truncated, garbage or missing log file) stops start-up with a clear error.

mod hub_support;

use std::collections::HashSet;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_hub::log::EventId;
use hub_support::{Hub, TIMEOUT, error_of, id_of};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop: a disk the test can fill.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount(8)");
        assert!(
            out.status.success(),
            "this test needs to mount a tmpfs (root or CAP_SYS_ADMIN) to fill a real disk: \
             mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still has a file open there must not keep the mount forever.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system is full; answers how many bytes fit.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) || e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
        assert!(written < 1 << 30, "the tmpfs never filled");
    }
    let _ = file.sync_all();
    written
}

/// The status, lowercased head and body of a publish of `data` to `topic` with idempotency `key`.
fn publish(hub: &Hub, key: &str, data: &str) -> (u16, String, String) {
    let body = serde_json::json!({ "topic": "disk", "data": data, "id": key }).to_string();
    let (status, head, body) = hub.request_full(
        "POST",
        "/publish",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    (status, head.to_ascii_lowercase(), body)
}

fn healthz(hub: &Hub) -> (u16, serde_json::Value) {
    let (status, body) = hub.request("GET", "/healthz", &[], b"");
    (status, serde_json::from_str(&body).expect("JSON health"))
}

#[test]
fn a_full_disk_answers_503_and_publishes_work_again_once_space_is_freed() {
    let disk = Tmpfs::mount("16m");
    let data_dir = disk.path().join("data");
    let data_arg = data_dir.to_str().unwrap().to_owned();
    let mut hub = Hub::start(&["--data-dir", &data_arg, "--no-metrics-topic"]);
    assert_eq!(healthz(&hub).0, 200);

    // Acknowledged before and while the disk fills: every one must survive.
    let mut acked: Vec<(String, String)> = Vec::new();
    for i in 0..5 {
        let data = format!("before-{i}");
        let (status, _, body) = publish(&hub, &format!("k-before-{i}"), &data);
        assert_eq!(status, 200, "{body}");
        acked.push((id_of(&body), data));
    }
    let filler = disk.path().join("filler");
    fill(&filler);

    // Space redb had already reserved in its file may take a few more; then the disk is full.
    let payload = "x".repeat(32 * 1024);
    let mut refused = None;
    for i in 0..2000 {
        let key = format!("k-full-{i}");
        let data = format!("full-{i} {payload}");
        let (status, head, body) = publish(&hub, &key, &data);
        if status == 200 {
            acked.push((id_of(&body), data));
            continue;
        }
        refused = Some((key, data, status, head, body));
        break;
    }
    let (key, data, status, head, body) = refused.expect("a publish was refused on a full disk");
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("\r\nretry-after: "), "{head}");
    let message = error_of(&body);
    assert!(message.contains("the disk is full"), "{message}");

    // While it cannot write: healthz fails, naming the store and why; the errors are counted;
    // every publish is answered (not left hanging), refused the same way.
    let (status, health) = healthz(&hub);
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["store"], "embedded", "{health}");
    assert!(
        health["error"]
            .as_str()
            .unwrap()
            .contains("the disk is full"),
        "{health}"
    );
    let (status, head, body) = publish(&hub, "k-refused", "small");
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("\r\nretry-after: "), "{head}");
    assert!(hub.metric("herald_store_errors_total") >= 2);

    // Space freed: the same process writes again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let retried = loop {
        let (status, _, body) = publish(&hub, &key, &data);
        if status == 200 {
            break id_of(&body);
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "still refused after space was freed: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(hub.child.try_wait().unwrap().is_none(), "the hub exited");
    acked.push((retried.clone(), data.clone()));
    let (status, health) = healthz(&hub);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    // The retry with the same key is recognised (it was stored once), and new ids keep growing.
    let (status, _, body) = publish(&hub, &key, &data);
    assert_eq!((status, id_of(&body)), (200, retried.clone()));
    let (status, _, body) = publish(&hub, "k-after", "after");
    assert_eq!(status, 200, "{body}");
    let after = id_of(&body);
    acked.push((after.clone(), "after".into()));
    let newest = acked
        .iter()
        .map(|(id, _)| id.parse::<EventId>().unwrap())
        .max()
        .unwrap();
    assert_eq!(after.parse::<EventId>().unwrap(), newest);

    // Every acknowledged event is in the log, once, in order.
    let mut all = hub.subscribe("topic=disk&lastEventId=0-0", None);
    let got = all.take_ids_and_data(acked.len());
    let mut expected = acked.clone();
    expected.sort_by_key(|(id, _)| id.parse::<EventId>().unwrap());
    assert_eq!(
        got.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        expected.iter().map(|(id, _)| id).collect::<Vec<_>>()
    );
    assert_eq!(got, expected);
    let ids: HashSet<_> = got.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), got.len(), "an event arrived twice");
    hub.signal("TERM");
    assert!(hub.wait_exit(TIMEOUT).is_some());
}

/// Runs `herald serve --data-dir dir` and expects it to refuse to start: its exit status and
/// stderr.
fn serve_refuses(dir: &Path) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--addr", "127.0.0.1:0", "--no-metrics-topic"])
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald");
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herald started on the damaged directory {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().expect("exit code");
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A data directory that a hub initialised, with a few events in it, and the hub stopped.
fn initialised_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut hub = Hub::start(&["--data-dir", data.to_str().unwrap(), "--no-metrics-topic"]);
    for i in 0..200 {
        hub.publish("old", &format!("{i:0>200}"));
    }
    hub.signal("TERM");
    assert!(hub.wait_exit(TIMEOUT).is_some());
    (dir, data)
}

/// The refusal names the file, says what is wrong, and says how to recover or start fresh.
fn assert_clear_refusal(dir: &Path, what: &str) {
    let (code, stderr) = serve_refuses(dir);
    assert_eq!(code, 1, "{stderr}");
    let log_file = dir.join("events.redb");
    assert!(
        stderr.contains(&log_file.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains(what), "says {what:?}: {stderr}");
    assert!(stderr.contains("from a backup"), "{stderr}");
    assert!(
        stderr.contains(&format!("mv {} {}.damaged", dir.display(), dir.display())),
        "says how to start fresh: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_zero_byte_log_file_refuses_to_start_instead_of_starting_empty() {
    let (_tmp, data) = initialised_dir();
    std::fs::File::create(data.join("events.redb")).unwrap(); // truncates to 0 bytes
    assert_clear_refusal(&data, "is empty (0 bytes)");

    // The same in a directory from before the marker: a 0-byte log is never a new directory.
    std::fs::remove_file(data.join("herald-data-dir")).unwrap();
    assert_clear_refusal(&data, "is empty (0 bytes)");

    // What the message says to do works: moved away, herald starts fresh on purpose.
    let moved = data.with_extension("damaged");
    std::fs::rename(&data, &moved).unwrap();
    let hub = Hub::start(&["--data-dir", data.to_str().unwrap(), "--no-metrics-topic"]);
    let (status, body) = hub.request("GET", "/healthz", &[], b"");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_truncated_log_file_refuses_to_start() {
    let (_tmp, data) = initialised_dir();
    let path = data.join("events.redb");
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    assert_clear_refusal(&data, "is damaged or not a herald event log");
}

#[test]
fn a_garbage_log_file_refuses_to_start() {
    let (_tmp, data) = initialised_dir();
    let garbage: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(data.join("events.redb"), garbage).unwrap();
    assert_clear_refusal(&data, "is damaged or not a herald event log");
}

#[test]
fn a_deleted_log_file_beside_the_marker_refuses_to_start() {
    let (_tmp, data) = initialised_dir();
    std::fs::remove_file(data.join("events.redb")).unwrap();
    assert_clear_refusal(&data, "is missing");
    let (_, stderr) = serve_refuses(&data);
    assert!(
        stderr.contains("herald-data-dir"),
        "names the marker: {stderr}"
    );
}
