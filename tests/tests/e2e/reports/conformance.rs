//! One conformance suite for every report storage backend: the same checks run
//! unchanged against the folder backend (a temp folder), the S3 backend (a real
//! `moto_server` process), and the S3 backend talking to a store that rejects the
//! SDK's newer default checksums ([`StrictS3`] in front of moto; only `DeleteObjects`,
//! which needs one, may be refused there, and Sparky then deletes key by key). They are what Sparky relies on: whole-object put and
//! replace, (ranged) get, list by prefix in key order across S3's 1,000-key pages,
//! delete by prefix, keys with spaces and non-ASCII, missing objects, and objects of
//! hundreds of MiB streamed in and out without being held in memory.

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};
use sparky_core::reports::{FolderStore, Key, ReportStore, S3Store};
use sparky_tests::{
    moto::Moto,
    strict_s3::{Refused, StrictS3},
};

/// A backend under test, and what keeps it alive.
pub struct Backend {
    pub store: Arc<dyn ReportStore>,
    /// What a strict store refused.
    pub refused: Option<Refused>,
    _dir: tempfile::TempDir,
}

pub async fn folder() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    Backend { store: Arc::new(FolderStore::new(dir.path().join("reports"))), refused: None, _dir: dir }
}

/// A fresh bucket on the shared moto server.
async fn new_bucket() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let bucket = format!("conformance-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    Moto::shared().create_bucket(&bucket).await;
    bucket
}

/// A fresh bucket, under a prefix (so that the backend's prefix handling is exercised).
pub async fn s3() -> Backend {
    let store = S3Store::new(&Moto::shared().settings(&new_bucket().await, "sparky/test"));
    Backend { store: Arc::new(store), refused: None, _dir: tempfile::tempdir().expect("temp dir") }
}

/// A fresh bucket behind a store that rejects the newer checksums.
pub async fn s3_strict() -> Backend {
    let moto = Moto::shared();
    let strict = StrictS3::start(&moto.endpoint()).await;
    let mut settings = moto.settings(&new_bucket().await, "sparky/test");
    settings.endpoint = Some(strict.endpoint);
    let store = Arc::new(S3Store::new(&settings));
    Backend { store, refused: Some(strict.refused), _dir: tempfile::tempdir().expect("temp dir") }
}

fn key(k: &str) -> Key {
    Key::new(k).expect("valid key")
}

async fn get(store: &dyn ReportStore, k: &str, range: Option<std::ops::Range<u64>>) -> Option<Vec<u8>> {
    let object = store.get(&key(k), range).await.expect("get")?;
    let len = object.len;
    let bytes: Vec<u8> = object
        .body
        .try_fold(Vec::new(), |mut all, piece| async move {
            all.extend_from_slice(&piece);
            Ok(all)
        })
        .await
        .expect("read body");
    assert_eq!(bytes.len() as u64, len, "the announced length of {k}");
    Some(bytes)
}

async fn keys(store: &dyn ReportStore, prefix: &str) -> Vec<String> {
    store.list(prefix).await.expect("list").into_iter().map(|o| o.key).collect()
}

pub async fn put_get_replace(b: Backend) {
    let s = b.store.as_ref();
    s.put(&key("projects/p/builds/1/report.json"), Bytes::from_static(b"{\"v\":1}")).await.expect("put");
    assert_eq!(get(s, "projects/p/builds/1/report.json", None).await.as_deref(), Some(&b"{\"v\":1}"[..]));
    s.put(&key("projects/p/builds/1/report.json"), Bytes::from_static(b"{\"v\":22}")).await.expect("replace");
    assert_eq!(get(s, "projects/p/builds/1/report.json", None).await.as_deref(), Some(&b"{\"v\":22}"[..]));
    s.put(&key("empty"), Bytes::new()).await.expect("empty object");
    assert_eq!(get(s, "empty", None).await, Some(Vec::new()));
    let listed = s.list("projects/p/").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_str(), listed[0].size), ("projects/p/builds/1/report.json", 8));
}

pub async fn ranged_get(b: Backend) {
    let s = b.store.as_ref();
    s.put(&key("log/0"), Bytes::from_static(b"0123456789")).await.expect("put");
    assert_eq!(get(s, "log/0", Some(2..5)).await.as_deref(), Some(&b"234"[..]));
    assert_eq!(get(s, "log/0", Some(0..1)).await.as_deref(), Some(&b"0"[..]));
    assert_eq!(get(s, "log/0", Some(7..100)).await.as_deref(), Some(&b"789"[..]), "cut short at the end");
    assert_eq!(get(s, "log/0", Some(10..20)).await, Some(Vec::new()), "a range past the end is empty");
    assert_eq!(get(s, "log/0", Some(4..4)).await, Some(Vec::new()), "an empty range");
    assert_eq!(get(s, "log/none", Some(4..4)).await, None, "an empty range of nothing");
    assert_eq!(get(s, "log/none", Some(0..4)).await, None);
}

