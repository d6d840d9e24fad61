//! Giving freed heap back to the system after a load phase.
//!
//! glibc's malloc keeps what a burst freed in its arenas (a gateway that served 5,000
//! streams stayed at its peak RSS after they ended). Every two seconds a task of the
//! process asks malloc how much free memory it holds, and when that is over 8 MiB and
//! more than what is in use — the load is gone, not merely fluctuating — it calls
//! `malloc_trim(0)`, which returns free pages of every arena to the kernel. Under steady
//! load little is free and nothing is trimmed, so the request path never waits on a
//! trim. Elsewhere than Linux with glibc the functions do nothing.
//!
//! The two C calls are the only `unsafe` of the crate (tested below).
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the free heap is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Free heap above this (and above what is in use) is given back.
const TRIM_ABOVE: usize = 8 * 1024 * 1024;

/// The heap malloc holds: (in use, free), in bytes; `None` where it cannot tell.
pub fn heap_bytes() -> Option<(usize, usize)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments, only reads malloc's own statistics under
        // its locks, and returns a plain struct by value; it is thread-safe (glibc ≥ 2.33,
        // which every supported Debian has).
        let info = unsafe { libc::mallinfo2() };
        Some((info.uordblks, info.fordblks))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Returns malloc's free pages to the kernel now; true when something was released.
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim(0) takes the arena locks itself and only releases memory
        // malloc holds as free; no pointer of ours is involved and it is thread-safe.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// True when the free heap is worth giving back: over 8 MiB and more than is in use.
fn worth_trimming(in_use: usize, free: usize) -> bool {
    free > TRIM_ABOVE && free > in_use
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// Starts the process's trimmer on the current runtime (once per process; later calls do
/// nothing). Every server built on [`serve`](crate::serve) starts it.
pub fn start_trimmer() {
    if heap_bytes().is_none() || STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        let mut every = tokio::time::interval(CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some((in_use, free)) = heap_bytes() else {
                return;
            };
            if worth_trimming(in_use, free) {
                // Seconds at most for a large heap, on the blocking pool, off the workers.
                let released = tokio::task::spawn_blocking(release_free_heap)
                    .await
                    .unwrap_or(false);
                tracing::debug!(in_use, free, released, "returned free heap to the system");
            }
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// Resident set size of this process, from /proc.
    fn rss_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kib: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kib * 1024
    }

    #[test]
    fn the_policy_trims_a_mostly_free_heap_only() {
        let mib = 1024 * 1024;
        assert!(super::worth_trimming(10 * mib, 300 * mib));
        assert!(
            !super::worth_trimming(2 * mib, 6 * mib),
            "too little to bother"
        );
        assert!(
            !super::worth_trimming(400 * mib, 300 * mib),
            "busy: mostly in use"
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_small_blocks_go_back_to_the_system_when_trimmed() {
        // 128 MiB in 4 KiB blocks, touched, then freed except one block in 64 at the top,
        // so the heap cannot simply shrink from its end: only malloc_trim's page release
        // in the middle of the heap gives it back.
        let mut blocks: Vec<Vec<u8>> = (0..32 * 1024).map(|i| vec![i as u8; 4096]).collect();
        let (in_use, _) = super::heap_bytes().unwrap();
        assert!(in_use >= 128 * 1024 * 1024, "{in_use}");
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(blocks);
        let (_, free) = super::heap_bytes().unwrap();
        assert!(
            free >= 100 * 1024 * 1024,
            "freed blocks are free heap: {free}"
        );
        let before = rss_bytes();
        assert!(super::release_free_heap());
        let after = rss_bytes();
        assert!(
            after + 64 * 1024 * 1024 < before,
            "RSS {before} -> {after}: the trim released less than 64 MiB"
        );
        drop(kept);
    }
}
