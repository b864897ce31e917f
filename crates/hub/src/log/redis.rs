//! [`RedisLog`]: the log of several hubs sharing one Redis, on a Redis Stream.
//!
//! # Keys
//!
//! Every key starts with `{<prefix>}:` (`--redis-prefix`, default `herald`), so several herald
//! deployments can share one Redis, and the braces make every key of one deployment hash to the
//! same Redis Cluster slot (the scripts below touch several keys at once).
//!
//! | key                               | type   | what                                           |
//! |-----------------------------------|--------|------------------------------------------------|
//! | `{p}:events`                      | stream | every event of every topic, one entry each     |
//! | `{p}:meta`                        | hash   | `last` (newest id ever assigned), `trimmed`    |
//! | `{p}:key:<topic length>:<topic><key>` | string | an idempotency key -> the id of its event |
//! | `{p}:ikey:<random>`               | string | the hub's own key of a publish without one (lives until its deadline) |
//!
//! One stream for all topics keeps the one total order that `Last-Event-ID` resume relies on; the
//! hub filters topics itself, as with the other stores.
//!
//! # How an append works
//!
//! One Lua script (`APPEND_LUA` below the trim step `TRIM_LUA`) runs atomically in Redis: it trims by age and count, checks
//! the idempotency key (and that its event is still retained), picks the id, `XADD`s the entry,
//! records `last`, sets the key (`SET ... PX`), and trims by count again. Because Redis runs one
//! script at a time, appends from every hub get one total order, and a retried publish with the
//! same key through any hub is stored once. The hub answers once Redis answered: the event is as
//! durable as the Redis configuration makes it (`appendfsync always` for "survives a crash").
//!
//! # When the answer is lost
//!
//! A publish whose command was written but whose answer never came (a timeout, a connection
//! reset, a partition) may or may not be stored. So that the hub can find out instead of guessing,
//! every append carries a key: the publisher's idempotency key, or else one the hub draws for it
//! (`{p}:ikey:<random>`). After such an ambiguous failure the hub sends the same append again
//! (same key) until it gets an answer or the publish deadline passes
//! ([`RedisTimeouts::publish`]): the answer is then either the id stored by an earlier try
//! (200 with that id, stored once) or a new store.
//!
//! Each append also carries its deadline in Redis's clock (read with `TIME` at connect; the hub
//! keeps it with its monotonic clock), and the script refuses an append that runs after it. So a
//! copy of the command still in flight on a dead connection can never be stored late, after the
//! hub answered: a late try that finds the key answers the stored id, a late try without it is
//! refused. That lets the hub's own keys expire right after the deadline (the dedup window of a
//! publish without a key is its deadline, not a day), and lets one more try after the deadline
//! settle the outcome for sure. Only when Redis answers nothing at all until then is the outcome
//! unknown: [`LogError::Unknown`].
//!
//! Ids are explicit stream ids `<millis>-<seq>` (the format of herald's `EventId`): the hub's
//! clock, or the previous id's millis plus one seq when that clock is behind (another hub's clock
//! runs ahead, or the clock went back), so they only increase. Retention is exact (`XTRIM MAXLEN`
//! without `~`, `XTRIM MINID` for age) so that `truncated` is exact: the script records the
//! highest removed id as `trimmed`.
//!
//! # The tail
//!
//! Each hub reads the stream with `XREAD BLOCK` on a connection of its own (a blocked read would
//! hold up commands queued behind it on a shared connection) and sends every entry, its own and
//! other hubs', to [`Log::tail`]. When Redis is unreachable the loop backs off (from
//! [`TAIL_MIN_BACKOFF`] to [`TAIL_MAX_BACKOFF`]) and resumes after the last entry it saw.
//!
//! # When Redis loses its data
//!
//! A Redis without persistence restarts empty. Ids still increase: each hub passes the newest id
//! it has seen, and the script continues after it. If `last` is missing but the hub saw ids, the
//! history was lost: the script records the hub's newest id as `trimmed`, so subscribers resuming
//! from before it get `herald.reset` instead of a silent gap.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Script, Value};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::clock::{self, Clock};
use super::{
    Appended, BoxFuture, EventId, Log, LogError, NewEvent, ReadBatch, Retention, StoreHealth,
    StoredEvent, TAIL_CAPACITY, closed_tail, is_truncated,
};

/// The key prefix when none is given: one herald deployment per Redis.
pub const DEFAULT_PREFIX: &str = "herald";

/// The longest accepted prefix: keys stay short, and 64 characters name any deployment.
pub const MAX_PREFIX_LEN: usize = 64;

/// How long one Redis command may take by default ([`RedisTimeouts::command`]): a read during an
/// outage fails after this, never an endless wait.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the hub keeps trying one publish whose answer was lost, by default
/// ([`RedisTimeouts::publish`]): two command timeouts, so that a Redis that pauses for a few
/// seconds (a failover, a slow fsync, a short partition) costs a slow 200, not an unknown outcome.
pub const DEFAULT_PUBLISH_DEADLINE: Duration = Duration::from_secs(10);

