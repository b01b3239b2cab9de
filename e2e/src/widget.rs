//! The widget as an agent meets it: one `<div data-sg-refund data-session=…>` on the page,
//! its parts found by `data-testid` (the list is `frontend/src/testids.rs`), typed into,
//! clicked and read — with waits, because everything in it arrives asynchronously.

use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, Locator};

use crate::BoxError;

/// How long a wait lasts before it fails: generous for a loaded 2-core machine, while a
/// passing wait returns as soon as the condition holds.
pub const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(40);

/// The `data-testid`s the widget renders: the widget's own list, compiled into this crate too
/// (the `frontend` crate itself builds for wasm only), so a renamed id cannot drift apart.
#[path = "../../frontend/src/testids.rs"]
pub mod testid;

/// One widget on the page, found by its payment.
#[derive(Clone)]
pub struct Widget {
    client: Client,
    /// CSS selector of the host element.
    root: String,
    session: String,
}

impl Widget {
    /// The widget showing payment `session` on the current page.
    pub fn new(client: &Client, session: &str) -> Self {
        Self {
            client: client.clone(),
            root: format!("[data-sg-refund][data-session=\"{session}\"]"),
            session: session.to_owned(),
        }
    }

    /// CSS selector of the host element, e.g. to scope an accessibility audit.
    pub fn root_selector(&self) -> &str {
        &self.root
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    fn selector(&self, testid: &str) -> String {
        format!("{} [data-testid=\"{testid}\"]", self.root)
    }

    /// Every element with `testid` inside this widget, now (no waiting).
    pub async fn all(&self, testid: &str) -> Result<Vec<Element>, BoxError> {
        Ok(self
            .client
            .find_all(Locator::Css(&self.selector(testid)))
            .await?)
    }

    pub async fn is_present(&self, testid: &str) -> Result<bool, BoxError> {
        Ok(!self.all(testid).await?.is_empty())
    }

    /// The first element with `testid`, waiting for it to appear.
    pub async fn find(&self, testid: &str) -> Result<Element, BoxError> {
        let start = Instant::now();
        loop {
            if let Some(element) = self.all(testid).await?.into_iter().next() {
                return Ok(element);
            }
            if start.elapsed() > WAIT {
                return Err(format!(
                    "`{testid}` did not appear in the widget of {} within {WAIT:?}",
                    self.session
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The widget has rendered the payment (its amount is on screen).
    pub async fn wait_loaded(&self) -> Result<(), BoxError> {
        self.find(testid::PAYMENT_AMOUNT).await?;
        Ok(())
    }

    /// The visible text of the first element with `testid`, waiting for it to appear; no-break
    /// spaces read as plain spaces (see [`plain_spaces`]).
    pub async fn text(&self, testid: &str) -> Result<String, BoxError> {
        Ok(plain_spaces(&self.find(testid).await?.text().await?))
    }

    /// The visible texts of every element with `testid`, now.
    pub async fn texts(&self, testid: &str) -> Result<Vec<String>, BoxError> {
        let mut texts = Vec::new();
        for element in self.all(testid).await? {
            texts.push(plain_spaces(&element.text().await?));
        }
        Ok(texts)
    }

    /// Waits until the joined texts of every `testid` element satisfy `expected`; returns them.
    /// The error names what was awaited and what was last seen.
    pub async fn wait_text(
        &self,
        testid: &str,
        what: &str,
        expected: impl Fn(&str) -> bool,
    ) -> Result<String, BoxError> {
        let start = Instant::now();
        let mut last;
        loop {
            // A re-render can swap an element between finding and reading it: read again.
            last = match self.texts(testid).await {
                Ok(texts) => texts.join(" | "),
                Err(e) => format!("<unreadable: {e}>"),
            };
            if expected(&last) {
                return Ok(last);
            }
            if start.elapsed() > WAIT {
                return Err(format!(
                    "`{testid}` of {} never showed {what} within {WAIT:?}; last seen: {last:?}",
                    self.session
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until no element with `testid` is left.
    pub async fn wait_gone(&self, testid: &str) -> Result<(), BoxError> {
        let start = Instant::now();
        while self.is_present(testid).await? {
            if start.elapsed() > WAIT {
                return Err(format!(
                    "`{testid}` of {} did not go away within {WAIT:?}",
                    self.session
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    pub async fn click(&self, testid: &str) -> Result<(), BoxError> {
        click_centred(&self.client, self.find(testid).await?).await
    }

    /// Empties a field with Backspace and types `text` key by key, as an agent would.
    /// (WebDriver's own "clear" fires no `input` event, so the widget would not see it.)
    pub async fn type_into(&self, testid: &str, text: &str) -> Result<(), BoxError> {
        let field = self.find(testid).await?;
        let current = field.prop("value").await?.unwrap_or_default();
        let erase: String =
            std::iter::repeat_n(char::from(Key::Backspace), current.chars().count()).collect();
        field
            .send_keys(&format!("{}{erase}{text}", char::from(Key::End)))
            .await?;
        Ok(())
    }

    /// The current `value` of a form field.
    pub async fn value(&self, testid: &str) -> Result<String, BoxError> {
        Ok(self
            .find(testid)
            .await?
            .prop("value")
            .await?
            .unwrap_or_default())
    }

    /// Starts recording every combination of refund states this widget shows (a
    /// `MutationObserver` in the page), so a state that lasts a few hundred milliseconds is not
    /// missed between two polls. Read it with [`Widget::recorded_states`].
    pub async fn record_states(&self) -> Result<(), BoxError> {
        let script = r#"
            const root = document.querySelector(arguments[0]);
            const states = [];
            const seen = () => {
                const now = Array.from(root.querySelectorAll('[data-testid="refund-row"]'))
                    .map(row => row.dataset.state).join(',');
                if (states[states.length - 1] !== now) states.push(now);
            };
            seen();
            new MutationObserver(seen).observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
            root.__e2eStates = states;
        "#;
        self.client
            .execute(script, vec![self.root.clone().into()])
            .await?;
        Ok(())
    }

    /// What [`Widget::record_states`] saw: one entry per change, each the comma-joined
    /// `data-state` of every refund row, oldest row first.
    pub async fn recorded_states(&self) -> Result<Vec<String>, BoxError> {
        let script = "const root = document.querySelector(arguments[0]); return (root && root.__e2eStates) || [];";
        let states = self
            .client
            .execute(script, vec![self.root.clone().into()])
            .await?;
        Ok(serde_json::from_value(states)?)
    }

    /// Whether the refund list recorded since [`Widget::record_states`] showed `first`, then
    /// later `then`; and what it recorded, for the assertion's message.
    pub async fn showed_in_order(
        &self,
        first: &str,
        then: &str,
    ) -> Result<(bool, Vec<String>), BoxError> {
        let states = self.recorded_states().await?;
        let at = |state: &str| states.iter().position(|s| s == state);
        let in_order = matches!((at(first), at(then)), (Some(a), Some(b)) if a < b);
        Ok((in_order, states))
    }

    /// Waits until some refund row is in `state` (`in_progress`, `accepted`, …).
    pub async fn wait_refund_state(&self, state: &str) -> Result<(), BoxError> {
        let selector = format!(
            "{} [data-testid=\"refund-row\"][data-state=\"{state}\"]",
            self.root
        );
        let start = Instant::now();
        while self
            .client
            .find_all(Locator::Css(&selector))
            .await?
            .is_empty()
        {
            if start.elapsed() > WAIT {
                let seen = self.texts(testid::REFUND_STATE).await.unwrap_or_default();
                return Err(format!(
                    "no refund of {} reached `{state}` within {WAIT:?}; states shown: {seen:?}",
                    self.session
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Full or partial, review, confirm: the usual path. `amount` `None` means a full refund.
    pub async fn refund(&self, amount: Option<&str>) -> Result<(), BoxError> {
        self.open_confirmation(amount).await?;
        self.click(testid::CONFIRM_BUTTON).await
    }

    /// Fills the form and opens the confirmation, without confirming.
    pub async fn open_confirmation(&self, amount: Option<&str>) -> Result<(), BoxError> {
        match amount {
            None => self.click(testid::MODE_FULL).await?,
            Some(amount) => {
                self.click(testid::MODE_PARTIAL).await?;
                self.type_into(testid::AMOUNT_INPUT, amount).await?;
            }
        }
        self.click(testid::REVIEW_BUTTON).await?;
        self.find(testid::CONFIRM_DIALOG).await?;
        Ok(())
    }

    /// A real double click (two presses within the double-click interval) on `testid`.
    pub async fn double_click(&self, testid: &str) -> Result<(), BoxError> {
        let element = self.find(testid).await?;
        let script = "arguments[0].scrollIntoView({ block: 'center', inline: 'center' });";
        self.client
            .execute(script, vec![serde_json::to_value(&element)?])
            .await?;
        let mouse = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement {
                element,
                duration: None,
                x: 0.0,
                y: 0.0,
            })
            .then(PointerAction::Down {
                button: fantoccini::actions::MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: fantoccini::actions::MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Down {
                button: fantoccini::actions::MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: fantoccini::actions::MOUSE_BUTTON_LEFT,
            });
        self.client.perform_actions(mouse).await?;
        self.client.release_actions().await?;
        Ok(())
    }

    /// Whether the focused element is the one with `testid` in this widget.
    pub async fn has_focus(&self, testid: &str) -> Result<bool, BoxError> {
        let script = "const el = document.querySelector(arguments[0]); \
                      return !!el && document.activeElement === el;";
        let focused = self
            .client
            .execute(script, vec![self.selector(testid).into()])
            .await?;
        Ok(focused.as_bool().unwrap_or(false))
    }
}

/// Scrolls `element` to the middle of the window, then clicks it like a mouse would. WebDriver
/// scrolls only as far as the element's edge, where the demo page's sticky or overlapping
/// parts can catch the click instead.
pub async fn click_centred(client: &Client, element: Element) -> Result<(), BoxError> {
    let script = "arguments[0].scrollIntoView({ block: 'center', inline: 'center' });";
    client
        .execute(script, vec![serde_json::to_value(&element)?])
        .await?;
    element.click().await?;
    Ok(())
}

/// Presses `keys` one after another on whatever has focus, as real key events (so Tab moves
/// focus and Space or Enter activate, exactly as on a keyboard).
pub async fn press(client: &Client, keys: &[Key]) -> Result<(), BoxError> {
    let mut actions = KeyActions::new("keyboard".into());
    for key in keys {
        let value: char = (*key).into();
        actions = actions
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
    }
    client.perform_actions(actions).await?;
    client.release_actions().await?;
    Ok(())
}

/// Types `text` into whatever has focus, character by character.
pub async fn type_text(client: &Client, text: &str) -> Result<(), BoxError> {
    let mut actions = KeyActions::new("keyboard".into());
    for value in text.chars() {
        actions = actions
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
    }
    client.perform_actions(actions).await?;
    client.release_actions().await?;
    Ok(())
}

/// A short description of the focused element, for failure messages in keyboard tests.
pub async fn focused(client: &Client) -> Result<String, BoxError> {
    let script = "const el = document.activeElement; if (!el) return 'nothing'; \
                  return el.tagName.toLowerCase() + (el.dataset.testid ? '[' + el.dataset.testid + ']' : '') \
                  + ' ' + (el.textContent || '').trim().slice(0, 40);";
    Ok(client
        .execute(script, vec![])
        .await?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// WebDriver reports U+00A0 as a plain space; the narrow one (U+202F) is folded too, so
/// expected texts built with `shared::Money::format` compare equal to what is read.
pub fn plain_spaces(text: &str) -> String {
    text.replace(['\u{a0}', '\u{202f}'], " ")
}
