//! [`EmbeddedLog`]: the durable log of a hub on one machine, in a [redb] file under the data
//! directory.
//!
//! # How an append becomes durable
//!
//! ```text
//! append ─┐                       ┌─ one write transaction: trim by age, insert the batch
//! append ─┼─► queue (bounded) ─► writer thread ─┤  (idempotency checked), trim by count, meta
//! append ─┘                       └─ commit (fsync) ─► tail, in id order ─► answer every waiter
//! ```
//!
//! One writer thread owns every write (**group commit**): it takes everything queued (up to
//! [`MAX_BATCH`] appends or [`MAX_BATCH_BYTES`]), writes it in one transaction and commits once with redb's immediate
//! durability, so concurrent publishers share one fsync. Only then does an event reach the tail
//! and its publisher get an answer: an acknowledged append survives `kill -9` and power loss.
//! Reads are redb read transactions (MVCC: they never wait for the writer) on tokio's blocking
//! pool, since redb does blocking file I/O.
//!
//! # Layout
//!
//! | table              | key                       | value                                 |
//! |--------------------|---------------------------|---------------------------------------|
//! | `events`           | id as `(millis, seq)`     | the event, see `codec` (versioned)    |
//! | `idempotency_keys` | `(topic, key)`            | the id of the event that had that key |
//! | `meta`             | `last_id`, `trimmed_id`   | `(millis, seq)`                       |
//!
//! `last_id` keeps ids increasing across restarts even when retention removed every event or the
//! clock went backwards; `trimmed_id` (the highest id retention removed) answers
//! [`ReadBatch::truncated`] after a restart.
//!
//! Beside the file, [`MARKER_FILE_NAME`] says that the directory was initialised: a directory
//! with the marker but no (or an empty) log file is refused at open, never taken for a new one,
//! since that would start over with no events, old ids and forgotten idempotency keys. The
//! marker is a file of its own because it must survive exactly what happens to the log file
//! (truncated, deleted, a failed copy); a record inside the log would go with it.
//!
//! # When the disk fails (full, I/O error)
//!
//! After an I/O error redb refuses every later operation until the database is reopened. The
//! writer then drops the database (reads answer [`LogError::Unavailable`] meanwhile), answers
//! every append at once with [`LogError::Unavailable`] saying why ("the disk is full"), and tries
//! to reopen it every [`DEFAULT_RECOVERY_INTERVAL`]. Reopening recovers the last committed
//! state (redb keeps the previous commit), so nothing acknowledged is lost; ids go on after the
//! newest on disk and idempotency keys are kept. [`Log::health`] reports the problem until a
//! reopen (which commits a transaction) succeeds.
//!
//! [redb]: https://docs.rs/redb

use std::fmt::Display;
use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, oneshot, watch};

use super::clock::{self, Clock};
use super::codec::{self, Record};
use super::{
    Appended, BoxFuture, EventId, Log, LogError, NewEvent, ReadBatch, Retention, StoreHealth,
    StoredEvent, TAIL_CAPACITY, age_cutoff, closed_tail, is_truncated, next_id,
};

/// The name of the log's file in the data directory.
pub const FILE_NAME: &str = "events.redb";

/// The name of the file, beside [`FILE_NAME`], that says the directory was initialised by
/// herald: while it exists, a missing or empty log file is damage, not a new directory.
pub const MARKER_FILE_NAME: &str = "herald-data-dir";

/// How often the writer tries to reopen the database after an I/O error (e.g. a full disk):
/// often enough that publishes work again about a second after space is freed, rarely enough
/// that a disk that stays full costs nothing noticeable (a reopen reads the file).
pub const DEFAULT_RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// At most this many appends share one transaction: enough to amortise an fsync over every
/// publisher of a busy moment, few enough that one transaction stays small (a few MB at most for
/// typical events) and the first waiter of a batch is not held back long.
pub const MAX_BATCH: usize = 1024;

/// A batch also stops growing once its events hold this many bytes, so that a burst of large
/// events does not make one huge transaction: a few large events still share a commit.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// At most this many appends wait for the writer; further appenders wait for room (async, no
/// thread blocked). Bounds the memory of a burst larger than the disk can absorb.
pub const MAX_QUEUED: usize = 8 * MAX_BATCH;

/// How often the writer removes events past the age bound when nothing is appended (appends trim
/// too). Reads already hide events past the bound; this only frees their space.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(1);

const EVENTS: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("events");
const KEYS: TableDefinition<'_, (&str, &str), (u64, u64)> =
    TableDefinition::new("idempotency_keys");
const META: TableDefinition<'_, &str, (u64, u64)> = TableDefinition::new("meta");
const META_LAST: &str = "last_id";
const META_TRIMMED: &str = "trimmed_id";

/// A durable log in one redb file under a data directory, for a hub on one machine.
///
/// Call [`Log::close`] on shutdown: it waits for queued appends and releases the file. Dropping
/// the log without it loses nothing acknowledged either (every answer came after an fsync); the
/// writer thread then stops and releases the file once it has drained its queue.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use herald_hub::log::{EmbeddedLog, Log, NewEvent, Retention};
///
/// let dir = tempfile::tempdir().unwrap();
/// let log = EmbeddedLog::open(dir.path(), Retention::default())?;
/// let appended = log.append(NewEvent {
///     topic: "chat".into(),
///     event_type: None,
///     data: "hello".into(),
///     retry: None,
///     private: false,
///     idempotency_key: Some("req-1".into()),
/// }).await?; // on disk now
/// log.close().await?;
///
/// let log = EmbeddedLog::open(dir.path(), Retention::default())?;
/// assert_eq!(log.last_id().await?, Some(appended.id));
/// # Ok::<(), herald_hub::log::LogError>(())
/// # }).unwrap();
/// ```
pub struct EmbeddedLog {
    /// The database, for reads; taken by [`Log::close`] so that the file is released, and by the
    /// writer while it recovers from an I/O error (it puts the reopened one back).
    db: Arc<Mutex<Option<Arc<Database>>>>,
    /// Why the store cannot write now (set and cleared by the writer only), for [`Log::health`]
    /// and reads. A std `Mutex`: only touched when the writer's state changes and by health
    /// probes, never on the append path, never held across an `.await`.
    problem: Arc<Mutex<Option<String>>>,
    /// The writer's queue; taken by [`Log::close`], after which appends are refused.
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    /// Room in the writer's queue ([`MAX_QUEUED`]): an append holds a permit until it is written.
    room: Arc<Semaphore>,
    /// Feeds [`Log::tail`]; only the writer sends, after each commit. Taken by [`Log::close`]:
    /// tail receivers end once the writer, which holds the other sender, has stopped.
    tail: Mutex<Option<broadcast::Sender<Arc<StoredEvent>>>>,
    /// The newest committed id, kept by the writer, so that [`Log::last_id`] needs no disk read.
    last: Arc<Mutex<Option<EventId>>>,
    /// The highest id retention removed, as the writer commits it (lets tests await a trim).
    trimmed: watch::Receiver<Option<EventId>>,
    /// The bounds on what is kept (reads hide what is past the age bound).
    retention: Retention,
    /// The time source for ids and age retention.
    clock: Clock,
}