pub async fn missing_objects(b: Backend) {
    let s = b.store.as_ref();
    assert_eq!(get(s, "projects/nope/builds/1/report.json", None).await, None);
    assert!(keys(s, "projects/nope/").await.is_empty());
    assert_eq!(s.delete_prefix("projects/nope/").await.expect("delete nothing"), 0);
    // A prefix of stored keys is not an object (in a folder, it is a directory).
    s.put(&key("dir/inner/file"), Bytes::from_static(b"x")).await.expect("put");
    assert_eq!(get(s, "dir/inner", None).await, None);
    assert_eq!(get(s, "dir", Some(0..1)).await, None);
}

pub async fn list_by_prefix(b: Backend) {
    let s = b.store.as_ref();
    for k in ["p/a/1", "p/a/2", "p/ab/3", "p/b", "q/1", "p/a/sub/4"] {
        s.put(&key(k), Bytes::from(k.to_string())).await.expect("put");
    }
    assert_eq!(keys(s, "p/a").await, ["p/a/1", "p/a/2", "p/a/sub/4", "p/ab/3"], "a prefix, not a folder");
    assert_eq!(keys(s, "p/a/").await, ["p/a/1", "p/a/2", "p/a/sub/4"]);
    assert_eq!(keys(s, "").await, ["p/a/1", "p/a/2", "p/a/sub/4", "p/ab/3", "p/b", "q/1"]);
    let after: Vec<String> =
        s.list_after("p/", Some("p/a/2")).await.expect("list after").into_iter().map(|o| o.key).collect();
    assert_eq!(after, ["p/a/sub/4", "p/ab/3", "p/b"]);
    let sizes: Vec<u64> = s.list("p/a/").await.expect("list").into_iter().map(|o| o.size).collect();
    assert_eq!(sizes, [5, 5, 9]);
}

