//! Every `data-testid` the widget renders: the one list end-to-end and in-browser tests use.

pub const WIDGET: &str = "sg-refund";
pub const LOADING: &str = "loading";
pub const PAYMENT_AMOUNT: &str = "payment-amount";
pub const PAYMENT_CARD: &str = "payment-card";
pub const PAYMENT_CUSTOMER: &str = "payment-customer";
pub const PAYMENT_STATUS: &str = "payment-status";
pub const PAYMENT_DATE: &str = "payment-date";
pub const REMAINING: &str = "remaining";
pub const REFUND_LIST: &str = "refund-list";
pub const REFUND_ROW: &str = "refund-row";
pub const REFUND_AMOUNT: &str = "refund-amount";
pub const REFUND_STATE: &str = "refund-state";
pub const CHARGEBACK_BADGE: &str = "chargeback-badge";
pub const NOT_REFUNDABLE: &str = "not-refundable";
pub const MODE_FULL: &str = "mode-full";
pub const MODE_PARTIAL: &str = "mode-partial";
pub const AMOUNT_INPUT: &str = "amount-input";
pub const AMOUNT_ERROR: &str = "amount-error";
pub const REASON_SELECT: &str = "reason-select";
pub const NOTE_INPUT: &str = "note-input";
pub const NOTE_ERROR: &str = "note-error";
pub const REVIEW_BUTTON: &str = "review-button";
pub const CONFIRM_DIALOG: &str = "confirm-dialog";
pub const CONFIRM_TEXT: &str = "confirm-text";
pub const CONFIRM_BUTTON: &str = "confirm-button";
pub const CANCEL_BUTTON: &str = "cancel-button";
pub const FORM_ERROR: &str = "form-error";
pub const STATUS_LIVE: &str = "status-live";
pub const RETRY_BUTTON: &str = "retry-button";
pub const TITLE: &str = "title";
pub const PAYMENT_PENDING: &str = "payment-pending";
pub const DISPUTE_AMOUNT: &str = "dispute-amount";
pub const REFUND_REASON: &str = "refund-reason";
pub const REFUND_NOTE: &str = "refund-note";
pub const REFUND_AGENT: &str = "refund-agent";
pub const REFUND_ID: &str = "refund-id";
pub const REFUND_FAILURE: &str = "refund-failure";
pub const REFUND_ATTENTION: &str = "refund-attention";
/// What the agent may refund on their own, and the approval threshold.
pub const ALLOWANCE: &str = "allowance";
/// On a request awaiting approval, for an agent who may decide: the note and the buttons.
pub const APPROVAL_NOTE: &str = "approval-note";
pub const APPROVE: &str = "approve";
pub const REJECT: &str = "reject";
pub const CONFIRM_REASON: &str = "confirm-reason";
pub const CONFIRM_REMAINING: &str = "confirm-remaining";
