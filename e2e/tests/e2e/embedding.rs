//! Embedding the way merchant front-ends do: the `<sg-refund>` element with `sgRefund.init`
//! (plain HTML, React and Vue hosts from `examples/`, built into `dist/examples/`), its token
//! callback, its events and its life cycle on the page.

use std::time::{Duration, Instant};

use e2e::widget::WAIT;
use e2e::{testid, BoxError, Ctx, Stack, Widget};
use serde_json::Value;

/// Opens `path` (an example host) for `session` and waits until its widget shows the payment.
async fn open_host(
    ctx: &Ctx,
    stack: &Stack,
    path: &str,
    session: &str,
) -> Result<Widget, BoxError> {
    ctx.client
        .goto(&stack.page_url(path, &format!("session={session}")))
        .await?;
    let widget = Widget::new(&ctx.client, session);
    widget.wait_loaded().await?;
    Ok(widget)
}

/// Runs `script` until it returns `true`; the error names `what` and the last value seen.
async fn wait_until(ctx: &Ctx, what: &str, script: &str, args: Vec<Value>) -> Result<(), BoxError> {
    let start = Instant::now();
    loop {
        let seen = ctx.client.execute(script, args.clone()).await?;
        if seen == Value::Bool(true) {
            return Ok(());
        }
        if start.elapsed() > WAIT {
            return Err(format!("{what}: not within {WAIT:?} (last: {seen})").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The texts of the host page's own list `testid` (not the widget's).
async fn host_list(ctx: &Ctx, testid: &str) -> Result<Vec<String>, BoxError> {
    let script = "return [...document.querySelectorAll(`[data-testid=${arguments[0]}] li`)].map(li => li.textContent);";
    let texts = ctx.client.execute(script, vec![testid.into()]).await?;
    Ok(serde_json::from_value(texts)?)
}

/// Calls `sgRefund.init` on the current page (served by the proxy) with the examples' own token
/// call (`examples/shared/demo-backend.js`) and `options` (a JS object literal) laid over it.
/// In `options`, `demoToken` is that call, for a test's own `fetchToken` to wrap.
async fn init_with_demo_token(ctx: &Ctx, options: &str) -> Result<(), BoxError> {
    let script = format!(
        r#"
        const done = arguments[0];
        import("/examples/shared/demo-backend.js").then(({{ fetchToken: demoToken, proxy }}) => {{
          window.sgRefund.init({{ proxy, fetchToken: demoToken, ...({options}) }});
          done(true);
        }}, (error) => done(String(error)));
        "#
    );
    let initialised = ctx.client.execute_async(&script, vec![]).await?;
    if initialised != Value::Bool(true) {
        return Err(format!("init did not run: {initialised}").into());
    }
    Ok(())
}

/// The element example page without a payment, `init` with a `fetchToken` whose first answer
/// is an expired token and whose later calls run `then` (JavaScript: `demoToken` and
/// `window.__fetches`, the calls so far, in scope).
async fn expired_first_then(ctx: &Ctx, stack: &Stack, then: &str) -> Result<(), BoxError> {
    ctx.client
        .goto(&stack.page_url("/examples/element/", ""))
        .await?;
    ctx.client
        .execute(
            "window.__expired = arguments[0]; window.__fetches = 0;",
            vec![stack.expired_token().into()],
        )
        .await?;
    let options = format!(
        r#"{{ fetchToken: async () => {{
            window.__fetches++;
            if (window.__fetches === 1) return window.__expired;
            {then}
        }} }}"#
    );
    init_with_demo_token(ctx, &options).await
}

/// No agent token anywhere in the page's DOM (a JWT's `eyJ` header): a token from
/// `fetchToken` reaches the widget in memory, never as an attribute that every script,
/// extension and session recorder on the page reads.
async fn no_token_in_the_dom(ctx: &Ctx) -> Result<(), BoxError> {
    let html = ctx
        .client
        .execute("return document.documentElement.outerHTML;", vec![])
        .await?;
    let html = html.as_str().unwrap_or_default();
    assert!(!html.contains("eyJ"), "a token in the page's DOM: {html}");
    Ok(())
}

/// The same scenario for every host: a full refund through the widget, the sandbox receives
/// exactly one, and the host's own list learns of it from `sg-refund:settled`.
async fn host_refunds_a_payment(ctx: &Ctx, path: &str) -> Result<(), BoxError> {
    let stack = ctx.stack().await;
    let session = stack.create_payment("demo-project", "25.00", "usd").await?;
    let id = session.as_str();
    let widget = open_host(ctx, stack, path, id).await?;
    widget.refund(None).await?;
    widget.wait_refund_state("accepted").await?;
    wait_until(
        ctx,
        "the host lists the settled refund",
        "return [...document.querySelectorAll('[data-testid=host-settled] li')].some(li => li.textContent.startsWith('accepted 2500 usd'));",
        vec![],
    )
    .await?;
    assert_eq!(
        host_list(ctx, "host-settled").await?.len(),
        1,
        "settled once"
    );
    let refunds = stack.sandbox_refunds(id).await?;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].amount_details.amount, 2_500);
    no_token_in_the_dom(ctx).await
}