/// The first pause between two tries of one publish: short, since a broken connection is
/// usually replaced within milliseconds.
pub const PUBLISH_MIN_BACKOFF: Duration = Duration::from_millis(50);

/// The longest pause between two tries of one publish: the loop never spins while Redis is down.
pub const PUBLISH_MAX_BACKOFF: Duration = Duration::from_millis(500);

/// How long connecting to Redis may take, at start and on each reconnection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one `XREAD` of the tail blocks: short enough to notice a dead connection soon,
/// long enough that an idle hub sends Redis one command a second.
pub const TAIL_BLOCK: Duration = Duration::from_secs(1);

/// The most entries one tail read takes: a burst is moved in a few round trips.
pub const TAIL_BATCH: usize = 1024;

/// The first pause of the tail after a failed read (Redis down): the loop never spins.
pub const TAIL_MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest pause of the tail between two tries while Redis stays down: an outage is noticed
/// as over within this.
pub const TAIL_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long [`Log::close`] waits for the tail to deliver what was appended before.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idempotency key is kept when retention has no age bound: a day, like the default
/// age bound. (With an age bound, keys live as long as it.) A key is honoured only while its event
/// is retained, whatever its expiry.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Trims by age (`XTRIM MINID`) and count (`XTRIM MAXLEN`, exact) and records the highest removed
/// id in `meta.trimmed`. Shared by both scripts. ARGV[1] now, ARGV[2] max events (0: none),
/// ARGV[3] max age in ms (0: none).
const TRIM_LUA: &str = r"
local stream, meta = KEYS[1], KEYS[2]
local now, max_events, max_age = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function fmt(n) return string.format('%.0f', n) end
local function trim()
  local trimmed = nil
  if max_age > 0 and now > max_age then
    local cutoff = fmt(now - max_age) .. '-0'
    local old = redis.call('XREVRANGE', stream, '(' .. cutoff, '-', 'COUNT', 1)
    if #old > 0 then
      trimmed = old[1][1]
      redis.call('XTRIM', stream, 'MINID', cutoff)
    end
  end
  if max_events > 0 then
    local len = redis.call('XLEN', stream)
    if len > max_events then
      local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', len - max_events)
      trimmed = old[#old][1]
      redis.call('XTRIM', stream, 'MAXLEN', max_events)
    end
  end
  if trimmed then redis.call('HSET', meta, 'trimmed', trimmed) end
end
";

/// The append. KEYS: stream, meta, idempotency key (the publisher's or the hub's own). ARGV
/// after the trim's: [4] key TTL in ms (0: until the deadline, for the hub's own key), [5] the
/// deadline in Redis's clock (Unix ms), [6] the newest id this hub saw (or empty), [7..] the
/// entry's fields and values. Answers `{id, 1}` for a duplicate, `{id, 0}` for a new entry and
/// `{'', 2}` when the deadline passed (nothing stored, and no later copy can store it either).
const APPEND_LUA: &str = r"
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
trim()
local idem = KEYS[3]
local known = redis.call('GET', idem)
if known and #redis.call('XRANGE', stream, known, known) > 0 then return {known, 1} end
-- After its deadline the hub may have answered this publish: a late copy (from a connection that
-- died with the command in flight) must not store it then.
local clock = redis.call('TIME')
local rnow = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local deadline = tonumber(ARGV[5])
if rnow > deadline then return {'', 2} end
local last = redis.call('HGET', meta, 'last')
local lms, lseq = nil, nil
if last then lms, lseq = parse(last) end
if ARGV[6] ~= '' then
  local hms, hseq = parse(ARGV[6])
  if not last and not redis.call('HGET', meta, 'trimmed') then
    -- The hub saw ids this Redis no longer knows: its history was lost (restart without
    -- persistence, FLUSHALL). Readers from before are told they missed something.
    redis.call('HSET', meta, 'trimmed', ARGV[6])
  end
  if not lms or hms > lms or (hms == lms and hseq > lseq) then lms, lseq = hms, hseq end
end
local ms, seq = now, 0
if lms and lms >= now then ms, seq = lms, lseq + 1 end
local id = fmt(ms) .. '-' .. fmt(seq)
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', stream, id, unpack(fields))
redis.call('HSET', meta, 'last', id)
local ttl = tonumber(ARGV[4])
-- The hub's own key is needed until the deadline only (a second more covers the rounding).
if ttl == 0 then ttl = deadline - rnow + 1000 end
redis.call('SET', idem, id, 'PX', fmt(ttl))
trim()
return {id, 0}
";

/// The read. KEYS: stream, meta. ARGV after the trim's: [4] the start (`-`, `(<id>` or `+`),
/// [5] the count (0: none), [6] `rev` to read backwards from the start (then `+` or `(<id>`)
/// to the oldest. Trims first, so that nothing past retention is returned. Answers
/// `{trimmed or '', entries}`.
const READ_LUA: &str = r"
trim()
local entries = {}
if ARGV[5] ~= '0' then
  if ARGV[6] == 'rev' then
    entries = redis.call('XREVRANGE', stream, ARGV[4], '-', 'COUNT', ARGV[5])
  else
    entries = redis.call('XRANGE', stream, ARGV[4], '+', 'COUNT', ARGV[5])
  end
end
return {redis.call('HGET', meta, 'trimmed') or '', entries}
";

/// Entry field names: short, since every entry repeats them.
const FIELD_TOPIC: &str = "t";
const FIELD_DATA: &str = "d";
const FIELD_TYPE: &str = "e";
const FIELD_RETRY: &str = "r";
const FIELD_PRIVATE: &str = "p";

/// How long the Redis store waits for Redis. The defaults suit a Redis on the same network;
/// tests set short ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisTimeouts {
    /// How long one command may take before it counts as failed ([`COMMAND_TIMEOUT`]).
    pub command: Duration,
    /// How long one publish may keep trying after its answer was lost
    /// ([`DEFAULT_PUBLISH_DEADLINE`]); the outcome is then settled by one more try of at most
    /// `command`, so a publish is answered within `publish + command`.
    pub publish: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        Self {
            command: COMMAND_TIMEOUT,
            publish: DEFAULT_PUBLISH_DEADLINE,
        }
    }
}

