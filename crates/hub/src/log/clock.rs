//! Where the stores read the time: the wall clock, or a hand-driven one in tests (to show that ids
//! keep increasing when the clock goes backwards, which no real test can make the system do).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub(crate) type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system's wall clock. A clock set before 1970 reads as 0: ids then come from the previous
/// id (see `next_id`), so order still holds.
pub(crate) fn system() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}