#[test]
fn the_custom_element_refunds_a_payment_and_tells_the_host_in_typed_events() {
    e2e::run(|ctx| async move {
        host_refunds_a_payment(&ctx, "/examples/element/").await?;
        // ready once, submitted once, settled once; each detail as documented.
        let events = host_list(&ctx, "host-events").await?;
        let of = |kind: &str| -> Vec<Value> {
            events
                .iter()
                .filter_map(|e| e.strip_prefix(&format!("{kind} ")))
                .map(|json| serde_json::from_str(json).expect("a JSON detail"))
                .collect()
        };
        let ready = of("ready");
        assert_eq!(ready.len(), 1, "{events:?}");
        assert_eq!(ready[0]["amount"], 2_500);
        assert_eq!(ready[0]["currency"], "usd");
        assert_eq!(ready[0]["remaining"], 2_500);
        let submitted = of("submitted");
        assert_eq!(submitted.len(), 1, "{events:?}");
        assert_eq!(submitted[0]["amount"], 2_500);
        assert!(submitted[0]["attemptId"].is_string(), "{events:?}");
        let settled = of("settled");
        assert_eq!(settled.len(), 1, "{events:?}");
        assert_eq!(settled[0]["state"], "accepted");
        assert_eq!(settled[0]["attemptId"], submitted[0]["attemptId"]);
        assert!(settled[0]["refundId"].is_string(), "{events:?}");
        assert!(of("error").is_empty(), "{events:?}");
        Ok(())
    });
}

#[test]
fn the_react_host_refunds_a_payment_and_reacts_when_it_settles() {
    e2e::run(|ctx| async move { host_refunds_a_payment(&ctx, "/examples/react/").await });
}

#[test]
fn the_vue_host_refunds_a_payment_and_reacts_when_it_settles() {
    e2e::run(|ctx| async move { host_refunds_a_payment(&ctx, "/examples/vue/").await });
}

#[test]
fn changing_the_session_attribute_shows_the_other_payment() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let first = stack.create_payment("demo-project", "12.00", "usd").await?;
        let second = stack.create_payment("demo-project", "34.00", "eur").await?;
        let widget = open_host(&ctx, stack, "/examples/element/", first.as_str()).await?;
        assert!(widget.text(testid::PAYMENT_AMOUNT).await?.contains("12.00"));

        ctx.client
            .execute(
                "document.querySelector('sg-refund').setAttribute('session', arguments[0]);",
                vec![second.as_str().into()],
            )
            .await?;
        let other = Widget::new(&ctx.client, second.as_str());
        other.wait_loaded().await?;
        assert!(other.text(testid::PAYMENT_AMOUNT).await?.contains("34.00"));
        assert!(
            !widget.is_present(testid::PAYMENT_AMOUNT).await?,
            "the first payment is gone"
        );
        // React and Vue set the property: it reflects to the attribute.
        ctx.client
            .execute(
                "document.querySelector('sg-refund').session = arguments[0];",
                vec![first.as_str().into()],
            )
            .await?;
        widget.wait_loaded().await?;
        Ok(())
    });
}

#[test]
fn removing_the_element_closes_its_event_stream_at_the_proxy() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "10.00", "usd").await?;
        open_host(&ctx, stack, "/examples/element/", session.as_str()).await?;

        // The widget's stream is open once the count has settled (earlier pages' streams may
        // still be closing).
        let open = settled_stream_count(stack).await?;
        assert!(open >= 1, "the widget's event stream is open");
        ctx.client
            .execute("document.querySelector('sg-refund').remove();", vec![])
            .await?;
        wait_streams_below(stack, open, "the element left the page").await?;
        let left = ctx
            .client
            .execute(
                "return document.querySelectorAll('[data-sg-refund]').length;",
                vec![],
            )
            .await?;
        assert_eq!(left, 0, "nothing of the widget is left in the page");
        Ok(())
    });
}

#[test]
fn leaving_the_page_closes_the_event_stream_at_the_proxy() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "10.00", "usd").await?;
        open_host(&ctx, stack, "/examples/element/", session.as_str()).await?;
        let open = settled_stream_count(stack).await?;
        // What the browser fires as the page is left (or put in the back/forward cache).
        page_transition(&ctx, "pagehide").await?;
        wait_streams_below(stack, open, "pagehide").await?;
        Ok(())
    });
}

/// The same for a widget mounted the older way (`sgRefund.mount`, a `data-sg-refund`
/// element): its stream closes as the page is left, and opens again when the page comes back
/// from the back/forward cache, the widget mounted again from its attributes.
#[test]
fn leaving_the_page_closes_a_mounted_widgets_stream_and_coming_back_reopens_it() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let first = stack.create_payment("demo-project", "10.00", "usd").await?;
        let second = stack.create_payment("demo-project", "11.00", "usd").await?;
        open_host(&ctx, stack, "/examples/element/", first.as_str()).await?;
        let with_element = settled_stream_count(stack).await?;
        ctx.client
            .execute(
                "const [session, proxy, token] = arguments;
                 const slot = document.createElement('div');
                 slot.id = 'mounted-the-older-way';
                 document.body.append(slot);
                 sgRefund.mount(slot, { session, proxy, token, lang: 'en' });",
                vec![
                    Value::from(second.as_str()),
                    Value::from(stack.proxy_for("demo-project")),
                    Value::from(stack.token(Duration::from_secs(600))),
                ],
            )
            .await?;
        Widget::new(&ctx.client, second.as_str())
            .wait_loaded()
            .await?;
        wait_streams_at_least(stack, with_element + 1, "the mounted widget opened").await?;
        let open = settled_stream_count(stack).await?;
        page_transition(&ctx, "pagehide").await?;
        // Both close: the element's (as before) and the mounted widget's.
        wait_streams_below(stack, open - 1, "pagehide").await?;
        page_transition(&ctx, "pageshow").await?;
        wait_streams_at_least(stack, open, "pageshow").await?;
        Widget::new(&ctx.client, second.as_str())
            .wait_loaded()
            .await?;

        // Unmounted by the host, it stays unmounted through the same.
        ctx.client
            .execute(
                "sgRefund.unmount(document.getElementById('mounted-the-older-way'));",
                vec![],
            )
            .await?;
        wait_streams_below(stack, open, "the host's unmount").await?;
        let after_unmount = settled_stream_count(stack).await?;
        for event in ["pagehide", "pageshow"] {
            page_transition(&ctx, event).await?;
        }
        wait_streams_at_least(stack, after_unmount, "pageshow").await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(stack.event_streams_open().await?, after_unmount);
        let children = ctx
            .client
            .execute(
                "return document.getElementById('mounted-the-older-way').childElementCount;",
                vec![],
            )
            .await?;
        assert_eq!(children, 0, "the slot the host emptied stays empty");
        Ok(())
    });
}