/// A log shared by several hubs, on a Redis Stream. See the module docs for the layout.
///
/// ```no_run
/// # async fn run() -> Result<(), herald_hub::log::LogError> {
/// use herald_hub::log::{Log, RedisLog, Retention};
///
/// let log = RedisLog::connect("redis://127.0.0.1:6379", "herald", Retention::default()).await?;
/// let newest = log.last_id().await?;
/// # drop(newest); Ok(()) }
/// ```
pub struct RedisLog {
    /// Commands (appends, reads): one multiplexed connection that reconnects by itself.
    commands: ConnectionManager,
    append: Script,
    read: Script,
    stream_key: String,
    meta_key: String,
    prefix: String,
    retention: Retention,
    clock: Clock,
    timeouts: RedisTimeouts,
    /// Redis's clock (Unix ms, from `TIME`) at a moment of this hub's monotonic clock: the
    /// deadline each append carries is in Redis's clock, so that hub clocks that are off do not
    /// matter.
    redis_clock: (std::time::Instant, u64),
    /// The newest id this hub has appended or tailed, passed to the append script so that ids
    /// keep increasing when Redis lost its data. A std `Mutex`: held for a compare, never across
    /// an `.await`.
    seen: Arc<Mutex<Option<EventId>>>,
    /// Feeds [`Log::tail`]; taken by [`Log::close`] (the tail task holds the other sender).
    tail: Mutex<Option<broadcast::Sender<Arc<StoredEvent>>>>,
    /// Tells the tail task to stop once it has seen the given id (what was appended before close).
    stop: watch::Sender<Option<Option<EventId>>>,
    /// The tail task, awaited by [`Log::close`].
    tail_task: Mutex<Option<JoinHandle<()>>>,
    /// Why the tail task's last read of Redis failed, `None` once one succeeds: the cheap answer
    /// of [`Log::health`], fresh within [`TAIL_BLOCK`] plus [`TAIL_MAX_BACKOFF`] since the tail
    /// reads all the time. A std `Mutex`: a single store or clone, never held across an `.await`.
    problem: Arc<Mutex<Option<String>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single assignment or read: a poisoned lock holds valid data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unavailable(err: &RedisError) -> LogError {
    LogError::Unavailable(format!("redis: {err}"))
}

fn timed_out(limit: Duration) -> LogError {
    LogError::Unavailable(format!("redis did not answer within {limit:?}"))
}

fn malformed(what: &str) -> LogError {
    LogError::Storage(format!("redis stream entry not written by herald ({what})"))
}

/// Checks a `--redis-prefix`: 1 to [`MAX_PREFIX_LEN`] characters of `A-Z a-z 0-9 _ - . :`
/// (braces would break the cluster hash tag).
///
/// # Errors
///
/// A message saying what is allowed.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "redis prefix {prefix:?}: use 1 to {MAX_PREFIX_LEN} characters among A-Z a-z 0-9 _ - . :"
        ))
    }
}

