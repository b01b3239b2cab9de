//! SIGINT, SIGTERM and SIGHUP as a flag to poll.
//!
//! A process that supervises children catches them so it can stop the children in order and
//! wait until their ports are free before it exits. The handler only stores the signal's
//! number: anything more is not async-signal-safe.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// From now on SIGINT (Ctrl-C), SIGTERM (`kill`, process managers) and SIGHUP (a closed
/// terminal) no longer end this process: they are recorded for [`received`].
pub fn catch_termination() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the handler is an
        // `extern "C" fn(c_int)` that only does an atomic store.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// The last termination signal caught since [`catch_termination`], if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// `SIGTERM` for 15, and so on, for messages.
pub fn name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_sighup_is_recorded_and_does_not_end_the_process() {
        catch_termination().unwrap();
        // SAFETY: raise(3) on our own process with a signal we now handle.
        unsafe {
            libc::raise(libc::SIGHUP);
        }
        let seen = received();
        // Give the test binary its default dispositions back, so Ctrl-C still ends it.
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: SIG_DFL is always a valid disposition.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        assert_eq!(seen, Some(libc::SIGHUP));
        assert_eq!(name(libc::SIGHUP), "SIGHUP");
    }
}