/// What the browser fires as the page is left for, or shown again from, the back/forward
/// cache: `pagehide` or `pageshow`, `persisted`.
async fn page_transition(ctx: &Ctx, event: &str) -> Result<(), BoxError> {
    let script =
        format!("window.dispatchEvent(new PageTransitionEvent('{event}', {{ persisted: true }}));");
    ctx.client.execute(&script, vec![]).await?;
    Ok(())
}

/// Waits until the proxy counts at least `open` event streams; the error names `after`.
async fn wait_streams_at_least(stack: &Stack, open: u64, after: &str) -> Result<(), BoxError> {
    let start = Instant::now();
    loop {
        let now = stack.event_streams_open().await?;
        if now >= open {
            return Ok(());
        }
        if start.elapsed() > WAIT {
            return Err(
                format!("the proxy counts {now} open streams, not {open}, after {after}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the proxy counts fewer than `open` event streams; the error names `after`.
async fn wait_streams_below(stack: &Stack, open: u64, after: &str) -> Result<(), BoxError> {
    let start = Instant::now();
    loop {
        let now = stack.event_streams_open().await?;
        if now < open {
            return Ok(());
        }
        if start.elapsed() > WAIT {
            return Err(format!(
                "the proxy still counts {now} open streams (was {open}) after {after}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The proxy's open-stream count once it has been the same, and at least 1, for 300 ms.
async fn settled_stream_count(stack: &Stack) -> Result<u64, BoxError> {
    let start = Instant::now();
    let mut last = (u64::MAX, Instant::now());
    loop {
        let now = stack.event_streams_open().await?;
        if now != last.0 {
            last = (now, Instant::now());
        } else if now >= 1 && last.1.elapsed() >= Duration::from_millis(300) {
            return Ok(now);
        }
        if start.elapsed() > WAIT {
            return Err(format!("the open-stream count never settled (last {now})").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn an_element_in_the_page_waits_for_init_before_it_loads() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "13.00", "usd").await?;
        let id = session.as_str();
        // A page whose own script has not called `init` yet (the demo page, which mounts
        // through the older API): the element is there, with nothing to sign in with.
        e2e::demo::open(&ctx, stack, "").await?;
        let route = "/api/payments/{session_id}";
        let before = stack.requests_served("GET", route).await?;
        let script = r#"
            const [session, done] = arguments;
            import("/sg-refund-embed.js").then(() => {
              const element = document.createElement("sg-refund");
              element.setAttribute("session", session);
              document.body.append(element);
              done(true);
            }, (error) => done(String(error)));
        "#;
        let added = ctx.client.execute_async(script, vec![id.into()]).await?;
        assert_eq!(added, Value::Bool(true), "the embed script loaded");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mounted = ctx
            .client
            .execute(
                "return document.querySelectorAll('sg-refund [data-sg-refund]').length;",
                vec![],
            )
            .await?;
        assert_eq!(
            mounted, 0,
            "no widget before init: it would only say 'not signed in'"
        );
        assert_eq!(
            stack.requests_served("GET", route).await?,
            before,
            "nothing asked"
        );

        init_with_demo_token(&ctx, "{}").await?;
        Widget::new(&ctx.client, id).wait_loaded().await?;
        Ok(())
    });
}

#[test]
fn the_payment_is_looked_up_once_while_the_widget_loads() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "11.00", "usd").await?;
        let route = "/api/payments/{session_id}";
        let before = stack.requests_served("GET", route).await?;
        // The embed script sends the look-up while the wasm loads; the widget takes its
        // answer instead of asking again.
        open_host(&ctx, stack, "/examples/element/", session.as_str()).await?;
        let after = stack.requests_served("GET", route).await?;
        assert_eq!(after - before, 1, "one look-up of the payment, not two");
        Ok(())
    });
}

#[test]
fn fetch_token_is_called_once_for_ten_concurrent_expiries() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "40.00", "usd").await?;
        // The first token is already expired; the next one takes a while to mint, so all ten
        // widgets are told `token_expired` while it is on its way.
        expired_first_then(
            &ctx,
            stack,
            "await new Promise((r) => setTimeout(r, 1500)); return demoToken();",
        )
        .await?;
        ctx.client
            .execute(
                "const slot = document.getElementById('slot');
                 for (let i = 0; i < 10; i++) slot.append(window.sgRefund.create(arguments[0]));",
                vec![session.as_str().into()],
            )
            .await?;
        wait_until(
            &ctx,
            "all ten widgets show the payment",
            "return document.querySelectorAll(`[data-session='${arguments[0]}'] [data-testid=payment-amount]`).length === 10;",
            vec![session.as_str().into()],
        )
        .await?;
        let fetches = ctx
            .client
            .execute("return window.__fetches;", vec![])
            .await?;
        assert_eq!(
            fetches, 2,
            "one token at start, one renewal shared by the ten expiries"
        );
        no_token_in_the_dom(&ctx).await
    });
}

#[test]
fn a_rejected_fetch_token_shows_a_clear_error_and_tells_the_host() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "15.00", "usd").await?;
        ctx.client
            .goto(&stack.page_url("/examples/element/", ""))
            .await?;
        let script = r#"
            const [proxy, session] = arguments;
            const api = window.sgRefund.init({
              proxy,
              fetchToken: () => Promise.reject(new Error("the merchant's backend is down")),
            });
            document.getElementById("slot").append(api.create(session));
        "#;
        ctx.client
            .execute(
                script,
                vec![stack.proxy_url.clone().into(), session.as_str().into()],
            )
            .await?;
        let widget = Widget::new(&ctx.client, session.as_str());
        let error = widget.text(testid::FORM_ERROR).await?;
        assert!(error.contains("not signed in"), "{error}");
        wait_until(
            &ctx,
            "the host heard token_unavailable",
            "return [...document.querySelectorAll('[data-testid=host-events] li')].some(li => li.textContent.includes('\"code\":\"token_unavailable\"') && li.textContent.includes('backend is down'));",
            vec![],
        )
        .await?;
        Ok(())
    });
}

