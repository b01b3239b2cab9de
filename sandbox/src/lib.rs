//! The Smart Glocal sandbox (being built).
