//! The refund widget (being built).
