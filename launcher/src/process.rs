//! Children that cannot outlive this process, and stopping them in order.
//!
//! `kill_on_drop` and `Drop` impls only run when this process unwinds or returns; a SIGTERM
//! with no handler, a closed terminal or a SIGKILL skips them and leaves the children running.
//! So every child is started with `PR_SET_PDEATHSIG = SIGKILL`: the kernel kills it when its
//! parent goes, whatever the parent died of.

use std::io;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Starts `command` as a child the kernel kills (SIGKILL) as soon as this process ends.
///
/// The death signal fires when the *thread* that forked the child exits, not the process
/// (see `prctl(2)`). A child started from a test thread or a tokio blocking thread would be
/// killed when that thread finishes. So every spawn happens on one thread of our own that
/// lives as long as the process.
pub fn spawn(mut command: Command) -> io::Result<Child> {
    die_with_parent(&mut command);
    let (reply, answer) = mpsc::channel();
    spawner()
        .send((command, reply))
        .map_err(|_| io::Error::other("the launcher's spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the launcher's spawner thread did not answer"))?
}

type Request = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static mpsc::Sender<Request> {
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("launcher-spawner".into())
            .spawn(move || {
                // The sender sits in a `static` and is never dropped, so this loop (and the
                // thread the children's death signal is tied to) lasts until the process ends.
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("a thread for the launcher's spawner (the OS refused one: out of resources)");
        requests
    })
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;

    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls; it allocates nothing (a raw OS error carries no Box).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // If the parent died between fork and prctl, the signal will never come (we have
            // already been handed to init): refuse to start rather than run orphaned.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// Stops every child still running: SIGTERM to all at once (each gets to close its files and
/// sockets), then SIGKILL to those still running after `grace`. Reaps them all, so their
/// ports are free when this returns.
pub fn stop_all(children: &mut [&mut Child], grace: Duration) -> Vec<io::Result<ExitStatus>> {
    for child in children.iter_mut() {
        if let Ok(None) = child.try_wait() {
            terminate(child);
        }
    }
    let deadline = Instant::now() + grace;
    let mut statuses: Vec<Option<io::Result<ExitStatus>>> = children.iter().map(|_| None).collect();
    loop {
        for (child, status) in children.iter_mut().zip(statuses.iter_mut()) {
            if status.is_none() {
                match child.try_wait() {
                    Ok(Some(exit)) => *status = Some(Ok(exit)),
                    Ok(None) => {}
                    Err(e) => *status = Some(Err(e)),
                }
            }
        }
        if statuses.iter().all(Option::is_some) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    children
        .iter_mut()
        .zip(statuses)
        .map(|(child, status)| match status {
            Some(status) => status,
            None => {
                let _ = child.kill();
                child.wait()
            }
        })
        .collect()
}

#[cfg(unix)]
fn terminate(child: &mut Child) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet (try_wait said it runs), so
    // the pid cannot have been reused by another process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    let _ = child.kill();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_stops_on_sigterm_within_the_grace_period() {
        let mut child = spawn({
            let mut c = Command::new("sleep");
            c.arg("30");
            c
        })
        .unwrap();
        let started = Instant::now();
        let statuses = stop_all(&mut [&mut child], Duration::from_secs(5));
        let status = statuses.into_iter().next().unwrap().unwrap();
        assert!(!status.success());
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGTERM));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let mut child = spawn({
            let mut c = Command::new("sh");
            c.args(["-c", "trap '' TERM; sleep 30"]);
            c
        })
        .unwrap();
        // Give the shell time to install its trap, or SIGTERM would end it before the test.
        std::thread::sleep(Duration::from_millis(300));
        let statuses = stop_all(&mut [&mut child], Duration::from_millis(500));
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            let status = statuses.into_iter().next().unwrap().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_started_from_a_thread_that_ended_keeps_running() {
        // The spawner thread, not the caller's, is the child's parent thread.
        let mut child = std::thread::spawn(|| {
            let mut c = Command::new("sleep");
            c.arg("30");
            spawn(c).unwrap()
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child died with the thread"
        );
        stop_all(&mut [&mut child], Duration::from_secs(5));
    }
}
