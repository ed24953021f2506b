//! Nothing accepted is lost: the fault benchmarks (`sparky-bench chaos` and
//! `contention`) run small, asserting their target zeros.

use std::time::Duration;

use sparky_tests::faults::{chaos, contention};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_functions_at_random_loses_no_accepted_build() {
    let options = chaos::ChaosOptions {
        window: Duration::from_secs(8),
        builds: 120,
        drain: Duration::from_secs(25),
        client_patience: Duration::from_secs(15),
        ..chaos::ChaosOptions::default()
    };
    let figures = chaos::run(options).await.expect("chaos run");
    println!("{figures}");
    assert_eq!(figures.accepted, figures.posted, "every posted build is accepted in the end\n{figures}");
    assert_eq!(figures.missing, 0, "accepted builds without a row\n{figures}");
    assert_eq!(figures.stuck, 0, "builds not terminal after the drain\n{figures}");
    assert_eq!(figures.lost_never_started, 0, "lost builds that never started\n{figures}");
    assert_eq!(figures.beyond_retries, 0, "builds run more often than retries allow\n{figures}");
    assert_eq!(figures.duplicates, 0, "one key answered with two builds\n{figures}");
    assert_eq!(figures.integrity, "ok", "{figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_triggers_on_one_database_answer_busy_with_retry_after_and_lose_nothing() {
    let options = contention::ContentionOptions {
        window: Duration::from_secs(5),
        drain: Duration::from_secs(25),
        patience: Duration::from_secs(10),
        ..contention::ContentionOptions::default()
    };
    let figures = contention::run(options).await.expect("contention run");
    println!("{figures}");
    assert!(figures.accepted > 0, "{figures}");
    assert_eq!(figures.errors_500, 0, "responses 500\n{figures}");
    assert_eq!(figures.without_retry_after, 0, "503 without Retry-After\n{figures}");
    assert_eq!(figures.lost, 0, "lost builds\n{figures}");
    assert_eq!(figures.not_terminal, 0, "accepted builds not terminal after the drain\n{figures}");
    assert_eq!(figures.integrity, "ok", "{figures}");
}
