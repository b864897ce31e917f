//! An async EventSource client (work in progress: see issue 3).
