//! The HTTP routes: Smart Glocal's own, and the sandbox's control API.

pub mod control;
pub mod smart_glocal;
