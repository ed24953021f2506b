//! The build page in headless Chromium with the log in S3 and the four functions as
//! four processes (render-ui only sees what run stored): a new line shows within a
//! second, colours show as colours, a reload picks up where the log is and goes on
//! following it, and the finished page has the whole log in order.

use std::time::{Duration, Instant};

use serde_json::json;
use sparky_tests::webdriver::Driver;

use super::setup::{Backend, Site};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_open_build_page_follows_a_log_in_s3_within_a_second_and_after_a_reload() {
    let site = Site::four(Backend::S3, None).await;
    let gates = site.dir.path().join("gates");
    std::fs::create_dir_all(&gates).expect("gates");
    site.project(
        "app",
        &format!(
            "env: {{ GATES: {} }}\nscript: |\n  printf 'first \\033[32mgreen\\033[0m\\n'\n  \
             while [ ! -e \"$GATES/1\" ]; do sleep 0.02; done\n  echo second\n  \
             while [ ! -e \"$GATES/2\" ]; do sleep 0.02; done\n  echo third\n  \
             while [ ! -e \"$GATES/3\" ]; do sleep 0.02; done\n  echo last\n",
            gates.display()
        ),
    );
    let id = site.api.trigger("app", json!({})).await;
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser(true).await.expect("browser");
    let page = site.ui.url(&format!("/builds/{id}"));
    browser.goto(&page).await.expect("build page");
    browser.wait_for_text("#log", WAIT, |t| t.contains("first green")).await.expect("first line");
    let green = browser.execute("return document.querySelector('#log span.ansi-fg-2').textContent;").await;
    assert_eq!(green.expect("script"), json!("green"), "the colour code became a coloured span");

    std::fs::write(gates.join("1"), "").expect("gate 1");
    let printed = Instant::now();
    browser.wait_for_text("#log", WAIT, |t| t.contains("second")).await.expect("live line");
    let shown = printed.elapsed();
    println!("build page on S3, four processes: a new line showed {shown:?} after it was printed");
    assert!(shown < Duration::from_secs(1), "a new line took {shown:?} to show");

    // A reload shows what is stored and follows on from there.
    browser.goto(&page).await.expect("reload");
    browser.wait_for_text("#log", WAIT, |t| t.contains("second")).await.expect("log after reload");
    std::fs::write(gates.join("2"), "").expect("gate 2");
    browser.wait_for_text("#log", WAIT, |t| t.contains("third")).await.expect("followed after reload");
    std::fs::write(gates.join("3"), "").expect("gate 3");
    browser.wait_for_text("#status", WAIT, |t| t == "succeeded").await.expect("final status");
    let log = browser.wait_for_text("#log", WAIT, |t| t.contains("last")).await.expect("whole log");
    // Each line after its number (a link to itself, left out when the log is copied).
    assert_eq!(log.lines().collect::<Vec<_>>(), ["1first green", "2second", "3third", "4last"]);
    browser.close().await;
}