/// What the writer thread is asked to do.
enum Request {
    Append {
        event: NewEvent,
        reply: oneshot::Sender<Result<Appended, LogError>>,
        /// Released once the append is written: frees its room in the queue.
        _room: OwnedSemaphorePermit,
    },
    /// Write what is queued before this, then stop and release the file.
    Close { reply: oneshot::Sender<()> },
}

impl EmbeddedLog {
    /// Opens the log in `dir` (created if missing), recovering what a previous run appended.
    ///
    /// Opening blocks: it reads the whole file to check its integrity, so that a file damaged
    /// outside herald is reported as an error instead of trusted. Call it before serving, or from
    /// a blocking task. Reads need a tokio runtime (they run on its blocking pool).
    ///
    /// # Errors
    ///
    /// [`LogError::Storage`] naming the path, when the directory cannot be created, the file is
    /// not a redb database or is corrupt, or another process has it open.
    pub fn open(dir: &Path, retention: Retention) -> Result<Self, LogError> {
        Self::open_with_clock(dir, retention, clock::system())
    }

    /// [`EmbeddedLog::open`] with a time source (tests).
    pub(crate) fn open_with_clock(
        dir: &Path,
        retention: Retention,
        clock: Clock,
    ) -> Result<Self, LogError> {
        let path = dir.join(FILE_NAME);
        let fail = |what: &str, e: &dyn Display| {
            LogError::Storage(format!("{what} {}: {e}", path.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            LogError::Storage(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        check_not_damaged(dir, &path)?;
        let db = open_database(&path).map_err(|e| damaged(dir, &path, &e))?;
        let (last, trimmed) = recover(&db).map_err(|e| fail("cannot recover", &e))?;
        mark_initialised(dir).map_err(|e| {
            fail(
                &format!("cannot write {MARKER_FILE_NAME} beside"),
                &e.to_string(),
            )
        })?;

        let db = Arc::new(db);
        let shared_db = Arc::new(Mutex::new(Some(Arc::clone(&db))));
        let problem = Arc::new(Mutex::new(None));
        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        let last_shared = Arc::new(Mutex::new(last));
        let (requests, receiver) = mpsc::channel();
        let (trimmed_watch, trimmed_seen) = watch::channel(trimmed);
        let writer = Writer {
            db: Some(db),
            shared_db: Arc::clone(&shared_db),
            problem: Arc::clone(&problem),
            recovery_interval: DEFAULT_RECOVERY_INTERVAL,
            path: path.clone(),
            requests: receiver,
            tail: tail.clone(),
            last_shared: Arc::clone(&last_shared),
            last,
            trimmed,
            trimmed_watch,
            retention,
            clock: Arc::clone(&clock),
        };
        thread::Builder::new()
            .name("herald-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| fail("cannot start the writer thread for", &e))?;
        Ok(Self {
            db: shared_db,
            problem,
            requests: Mutex::new(Some(requests)),
            room: Arc::new(Semaphore::new(MAX_QUEUED)),
            tail: Mutex::new(Some(tail)),
            last: last_shared,
            trimmed: trimmed_seen,
            retention,
            clock,
        })
    }

    /// The highest id retention has removed so far (persisted across restarts), updated after
    /// each commit that removed events: a reader after an older id missed something.
    pub fn trimmed(&self) -> watch::Receiver<Option<EventId>> {
        self.trimmed.clone()
    }

    async fn do_append(&self, event: NewEvent) -> Result<Appended, LogError> {
        let room = Arc::clone(&self.room)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let (reply, answer) = oneshot::channel();
        let request = Request::Append {
            event,
            reply,
            _room: room,
        };
        lock(&self.requests)
            .as_ref()
            .ok_or_else(closed)?
            .send(request)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn do_read_after(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<ReadBatch, LogError> {
        let db = lock(&self.db).clone().ok_or_else(|| self.not_open())?;
        let cutoff = age_cutoff(&self.retention, (self.clock)());
        tokio::task::spawn_blocking(move || read(&db, after, limit, cutoff))
            .await
            .map_err(|e| LogError::Storage(format!("read failed: {e}")))?
    }

    async fn do_read_before(
        &self,
        before: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, LogError> {
        let db = lock(&self.db).clone().ok_or_else(|| self.not_open())?;
        let cutoff = age_cutoff(&self.retention, (self.clock)());
        tokio::task::spawn_blocking(move || read_back(&db, before, limit, cutoff))
            .await
            .map_err(|e| LogError::Storage(format!("read failed: {e}")))?
    }

    /// Why there is no database to read: closed, or the writer is reopening it after an I/O error.
    fn not_open(&self) -> LogError {
        if lock(&self.requests).is_none() {
            return closed();
        }
        match lock(&self.problem).clone() {
            Some(problem) => LogError::Unavailable(problem),
            // Between the writer dropping the database and it saying why: the same answer.
            None => LogError::Unavailable("the event log is being reopened".into()),
        }
    }

    async fn do_close(&self) -> Result<(), LogError> {
        // No new reads; reads in flight keep the database open until they finish.
        lock(&self.db).take();
        lock(&self.tail).take();
        let Some(requests) = lock(&self.requests).take() else {
            return Ok(());
        };
        self.room.close();
        let (reply, done) = oneshot::channel();
        if requests.send(Request::Close { reply }).is_err() {
            // The writer is gone already (it stopped on an error it could not recover from).
            return Ok(());
        }
        // The writer answers once everything queued before is written and it released the file.
        done.await.map_err(|_| stopped())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single load or store: a panic elsewhere cannot leave the value
    // half-updated, so a poisoned lock is still good.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn closed() -> LogError {
    LogError::Unavailable("the log is closed".into())
}

fn stopped() -> LogError {
    LogError::Storage("the log writer stopped".into())
}

/// A redb error as a [`LogError`]: an I/O error (after which redb refuses everything until the
/// database is reopened, see the module doc) is [`LogError::Unavailable`] saying what it is,
/// e.g. "the disk is full"; anything else (corruption, a bug) is [`LogError::Storage`].
fn storage(e: impl Into<redb::Error>) -> LogError {
    match e.into() {
        redb::Error::Io(io) => LogError::Unavailable(describe_io(&io)),
        redb::Error::PreviousIo => LogError::Unavailable(
            "an earlier I/O error stopped the event log; it is being reopened".into(),
        ),
        other => LogError::Storage(other.to_string()),
    }
}

/// A failed commit of appends. A full disk (or quota) fails while the new pages are written,
/// before redb writes the header that would commit them, so nothing was stored: a 503. Any other
/// I/O error (a failing fsync, EIO) may come after the header reached the disk, so the outcome is
/// not known: [`LogError::Unknown`], a 504, and the caller retries with the same idempotency key
/// (after the reopen, a commit that did land is found by its key, see `Writer::reopen`).
fn commit_failed(e: redb::CommitError) -> LogError {
    use std::io::ErrorKind;
    match e.into() {
        redb::Error::Io(io)
            if !matches!(io.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded) =>
        {
            LogError::Unknown(describe_io(&io))
        }
        other => storage(other),
    }
}

/// What an I/O error means for an operator: a full disk (ENOSPC) or quota (EDQUOT) is named as
/// such, since it is the one they can fix by freeing space.
fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull => format!("the disk is full ({e})"),
        ErrorKind::QuotaExceeded => format!("the disk quota is exceeded ({e})"),
        _ => format!("I/O error ({e})"),
    }
}

/// Opens (or creates) the database, checking the whole file. redb reports damage it can see as
/// errors, but its docs allow a panic on some files corrupted outside redb: whatever the file
/// holds, the caller gets an error.
fn open_database(path: &Path) -> Result<Database, redb::DatabaseError> {
    catch_unwind(AssertUnwindSafe(|| {
        Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
    }))
    .unwrap_or_else(|_| {
        Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(
            "the file is unreadable (redb panicked reading it)".into(),
        )))
    })
}

/// What to do about a damaged data directory, the same words in every such error.
fn advice(dir: &Path, path: &Path) -> String {
    format!(
        "Restore {} from a backup; or, to start with an empty log on purpose (losing every \
         event, and every id and idempotency key given so far), move the directory away \
         (`mv {dir} {dir}.damaged`) and start herald again: it then creates a new one.",
        path.display(),
        dir = dir.display(),
    )
}

/// Refuses a log file that is missing or empty in a directory that was initialised (it has the
/// marker), and an empty log file in any directory: herald never leaves a 0-byte log behind, so
/// one was truncated (or a copy failed) and starting on it would silently start from nothing.
fn check_not_damaged(dir: &Path, path: &Path) -> Result<(), LogError> {
    let marker = dir.join(MARKER_FILE_NAME);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == 0 => Err(LogError::Storage(format!(
            "the event log {} is empty (0 bytes): it was truncated or a copy of it failed, and \
             its events are gone. herald refuses to start on it as on a new data directory. {}",
            path.display(),
            advice(dir, path),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && marker.exists() => {
            Err(LogError::Storage(format!(
                "the event log {} is missing, but {} says that herald initialised {}: the log \
                 was deleted or not copied, and its events are gone. herald refuses to start \
                 on it as on a new data directory. {}",
                path.display(),
                marker.display(),
                dir.display(),
                advice(dir, path),
            )))
        }
        _ => Ok(()),
    }
}

/// The error of a log file that redb could not open: damage gets the advice, a file in use or
/// an I/O error says what it is.
fn damaged(dir: &Path, path: &Path, e: &redb::DatabaseError) -> LogError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => LogError::Storage(format!(
            "cannot open {}: another process has it open: another herald is probably running \
             on this --data-dir (stop it first, or give each hub its own --data-dir)",
            path.display()
        )),
        // An error of the OS (permissions, a failing disk), not redb's verdict on the content
        // ("not a redb database" comes as an I/O error without an OS code).
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) if io.raw_os_error().is_some() => {
            LogError::Storage(format!(
                "cannot open {}: {}",
                path.display(),
                describe_io(io)
            ))
        }
        _ => LogError::Storage(format!(
            "cannot open the event log {}: it is damaged or not a herald event log ({e}). {}",
            path.display(),
            advice(dir, path),
        )),
    }
}

/// Writes [`MARKER_FILE_NAME`] once the log file holds its tables (if it is not there yet, as
/// in a directory from before the marker), synced with its directory entry so that a crash
/// cannot leave a log without it.
fn mark_initialised(dir: &Path) -> std::io::Result<()> {
    let marker = dir.join(MARKER_FILE_NAME);
    if marker.exists() {
        return Ok(());
    }
    let text = format!(
        "This directory holds herald's event log ({FILE_NAME}).\n\
         While this file exists, herald refuses to start if {FILE_NAME} is missing or empty,\n\
         instead of starting from nothing. To start fresh on purpose, move the whole directory\n\
         away; do not delete only {FILE_NAME}.\n"
    );
    let partial = dir.join(format!("{MARKER_FILE_NAME}.tmp"));
    {
        let mut file = std::fs::File::create(&partial)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&partial, &marker)?;
    std::fs::File::open(dir)?.sync_all()
}

fn key(id: EventId) -> (u64, u64) {
    (id.millis, id.seq)
}

fn id((millis, seq): (u64, u64)) -> EventId {
    EventId::new(millis, seq)
}

/// About how many bytes an event takes in a transaction.
fn size(event: &NewEvent) -> usize {
    event.topic.len()
        + event.data.len()
        + event.event_type.as_ref().map_or(0, String::len)
        + event.idempotency_key.as_ref().map_or(0, String::len)
}

/// Creates the tables if missing and reads the last id and the highest trimmed id.
fn recover(db: &Database) -> Result<(Option<EventId>, Option<EventId>), redb::Error> {
    let txn = db.begin_write()?;
    let found = {
        let events = txn.open_table(EVENTS)?;
        txn.open_table(KEYS)?;
        let meta = txn.open_table(META)?;
        let newest = events.last()?.map(|(k, _)| id(k.value()));
        let recorded = meta.get(META_LAST)?.map(|v| id(v.value()));
        let trimmed = meta.get(META_TRIMMED)?.map(|v| id(v.value()));
        (newest.max(recorded), trimmed)
    };
    txn.commit()?;
    Ok(found)
}

/// One read transaction: the events after `after` that are younger than `cutoff`.
fn read(
    db: &Database,
    after: Option<EventId>,
    limit: usize,
    cutoff: Option<EventId>,
) -> Result<ReadBatch, LogError> {
    let txn = db.begin_read().map_err(storage)?;
    let events = txn.open_table(EVENTS).map_err(storage)?;
    let meta = txn.open_table(META).map_err(storage)?;
    let trimmed = meta
        .get(META_TRIMMED)
        .map_err(storage)?
        .map(|v| id(v.value()));
    let mut truncated = is_truncated(trimmed, after);
    let mut lower = after.map_or(Bound::Unbounded, |after| Bound::Excluded(key(after)));
    // Events past the age bound that the writer has not removed yet count as removed.
    if let Some(cutoff) = cutoff
        && after.is_none_or(|after| after < cutoff)
    {
        let mut expired = events
            .range((lower, Bound::Excluded(key(cutoff))))
            .map_err(storage)?;
        truncated |= expired.next().is_some();
        lower = Bound::Included(key(cutoff));
    }
    let mut batch = Vec::new();
    for entry in events
        .range((lower, Bound::Unbounded))
        .map_err(storage)?
        .take(limit)
    {
        batch.push(decode_entry(entry)?);
    }
    Ok(ReadBatch {
        events: batch,
        truncated,
    })
}

/// One entry of the events table, as a range over it yields it.
type EventEntry<'a> = Result<
    (
        redb::AccessGuard<'a, (u64, u64)>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

/// One entry of the events table as the event it stores.
fn decode_entry(entry: EventEntry<'_>) -> Result<Arc<StoredEvent>, LogError> {
    let (k, v) = entry.map_err(storage)?;
    let event_id = id(k.value());
    let decoded = codec::decode(event_id, v.value())
        .map_err(|e| LogError::Storage(format!("event {event_id}: {e}")))?;
    Ok(Arc::new(decoded.event))
}

/// One read transaction: up to `limit` events before `before` (all when `None`) that are not
/// older than `cutoff`, newest first.
fn read_back(
    db: &Database,
    before: Option<EventId>,
    limit: usize,
    cutoff: Option<EventId>,
) -> Result<Vec<Arc<StoredEvent>>, LogError> {
    let txn = db.begin_read().map_err(storage)?;
    let events = txn.open_table(EVENTS).map_err(storage)?;
    // Events past the age bound that the writer has not removed yet count as removed.
    let lower = cutoff.map_or(Bound::Unbounded, |cutoff| Bound::Included(key(cutoff)));
    let upper = before.map_or(Bound::Unbounded, |before| Bound::Excluded(key(before)));
    if let (Some(cutoff), Some(before)) = (cutoff, before)
        && before <= cutoff
    {
        // An empty range; redb refuses a range whose start is after its end.
        return Ok(Vec::new());
    }
    let mut batch = Vec::new();
    for entry in events
        .range((lower, upper))
        .map_err(storage)?
        .rev()
        .take(limit)
    {
        batch.push(decode_entry(entry)?);
    }
    Ok(batch)
}

/// The writer thread: the only one that writes to the database.
struct Writer {
    /// `None` after an I/O error, until a reopen succeeds (see the module doc).
    db: Option<Arc<Database>>,
    /// [`EmbeddedLog::db`]: emptied on an I/O error, refilled on recovery.
    shared_db: Arc<Mutex<Option<Arc<Database>>>>,
    /// [`EmbeddedLog::problem`].
    problem: Arc<Mutex<Option<String>>>,
    /// How long after an I/O error (or a failed reopen) the writer tries to reopen.
    recovery_interval: Duration,
    /// For error messages.
    path: PathBuf,
    requests: mpsc::Receiver<Request>,
    tail: broadcast::Sender<Arc<StoredEvent>>,
    last_shared: Arc<Mutex<Option<EventId>>>,
    /// The newest committed id.
    last: Option<EventId>,
    /// The highest id retention removed (committed).
    trimmed: Option<EventId>,
    /// Publishes `trimmed` to [`EmbeddedLog::trimmed`].
    trimmed_watch: watch::Sender<Option<EventId>>,
    retention: Retention,
    clock: Clock,
}

/// An append waiting for its batch to commit.
struct Waiter {
    reply: oneshot::Sender<Result<Appended, LogError>>,
    _room: OwnedSemaphorePermit,
}

impl Writer {
    fn run(mut self) {
        let mut next_trim = Instant::now() + TRIM_INTERVAL;
        let mut next_reopen = Instant::now();
        loop {
            // Checked here too, not only when idle: under a steady stream of publishes the
            // queue never times out, and recovery must not wait for a quiet moment.
            if self.db.is_none() && Instant::now() >= next_reopen {
                self.reopen();
                next_reopen = Instant::now() + self.recovery_interval;
            }
            let due = if self.db.is_some() {
                next_trim
            } else {
                next_reopen
            };
            let wait = due.saturating_duration_since(Instant::now());
            let first = match self.requests.recv_timeout(wait) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    if self.db.is_some() {
                        self.trim_by_age();
                        next_trim = Instant::now() + TRIM_INTERVAL;
                    }
                    continue;
                }
                // Every handle dropped without close: everything acknowledged is on disk already.
                Err(RecvTimeoutError::Disconnected) => {
                    lock(&self.shared_db).take();
                    return;
                }
            };
            let mut batch = Vec::new();
            let mut bytes = 0;
            let mut close = None;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Append {
                        event,
                        reply,
                        _room,
                    } => {
                        bytes += size(&event);
                        batch.push((event, Waiter { reply, _room }));
                    }
                    Request::Close { reply } => {
                        close = Some(reply);
                        break;
                    }
                }
                if batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    // Empty (or every sender gone): write what was taken.
                    next = self.requests.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                let was_open = self.db.is_some();
                self.append_batch(batch);
                if was_open && self.db.is_none() {
                    // Broken by this batch: the first reopen is one interval away (appends
                    // answered meanwhile must not push it back, or a busy hub never recovers).
                    next_reopen = Instant::now() + self.recovery_interval;
                }
            }
            if let Some(reply) = close {
                // Release the file before answering, so that the caller may open it again (a
                // reopen after an I/O error may have put it back after close took it).
                lock(&self.shared_db).take();
                drop(self);
                let _ = reply.send(());
                return;
            }
        }
    }

    /// Writes a batch in one transaction and answers its waiters.
    fn append_batch(&mut self, batch: Vec<(NewEvent, Waiter)>) {
        let now = (self.clock)();
        let mut waiters = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for (event, waiter) in batch {
            events.push(event);
            waiters.push(waiter);
        }
        let Some(db) = self.db.clone() else {
            // Recovering from an I/O error: answer at once, a publish must not hang on it.
            let problem = lock(&self.problem).clone().unwrap_or_default();
            for waiter in waiters {
                let _ = waiter
                    .reply
                    .send(Err(LogError::Unavailable(problem.clone())));
            }
            return;
        };
        match self.write(&db, events, now) {
            Ok((outcomes, fresh)) => {
                // Tail first, then answers: once a publisher hears back, its event is in the tail.
                for event in fresh {
                    // No receiver is not an error: the hub may not be tailing yet.
                    let _ = self.tail.send(event);
                }
                for (waiter, outcome) in waiters.into_iter().zip(outcomes) {
                    let _ = waiter.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "event log write failed");
                let e = match e {
                    LogError::Unavailable(cause) => LogError::Unavailable(self.break_down(&cause)),
                    LogError::Unknown(cause) => LogError::Unknown(self.break_down(&cause)),
                    other => other,
                };
                for waiter in waiters {
                    let _ = waiter.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// After an I/O error: redb refuses everything until the database is reopened, so let it
    /// go (readers in flight hold it until they fail, which is at once) and say why. Answers
    /// the problem as [`Log::health`] and appends will state it.
    fn break_down(&mut self, cause: &str) -> String {
        let problem = format!(
            "cannot write the event log {}: {cause}; herald retries by itself every {:?}",
            self.path.display(),
            self.recovery_interval
        );
        *lock(&self.problem) = Some(problem.clone());
        lock(&self.shared_db).take();
        self.db = None;
        problem
    }

    /// Tries to reopen the database after an I/O error. Success needs the file to open and a
    /// transaction to commit (`recover` commits one), so a disk that is still full stays broken.
    fn reopen(&mut self) {
        let reopened = open_database(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|db| {
                let found = recover(&db).map_err(|e| storage(e).to_string())?;
                Ok((db, found))
            });
        let (db, (last, trimmed)) = match reopened {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "event log reopen failed");
                return;
            }
        };
        let db = Arc::new(db);
        // A commit whose fsync failed may still have reached the disk: its appends were refused,
        // so they were not in the tail either; feed them now, so that live subscribers see what
        // the log holds (the publishers' retries with the same key find them).
        if last > self.last {
            match read(&db, self.last, usize::MAX, None) {
                Ok(batch) => {
                    for event in batch.events {
                        let _ = self.tail.send(event);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading events committed during the I/O error")
                }
            }
        }
        self.last = self.last.max(last);
        *lock(&self.last_shared) = self.last;
        self.set_trimmed(self.trimmed.max(trimmed));
        *lock(&self.shared_db) = Some(Arc::clone(&db));
        self.db = Some(db);
        lock(&self.problem).take();
        tracing::info!(path = %self.path.display(), "event log recovered: writing again");
    }

    /// The transaction of one batch. Answers what each append did, and the new events in id
    /// order. Commits `last` and `trimmed` only if the transaction commits.
    fn write(
        &mut self,
        db: &Database,
        batch: Vec<NewEvent>,
        now: u64,
    ) -> Result<(Vec<Appended>, Vec<Arc<StoredEvent>>), LogError> {
        let mut txn = db.begin_write().map_err(storage)?;
        // The default, written out because it is the whole point: commit returns after fsync.
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let mut last = self.last;
        let mut trimmed = self.trimmed;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut fresh = Vec::with_capacity(batch.len());
        {
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            let mut keys = txn.open_table(KEYS).map_err(storage)?;
            if let Some(cutoff) = age_cutoff(&self.retention, now) {
                trim(&mut events, &mut keys, &mut trimmed, |_, oldest| {
                    oldest < cutoff
                })?;
            }
            for event in batch {
                if let Some(k) = &event.idempotency_key {
                    let seen = keys
                        .get((event.topic.as_str(), k.as_str()))
                        .map_err(storage)?
                        .map(|v| id(v.value()));
                    // The key table follows the events, but trust only a key whose event is
                    // still there.
                    if let Some(seen) = seen
                        && events.get(key(seen)).map_err(storage)?.is_some()
                    {
                        outcomes.push(Appended {
                            id: seen,
                            duplicate: true,
                        });
                        continue;
                    }
                }
                let new_id = next_id(last, now);
                last = Some(new_id);
                let record = Record {
                    topic: &event.topic,
                    event_type: event.event_type.as_deref(),
                    data: &event.data,
                    retry: event.retry,
                    private: event.private,
                    key: event.idempotency_key.as_deref(),
                }
                .encode();
                events
                    .insert(key(new_id), record.as_slice())
                    .map_err(storage)?;
                if let Some(k) = &event.idempotency_key {
                    keys.insert((event.topic.as_str(), k.as_str()), key(new_id))
                        .map_err(storage)?;
                }
                outcomes.push(Appended {
                    id: new_id,
                    duplicate: false,
                });
                fresh.push(Arc::new(StoredEvent {
                    id: new_id,
                    topic: event.topic,
                    event_type: event.event_type,
                    data: event.data,
                    retry: event.retry,
                    private: event.private,
                }));
            }
            if let Some(max) = self.retention.max_events {
                trim(&mut events, &mut keys, &mut trimmed, |len, _| len > max)?;
            }
            let mut meta = txn.open_table(META).map_err(storage)?;
            if let Some(last) = last {
                meta.insert(META_LAST, key(last)).map_err(storage)?;
            }
            if let Some(trimmed) = trimmed {
                meta.insert(META_TRIMMED, key(trimmed)).map_err(storage)?;
            }
        }
        txn.commit().map_err(commit_failed)?;
        self.last = last;
        self.set_trimmed(trimmed);
        *lock(&self.last_shared) = last;
        Ok((outcomes, fresh))
    }

    /// Removes the events past the age bound when no append came to do it.
    fn trim_by_age(&mut self) {
        let Some(cutoff) = age_cutoff(&self.retention, (self.clock)()) else {
            return;
        };
        let Some(db) = self.db.clone() else {
            return;
        };
        match self.trim_by_age_at(&db, cutoff) {
            Ok(()) => {}
            Err(LogError::Unavailable(cause)) => {
                tracing::error!(path = %self.path.display(), error = %cause, "event log trim failed");
                self.break_down(&cause);
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "event log trim failed");
            }
        }
    }

    fn trim_by_age_at(&mut self, db: &Database, cutoff: EventId) -> Result<(), LogError> {
        let txn = db.begin_write().map_err(storage)?;
        let mut trimmed = self.trimmed;
        {
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            let mut keys = txn.open_table(KEYS).map_err(storage)?;
            trim(&mut events, &mut keys, &mut trimmed, |_, oldest| {
                oldest < cutoff
            })?;
            if trimmed == self.trimmed {
                drop((events, keys));
                return txn.abort().map_err(storage);
            }
            let mut meta = txn.open_table(META).map_err(storage)?;
            if let Some(trimmed) = trimmed {
                meta.insert(META_TRIMMED, key(trimmed)).map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
        self.set_trimmed(trimmed);
        Ok(())
    }

    fn set_trimmed(&mut self, trimmed: Option<EventId>) {
        if trimmed != self.trimmed {
            self.trimmed = trimmed;
            self.trimmed_watch.send_replace(trimmed);
        }
    }
}

/// Removes the oldest events while `remove(count, oldest id)` says so, with their idempotency
/// keys, and records the highest id removed in `trimmed`.
fn trim(
    events: &mut Table<'_, (u64, u64), &[u8]>,
    keys: &mut Table<'_, (&str, &str), (u64, u64)>,
    trimmed: &mut Option<EventId>,
    remove: impl Fn(u64, EventId) -> bool,
) -> Result<(), LogError> {
    loop {
        let len = events.len().map_err(storage)?;
        // The guards borrow the table: read what is needed, then let them go before removing.
        let (oldest, topic_key) = {
            let Some((oldest, record)) = events.first().map_err(storage)? else {
                return Ok(());
            };
            (id(oldest.value()), codec::decode_key(record.value()))
        };
        if !remove(len, oldest) {
            return Ok(());
        }
        events.remove(key(oldest)).map_err(storage)?;
        match topic_key {
            Ok(Some((topic, k))) => {
                keys.remove((topic.as_str(), k.as_str())).map_err(storage)?;
            }
            Ok(None) => {}
            // A damaged record goes anyway; its key, if any, is left behind harmlessly (appends
            // trust a key only while its event exists).
            Err(e) => tracing::warn!(id = %oldest, error = %e, "removing an unreadable event"),
        }
        *trimmed = Some(oldest);
    }
}

impl Log for EmbeddedLog {
    fn append(&self, event: NewEvent) -> BoxFuture<'_, Result<Appended, LogError>> {
        Box::pin(self.do_append(event))
    }

    fn read_after(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>> {
        Box::pin(self.do_read_after(after, limit))
    }

    fn read_before(
        &self,
        before: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<StoredEvent>>, LogError>> {
        Box::pin(self.do_read_before(before, limit))
    }

    fn tail(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        lock(&self.tail)
            .as_ref()
            .map_or_else(closed_tail, broadcast::Sender::subscribe)
    }

    fn last_id(&self) -> BoxFuture<'_, Result<Option<EventId>, LogError>> {
        let last = *lock(&self.last);
        Box::pin(async move { Ok(last) })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(self.do_close())
    }

    fn health(&self) -> StoreHealth {
        StoreHealth {
            store: "embedded",
            problem: lock(&self.problem).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};

    use tempfile::TempDir;

    use super::*;
    use crate::log::suite::{self, KEEP_ALL, Opener, append, event, keyed, read_all, within};

    /// Each test gets its own data directory, removed when the test ends.
    struct Embedded(TempDir);

    impl Opener for Embedded {
        fn open(&self, retention: Retention) -> BoxFuture<'_, Arc<dyn Log>> {
            let dir = self.0.path().to_owned();
            Box::pin(async move {
                let log = tokio::task::spawn_blocking(move || EmbeddedLog::open(&dir, retention))
                    .await
                    .unwrap()
                    .expect("open");
                Arc::new(log) as Arc<dyn Log>
            })
        }
    }

    fn temp() -> TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    suite::suite_tests!(Embedded(temp()));

    /// A clock the test sets by hand.
    fn manual_clock(start: u64) -> (Arc<AtomicU64>, Clock) {
        let now = Arc::new(AtomicU64::new(start));
        let clock: Clock = {
            let now = Arc::clone(&now);
            Arc::new(move || now.load(Ordering::SeqCst))
        };
        (now, clock)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopen_keeps_everything_and_ids_keep_increasing() {
        let dir = temp();
        let (now, clock) = manual_clock(50_000);
        let retention = Retention {
            max_events: Some(3),
            max_age: None,
        };
        let log = EmbeddedLog::open_with_clock(dir.path(), retention, Arc::clone(&clock)).unwrap();
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(append(&log, keyed("t", &i.to_string(), &format!("k{i}"))).await);
        }
        let before = read_all(&log).await;
        log.close().await.unwrap();

        // The clock went back while the hub was down.
        now.store(1_000, Ordering::SeqCst);
        let log = EmbeddedLog::open_with_clock(dir.path(), retention, clock).unwrap();
        assert_eq!(log.last_id().await.unwrap(), Some(ids[3]));
        let after = read_all(&log).await;
        assert_eq!(after, before, "same events, same fields");
        let batch = log.read_after(Some(ids[0]), 10).await.unwrap();
        assert!(!batch.truncated);
        assert!(
            log.read_after(None, 10).await.unwrap().truncated,
            "trim is remembered"
        );
        // Keys survive the restart with their events.
        let again = log.append(keyed("t", "x", "k3")).await.unwrap();
        assert_eq!((again.id, again.duplicate), (ids[3], true));
        let next = append(&log, event("t", "after restart")).await;
        assert!(next > ids[3], "{next} after {}", ids[3]);
        log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_keep_increasing_after_retention_removed_everything() {
        let dir = temp();
        EmbeddedLog::open(dir.path(), KEEP_ALL)
            .unwrap()
            .close()
            .await
            .unwrap();
        // What a log looks like after retention removed every event: only the meta remembers.
        let last = EventId::new(2_000_000, 5);
        {
            let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_LAST, key(last))
                .unwrap();
            txn.commit().unwrap();
        }
        // And the clock is behind it.
        let (_, clock) = manual_clock(1_000_000);
        let log = EmbeddedLog::open_with_clock(dir.path(), KEEP_ALL, clock).unwrap();
        assert_eq!(log.last_id().await.unwrap(), Some(last));
        assert_eq!(append(&log, event("t", "x")).await, last.next());
        log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_removes_events_and_keys_from_disk() {
        let dir = temp();
        let (now, clock) = manual_clock(10_000);
        let retention = Retention {
            max_events: Some(2),
            max_age: Some(Duration::from_secs(5)),
        };
        let log = EmbeddedLog::open_with_clock(dir.path(), retention, Arc::clone(&clock)).unwrap();
        let mut ids = Vec::new();
        for i in 0..4 {
            if i == 3 {
                now.store(12_000, Ordering::SeqCst);
            }
            ids.push(append(&log, keyed("t", "x", &format!("k{i}"))).await);
        }
        // Count: k0 and k1 are gone. Age: once k2 (at 10 s) is over 5 s old, the next append
        // removes it, not k3 (at 12 s).
        now.store(15_001, Ordering::SeqCst);
        let young = append(&log, keyed("t", "x", "k4")).await;
        log.close().await.unwrap();

        let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_read().unwrap();
        let events = txn.open_table(EVENTS).unwrap();
        let stored: Vec<EventId> = events
            .range::<(u64, u64)>(..)
            .unwrap()
            .map(|e| id(e.unwrap().0.value()))
            .collect();
        assert_eq!(stored, [ids[3], young]);
        let keys = txn.open_table(KEYS).unwrap();
        let kept: Vec<String> = keys
            .range::<(&str, &str)>(..)
            .unwrap()
            .map(|e| e.unwrap().0.value().1.to_owned())
            .collect();
        assert_eq!(kept, ["k3", "k4"]);
        let meta = txn.open_table(META).unwrap();
        assert_eq!(id(meta.get(META_TRIMMED).unwrap().unwrap().value()), ids[2]);
        assert_eq!(id(meta.get(META_LAST).unwrap().unwrap().value()), young);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_trims_by_age_when_nothing_is_appended() {
        let dir = temp();
        let (now, clock) = manual_clock(10_000);
        let retention = Retention {
            max_events: None,
            max_age: Some(Duration::from_secs(5)),
        };
        let log = EmbeddedLog::open_with_clock(dir.path(), retention, clock).unwrap();
        let old = append(&log, keyed("t", "old", "k")).await;
        let mut trimmed = log.trimmed();
        now.store(20_000, Ordering::SeqCst);
        // The writer's next idle tick (every TRIM_INTERVAL) removes it, with no append to help.
        within("periodic trim", trimmed.wait_for(|t| *t == Some(old)))
            .await
            .unwrap();
        log.close().await.unwrap();
        let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_read().unwrap();
        assert!(txn.open_table(EVENTS).unwrap().is_empty().unwrap());
        assert!(txn.open_table(KEYS).unwrap().is_empty().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_is_in_the_tail_when_it_is_answered() {
        let dir = temp();
        let log = EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap();
        let mut tail = log.tail();
        for i in 0..10 {
            let id = append(&log, event("t", &i.to_string())).await;
            let seen = tail.try_recv().expect("published before the answer");
            assert_eq!(seen.id, id);
        }
        log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_answers_appends_queued_before_it() {
        let dir = temp();
        let log = Arc::new(EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap());
        let appends: Vec<_> = (0..50)
            .map(|i| {
                let log = Arc::clone(&log);
                tokio::spawn(async move { log.append(event("t", &i.to_string())).await })
            })
            .collect();
        within("close", log.close()).await.unwrap();
        let mut acknowledged = Vec::new();
        for append in appends {
            // Each append either made it (and is on disk) or was refused: none is left hanging.
            if let Ok(appended) = within("append", append).await.unwrap() {
                acknowledged.push(appended.id);
            }
        }
        let log = EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap();
        let stored: Vec<EventId> = read_all(&log).await.iter().map(|e| e.id).collect();
        acknowledged.sort();
        assert_eq!(stored, acknowledged);
        log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_events_are_spread_over_commits() {
        // More bytes at once than one batch takes: every append still makes it, in order.
        const APPENDERS: usize = 24;
        let dir = temp();
        let log = Arc::new(EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap());
        let big = "b".repeat(1 << 20);
        assert!(APPENDERS * big.len() > MAX_BATCH_BYTES);
        let appends: Vec<_> = (0..APPENDERS)
            .map(|i| {
                let log = Arc::clone(&log);
                let data = format!("{i}{big}");
                tokio::spawn(async move { append(&*log, event("big", &data)).await })
            })
            .collect();
        let mut acknowledged = Vec::new();
        for append in appends {
            acknowledged.push(within("append", append).await.unwrap());
        }
        acknowledged.sort();
        let stored = read_all(&*log).await;
        assert_eq!(
            stored.iter().map(|e| e.id).collect::<Vec<_>>(),
            acknowledged
        );
        assert!(stored.iter().all(|e| e.data.len() > big.len()));
        log.close().await.unwrap();
    }

    #[test]
    fn an_unusable_data_dir_is_a_clear_error() {
        let dir = temp();
        let expect_storage = |path: &Path, what: &str| match EmbeddedLog::open(path, KEEP_ALL) {
            Err(LogError::Storage(message)) => {
                assert!(
                    message.contains(&path.display().to_string()),
                    "{what}: {message}"
                );
            }
            Err(other) => panic!("{what}: {other}"),
            Ok(_) => panic!("{what}: opened"),
        };

        // The data dir is a file.
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"not a directory").unwrap();
        expect_storage(&file, "data dir is a file");

        // The log file is a directory.
        let holder = dir.path().join("dir-as-file");
        std::fs::create_dir_all(holder.join(FILE_NAME)).unwrap();
        expect_storage(&holder, "log file is a directory");

        // The log file holds garbage, short or long.
        for (name, bytes) in [
            ("short", b"garbage".to_vec()),
            (
                "long",
                (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect(),
            ),
            ("zeros", vec![0; 64 * 1024]),
        ] {
            let garbage = dir.path().join(name);
            std::fs::create_dir_all(&garbage).unwrap();
            std::fs::write(garbage.join(FILE_NAME), &bytes).unwrap();
            expect_storage(&garbage, name);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_log_file_is_an_error_not_a_panic() {
        let dir = temp();
        let log = EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap();
        for i in 0..200 {
            append(&log, event("t", &format!("{i:0>100}"))).await;
        }
        log.close().await.unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        // Cut the file, and overwrite stretches of it, at several places.
        let len = good.len();
        let mut damaged = vec![good[..len / 2].to_vec(), good[..4096.min(len)].to_vec()];
        for at in [len / 4, len / 2, len * 3 / 4] {
            let mut bytes = good.clone();
            bytes[at..(at + 512).min(len)].fill(0xA5);
            damaged.push(bytes);
        }
        for (n, bytes) in damaged.into_iter().enumerate() {
            std::fs::write(&path, &bytes).unwrap();
            let opened = catch_unwind(AssertUnwindSafe(|| EmbeddedLog::open(dir.path(), KEEP_ALL)));
            let Ok(opened) = opened else {
                panic!("damage {n}: open panicked");
            };
            // redb may repair some damage (it keeps a previous commit); then reads still work.
            if let Ok(log) = opened {
                let read = within("read", log.read_after(None, usize::MAX)).await;
                if let Ok(batch) = read {
                    assert!(batch.events.windows(2).all(|w| w[0].id < w[1].id));
                }
                log.close().await.unwrap();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_record_fails_the_read_that_meets_it() {
        let dir = temp();
        let log = EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap();
        let good = append(&log, event("t", "fine")).await;
        log.close().await.unwrap();
        let bad = good.next();
        {
            let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(EVENTS)
                .unwrap()
                .insert(key(bad), &[9u8, 9, 9][..])
                .unwrap();
            txn.commit().unwrap();
        }
        let log = EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap();
        match log.read_after(None, 10).await {
            Err(LogError::Storage(message)) => assert!(message.contains(&bad.to_string())),
            other => panic!("{other:?}"),
        }
        // Reads before it still work, and new appends go after it.
        let batch = log.read_after(None, 1).await.unwrap();
        assert_eq!(batch.events[0].id, good);
        assert!(append(&log, event("t", "next")).await > bad);
        log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_open_of_the_same_dir_is_refused() {
        let dir = temp();
        let log = EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap();
        assert!(matches!(
            EmbeddedLog::open(dir.path(), KEEP_ALL),
            Err(LogError::Storage(_))
        ));
        log.close().await.unwrap();
        EmbeddedLog::open(dir.path(), KEEP_ALL)
            .unwrap()
            .close()
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_and_appends_after_close_are_refused() {
        let dir = temp();
        let log = EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap();
        log.close().await.unwrap();
        assert!(matches!(
            log.read_after(None, 1).await,
            Err(LogError::Unavailable(_))
        ));
        assert!(matches!(
            log.append(event("t", "x")).await,
            Err(LogError::Unavailable(_))
        ));
    }

    /// The environment variable that turns [`crash_child`] into the appender that
    /// [`killed_mid_stream_loses_no_acknowledged_append`] kills.
    const CRASH_DIR: &str = "HERALD_LOG_CRASH_CHILD_DIR";
    /// How many acknowledgements the parent waits for before it kills the child.
    const ACKS_BEFORE_KILL: usize = 300;

    /// In a normal run, nothing. Started by the crash test with [`CRASH_DIR`] set: appends from
    /// several tasks forever, printing `acked <id> <data>` for each acknowledged append.
    #[test]
    fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_DIR) else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let log = Arc::new(EmbeddedLog::open(Path::new(&dir), KEEP_ALL).unwrap());
            let tasks: Vec<_> = (0..8)
                .map(|task| {
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        // Bounded in count and time, in case the parent never kills us.
                        let deadline = Instant::now() + Duration::from_secs(120);
                        for i in 0..100_000 {
                            if Instant::now() > deadline {
                                break;
                            }
                            let data = format!("{task}/{i}");
                            let key = format!("key-{task}-{i}");
                            let id = log.append(keyed("crash", &data, &key)).await.unwrap().id;
                            let mut out = std::io::stdout().lock();
                            writeln!(out, "acked {id} {data}").unwrap();
                            out.flush().unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    }

    /// Kills the child when the test ends, even by a failed assertion.
    struct KillOnDrop(std::process::Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // Already killed and reaped on the normal path: the errors say so, nothing to do.
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_mid_stream_loses_no_acknowledged_append() {
        let dir = temp();
        let mut child = KillOnDrop(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "log::embedded::tests::crash_child",
                    "--exact",
                    "--nocapture",
                ])
                .env(CRASH_DIR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let acked = tokio::task::spawn_blocking(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let Some(rest) = line.strip_prefix("acked ") else {
                    continue;
                };
                let (id, data) = rest.split_once(' ').unwrap();
                acked.push((id.parse::<EventId>().unwrap(), data.to_owned()));
                if acked.len() == ACKS_BEFORE_KILL {
                    break;
                }
            }
            acked
        });
        let acked = within("child acknowledgements", acked).await.unwrap();
        // SIGKILL, while the child's appenders are still writing.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        assert_eq!(acked.len(), ACKS_BEFORE_KILL, "the child stopped early");

        let log = EmbeddedLog::open(dir.path(), KEEP_ALL).unwrap();
        let stored = read_all(&log).await;
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
        for (id, data) in &acked {
            let found = stored.iter().find(|e| e.id == *id);
            assert_eq!(
                found.map(|e| e.data.as_str()),
                Some(data.as_str()),
                "{id} lost"
            );
        }
        // The keys of acknowledged appends survived too: a retry is recognised.
        let (first_id, first_data) = &acked[0];
        let (task, i) = first_data.split_once('/').unwrap();
        let retry = log
            .append(keyed("crash", first_data, &format!("key-{task}-{i}")))
            .await
            .unwrap();
        assert_eq!((retry.id, retry.duplicate), (*first_id, true));
        let last = stored.last().unwrap().id;
        assert!(append(&log, event("after", "restart")).await > last);
        log.close().await.unwrap();
    }
}
