//! Smart Glocal's refund rules, as a pure function of the session, the project and the
//! request, so each rejection is decided in one place and tested on its own.

use shared::smart_glocal::{PaymentStatus, RefundRequest, Session};

use crate::config::Project;
use crate::error::SgError;

/// The amount to refund, in the payment's minor units, or why the refund is refused.
///
/// The order is the one a caller can act on: first whether anything is refundable at all,
/// then what is wrong with the amount.
pub fn check_refund(
    session: &Session,
    project: &Project,
    request: &RefundRequest,
) -> Result<u64, SgError> {
    let payment = session
        .acquiring_payments
        .iter()
        .find(|p| p.status == PaymentStatus::Succeeded)
        .ok_or(SgError::PaymentNotSucceeded)?;
    let paid = payment.amount_details;
    let refunded: u64 = payment
        .refunds
        .iter()
        .filter(|r| r.status.holds_money())
        .map(|r| r.amount_details.amount)
        .sum();
    let remaining = paid.amount.saturating_sub(refunded);

    let requested = match request.amount_details {
        None => remaining,
        Some(details) => {
            if details.amount == 0 {
                return Err(SgError::InvalidAmount);
            }
            if details.currency != paid.currency {
                return Err(SgError::CurrencyMismatch {
                    expected: paid.currency.code(),
                });
            }
            details.amount
        }
    };
    if requested == 0 || requested > remaining {
        return Err(SgError::AmountExceedsRemaining { remaining });
    }
    // Anything short of the whole payment is a partial refund, including "the rest" of a
    // payment that was partly refunded before.
    if requested != paid.amount && !project.partial_refunds {
        return Err(SgError::PartialRefundNotAllowed);
    }
    Ok(requested)
}
