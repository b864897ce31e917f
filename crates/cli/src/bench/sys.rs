//! What the harness reads from the operating system: a monotonic clock shared by the whole process
//! tree, CPU time (getrusage), resident memory of a process tree (/proc), and the open-files limit.

use std::collections::{BTreeSet, HashMap};
use std::fs;

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::{SysconfVar, sysconf};

/// Nanoseconds on `CLOCK_MONOTONIC`. Unlike `std::time::Instant` the value is absolute, so a
/// timestamp taken by the publisher can be compared with one taken in a child process on the
/// same machine.
pub(crate) fn mono_ns() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        // Both fields are non-negative on CLOCK_MONOTONIC.
        Ok(ts) => (ts.tv_sec() as u64) * 1_000_000_000 + ts.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// CPU time (user + system, seconds) used by this process and by its children that have been
/// waited for.
pub(crate) fn cpu_seconds() -> f64 {
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .filter_map(|who| getrusage(who).ok())
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .sum()
}

/// Raises the soft limit on open files to the hard limit (a process here may hold at most the
/// hard limit: it cannot be raised) and returns the new soft limit.
pub(crate) fn raise_open_files_limit() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// Resident memory (bytes) of `pid` and all its descendants, from `/proc/PID/status` (VmRSS).
/// `None` when `pid` does not exist.
pub(crate) fn rss_tree_bytes(pid: u32) -> Option<u64> {
    rss_trees_bytes(&[pid])
}

/// Resident memory (bytes) of several processes and all their descendants, each process counted
/// once even when two trees overlap. `None` when `pids` is empty or one of them does not exist:
/// a sum that silently left a server out would read as a smaller figure.
pub(crate) fn rss_trees_bytes(pids: &[u32]) -> Option<u64> {
    Some(trees(pids)?.into_iter().filter_map(rss_bytes).sum())
}

/// CPU time (user + system, seconds) used so far by `pid` and its live descendants, from
/// `/proc/PID/stat`. `None` when `pid` does not exist.
pub(crate) fn cpu_tree_seconds(pid: u32) -> Option<f64> {
    cpu_trees_seconds(&[pid])
}

/// [`cpu_tree_seconds`] summed over several process trees, each process counted once; `None`
/// when `pids` is empty or one of them does not exist.
pub(crate) fn cpu_trees_seconds(pids: &[u32]) -> Option<f64> {
    let ticks = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as f64;
    let total: u64 = trees(pids)?
        .into_iter()
        .filter_map(|p| {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            // Fields after `(comm)` start at field 3 (state); utime and stime are fields 14, 15.
            let mut fields = rest.split_whitespace().skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some(utime + stime)
        })
        .sum();
    Some(total as f64 / ticks)
}

/// `pids` and all their descendants (parent links from `/proc/*/stat`, read once for all);
/// `None` when `pids` is empty or one of them does not exist.
fn trees(pids: &[u32]) -> Option<BTreeSet<u32>> {
    if pids.is_empty()
        || !pids
            .iter()
            .all(|pid| fs::exists(format!("/proc/{pid}/stat")).unwrap_or(false))
    {
        return None;
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(parent) = parent_pid(child) {
            children.entry(parent).or_default().push(child);
        }
    }
    let mut all: BTreeSet<u32> = pids.iter().copied().collect();
    let mut stack: Vec<u32> = pids.to_vec();
    // Bounded: each pid's children are taken from the map once, so a cycle cannot loop forever.
    while let Some(p) = stack.pop() {
        for child in children.remove(&p).unwrap_or_default() {
            all.insert(child);
            stack.push(child);
        }
    }
    Some(all)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        // Kernel threads and zombies have no VmRSS line.
        .unwrap_or(0);
    Some(kb * 1024)
}

fn parent_pid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may contain spaces and parentheses, so cut at the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_cpu_is_counted() {
        let a = mono_ns();
        let b = mono_ns();
        assert!(a > 0 && b >= a);
        assert!(cpu_seconds() >= 0.0);
    }

    #[test]
    fn rss_of_this_process_includes_its_children() {
        let me = std::process::id();
        let alone = rss_tree_bytes(me).expect("this process exists");
        assert!(alone > 0);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        assert_eq!(parent_pid(child.id()), Some(me));
        let pids = trees(&[me]).expect("this process exists");
        assert!(pids.contains(&me) && pids.contains(&child.id()), "{pids:?}");
        let _ = child.kill();
        let _ = child.wait();
        assert!(cpu_tree_seconds(me).is_some_and(|s| s >= 0.0));
        assert_eq!(rss_tree_bytes(u32::MAX), None);
        assert_eq!(cpu_tree_seconds(u32::MAX), None);
    }

    #[test]
    fn several_trees_are_summed_each_process_once() {
        // A `sleep` that has reached its sleep neither grows nor burns CPU, so its figures hold
        // still between two reads. Right after `spawn` it may still be loading (its memory grows
        // as the dynamic loader maps libraries), so wait, bounded, until it sleeps.
        let spawn = || {
            let child = std::process::Command::new("sleep")
                .arg("5")
                .spawn()
                .expect("spawn sleep");
            let pid = child.id();
            let asleep = || {
                fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| Some(stat.rsplit_once(')')?.1.trim_start().starts_with('S')))
                    .unwrap_or(false)
            };
            for _ in 0..500 {
                if asleep() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            child
        };
        let (mut a, mut b) = (spawn(), spawn());
        let (pa, pb) = (a.id(), b.id());
        let ra = rss_tree_bytes(pa).expect("a exists");
        let rb = rss_tree_bytes(pb).expect("b exists");
        assert!(ra > 0 && rb > 0);
        assert_eq!(rss_trees_bytes(&[pa, pb]), Some(ra + rb));
        // The same process given twice is counted once.
        assert_eq!(rss_trees_bytes(&[pa, pa]), Some(ra));
        assert!(cpu_trees_seconds(&[pa, pb]).is_some_and(|s| s >= 0.0));
        // One missing process, or none given, is no figure rather than a smaller one.
        assert_eq!(rss_trees_bytes(&[pa, u32::MAX]), None);
        assert_eq!(cpu_trees_seconds(&[u32::MAX, pb]), None);
        assert_eq!(rss_trees_bytes(&[]), None);
        for c in [&mut a, &mut b] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