/// A renewal that `fetchToken` fails once does not sign the widget out for good: the widget
/// keeps the token it had (expired, the proxy says so again) and the next renewal asks
/// `fetchToken` anew, no reload needed. It was given an empty token, which no renewal follows.
#[test]
fn a_renewal_that_fetch_token_fails_once_is_asked_again() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "15.50", "usd").await?;
        // An expired token first; the renewal it sets off fails; the next one works.
        expired_first_then(
            &ctx,
            stack,
            r#"if (window.__fetches === 2) throw new Error("the merchant's backend blinked");
               return demoToken();"#,
        )
        .await?;
        ctx.client
            .execute(
                "document.getElementById('slot').append(window.sgRefund.create(arguments[0]));",
                vec![session.as_str().into()],
            )
            .await?;
        let widget = Widget::new(&ctx.client, session.as_str());
        widget.wait_loaded().await?;
        let fetches = ctx
            .client
            .execute("return window.__fetches;", vec![])
            .await?;
        assert_eq!(
            fetches, 3,
            "the expired token, the failed renewal, the one that worked"
        );
        Ok(())
    });
}

#[test]
fn appearance_and_language_change_live() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "20.00", "usd").await?;
        let widget = open_host(&ctx, stack, "/examples/element/", session.as_str()).await?;
        let style = |testid: &'static str, property: &'static str| {
            let client = ctx.client.clone();
            async move {
                let script = "const el = document.querySelector(`sg-refund [data-testid=${arguments[0]}]`); return getComputedStyle(el)[arguments[1]];";
                client
                    .execute(script, vec![testid.into(), property.into()])
                    .await
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
            }
        };
        ctx.client
            .execute(
                "window.sgRefund.update({ appearance: { accent: 'rgb(10, 120, 90)', radius: '0px', theme: 'dark' } });",
                vec![],
            )
            .await?;
        assert_eq!(
            style(testid::REVIEW_BUTTON, "backgroundColor").await?,
            "rgb(10, 120, 90)"
        );
        assert_eq!(style(testid::WIDGET, "borderTopLeftRadius").await?, "0px");
        // The dark palette's background, whatever the system prefers.
        assert_eq!(
            style(testid::WIDGET, "backgroundColor").await?,
            "rgb(23, 24, 28)"
        );

        ctx.client
            .execute(
                "document.querySelector('sg-refund').setAttribute('lang', 'ru');",
                vec![],
            )
            .await?;
        widget
            .wait_text(testid::TITLE, "the title in Russian", |t| {
                t.contains("Возврат")
            })
            .await?;

        // `init` again: its appearance replaces the one before, on the widgets already there.
        init_with_demo_token(&ctx, r#"{ appearance: { accent: "rgb(200, 0, 0)" } }"#).await?;
        widget.wait_loaded().await?;
        assert_eq!(
            style(testid::REVIEW_BUTTON, "backgroundColor").await?,
            "rgb(200, 0, 0)"
        );
        assert_eq!(
            style(testid::WIDGET, "borderTopLeftRadius").await?,
            "8px",
            "what the earlier appearance set is gone"
        );
        Ok(())
    });
}

/// Over HTTP/1.1 a browser gives a host six connections, and each open event stream holds one:
/// ten widgets on a page must leave the page able to call the proxy (here, to refund through a
/// widget that has no stream), that widget must still see its refund settle, and the idle ones
/// must not spend the agent's rate limit re-reading.
#[test]
fn ten_widgets_on_one_page_keep_the_page_able_to_refund() {
    e2e::run(|ctx| async move {
        const LOOKUP: (&str, &str) = ("GET", "/api/payments/{session_id}");
        let stack = ctx.stack().await;
        let mut sessions = Vec::new();
        for _ in 0..10 {
            sessions.push(stack.create_payment("demo-project", "12.00", "usd").await?);
        }
        ctx.client
            .goto(&stack.page_url("/examples/element/", ""))
            .await?;
        // Whatever an earlier page left open has closed by now.
        let before = steady_stream_count(stack).await?;
        let lookups_before = stack.requests_served(LOOKUP.0, LOOKUP.1).await?;
        init_with_demo_token(&ctx, "{}").await?;
        let add = "const slot = document.getElementById('slot');
                   for (const id of arguments[0]) slot.append(window.sgRefund.create(id));";
        let ids = |range: std::ops::Range<usize>| {
            Value::Array(sessions[range].iter().map(|s| s.as_str().into()).collect())
        };
        // Four widgets first: they take the page's four streams.
        ctx.client.execute(add, vec![ids(0..4)]).await?;
        wait_streams(stack, before + 4, "four widgets").await?;
        // Six more: none of them can have a stream.
        ctx.client.execute(add, vec![ids(4..10)]).await?;
        wait_until(
            &ctx,
            "all ten widgets show their payment",
            "return document.querySelectorAll('[data-sg-refund] [data-testid=payment-amount]').length === 10;",
            vec![],
        )
        .await?;
        let lookups = stack.requests_served(LOOKUP.0, LOOKUP.1).await?;
        assert!(
            lookups - lookups_before >= 10,
            "the proxy counts {} look-ups for ten widgets",
            lookups - lookups_before
        );
        // The tenth has no stream, yet the page can call the proxy, and the refund's outcome
        // reaches the widget: it re-reads while the refund is on its way.
        let since = Instant::now();
        let last = Widget::new(&ctx.client, sessions[9].as_str());
        last.refund(None).await?;
        last.wait_refund_state("accepted").await?;
        // Learnt by re-reading, and said as an event would say it to a screen reader.
        last.wait_text(testid::STATUS_LIVE, "the re-read announced", |t| {
            t == "Refund of $12.00: accepted."
        })
        .await?;
        // The other five without a stream have nothing on its way: they re-read once a minute
        // each, so over 12 s a few look-ups at most (re-reading every 5 s would be ten or more).
        tokio::time::sleep(Duration::from_secs(12).saturating_sub(since.elapsed())).await;
        let reread = stack.requests_served(LOOKUP.0, LOOKUP.1).await? - lookups;
        assert!(
            reread <= 8,
            "{reread} payment look-ups in 12 s from a page of mostly idle widgets"
        );
        wait_streams(stack, before + 4, "ten widgets").await?;
        Ok(())
    });
}

