//! The end-to-end suite: one test binary, so the browser and the stack start once.

mod harness;
