//! The sandbox over real sockets: signatures, refund rules, webhooks, faults, control API.

mod control;
mod faults;
mod helpers;
mod rules;
mod signatures;
mod webhooks;