/// The proxy's open-stream count once it has not changed for 500 ms.
async fn steady_stream_count(stack: &Stack) -> Result<u64, BoxError> {
    let start = Instant::now();
    let mut last = (stack.event_streams_open().await?, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = stack.event_streams_open().await?;
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= Duration::from_millis(500) {
            return Ok(now);
        }
        if start.elapsed() > WAIT {
            return Err(format!("the open-stream count never settled (last {now})").into());
        }
    }
}

/// Waits until the proxy counts exactly `open` event streams (and still does 300 ms later).
async fn wait_streams(stack: &Stack, open: u64, with: &str) -> Result<(), BoxError> {
    let start = Instant::now();
    let mut held_since = None;
    loop {
        let now = stack.event_streams_open().await?;
        if now == open {
            let since = *held_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(300) {
                return Ok(());
            }
        } else {
            held_since = None;
        }
        if start.elapsed() > WAIT {
            return Err(format!("{now} streams open with {with}, not {open}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The widget's files reach the browser compressed (the `.br` / `.gz` copies the proxy sends
/// to a client that accepts them) and decode to the files that run: the widget works. Read
/// from the browser's own resource timings, so it is the browser's `Accept-Encoding` that
/// chose, not the test's.
#[test]
fn the_widgets_files_arrive_compressed_and_the_widget_runs_from_them() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "12.00", "usd").await?;
        e2e::demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        let sizes = ctx
            .client
            .execute(
                "return performance.getEntriesByType('resource')
                   .filter((e) => /\\/sg-refund(_bg\\.wasm|\\.js|-embed\\.js)$/.test(new URL(e.name).pathname))
                   .map((e) => [new URL(e.name).pathname, e.encodedBodySize, e.decodedBodySize]);",
                vec![],
            )
            .await?;
        let sizes = sizes.as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = sizes.iter().filter_map(|s| s[0].as_str()).collect();
        // The demo page loads the glue itself; a host page also loads the embed script.
        for file in ["/sg-refund.js", "/sg-refund_bg.wasm"] {
            assert!(names.contains(&file), "{file} among {names:?}");
        }
        for entry in &sizes {
            let (encoded, decoded) = (entry[1].as_u64().unwrap(), entry[2].as_u64().unwrap());
            assert!(
                encoded > 0 && encoded * 2 < decoded,
                "{entry}: sent compressed ({encoded} bytes for {decoded})"
            );
        }
        Ok(())
    });
}

#[test]
fn a_fetch_token_that_never_answers_gives_up_after_fifteen_seconds_and_is_asked_again() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "16.00", "usd").await?;
        let later = stack.create_payment("demo-project", "18.00", "usd").await?;
        ctx.client
            .goto(&stack.page_url("/examples/element/", ""))
            .await?;
        // The merchant's backend stalls: its first answer comes when the test says, past the
        // limit; the next never.
        let script = r#"
            const [proxy, session, done] = arguments;
            import("/examples/shared/demo-backend.js").then(({ fetchToken: demoToken }) => {
              window.tokenCalls = 0;
              window.api = window.sgRefund.init({
                proxy,
                fetchToken: () => {
                  window.tokenCalls++;
                  if (window.tokenCalls > 1) return new Promise(() => {});
                  return new Promise((resolve) => {
                    window.releaseToken = () => demoToken().then((token) => resolve(token));
                  });
                },
              });
              document.getElementById("slot").append(window.api.create(session));
              done(true);
            }, (error) => done(String(error)));
        "#;
        let args = vec![stack.proxy_url.clone().into(), session.as_str().into()];
        let started = ctx.client.execute_async(script, args.clone()).await?;
        assert_eq!(started, Value::Bool(true));
        // The limit is 15 s; the widget's waits are shorter.
        tokio::time::sleep(Duration::from_secs(14)).await;
        let widget = Widget::new(&ctx.client, session.as_str());
        let error = widget.text(testid::FORM_ERROR).await?;
        assert!(error.contains("not signed in"), "{error}");
        wait_until(
            &ctx,
            "the host heard token_unavailable for the timeout",
            "return [...document.querySelectorAll('[data-testid=host-events] li')].some(li => li.textContent.includes('\"code\":\"token_unavailable\"') && li.textContent.includes('timed out'));",
            vec![],
        )
        .await?;
        // The stalled call is not kept: the next widget asks again.
        let add = "document.getElementById('slot').append(window.api.create(arguments[0]));";
        ctx.client
            .execute(add, vec![session.as_str().into()])
            .await?;
        wait_until(
            &ctx,
            "fetchToken called again",
            "return window.tokenCalls === 2;",
            vec![],
        )
        .await?;
        // The first call's late token is kept: a widget added after it needs no new call.
        // Released, and the widget's own handlers run (a task later) before the next widget.
        let released = ctx
            .client
            .execute_async(
                "const done = arguments[0]; window.releaseToken().then(() => setTimeout(() => done(true), 0));",
                vec![],
            )
            .await?;
        assert_eq!(released, Value::Bool(true));
        ctx.client.execute(add, vec![later.as_str().into()]).await?;
        Widget::new(&ctx.client, later.as_str())
            .wait_loaded()
            .await?;
        let calls = ctx
            .client
            .execute("return window.tokenCalls;", vec![])
            .await?;
        assert_eq!(calls, 2, "no third call");
        Ok(())
    });
}

