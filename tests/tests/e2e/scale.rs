//! `sparky-bench scale` runs: every probe at a small history (2,000 builds filled the
//! bench's way), with small counts. Its figures are not asserted (timings belong to
//! the bench); that the store's hot queries use indexes is checked by sparky-core's
//! `store::plans` tests.

use sparky_tests::scale;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_bench_runs_every_probe() {
    let options = scale::ScaleOptions { sizes: vec![2_000], quick: true };
    scale::run(options).await.expect("sparky-bench scale --sizes 2k --quick");
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(scale::parse_size("0").expect("0"), 0);
    assert_eq!(scale::parse_size("100k").expect("100k"), 100_000);
    assert_eq!(scale::parse_size("1M").expect("1M"), 1_000_000);
    assert!(scale::parse_size("lots").is_err());
}
