//! The queue of injected faults and which of them the next call takes.
//!
//! A call takes at most one fault of each kind: a delay, a transport fault (`http_500`,
//! `timeout`, `garbage`), an outcome (`decline`, `fail_refund`) and a webhook fault. Faults
//! that cannot act on a call are left for the next one: an `http_500` call takes no refund
//! faults (nothing is applied), and a refund the rules refuse takes none either. A transport
//! fault spoils whatever the call answers, a refusal included. A refund's fault bound to the
//! `status` route could never be taken, and is refused when injected.

use crate::control::{Fault, FaultRequest, FaultRoute};

#[derive(Debug, Default)]
pub struct FaultQueue {
    pending: Vec<FaultRequest>,
}

/// What hits one call before it is handled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransportFaults {
    pub delay_ms: Option<u64>,
    /// `Http500`, `Timeout` or `Garbage`.
    pub transport: Option<Fault>,
}

/// What hits a refund the rules accepted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RefundFaults {
    /// `Decline` or `FailRefund`.
    pub outcome: Option<Fault>,
    /// `DuplicateWebhook`, `OutOfOrderWebhooks` or `NoWebhook`.
    pub webhook: Option<Fault>,
}

impl FaultQueue {
    pub fn push(&mut self, request: FaultRequest) {
        if request.count > 0 {
            self.pending.push(request);
        }
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }

    pub fn pending(&self) -> Vec<FaultRequest> {
        self.pending.clone()
    }

    pub fn take_transport(&mut self, route: FaultRoute) -> TransportFaults {
        let delay_ms = self
            .take(route, |f| matches!(f, Fault::Delay { .. }))
            .map(|f| match f {
                Fault::Delay { ms } => ms,
                _ => 0,
            });
        let transport = self.take(route, |f| {
            matches!(f, Fault::Http500 | Fault::Timeout | Fault::Garbage)
        });
        TransportFaults {
            delay_ms,
            transport,
        }
    }

    pub fn take_refund(&mut self) -> RefundFaults {
        let route = FaultRoute::Refund;
        let outcome = self.take(route, |f| matches!(f, Fault::Decline | Fault::FailRefund));
        if outcome == Some(Fault::Decline) {
            // A declined refund sends no webhook: leave webhook faults for the next refund.
            return RefundFaults {
                outcome,
                webhook: None,
            };
        }
        let webhook = self.take(route, |f| {
            matches!(
                f,
                Fault::DuplicateWebhook | Fault::OutOfOrderWebhooks | Fault::NoWebhook
            )
        });
        RefundFaults { outcome, webhook }
    }

    /// Takes one use of the oldest pending fault of a kind that applies to `route`.
    fn take(&mut self, route: FaultRoute, kind: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let index = self.pending.iter().position(|p| {
            kind(&p.fault)
                && p.route.is_none_or(|r| r == route)
                && (!p.fault.refund_only() || route == FaultRoute::Refund)
        })?;
        let entry = &mut self.pending[index];
        let fault = entry.fault;
        entry.count -= 1;
        if entry.count == 0 {
            self.pending.remove(index);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_hits_exactly_count_calls_of_its_route() {
        let mut queue = FaultQueue::default();
        queue.push(
            FaultRequest::new(Fault::Http500)
                .times(2)
                .on(FaultRoute::Status),
        );
        assert_eq!(queue.take_transport(FaultRoute::Refund).transport, None);
        assert_eq!(
            queue.take_transport(FaultRoute::Status).transport,
            Some(Fault::Http500)
        );
        assert_eq!(
            queue.take_transport(FaultRoute::Status).transport,
            Some(Fault::Http500)
        );
        assert_eq!(queue.take_transport(FaultRoute::Status).transport, None);
    }

    #[test]
    fn refund_faults_never_hit_a_status_call() {
        let mut queue = FaultQueue::default();
        queue.push(FaultRequest::new(Fault::FailRefund));
        queue.push(FaultRequest::new(Fault::Delay { ms: 5 }));
        let taken = queue.take_transport(FaultRoute::Status);
        assert_eq!(taken.delay_ms, Some(5));
        assert_eq!(queue.take_refund().outcome, Some(Fault::FailRefund));
    }

    #[test]
    fn a_decline_leaves_webhook_faults_for_the_next_refund() {
        let mut queue = FaultQueue::default();
        queue.push(FaultRequest::new(Fault::Decline));
        queue.push(FaultRequest::new(Fault::NoWebhook));
        assert_eq!(
            queue.take_refund(),
            RefundFaults {
                outcome: Some(Fault::Decline),
                webhook: None
            }
        );
        assert_eq!(queue.take_refund().webhook, Some(Fault::NoWebhook));
    }
}