#[test]
fn the_token_property_signs_an_element_in() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "17.00", "usd").await?;
        let id = session.as_str();
        e2e::demo::open(&ctx, stack, "").await?;
        // No `init`: the host gives the token itself, as a property (how React and Vue set it).
        let script = r#"
            const [session, done] = arguments;
            Promise.all([import("/sg-refund-embed.js"), import("/examples/shared/demo-backend.js")])
              .then(([, backend]) => backend.fetchToken())
              .then((token) => {
                const element = document.createElement("sg-refund");
                element.session = session;
                document.body.append(element);
                element.token = token;
                done(element.getAttribute("token") === token && element.token === token);
              }, (error) => done(String(error)));
        "#;
        let set = ctx.client.execute_async(script, vec![id.into()]).await?;
        assert_eq!(set, Value::Bool(true), "the property is the attribute");
        Widget::new(&ctx.client, id).wait_loaded().await?;
        Ok(())
    });
}

/// A host page under a strict policy of its own (`examples/strict/`: no stylesheet of any
/// kind allowed, Trusted Types enforced): the widget shows styled, refunds, and the browser
/// reports no violation.
#[test]
fn the_widget_runs_styled_under_a_host_policy_with_no_inline_style_and_trusted_types() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let _ = ctx.console_log().await?;
        host_refunds_a_payment(&ctx, "/examples/strict/").await?;
        let styled = ctx
            .client
            .execute(
                "const root = document.querySelector('[data-sg-refund] .sgr');
                 const s = getComputedStyle(root);
                 return [s.maxWidth, s.borderTopStyle, s.fontSize].join(' ');",
                vec![],
            )
            .await?;
        assert_eq!(
            styled,
            Value::from("576px solid 15px"),
            "the widget's own styles apply"
        );
        let violations: Vec<String> = ctx
            .console_log()
            .await?
            .into_iter()
            .filter(|line| {
                line.contains("Content Security Policy")
                    || line.contains("Refused to")
                    || line.contains("TrustedHTML")
                    || line.contains("Trusted Type")
            })
            .collect();
        assert!(violations.is_empty(), "violations: {violations:#?}");
        // The payment the host asked for with an invalid id: said, without HTML from a string.
        let _ = stack;
        ctx.client
            .execute(
                "document.getElementById('slot').append(window.sgRefund.create('not-a-session'));",
                vec![],
            )
            .await?;
        wait_until(
            &ctx,
            "the invalid session is said",
            "return [...document.querySelectorAll('[data-testid=form-error]')].some(e => e.textContent.length > 0 && e.offsetHeight > 0);",
            vec![],
        )
        .await?;
        Ok(())
    });
}

/// A host that stops giving a `token` (React: the prop goes to `null`) hands the element back
/// to `fetchToken`, as the typings promise: the next call is signed by it.
#[test]
fn removing_the_token_property_hands_the_element_back_to_fetch_token() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "13.00", "usd").await?;
        let id = session.as_str();
        ctx.client
            .goto(&stack.page_url("/examples/element/", ""))
            .await?;
        init_with_demo_token(
            &ctx,
            "{ fetchToken: () => { window.fetched = (window.fetched || 0) + 1; return demoToken(); } }",
        )
        .await?;
        let script = r#"
            const [session, done] = arguments;
            // The host's own token is another agent's than fetchToken's: which one a refund
            // names tells which token the widget used.
            import("/examples/shared/demo-backend.js")
              .then((backend) => fetch(`${backend.proxy}/demo/token`, {
                method: "POST",
                headers: { "Content-Type": "application/json" },
                body: JSON.stringify({ agent: "host@acme.example" }),
              }))
              .then((response) => response.json())
              .then(({ token }) => {
                const element = window.sgRefund.create(session);
                element.token = token;
                document.getElementById("slot").append(element);
                done(true);
              }, (error) => done(String(error)));
        "#;
        let added = ctx.client.execute_async(script, vec![id.into()]).await?;
        assert_eq!(added, Value::Bool(true));
        let widget = Widget::new(&ctx.client, id);
        widget.wait_loaded().await?;
        // The host's own token signed it in so far: fetchToken was never asked.
        let asked = ctx
            .client
            .execute("return window.fetched || 0;", vec![])
            .await?;
        assert_eq!(
            asked,
            Value::from(0),
            "the host's token needed no fetchToken"
        );
        ctx.client
            .execute("document.querySelector('sg-refund').token = null;", vec![])
            .await?;
        wait_until(
            &ctx,
            "fetchToken asked, and its token signs the widget in",
            "return (window.fetched || 0) >= 1 && !!document.querySelector('sg-refund [data-sg-refund]');",
            vec![],
        )
        .await?;
        widget.refund(None).await?;
        widget.wait_refund_state("accepted").await?;
        let refunds = stack.sandbox_refunds(id).await?;
        assert_eq!(refunds.len(), 1, "{refunds:?}");
        let agent = &refunds[0].metadata.as_ref().expect("the refund's metadata")["agent"];
        assert_eq!(agent, "ada@acme.example", "signed by fetchToken's token");
        no_token_in_the_dom(&ctx).await
    });
}

