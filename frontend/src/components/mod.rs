//! The widget's components, one per file, from the outside in:
//! [`RefundWidget`] loads the payment and keeps it live; [`RefundPanel`] is everything shown
//! for a loaded payment and submits refunds; the rest are its parts.

mod amount_field;
mod confirm_dialog;
mod payment_summary;
mod refund_form;
mod refund_list;
mod refund_panel;
mod widget;

pub use amount_field::AmountField;
pub use confirm_dialog::ConfirmDialog;
pub use payment_summary::PaymentSummary;
pub use refund_form::RefundForm;
pub use refund_list::RefundList;
pub use refund_panel::{Decide, RefundPanel, Submit, SubmitFuture};
pub use widget::RefundWidget;
