//! The harness itself: a failing scenario leaves a screenshot, the console log and the page.

use e2e::artifacts;

#[test]
fn a_failing_scenario_leaves_a_screenshot_and_the_console_log() {
    let name = "harness_failure_example";
    let failure = e2e::try_run(name, |ctx| async move {
        ctx.client
            .goto(
                "data:text/html,<h1>hello</h1><script>console.error('boom from the page')</script>",
            )
            .await?;
        Err("the scenario failed on purpose".into())
    })
    .expect_err("the scenario fails");

    let dir = artifacts::dir_for(name);
    assert!(
        failure.contains("the scenario failed on purpose"),
        "{failure}"
    );
    assert!(failure.contains(&dir.display().to_string()), "{failure}");
    let png = std::fs::read(dir.join("screenshot.png")).expect("a screenshot");
    assert_eq!(&png[1..4], b"PNG");
    let console = std::fs::read_to_string(dir.join("console.log")).expect("a console log");
    assert!(
        console.contains("boom from the page"),
        "console.log: {console}"
    );
    let page = std::fs::read_to_string(dir.join("page.html")).expect("the page");
    assert!(page.contains("hello"));
    artifacts::clear(&dir);
}

#[test]
fn a_panicking_scenario_is_reported_with_its_message() {
    let failure = e2e::try_run("harness_panic_example", |_ctx| async move {
        assert_eq!(1 + 1, 3, "arithmetic is broken");
        Ok(())
    })
    .expect_err("the scenario fails");
    assert!(failure.contains("arithmetic is broken"), "{failure}");
    artifacts::clear(&artifacts::dir_for("harness_panic_example"));
}

#[test]
fn each_scenario_starts_in_a_fresh_tab() {
    e2e::run(|ctx| async move {
        ctx.client.goto("data:text/html,<p>first</p>").await?;
        Ok(())
    });
    e2e::run(|ctx| async move {
        assert_eq!(ctx.client.windows().await?.len(), 1);
        let url = ctx.client.current_url().await?;
        assert_eq!(url.as_str(), "about:blank");
        Ok(())
    });
}
