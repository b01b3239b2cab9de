//! One request per confirmation: a guard in code, because a `disabled` attribute is applied
//! only after the next render, and two clicks (or a held Enter) can arrive before it.

use std::cell::Cell;
use std::rc::Rc;

/// Lets one submission through at a time.
#[derive(Clone, Default)]
pub struct SubmitGuard(Rc<Cell<bool>>);

/// Proof that a submission is in flight; dropping it lets the next one through.
pub struct InFlight(Rc<Cell<bool>>);

impl SubmitGuard {
    /// `None` while another submission is in flight.
    pub fn try_begin(&self) -> Option<InFlight> {
        if self.0.replace(true) {
            None
        } else {
            Some(InFlight(self.0.clone()))
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(false);
    }
}
