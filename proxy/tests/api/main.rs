//! Integration tests of the proxy over real sockets: the proxy on 127.0.0.1:0 with a temporary
//! SQLite file, in front of the real sandbox (or a capture server that records each call).

mod helpers;

mod approvals;
mod auth;
mod connections;
mod exactly_once;
mod hardening;
mod input;
mod ledger_chain;
mod ledger_file;
mod limits;
mod live_updates;
mod operations;
mod refunds;
mod signing_headers;
mod storage_faults;
mod webhooks;