impl RedisLog {
    /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`) and starts tailing
    /// the stream of deployment `prefix`.
    ///
    /// # Errors
    ///
    /// [`LogError::Storage`] for a malformed URL or prefix, [`LogError::Unavailable`] when Redis
    /// cannot be reached.
    pub async fn connect(url: &str, prefix: &str, retention: Retention) -> Result<Self, LogError> {
        Self::connect_with_timeouts(url, prefix, retention, RedisTimeouts::default()).await
    }

    /// [`RedisLog::connect`] with other timeouts than the defaults.
    ///
    /// # Errors
    ///
    /// As [`RedisLog::connect`].
    pub async fn connect_with_timeouts(
        url: &str,
        prefix: &str,
        retention: Retention,
        timeouts: RedisTimeouts,
    ) -> Result<Self, LogError> {
        Self::connect_with_clock(url, prefix, retention, clock::system(), timeouts).await
    }

    pub(crate) async fn connect_with_clock(
        url: &str,
        prefix: &str,
        retention: Retention,
        clock: Clock,
        timeouts: RedisTimeouts,
    ) -> Result<Self, LogError> {
        check_prefix(prefix).map_err(LogError::Storage)?;
        // The URL may carry a password: every message below shows it redacted.
        let shown = herald_wire::redact_url(url);
        let client = redis::Client::open(url).map_err(|e| {
            LogError::Storage(herald_wire::redact_text(&format!(
                "redis url {shown:?}: {e}"
            )))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(timeouts.command))
            .set_number_of_retries(2)
            .set_max_delay(TAIL_MAX_BACKOFF);
        let connect = |config: ConnectionManagerConfig| {
            let client = client.clone();
            let url = &shown;
            async move {
                tokio::time::timeout(
                    CONNECT_TIMEOUT * 4,
                    ConnectionManager::new_with_config(client, config),
                )
                .await
                .map_err(|_| LogError::Unavailable(format!("redis at {url}: connect timed out")))?
                .map_err(|e| {
                    LogError::Unavailable(herald_wire::redact_text(&format!("redis at {url}: {e}")))
                })
            }
        };
        let commands = connect(config.clone()).await?;
        // The tail's reads block for TAIL_BLOCK: its answer may take that much longer.
        let tail_conn =
            connect(config.set_response_timeout(Some(timeouts.command + TAIL_BLOCK))).await?;
        let stream_key = format!("{{{prefix}}}:events");
        let meta_key = format!("{{{prefix}}}:meta");

        // The tail starts after the newest entry now in the stream: older ones are history,
        // served by read_after.
        let mut probe = commands.clone();
        let limit = timeouts.command;
        let asked = std::time::Instant::now();
        let (secs, micros): (u64, u64) =
            within(limit, redis::cmd("TIME").query_async(&mut probe)).await?;
        // Half the round trip: Redis read its clock about then.
        let redis_clock = (
            asked + asked.elapsed() / 2,
            secs.saturating_mul(1000).saturating_add(micros / 1000),
        );
        let newest: Value = within(
            limit,
            redis::cmd("XREVRANGE")
                .arg(&stream_key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut probe),
        )
        .await?;
        let start = decode_entries(newest)?.first().map(|e| e.id);
        let last: Option<String> = within(
            limit,
            redis::cmd("HGET")
                .arg(&meta_key)
                .arg("last")
                .query_async(&mut probe),
        )
        .await?;
        let last = last.and_then(|id| id.parse().ok());
        let seen = Arc::new(Mutex::new(start.max(last)));

        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        let (stop, stop_seen) = watch::channel(None);
        let problem = Arc::new(Mutex::new(None));
        let task = tokio::spawn(tail_loop(TailLoop {
            conn: tail_conn,
            stream_key: stream_key.clone(),
            after: start,
            tail: tail.clone(),
            seen: Arc::clone(&seen),
            stop: stop_seen,
            problem: Arc::clone(&problem),
        }));
        let trim = TRIM_LUA.to_owned();
        Ok(Self {
            commands,
            append: Script::new(&(trim.clone() + APPEND_LUA)),
            read: Script::new(&(trim + READ_LUA)),
            stream_key,
            meta_key,
            prefix: prefix.to_owned(),
            retention,
            clock,
            timeouts,
            redis_clock,
            seen,
            tail: Mutex::new(Some(tail)),
            stop,
            tail_task: Mutex::new(Some(task)),
            problem,
        })
    }

    /// The name of the stream holding the events.
    pub fn stream_key(&self) -> &str {
        &self.stream_key
    }

    fn idempotency_key(&self, topic: &str, key: &str) -> String {
        // The topic's length makes the join unambiguous: ("a:b", "c") and ("a", "b:c") differ.
        format!("{{{}}}:key:{}:{topic}{key}", self.prefix, topic.len())
    }

    fn retention_args(&self) -> (u64, u64, u64) {
        let now = (self.clock)();
        let max_events = self.retention.max_events.unwrap_or(0);
        let max_age = self
            .retention
            .max_age
            .map_or(0, |age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        (now, max_events, max_age)
    }

    fn is_closed(&self) -> bool {
        lock(&self.tail).is_none()
    }

    /// Redis's clock now, as this hub reckons it (Unix ms).
    fn redis_now(&self) -> u64 {
        let (at, millis) = self.redis_clock;
        millis.saturating_add(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    async fn do_append(&self, event: NewEvent) -> Result<Appended, LogError> {
        if self.is_closed() {
            return Err(LogError::Unavailable("the log is closed".into()));
        }
        let started = std::time::Instant::now();
        let RedisTimeouts { command, publish } = self.timeouts;
        let publish_ms = u64::try_from(publish.as_millis()).unwrap_or(u64::MAX);
        let deadline = self.redis_now().saturating_add(publish_ms);
        let (now, max_events, max_age) = self.retention_args();
        let (key, ttl) = match event.idempotency_key.as_deref() {
            Some(key) => {
                let ttl = if max_age > 0 {
                    max_age
                } else {
                    u64::try_from(DEFAULT_KEY_TTL.as_millis()).unwrap_or(u64::MAX)
                };
                (self.idempotency_key(&event.topic, key), ttl)
            }
            // 128 random bits: no two publishes of any hub share one. TTL 0: until the deadline.
            None => (
                format!("{{{}}}:ikey:{:032x}", self.prefix, rand::random::<u128>()),
                0,
            ),
        };
        let seen = *lock(&self.seen);
        let mut invocation = self.append.key(&self.stream_key);
        invocation
            .key(&self.meta_key)
            .key(key)
            .arg(now)
            .arg(max_events)
            .arg(max_age)
            .arg(ttl)
            .arg(deadline)
            .arg(seen.map(|id| id.to_string()).unwrap_or_default())
            .arg(FIELD_TOPIC)
            .arg(&event.topic)
            .arg(FIELD_DATA)
            .arg(&event.data);
        if let Some(event_type) = &event.event_type {
            invocation.arg(FIELD_TYPE).arg(event_type);
        }
        if let Some(retry) = event.retry {
            invocation.arg(FIELD_RETRY).arg(retry);
        }
        if event.private {
            invocation.arg(FIELD_PRIVATE).arg("1");
        }
        // Tries go on until the deadline, then one more (which only settles the outcome: the
        // script refuses to store after the deadline).
        let give_up = started + publish + command;
        let mut lost: Option<String> = None;
        let mut backoff = PUBLISH_MIN_BACKOFF;
        loop {
            let left = give_up.saturating_duration_since(std::time::Instant::now());
            let mut conn = self.commands.clone();
            let answer = tokio::time::timeout(
                command.min(left),
                invocation.invoke_async::<(String, i64)>(&mut conn),
            )
            .await;
            match Try::of(answer) {
                Try::Answered(id, duplicate) => {
                    let mut seen = lock(&self.seen);
                    *seen = (*seen).max(Some(id));
                    if lost.is_some() {
                        tracing::info!(%id, "redis: a publish whose answer was lost is settled");
                    }
                    return Ok(Appended {
                        id,
                        // The hub's own key found again is this publish's own earlier try.
                        duplicate: duplicate && event.idempotency_key.is_some(),
                    });
                }
                Try::Expired => {
                    return Err(LogError::Unavailable(format!(
                        "{}; the publish deadline ({publish:?}) passed: nothing was stored",
                        lost.as_deref().unwrap_or("redis was too slow")
                    )));
                }
                Try::NotRun(err) if lost.is_none() => {
                    return Err(LogError::Unavailable(format!("{err}: nothing was stored")));
                }
                Try::NotRun(_) => {}
                Try::Lost(err) => {
                    lost.get_or_insert(err);
                }
            }
            let left = give_up.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(LogError::Unknown(format!(
                    "{} and redis did not answer again within {:?}",
                    lost.as_deref().unwrap_or("redis did not answer"),
                    publish + command
                )));
            }
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(PUBLISH_MAX_BACKOFF);
        }
    }

    async fn do_read_after(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<ReadBatch, LogError> {
        let start = match after {
            None => "-".to_owned(),
            // Nothing orders after the largest id: `+` as a start matches no entry.
            Some(id) if id == EventId::new(u64::MAX, u64::MAX) => "+".to_owned(),
            Some(id) => format!("({id}"),
        };
        let (trimmed, entries) = self.read_range(start, limit, "fwd").await?;
        Ok(ReadBatch {
            events: entries,
            truncated: is_truncated(trimmed, after),
        })
    }

    async fn do_read_before(
        &self,
        before: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, LogError> {
        let start = match before {
            None => "+".to_owned(),
            // Nothing orders before the smallest id: ask for none.
            Some(id) if id == EventId::new(0, 0) => return Ok(Vec::new()),
            Some(id) => format!("({id}"),
        };
        Ok(self.read_range(start, limit, "rev").await?.1)
    }

    /// One run of the read script from `start` (see `READ_LUA`): the highest trimmed id and the
    /// entries, in the direction asked.
    async fn read_range(
        &self,
        start: String,
        limit: usize,
        direction: &str,
    ) -> Result<(Option<EventId>, Vec<Arc<StoredEvent>>), LogError> {
        let (now, max_events, max_age) = self.retention_args();
        let count = u64::try_from(limit)
            .unwrap_or(u64::MAX)
            .min(i64::MAX as u64);
        let mut invocation = self.read.key(&self.stream_key);
        invocation
            .key(&self.meta_key)
            .arg(now)
            .arg(max_events)
            .arg(max_age)
            .arg(start)
            .arg(count)
            .arg(direction);
        let mut conn = self.commands.clone();
        let limit = self.timeouts.command;
        // A read is safe to repeat: once more when the first try met a connection that broke
        // during an outage (the manager reconnects as it reports the error).
        let (trimmed, entries): (String, Value) =
            match within(limit, invocation.invoke_async(&mut conn)).await {
                Ok(answer) => answer,
                Err(_) => {
                    tokio::time::sleep(TAIL_MIN_BACKOFF).await;
                    within(limit, invocation.invoke_async(&mut conn)).await?
                }
            };
        let trimmed = if trimmed.is_empty() {
            None
        } else {
            Some(trimmed.parse().map_err(|_| malformed("trimmed id"))?)
        };
        let entries = decode_entries(entries)?.into_iter().map(Arc::new).collect();
        Ok((trimmed, entries))
    }

    async fn do_last_id(&self) -> Result<Option<EventId>, LogError> {
        let mut conn = self.commands.clone();
        let mut query = redis::cmd("HGET");
        query.arg(&self.meta_key).arg("last");
        // A read, safe to repeat: once more when the first try met a connection that broke
        // during an outage, as `do_read_after` does (a resumed stream asks this first).
        let command = self.timeouts.command;
        let last: Option<String> = match within(command, query.query_async(&mut conn)).await {
            Ok(last) => last,
            Err(_) => {
                tokio::time::sleep(TAIL_MIN_BACKOFF).await;
                within(command, query.query_async(&mut conn)).await?
            }
        };
        last.map(|id| id.parse().map_err(|_| malformed("last id")))
            .transpose()
    }

    async fn do_close(&self) -> Result<(), LogError> {
        let sender = lock(&self.tail).take();
        if sender.is_some() {
            // Everything this hub appended before close still reaches the tail, then it ends.
            let target = *lock(&self.seen);
            let _ = self.stop.send(Some(target));
        }
        drop(sender);
        let task = lock(&self.tail_task).take();
        if let Some(task) = task
            && tokio::time::timeout(CLOSE_TIMEOUT, task).await.is_err()
        {
            tracing::warn!("the redis tail did not finish within {CLOSE_TIMEOUT:?}");
        }
        Ok(())
    }
}

/// `fut`, bounded by `limit`, its errors as [`LogError::Unavailable`].
async fn within<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, LogError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(|e| unavailable(&e)),
        Err(_) => Err(timed_out(limit)),
    }
}

/// What one try of an append tells about whether it ran.
enum Try {
    /// Redis answered `{id, duplicate}`.
    Answered(EventId, bool),
    /// Redis answered that the deadline had passed: this try stored nothing, and no copy can.
    Expired,
    /// Known not to have run: the connection was refused (nothing was sent), or Redis answered
    /// an error (the script stores nothing before its checks pass).
    NotRun(String),
    /// Sent, maybe run, answer lost: a timeout, a reset or broken connection.
    Lost(String),
}

impl Try {
    fn of(result: Result<Result<(String, i64), RedisError>, tokio::time::error::Elapsed>) -> Self {
        match result {
            Ok(Ok((_, 2))) => Self::Expired,
            Ok(Ok((id, duplicate))) => match id.parse() {
                Ok(id) => Self::Answered(id, duplicate == 1),
                // Redis answered, so the script ran; an id we cannot read is a bug, not a
                // reason to store again. Reported as lost: the outcome is not known here.
                Err(_) => Self::Lost(format!("redis answered a malformed id {id:?}")),
            },
            Ok(Err(err)) if err.is_connection_refusal() => Self::NotRun(format!("redis: {err}")),
            Ok(Err(err)) if matches!(err.kind(), ErrorKind::Server(_) | ErrorKind::Extension) => {
                Self::NotRun(format!("redis: {err}"))
            }
            Ok(Err(err)) => Self::Lost(format!("redis: {err}")),
            Err(_) => Self::Lost("redis did not answer in time".to_owned()),
        }
    }
}

/// What the tail task needs.
struct TailLoop {
    conn: ConnectionManager,
    stream_key: String,
    /// The newest entry delivered (None: from the start of the stream).
    after: Option<EventId>,
    tail: broadcast::Sender<Arc<StoredEvent>>,
    seen: Arc<Mutex<Option<EventId>>>,
    /// `Some(target)`: stop once `target` (the last id appended before close) was delivered.
    stop: watch::Receiver<Option<Option<EventId>>>,
    /// [`RedisLog::problem`].
    problem: Arc<Mutex<Option<String>>>,
}

async fn tail_loop(mut state: TailLoop) {
    let mut backoff = TAIL_MIN_BACKOFF;
    let mut deadline = None;
    loop {
        let stop = *state.stop.borrow();
        if let Some(target) = stop {
            if target <= state.after {
                return;
            }
            let deadline =
                *deadline.get_or_insert_with(|| tokio::time::Instant::now() + CLOSE_TIMEOUT);
            if tokio::time::Instant::now() >= deadline {
                return;
            }
        }
        let mut command = redis::cmd("XREAD");
        if stop.is_none() {
            command
                .arg("BLOCK")
                .arg(u64::try_from(TAIL_BLOCK.as_millis()).unwrap_or(1000));
        }
        command
            .arg("COUNT")
            .arg(TAIL_BATCH)
            .arg("STREAMS")
            .arg(&state.stream_key)
            .arg(state.after.unwrap_or_default().to_string());
        let read = command.query_async::<Value>(&mut state.conn);
        let result = tokio::select! {
            result = read => result,
            // Close: stop blocking, finish with non-blocking reads.
            _ = state.stop.changed(), if stop.is_none() => continue,
        };
        match result.map_err(|e| unavailable(&e)).and_then(decode_xread) {
            Ok(events) => {
                backoff = TAIL_MIN_BACKOFF;
                lock(&state.problem).take();
                for event in events {
                    if Some(event.id) <= state.after {
                        continue;
                    }
                    state.after = Some(event.id);
                    {
                        let mut seen = lock(&state.seen);
                        *seen = (*seen).max(Some(event.id));
                    }
                    // No receiver is not an error: the hub may not be tailing yet.
                    let _ = state.tail.send(Arc::new(event));
                }
            }
            Err(err) => {
                tracing::warn!(%err, "redis tail: read failed, retrying in {backoff:?}");
                *lock(&state.problem) = Some(err.to_string());
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = state.stop.changed(), if stop.is_none() => {}
                }
                backoff = (backoff * 2).min(TAIL_MAX_BACKOFF);
            }
        }
    }
}

/// The entries of an `XREAD` answer for one stream (nil when the block timed out).
fn decode_xread(value: Value) -> Result<Vec<StoredEvent>, LogError> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut events = Vec::new();
            for stream in streams {
                let Value::Array(mut pair) = stream else {
                    return Err(malformed("xread stream"));
                };
                if pair.len() != 2 {
                    return Err(malformed("xread stream"));
                }
                events.extend(decode_entries(pair.pop().unwrap_or(Value::Nil))?);
            }
            Ok(events)
        }
        Value::Map(streams) => {
            let mut events = Vec::new();
            for (_, entries) in streams {
                events.extend(decode_entries(entries)?);
            }
            Ok(events)
        }
        _ => Err(malformed("xread reply")),
    }
}

/// The entries of an `XRANGE` answer.
fn decode_entries(value: Value) -> Result<Vec<StoredEvent>, LogError> {
    let entries = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(entries) => entries,
        _ => return Err(malformed("range reply")),
    };
    entries.into_iter().map(decode_entry).collect()
}

fn text(value: Value, what: &str) -> Result<String, LogError> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|_| malformed(what)),
        Value::SimpleString(s) => Ok(s),
        _ => Err(malformed(what)),
    }
}

fn decode_entry(value: Value) -> Result<StoredEvent, LogError> {
    let Value::Array(parts) = value else {
        return Err(malformed("entry"));
    };
    let mut parts = parts.into_iter();
    let (Some(id), Some(Value::Array(fields)), None) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("entry"));
    };
    let id: EventId = text(id, "id")?.parse().map_err(|_| malformed("id"))?;
    let mut event = StoredEvent {
        id,
        topic: String::new(),
        event_type: None,
        data: String::new(),
        retry: None,
        private: false,
    };
    let mut has_topic = false;
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let name = text(name, "field name")?;
        let value = text(value, "field value")?;
        match name.as_str() {
            FIELD_TOPIC => {
                event.topic = value;
                has_topic = true;
            }
            FIELD_DATA => event.data = value,
            FIELD_TYPE => event.event_type = Some(value),
            FIELD_RETRY => event.retry = Some(value.parse().map_err(|_| malformed("retry"))?),
            FIELD_PRIVATE => event.private = value == "1",
            // Fields a later version may add are not an error.
            _ => {}
        }
    }
    if !has_topic {
        return Err(malformed("no topic"));
    }
    Ok(event)
}

impl Log for RedisLog {
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
        Box::pin(self.do_last_id())
    }

    fn close(&self) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(self.do_close())
    }

    fn health(&self) -> StoreHealth {
        StoreHealth {
            store: "redis",
            problem: lock(&self.problem).clone(),
        }
    }
}

impl Drop for RedisLog {
    fn drop(&mut self) {
        // Without close, the tail task would read forever.
        if let Some(task) = lock(&self.tail_task).take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use herald_testkit::redis::RedisServer;

    use super::*;
    use crate::log::suite::{self, KEEP_ALL, Opener, append, event, read_all, within as step};

    /// Each test gets its own `redis-server`, killed when the test ends.
    struct Redis(RedisServer);

    impl Opener for Redis {
        fn open(&self, retention: Retention) -> BoxFuture<'_, Arc<dyn Log>> {
            let url = self.0.url();
            Box::pin(async move {
                let log = RedisLog::connect(&url, "suite", retention)
                    .await
                    .expect("connect");
                Arc::new(log) as Arc<dyn Log>
            })
        }
    }

    suite::suite_tests!(Redis(RedisServer::start()));

    #[tokio::test]
    async fn two_hubs_share_one_order_tail_and_keys() {
        let server = RedisServer::start();
        let a = RedisLog::connect(&server.url(), "p", KEEP_ALL)
            .await
            .unwrap();
        let b = RedisLog::connect(&server.url(), "p", KEEP_ALL)
            .await
            .unwrap();
        let mut tail_b = b.tail();
        let first = append(&a, event("t", "from a")).await;
        let second = append(&b, event("t", "from b")).await;
        assert!(first < second);
        assert_eq!(step("tail", tail_b.recv()).await.unwrap().id, first);
        assert_eq!(step("tail", tail_b.recv()).await.unwrap().id, second);
        let once = a.append(suite::keyed("t", "x", "k")).await.unwrap();
        let again = b.append(suite::keyed("t", "y", "k")).await.unwrap();
        assert_eq!((again.id, again.duplicate), (once.id, true));
        assert_eq!(read_all(&b).await.len(), 3);
        // Another prefix is another deployment: it sees nothing of this one.
        let other = RedisLog::connect(&server.url(), "other", KEEP_ALL)
            .await
            .unwrap();
        assert!(read_all(&other).await.is_empty());
        assert_eq!(other.last_id().await.unwrap(), None);
    }

    #[tokio::test]
    async fn ids_follow_the_newest_when_a_hubs_clock_is_behind() {
        let server = RedisServer::start();
        let ahead = Arc::new(AtomicU64::new(9_000_000));
        let clock: Clock = {
            let ahead = Arc::clone(&ahead);
            Arc::new(move || ahead.load(Ordering::SeqCst))
        };
        let a = RedisLog::connect_with_clock(
            &server.url(),
            "p",
            KEEP_ALL,
            clock,
            RedisTimeouts::default(),
        )
        .await
        .unwrap();
        let behind: Clock = Arc::new(|| 1_000);
        let b = RedisLog::connect_with_clock(
            &server.url(),
            "p",
            KEEP_ALL,
            behind,
            RedisTimeouts::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            append(&a, event("t", "1")).await,
            EventId::new(9_000_000, 0)
        );
        assert_eq!(
            append(&b, event("t", "2")).await,
            EventId::new(9_000_000, 1)
        );
    }

    #[tokio::test]
    async fn lost_history_keeps_ids_increasing_and_reports_truncation() {
        let mut server = RedisServer::start();
        let log = RedisLog::connect(&server.url(), "p", KEEP_ALL)
            .await
            .unwrap();
        let before = append(&log, event("t", "1")).await;
        // An empty Redis (no persistence) on the same port.
        server.restart();
        let appended = loop {
            match log.append(event("t", "2")).await {
                Ok(appended) => break appended,
                Err(LogError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(err) => panic!("{err}"),
            }
        };
        assert!(appended.id > before);
        let batch = log.read_after(Some(EventId::new(0, 0)), 10).await.unwrap();
        assert!(batch.truncated, "the history before the restart is gone");
        let batch = log.read_after(Some(before), 10).await.unwrap();
        assert!(!batch.truncated, "nothing after `before` was lost");
        assert_eq!(batch.events.len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_quickly() {
        let mut server = RedisServer::start();
        let timeouts = RedisTimeouts {
            command: Duration::from_millis(500),
            publish: Duration::from_secs(1),
        };
        let log = RedisLog::connect_with_timeouts(&server.url(), "p", KEEP_ALL, timeouts)
            .await
            .unwrap();
        server.stop();
        // The first append meets the broken connection: maybe sent, so maybe unknown.
        let started = std::time::Instant::now();
        let result = log.append(event("t", "lost")).await;
        assert!(
            matches!(result, Err(LogError::Unavailable(_) | LogError::Unknown(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < (timeouts.publish + timeouts.command) * 2);
        // Then Redis refuses connections: known not sent, at once.
        let started = std::time::Instant::now();
        let result = log.append(event("t", "lost")).await;
        assert!(
            matches!(&result, Err(LogError::Unavailable(m)) if m.contains("nothing was stored")),
            "{result:?}"
        );
        assert!(started.elapsed() < timeouts.command * 2);
        let refused = RedisLog::connect(&server.url(), "p", KEEP_ALL).await;
        assert!(matches!(refused, Err(LogError::Unavailable(_))));
    }

    #[tokio::test]
    async fn bad_urls_and_prefixes_are_refused() {
        for prefix in ["", "a{b", "a}b", "a b", &"x".repeat(MAX_PREFIX_LEN + 1)] {
            let refused = RedisLog::connect("redis://127.0.0.1:1", prefix, KEEP_ALL).await;
            assert!(matches!(refused, Err(LogError::Storage(_))), "{prefix:?}");
        }
        for url in ["", "http://127.0.0.1:6379", "redis://[::1"] {
            let refused = RedisLog::connect(url, "p", KEEP_ALL).await;
            assert!(matches!(refused, Err(LogError::Storage(_))), "{url:?}");
        }
        assert!(check_prefix("herald-prod.eu:1_a").is_ok());
    }
}
