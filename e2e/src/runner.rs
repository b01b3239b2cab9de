//! Runs each test against the one browser (and the one stack) of its test binary.
//!
//! Starting Chromium and the servers is the slow part, so a test binary starts them once, in a
//! process-wide runtime that outlives each `#[test]`'s thread. Tests take turns (one browser
//! window cannot serve two tests), each in a fresh tab. A failing test — an `Err`, a panic or
//! a timeout — saves a screenshot, the console log and the page's HTML under
//! `e2e/artifacts/<test name>/` before it fails. Rust never drops a `static`, so everything
//! started is stopped by an `atexit` hook when the test binary exits, passed or failed.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use fantoccini::Client;
use futures_util::FutureExt;
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;

use crate::artifacts;
use crate::browser::{self, Browser, DriverProcess};
use crate::stack::{Stack, StackOptions};
use crate::{BoxError, TestResult};

/// Longest a scenario may take before it fails as hung.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a test body gets: the browser and, on first use, the shared stack.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    shared: &'static Shared,
}

impl Ctx {
    /// The binary's shared stack (sandbox, both proxies, the widget), started on first use.
    pub async fn stack(&self) -> &'static Stack {
        self.shared
            .stack
            .get_or_init(|| async {
                match Stack::start(StackOptions::default()).await {
                    Ok(stack) => {
                        let stack: &'static Stack = Box::leak(Box::new(stack));
                        stack.stop_at_exit();
                        stack
                    }
                    Err(e) => panic!("the stack did not start: {e}"),
                }
            })
            .await
    }

    /// The browser console since the test started (or since the last call).
    pub async fn console_log(&self) -> Result<Vec<String>, BoxError> {
        browser::console_log(&self.shared.driver_url, &self.shared.session_id).await
    }
}

struct Shared {
    runtime: Runtime,
    client: Client,
    driver_url: String,
    session_id: String,
    stack: OnceCell<&'static Stack>,
    /// One test at a time drives the browser.
    turn: Mutex<()>,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// Work to do when the process exits: stop chromedriver (Chromium with it), the servers, and
/// remove temporary folders.
static AT_EXIT: Mutex<Vec<Box<dyn FnOnce() + Send>>> = Mutex::new(Vec::new());

/// Registers `stop` to run when the test binary exits.
pub(crate) fn at_exit(stop: impl FnOnce() + Send + 'static) {
    lock(&AT_EXIT).push(Box::new(stop));
}

extern "C" fn run_at_exit_hooks() {
    let hooks = std::mem::take(&mut *lock(&AT_EXIT));
    for hook in hooks.into_iter().rev() {
        // A panic here would abort the process and hide the test results.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(hook));
    }
}

extern "C" {
    /// libc's `atexit`: libtest ends with `std::process::exit`, which runs these hooks.
    fn atexit(hook: extern "C" fn()) -> std::os::raw::c_int;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding the lock left nothing half-done that matters here.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn shared() -> &'static Shared {
    let shared = SHARED.get_or_init(|| {
        // SAFETY: `atexit` only stores the function pointer; the hook touches only statics.
        unsafe { atexit(run_at_exit_hooks) };
        start_shared().map_err(|e| e.to_string())
    });
    match shared {
        Ok(shared) => shared,
        Err(e) => panic!("the browser did not start: {e}"),
    }
}

fn start_shared() -> Result<Shared, BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("e2e-runtime")
        .build()?;
    let browser = runtime.block_on(Browser::start())?;
    let driver_url = browser.driver_url();
    let session_id = browser.session_id().to_owned();
    let (client, driver): (Client, DriverProcess) = browser.into_parts();
    at_exit(move || drop(driver));
    Ok(Shared {
        runtime,
        client,
        driver_url,
        session_id,
        stack: OnceCell::new(),
        turn: Mutex::new(()),
    })
}

/// Runs one scenario in the shared browser; fails the calling `#[test]` with the cause and
/// the artifact folder if `body` returns an error, panics or takes over [`TEST_TIMEOUT`].
/// The artifacts are named after the calling test (see [`test_name`]).
pub fn run<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = TestResult>,
{
    if let Err(failure) = try_run(&test_name(), body) {
        panic!("{failure}");
    }
}

/// The calling `#[test]`'s function name: libtest runs each test on a thread named after its
/// path (`refunds::a_full_usd_refund_…`).
pub fn test_name() -> String {
    test_name_of(std::thread::current().name())
}

fn test_name_of(thread: Option<&str>) -> String {
    match thread {
        Some(path) if path != "main" => path.rsplit("::").next().unwrap_or(path).to_owned(),
        _ => panic!(
            "e2e::run names its artifacts after the running #[test], but this thread ({thread:?}) \
             is not a libtest test thread: call e2e::try_run with a name instead"
        ),
    }
}

/// [`run`], returning the failure (after saving the artifacts) instead of panicking; the
/// harness's own tests use it to check what a failure leaves behind.
pub fn try_run<F, Fut>(test_name: &str, body: F) -> Result<(), String>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let shared = shared();
    let _turn = lock(&shared.turn);
    let ctx = Ctx {
        client: shared.client.clone(),
        shared,
    };
    let dir = artifacts::dir_for(test_name);

    // The body runs on this thread (`block_on`), so libtest captures its output as usual.
    let outcome = shared.runtime.block_on(async {
        fresh_tab(&ctx)
            .await
            .map_err(|e| format!("cannot open a fresh tab: {e}"))?;
        let body = AssertUnwindSafe(body(ctx.clone())).catch_unwind();
        match tokio::time::timeout(TEST_TIMEOUT, body).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(format!("{error}")),
            Ok(Err(panic)) => Err(panic_message(&*panic)),
            Err(_) => Err(format!("timed out after {TEST_TIMEOUT:?}")),
        }
    });

    match outcome {
        Ok(()) => {
            artifacts::clear(&dir);
            Ok(())
        }
        Err(message) => {
            let saved = shared
                .runtime
                .block_on(artifacts::save(&ctx, &dir, &message));
            Err(format!("{message}\n  artifacts: {saved}"))
        }
    }
}

/// Each test starts in a new tab with an empty console buffer; the previous tabs close, so
/// their event streams and session storage do not leak into the next test.
async fn fresh_tab(ctx: &Ctx) -> Result<(), BoxError> {
    let client = &ctx.client;
    let old = client.windows().await?;
    let new = client.new_window(true).await?;
    for window in old {
        client.switch_to_window(window).await?;
        client.close_window().await?;
    }
    client.switch_to_window(new.handle).await?;
    let _ = ctx.console_log().await;
    Ok(())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "the test panicked".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_name_is_the_running_tests_function() {
        assert_eq!(test_name(), "the_test_name_is_the_running_tests_function");
        assert_eq!(
            test_name_of(Some("refunds::a_full_refund")),
            "a_full_refund"
        );
    }

    #[test]
    #[should_panic(expected = "not a libtest test thread")]
    fn outside_a_test_thread_run_asks_for_a_name() {
        test_name_of(Some("main"));
    }
}
