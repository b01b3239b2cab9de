//! The signing proxy (being built).