pub async fn many_keys_page_and_delete(b: Backend) {
    let s = b.store.clone();
    let names: Vec<String> = (0..1050).map(|i| format!("projects/big/builds/7/log/{i:016}")).collect();
    stream::iter(names.clone())
        .map(|k| {
            let s = s.clone();
            async move { s.put(&key(&k), Bytes::from_static(b"x")).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("put 1050 objects");
    s.put(&key("projects/big/builds/70/log/0"), Bytes::from_static(b"other build")).await.expect("put");
    assert_eq!(keys(s.as_ref(), "projects/big/builds/7/").await, names, "all 1050, in order, past one page");
    let after: Vec<String> = s
        .list_after("projects/big/builds/7/", Some(&names[20]))
        .await
        .expect("list after")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(after, names[21..]);
    assert_eq!(s.delete_prefix("projects/big/builds/7/").await.expect("delete"), 1050);
    assert!(keys(s.as_ref(), "projects/big/builds/7/").await.is_empty());
    assert_eq!(
        keys(s.as_ref(), "projects/big/").await,
        ["projects/big/builds/70/log/0"],
        "the other build stays"
    );
}

pub async fn odd_keys(b: Backend) {
    let s = b.store.as_ref();
    let odd = [
        "projects/my app/builds/1/artifacts/with space.txt",
        "projects/app/builds/1/artifacts/résumé/日本語 ✓.txt",
        "projects/app/builds/1/artifacts/a+b=c&d;e@f,g$h'i(j)!~*.txt",
        "projects/app/builds/1/artifacts/100%25 done?#.txt",
    ];
    for (i, k) in odd.iter().enumerate() {
        s.put(&key(k), Bytes::from(format!("object {i}"))).await.expect("put odd key");
    }
    for (i, k) in odd.iter().enumerate() {
        assert_eq!(get(s, k, None).await, Some(format!("object {i}").into_bytes()), "{k}");
    }
    let mut expected: Vec<String> = odd[1..].iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(keys(s, "projects/app/").await, expected);
    assert_eq!(keys(s, "projects/my app/").await, [odd[0]]);
    assert_eq!(s.delete_prefix("projects/app/builds/1/artifacts/résumé/").await.expect("delete"), 1);
    assert_eq!(get(s, odd[1], None).await, None);
}

/// Writes `mib` MiB of distinct 1 MiB blocks to `path`; returns their SHA-256.
fn big_file(path: &Path, mib: usize) -> Vec<u8> {
    use std::io::Write;
    let mut block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut hash = Sha256::new();
    for i in 0..mib {
        block[..24].copy_from_slice(format!("block {i:017}\n").as_bytes());
        file.write_all(&block).expect("write");
        hash.update(&block);
    }
    file.flush().expect("flush");
    hash.finalize().to_vec()
}

/// The peak resident memory of this process since the last reset, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).expect("VmHWM");
    kib.trim().trim_end_matches("kB").trim().parse::<u64>().expect("number") * 1024
}

pub async fn big_object_streams(b: Backend) {
    // One big object at a time in this process, so each sees its own memory peak.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    const MIB: usize = 300;
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.bin");
    let expected = big_file(&path, MIB);
    // Linux: writing 5 resets the peak to the current resident size.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the memory peak");
    let before = peak_rss();

    let k = key("projects/app/builds/1/artifacts/big.bin");
    let size = b.store.put_file(&k, &path).await.expect("put_file");
    assert_eq!(size, (MIB * 1024 * 1024) as u64);
    assert_eq!(b.store.list("projects/app/builds/1/").await.expect("list")[0].size, size);
    let object = b.store.get(&k, None).await.expect("get").expect("exists");
    assert_eq!(object.len, size);
    let mut hash = Sha256::new();
    let mut read = 0u64;
    let mut body = object.body;
    while let Some(piece) = body.next().await {
        let piece = piece.expect("piece");
        read += piece.len() as u64;
        hash.update(&piece);
    }
    assert_eq!(read, size);
    assert_eq!(hash.finalize().to_vec(), expected, "the same bytes came back");
    // A range across the boundary of two upload parts (8 MiB) and of two blocks.
    let at = 8 * 1024 * 1024u64;
    let across = get(b.store.as_ref(), k.as_str(), Some(at - 3..at + 30)).await.expect("exists");
    let byte = |offset: u64| (offset % (1024 * 1024) % 251) as u8;
    assert_eq!(&across[..3], &[byte(at - 3), byte(at - 2), byte(at - 1)]);
    assert_eq!(&across[3..27], b"block 00000000000000008\n");

    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 64 * 1024 * 1024,
        "moving {MIB} MiB raised this process's memory peak by {} MiB",
        grew >> 20
    );
}

pub async fn multipart_file(b: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("40.bin");
    let expected = big_file(&path, 40);
    let k = key("projects/app/builds/2/artifacts/40.bin");
    assert_eq!(b.store.put_file(&k, &path).await.expect("put_file"), 40 << 20);
    let bytes = get(b.store.as_ref(), k.as_str(), None).await.expect("exists");
    assert_eq!(Sha256::digest(&bytes).to_vec(), expected);
}

/// Each check, as one test per backend; behind the strict store, only `DeleteObjects`
/// may have been refused.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod folder {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() { super::$check(super::folder().await).await }
            )*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() { super::$check(super::s3().await).await }
            )*
        }
        mod s3_strict {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = super::s3_strict().await;
                let refused = backend.refused.clone().expect("strict");
                super::$check(backend).await;
                let refused = refused.lock().expect("lock").clone();
                assert!(refused.iter().all(|r| r == "POST ?delete"), "refused: {refused:?}");
            }
            )*
        }
    };
}

conformance!(
    put_get_replace,
    ranged_get,
    missing_objects,
    list_by_prefix,
    many_keys_page_and_delete,
    odd_keys,
    multipart_file,
);

/// Hundreds of MiB, on the two backends (the strict store's proxy would hold parts in
/// this process's memory, which the check measures).
mod big {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn folder() {
        super::big_object_streams(super::folder().await).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3() {
        super::big_object_streams(super::s3().await).await
    }
}

/// The strict store refuses `DeleteObjects` (it needs a checksum): deleting by prefix
/// still works, key by key, and nothing else was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusing_checksums_gets_single_deletes() {
    let b = s3_strict().await;
    for k in ["p/1", "p/2", "p/3"] {
        b.store.put(&key(k), Bytes::from_static(b"x")).await.expect("put without a checksum");
    }
    assert_eq!(b.store.delete_prefix("p/").await.expect("delete"), 3);
    assert!(keys(b.store.as_ref(), "p/").await.is_empty());
    let refused = b.refused.expect("strict").lock().expect("lock").clone();
    assert_eq!(refused, ["POST ?delete"], "only the batch delete carried a checksum");
}
