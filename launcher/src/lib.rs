//! One launcher for every process this project starts: the demo's sandbox and proxies
//! (`cargo xtask demo`), chromedriver in the end-to-end suite, the benches' server children.
//!
//! - [`process`]: children the kernel kills when this process ends, however it ends (SIGKILL
//!   included), and an orderly stop (SIGTERM, then SIGKILL after a grace period).
//! - [`signals`]: SIGINT, SIGTERM and SIGHUP as a flag a supervisor polls, so it can stop its
//!   children before it exits.
//! - [`ports`]: whether a loopback port is free and, if not, which process holds it.
//!
//! Linux only where it matters: `PR_SET_PDEATHSIG` and `/proc` have no portable equivalent.

pub mod ports;
pub mod process;
pub mod signals;

pub use process::{spawn, stop_all};