/// `sg-refund:ready`'s `remaining` is what the widget shows as refundable: nothing for a
/// disputed payment, whatever part of it the chargeback left.
#[test]
fn ready_says_nothing_is_refundable_on_a_disputed_payment() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "80.00", "usd").await?;
        let id = session.as_str();
        stack.chargeback(id, Some(2_000)).await?;
        open_host(&ctx, stack, "/examples/element/", id).await?;
        wait_until(
            &ctx,
            "the host heard ready",
            "return document.querySelectorAll('[data-testid=host-events] li[data-type=ready]').length > 0;",
            vec![],
        )
        .await?;
        let ready = host_list(&ctx, "host-events")
            .await?
            .into_iter()
            .find(|e| e.starts_with("ready "))
            .ok_or("no ready event")?;
        let detail: Value = serde_json::from_str(ready.trim_start_matches("ready "))?;
        assert_eq!(detail["amount"], 8_000, "{detail}");
        assert_eq!(detail["remaining"], 0, "{detail}");
        Ok(())
    });
}

/// A host that mounts the older way from the document's `sg-refund:ready` (as the docs say
/// that path may) has its `onTokenExpired` kept when the page comes back from the
/// back/forward cache.
#[test]
fn a_widget_mounted_from_the_ready_event_keeps_its_token_handler_across_the_page_cache() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "14.00", "usd").await?;
        let id = session.as_str();
        // A page of the proxy's without the widget's code yet: its 404 answer.
        ctx.client
            .goto(&stack.page_url("/no-such-page", ""))
            .await?;
        let script = r#"
            const [session, proxy, token, done] = arguments;
            const slot = document.createElement("div");
            document.body.append(slot);
            window.renewals = 0;
            document.addEventListener("sg-refund:ready", (event) => {
              if (event.detail) return;
              window.sgRefund.mount(slot, { session, proxy, token, lang: "en",
                onTokenExpired: () => { window.renewals += 1; } });
            });
            import(proxy + "/sg-refund-embed.js").then(() => done(true), (e) => done(String(e)));
        "#;
        let loaded = ctx
            .client
            .execute_async(
                script,
                vec![
                    id.into(),
                    Value::from(stack.proxy_for("demo-project")),
                    Value::from(stack.expired_token()),
                ],
            )
            .await?;
        assert_eq!(loaded, Value::Bool(true));
        // The expired token: the mount asks its handler.
        wait_until(
            &ctx,
            "the handler is asked",
            "return window.renewals >= 1;",
            vec![],
        )
        .await?;
        let asked = ctx
            .client
            .execute("return window.renewals;", vec![])
            .await?;
        page_transition(&ctx, "pagehide").await?;
        page_transition(&ctx, "pageshow").await?;
        // Mounted again from its attributes, with the same handler.
        wait_until(
            &ctx,
            "the handler is asked again after the page cache",
            "return window.renewals > arguments[0];",
            vec![asked],
        )
        .await?;
        Ok(())
    });
}

/// A host that wraps `sgRefund.mount` with its own function (to log, say) after the code has
/// loaded gets its wrapper called, and the widget still mounts.
#[test]
fn a_host_may_wrap_mount_with_its_own_function() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "15.00", "usd").await?;
        let id = session.as_str();
        open_host(
            &ctx,
            stack,
            "/examples/element/",
            stack
                .create_payment("demo-project", "16.00", "usd")
                .await?
                .as_str(),
        )
        .await?;
        let script = r#"
            const [session, proxy, token, done] = arguments;
            window.sgRefund.ready.then(() => {
              const ours = window.sgRefund.mount;
              window.wrapped = 0;
              window.sgRefund.mount = (element, options) => { window.wrapped += 1; ours(element, options); };
              const slot = document.createElement("div");
              document.body.append(slot);
              try {
                window.sgRefund.mount(slot, { session, proxy, token, lang: "en" });
                done(window.wrapped);
              } catch (error) {
                done(String(error));
              }
            });
        "#;
        let wrapped = ctx
            .client
            .execute_async(
                script,
                vec![
                    id.into(),
                    Value::from(stack.proxy_for("demo-project")),
                    Value::from(stack.token(Duration::from_secs(600))),
                ],
            )
            .await?;
        assert_eq!(wrapped, Value::from(1), "the host's wrapper ran once");
        Widget::new(&ctx.client, id).wait_loaded().await?;
        Ok(())
    });
}

/// A host that removes a widget from its own listeners of the widget's events (a drawer
/// closed once a refund is `submitted`, a widget hidden at `ready` when nothing is left to
/// refund) removes that widget only. Every widget on a page runs in one wasm instance: one
/// that stopped on a widget gone mid-answer stopped them all.
#[test]
fn a_host_removing_widgets_from_their_event_listeners_leaves_the_others_working() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let first = stack.create_payment("demo-project", "21.00", "usd").await?;
        let second = stack.create_payment("demo-project", "22.00", "usd").await?;
        let third = stack.create_payment("demo-project", "23.00", "usd").await?;
        let fourth = stack.create_payment("demo-project", "24.00", "usd").await?;
        let widget = open_host(&ctx, stack, "/examples/element/", first.as_str()).await?;
        let script = r#"
            const [first, third, ...more] = arguments;
            window.__errors = [];
            window.addEventListener("error", (event) => window.__errors.push(String(event.message)));
            window.addEventListener("unhandledrejection", (event) => window.__errors.push(String(event.reason)));
            const gone = (session) => document.querySelector(`sg-refund[session="${session}"]`)?.remove();
            document.addEventListener("sg-refund:submitted", (event) => {
              if (event.detail.session === first) gone(first);
            });
            document.addEventListener("sg-refund:ready", (event) => {
              if (event.detail?.session === third) gone(third);
            });
            const slot = document.getElementById("slot");
            for (const session of more) slot.append(window.sgRefund.create(session));
        "#;
        ctx.client
            .execute(
                script,
                vec![
                    first.as_str().into(),
                    third.as_str().into(),
                    second.as_str().into(),
                    third.as_str().into(),
                ],
            )
            .await?;
        let other = Widget::new(&ctx.client, second.as_str());
        other.wait_loaded().await?;
        wait_until(
            &ctx,
            "the host removed the third widget at its ready",
            "return !document.querySelector(`sg-refund[session=\"${arguments[0]}\"]`);",
            vec![third.as_str().into()],
        )
        .await?;
        widget.refund(None).await?;
        wait_until(
            &ctx,
            "the host removed the first widget at its submitted",
            "return !document.querySelector(`sg-refund[session=\"${arguments[0]}\"]`);",
            vec![first.as_str().into()],
        )
        .await?;
        assert_eq!(stack.sandbox_refunds(first.as_str()).await?.len(), 1);
        // The first widget's answer came to a widget no longer there; the others still work.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let errors = ctx
            .client
            .execute("return window.__errors;", vec![])
            .await?;
        assert_eq!(errors, serde_json::json!([]), "the page's uncaught errors");
        other.refund(Some("5.00")).await?;
        other.wait_refund_state("accepted").await?;
        let refunds = stack.sandbox_refunds(second.as_str()).await?;
        assert_eq!(refunds.len(), 1, "{refunds:?}");
        assert_eq!(refunds[0].amount_details.amount, 500);
        // And a widget mounted now works too.
        ctx.client
            .execute(
                "document.getElementById('slot').append(window.sgRefund.create(arguments[0]));",
                vec![fourth.as_str().into()],
            )
            .await?;
        Widget::new(&ctx.client, fourth.as_str())
            .wait_loaded()
            .await?;
        Ok(())
    });
}

