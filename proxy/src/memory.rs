//! Memory given back after a burst.
//!
//! glibc's allocator keeps what a burst freed (requests that queued behind a slow disk sync,
//! each with its payment's refunds in memory) for reuse, spread over per-thread arenas, and
//! returns it to the system only from the top of a heap. So a process's resident memory
//! follows its worst moment, not its load. Every [`TRIM_EVERY`], `malloc_trim` hands the
//! free pages of every arena back (`madvise`); what is in use stays where it is.

use std::time::Duration;

/// How often free memory is handed back: rare enough that the walk over the arenas (well
/// under a millisecond here) costs nothing, often enough that a burst does not linger.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Runs until aborted; does nothing where the allocator is not glibc's.
pub fn spawn_trim() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Off the runtime's threads: handing back a large burst takes milliseconds.
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: `malloc_trim` takes no pointers; it locks each arena while it walks it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// This process's anonymous resident memory, bytes.
    fn rss_anon() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    #[test]
    fn memory_freed_in_the_middle_of_the_heap_goes_back_to_the_system() {
        // 64 MB in small blocks (below the mmap threshold: they come from the heap), then
        // all freed but one allocated after them, which keeps the heap's top in use: without
        // a trim, glibc keeps every freed page.
        let blocks: Vec<Box<[u8; 512]>> = (0..128 * 1024).map(|_| Box::new([1u8; 512])).collect();
        let pin = Box::new([2u8; 512]);
        drop(blocks);
        let before = rss_anon();

        super::trim();

        let after = rss_anon();
        assert!(
            before.saturating_sub(after) > 32 << 20,
            "trim gave back {} KB of {} KB",
            before.saturating_sub(after) >> 10,
            before >> 10
        );
        assert_eq!(pin[0], 2);
    }
}