/// `init` called again while the first `fetchToken` has not answered (a single-page admin
/// switching agents, say): the widgets sign in with the new backend's token, not with the
/// one the earlier call brings late.
#[test]
fn init_again_while_fetch_token_is_on_its_way_signs_in_with_the_new_token() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "17.00", "usd").await?;
        let id = session.as_str();
        ctx.client
            .goto(&stack.page_url("/examples/element/", ""))
            .await?;
        let script = r#"
            const [session, done] = arguments;
            import("/examples/shared/demo-backend.js").then(({ fetchToken, proxy }) => {
              const mint = (agent) => fetch(`${proxy}/demo/token`, {
                method: "POST",
                headers: { "Content-Type": "application/json" },
                body: JSON.stringify({ agent }),
              }).then((response) => response.json()).then(({ token }) => token);
              // The first backend answers late, with another agent's token.
              const late = () => mint("earlier@acme.example")
                .then((token) => new Promise((resolve) => setTimeout(() => resolve(token), 1500)));
              window.sgRefund.init({ proxy, fetchToken: late });
              document.getElementById("slot").append(window.sgRefund.create(session));
              setTimeout(() => {
                window.sgRefund.init({ proxy, fetchToken });
                done(true);
              }, 200);
            }, (error) => done(String(error)));
        "#;
        let started = ctx.client.execute_async(script, vec![id.into()]).await?;
        assert_eq!(started, Value::Bool(true));
        let widget = Widget::new(&ctx.client, id);
        widget.wait_loaded().await?;
        // Past the late answer: nothing it brings may replace the new token.
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        widget.refund(None).await?;
        widget.wait_refund_state("accepted").await?;
        let refunds = stack.sandbox_refunds(id).await?;
        assert_eq!(refunds.len(), 1, "{refunds:?}");
        let agent = &refunds[0].metadata.as_ref().expect("the refund's metadata")["agent"];
        assert_eq!(
            agent, "ada@acme.example",
            "signed in by the second init's fetchToken"
        );
        Ok(())
    });
}

/// A page where the widget's code cannot run (WebAssembly blocked by a policy or the page's
/// CSP, a browser too old for it): each widget says so in its own place, in its language, and
/// the host hears `sg-refund:error` with code `load_failed`, instead of an empty box.
#[test]
fn a_widget_whose_code_cannot_run_says_so_and_tells_the_host() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "18.00", "usd").await?;
        // A page of the proxy's without the widget's code yet: its 404 answer.
        ctx.client
            .goto(&stack.page_url("/no-such-page", ""))
            .await?;
        let script = r#"
            const [session, proxy, done] = arguments;
            const blocked = () => Promise.reject(new WebAssembly.CompileError("WebAssembly is blocked here"));
            WebAssembly.compile = blocked;
            WebAssembly.compileStreaming = blocked;
            window.errors = [];
            document.addEventListener("sg-refund:error", (event) => window.errors.push(event.detail));
            const older = document.createElement("div");
            older.setAttribute("data-sg-refund", "");
            older.setAttribute("data-session", session);
            older.setAttribute("data-lang", "ru");
            document.body.append(older);
            import(proxy + "/sg-refund-embed.js").then(() => {
              window.sgRefund.init({ proxy, fetchToken: async () => "unused" });
              const element = window.sgRefund.create(session, { lang: "en" });
              document.body.append(element);
              done(true);
            }, (error) => done(String(error)));
        "#;
        let loaded = ctx
            .client
            .execute_async(
                script,
                vec![
                    session.as_str().into(),
                    Value::from(stack.proxy_for("demo-project")),
                ],
            )
            .await?;
        assert_eq!(loaded, Value::Bool(true));
        wait_until(
            &ctx,
            "both widgets say they cannot run",
            "return window.errors.length >= 2;",
            vec![],
        )
        .await?;
        let seen = ctx
            .client
            .execute(
                "return { errors: window.errors, element: document.querySelector('sg-refund [role=alert]')?.textContent, older: document.querySelector('[data-sg-refund] [role=alert]')?.textContent };",
                vec![],
            )
            .await?;
        for error in seen["errors"].as_array().ok_or("errors")? {
            assert_eq!(error["code"], "load_failed", "{seen}");
            assert_eq!(error["session"], session.as_str(), "{seen}");
            assert!(
                error["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("blocked"),
                "{seen}"
            );
        }
        let element = seen["element"].as_str().unwrap_or_default();
        assert!(element.starts_with("Refunds cannot run"), "{seen}");
        let older = seen["older"].as_str().unwrap_or_default();
        assert!(older.starts_with("Возвраты не работают"), "{seen}");
        Ok(())
    });
}
