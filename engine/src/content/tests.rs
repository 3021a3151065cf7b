//! Unit tests of the local content store, on real files in temporary directories.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;

use super::*;
use crate::ErrorKind;

fn store() -> (tempfile::TempDir, LocalStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&tmp.path().join("content")).unwrap();
    (tmp, store)
}

fn expected(data: &[u8]) -> Expected {
    Expected {
        digest: Digest::of_bytes(data),
        size: data.len() as u64,
    }
}

/// Every path under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
            if path.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn blob_files(store: &LocalStore) -> Vec<PathBuf> {
    tree(&store.root().join("blobs/sha256"))
}

fn ingest_entries(store: &LocalStore) -> Vec<PathBuf> {
    tree(&store.root().join("ingest"))
}

fn read_all(store: &LocalStore, digest: &Digest) -> Vec<u8> {
    let mut blob = store.open(digest).unwrap();
    let mut out = Vec::new();
    blob.read_to_end(&mut out).unwrap();
    assert_eq!(blob.size(), out.len() as u64);
    out
}

/// Writes `data` under `reference` and commits it with its own size and digest.
fn put(store: &LocalStore, reference: &str, data: &[u8]) -> Committed {
    let mut w = store.writer(reference, None).unwrap();
    w.write_all(data).unwrap();
    w.commit(Some(data.len() as u64), Some(&Digest::of_bytes(data)))
        .unwrap()
}

#[test]
fn write_commit_read_back() {
    let (_tmp, store) = store();
    let data = b"hello, berth".repeat(10_000);
    let exp = expected(&data);
    let mut w = store.writer("pull-1", Some(exp.clone())).unwrap();
    assert_eq!(w.offset(), 0);
    assert_eq!(w.expected(), Some(&exp));
    for chunk in data.chunks(4096) {
        w.write_all(chunk).unwrap();
    }
    assert_eq!(w.offset(), data.len() as u64);
    assert_eq!(w.digest(), exp.digest);
    let committed = w.commit(None, None).unwrap();
    assert_eq!(committed, Committed::Created(exp.digest.clone()));
    assert!(committed.created());

    assert_eq!(read_all(&store, &exp.digest), data);
    let info = store.info(&exp.digest).unwrap();
    assert_eq!(info.digest, exp.digest);
    assert_eq!(info.size, data.len() as u64);
    assert!(info.committed_at <= chrono::Utc::now());
    assert_eq!(store.list().unwrap(), vec![info]);
    assert_eq!(
        blob_files(&store),
        vec![PathBuf::from(exp.digest.hex())],
        "exactly the blob, named by its hex"
    );
    assert!(store.ingests().unwrap().is_empty());
    assert!(
        ingest_entries(&store).is_empty(),
        "{:?}",
        ingest_entries(&store)
    );
    store.verify(&exp.digest).unwrap();
}

#[test]
fn empty_blob() {
    let (_tmp, store) = store();
    let c = put(&store, "empty", b"");
    assert_eq!(c.digest(), &Digest::of_bytes(b""));
    assert_eq!(read_all(&store, c.digest()), b"");
}

#[test]
fn committed_blob_is_read_only() {
    let (_tmp, store) = store();
    let c = put(&store, "ro", b"read only");
    let mode = fs::metadata(store.blob_path(c.digest()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o444);
}

#[test]
fn wrong_digest_is_refused_and_nothing_is_committed() {
    let (_tmp, store) = store();
    let wrong = Digest::of_bytes(b"something else");
    let mut w = store.writer("pull-bad", None).unwrap();
    w.write_all(b"actual bytes").unwrap();
    let e = w.commit(None, Some(&wrong)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let msg = e.to_string();
    assert!(msg.contains("pull-bad"), "{msg}");
    assert!(msg.contains(wrong.as_str()), "{msg}");
    assert!(
        msg.contains(Digest::of_bytes(b"actual bytes").as_str()),
        "{msg}"
    );
    assert!(blob_files(&store).is_empty());
    assert!(store.list().unwrap().is_empty());
    assert!(
        store.ingests().unwrap().is_empty(),
        "the bad ingest is removed"
    );
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn digest_expected_at_start_is_checked_at_commit() {
    let (_tmp, store) = store();
    let exp = expected(b"good");
    let mut w = store.writer("pull-x", Some(exp.clone())).unwrap();
    w.write_all(b"evil").unwrap();
    let e = w.commit(None, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains(exp.digest.as_str()), "{e}");
    assert!(blob_files(&store).is_empty());
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn too_many_bytes_are_refused_and_discarded() {
    let (_tmp, store) = store();
    let mut w = store.writer("long", None).unwrap();
    w.write_all(b"0123456789").unwrap();
    let e = w.commit(Some(4), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("long"), "{e}");
    assert!(blob_files(&store).is_empty());
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn too_few_bytes_keep_the_ingest_for_resuming() {
    let (_tmp, store) = store();
    let data = b"0123456789";
    let mut w = store.writer("short", None).unwrap();
    w.write_all(&data[..4]).unwrap();
    let e = w
        .commit(Some(10), Some(&Digest::of_bytes(data)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert!(blob_files(&store).is_empty());
    assert_eq!(store.status("short").unwrap().offset, 4);

    let mut w = store.writer("short", None).unwrap();
    assert_eq!(w.offset(), 4);
    w.write_all(&data[4..]).unwrap();
    let c = w.commit(Some(10), Some(&Digest::of_bytes(data))).unwrap();
    assert_eq!(read_all(&store, c.digest()), data);
}

#[test]
fn writes_past_the_expected_size_are_refused() {
    let (_tmp, store) = store();
    let mut w = store.writer("capped", Some(expected(b"abcd"))).unwrap();
    w.write_all(b"abc").unwrap();
    let e = w.write(b"de").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(w.offset(), 3, "nothing of the refused write is kept");
    w.write_all(b"d").unwrap();
    assert!(w.commit(None, None).unwrap().created());
}

#[test]
fn resume_after_an_interrupted_write() {
    let (_tmp, store) = store();
    let data: Vec<u8> = (0..=250u8).cycle().take(200_000).collect();
    let exp = expected(&data);
    let half = 123_457;

    let mut w = store.writer("pull-resume", Some(exp.clone())).unwrap();
    w.write_all(&data[..half]).unwrap();
    drop(w);

    let status = store.status("pull-resume").unwrap();
    assert_eq!(status.offset, half as u64);
    assert_eq!(status.total, Some(exp.size));
    assert_eq!(status.expected.as_ref(), Some(&exp.digest));
    assert!(blob_files(&store).is_empty());

    // A restarted daemon: a new store on the same directory.
    let store = LocalStore::open(store.root()).unwrap();
    let mut w = store.writer("pull-resume", Some(exp.clone())).unwrap();
    assert_eq!(w.offset(), half as u64);
    assert_eq!(
        w.digest(),
        Digest::of_bytes(&data[..half]),
        "hash state rebuilt"
    );
    w.write_all(&data[half..]).unwrap();
    let c = w.commit(Some(exp.size), Some(&exp.digest)).unwrap();
    assert_eq!(c, Committed::Created(exp.digest.clone()));
    assert_eq!(read_all(&store, &exp.digest), data);
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn resume_without_expected_keeps_the_recorded_one() {
    let (_tmp, store) = store();
    let exp = expected(b"abcdef");
    let mut w = store.writer("r", Some(exp.clone())).unwrap();
    w.write_all(b"abc").unwrap();
    drop(w);
    let w = store.writer("r", None).unwrap();
    assert_eq!(w.expected(), Some(&exp));
    drop(w);
    let e = store.writer("r", Some(expected(b"other"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert_eq!(
        store.status("r").unwrap().offset,
        3,
        "the ingest is untouched"
    );
}

#[test]
fn resume_after_a_crash_between_sealing_and_renaming() {
    let (_tmp, store) = store();
    let mut w = store.writer("sealed", None).unwrap();
    w.write_all(b"abc").unwrap();
    drop(w);
    let data = store
        .root()
        .join("ingest")
        .join(Digest::of_bytes(b"sealed").hex())
        .join("data");
    fs::set_permissions(&data, fs::Permissions::from_mode(0o444)).unwrap();
    let mut w = store.writer("sealed", None).unwrap();
    assert_eq!(w.offset(), 3);
    let mode = fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o200, 0o200, "writable again: {mode:o}");
    w.write_all(b"def").unwrap();
    let c = w.commit(None, Some(&Digest::of_bytes(b"abcdef"))).unwrap();
    assert_eq!(read_all(&store, c.digest()), b"abcdef");
}

#[test]
fn truncate_restarts_the_digest() {
    let (_tmp, store) = store();
    let mut w = store.writer("t", None).unwrap();
    w.write_all(b"garbage").unwrap();
    assert_eq!(
        w.truncate(100).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    w.truncate(3).unwrap();
    assert_eq!(w.offset(), 3);
    assert_eq!(w.digest(), Digest::of_bytes(b"gar"));
    w.truncate(0).unwrap();
    w.write_all(b"good").unwrap();
    let c = w.commit(Some(4), Some(&Digest::of_bytes(b"good"))).unwrap();
    assert_eq!(read_all(&store, c.digest()), b"good");
}

#[test]
fn same_blob_under_different_refs_concurrently() {
    let (_tmp, store) = store();
    let data: Vec<u8> = (0..=255u8).cycle().step_by(7).take(300_000).collect();
    let exp = expected(&data);
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            let data = data.clone();
            let exp = exp.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || -> Option<Committed> {
                barrier.wait();
                let mut w = match store.writer(&format!("pull-{i}"), Some(exp.clone())) {
                    Ok(w) => w,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => return None,
                    Err(e) => panic!("{e}"),
                };
                for chunk in data.chunks(997) {
                    w.write_all(chunk).unwrap();
                }
                Some(w.commit(Some(exp.size), Some(&exp.digest)).unwrap())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created = results.iter().flatten().filter(|c| c.created()).count();
    assert_eq!(created, 1, "{results:?}");
    for c in results.iter().flatten() {
        assert_eq!(c.digest(), &exp.digest);
    }
    assert_eq!(blob_files(&store), vec![PathBuf::from(exp.digest.hex())]);
    assert_eq!(read_all(&store, &exp.digest), data);
    store.verify(&exp.digest).unwrap();
    assert!(store.ingests().unwrap().is_empty());
    assert!(
        ingest_entries(&store).is_empty(),
        "{:?}",
        ingest_entries(&store)
    );
}

#[test]
fn same_ref_concurrently_is_refused() {
    let (_tmp, store) = store();
    let mut first = store.writer("pull-same", None).unwrap();
    first.write_all(b"first").unwrap();

    let other = store.clone();
    let e = thread::spawn(move || other.writer("pull-same", None).map(|_| ()))
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("pull-same"), "{e}");
    assert!(e.to_string().contains("locked by another writer"), "{e}");
    // A second store on the same directory (another process) is refused too.
    let e = LocalStore::open(store.root())
        .unwrap()
        .writer("pull-same", None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    // The refused writer did not disturb the first one.
    assert_eq!(store.status("pull-same").unwrap().offset, 5);

    drop(first);
    let w = store.writer("pull-same", None).unwrap();
    assert_eq!(w.offset(), 5);
}

#[test]
fn many_threads_race_for_one_ref() {
    let (_tmp, store) = store();
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                match store.writer("contended", None) {
                    Ok(mut w) => {
                        w.write_all(b"x").unwrap();
                        // Hold the lock until every thread has tried.
                        thread::sleep(std::time::Duration::from_millis(200));
                        true
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                        false
                    }
                }
            })
        })
        .collect();
    let winners = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1);
    assert_eq!(store.status("contended").unwrap().offset, 1);
}

#[test]
fn abort_racing_writers_never_share_an_ingest() {
    let (_tmp, store) = store();
    let n = 6;
    let rounds = 300;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..rounds {
                    if i % 2 == 0 {
                        match store.writer("churn", None) {
                            Ok(mut w) => {
                                // While we hold it, nobody else may write or remove it.
                                let before = w.offset();
                                w.write_all(b"ab").unwrap();
                                thread::yield_now();
                                assert_eq!(store.status("churn").unwrap().offset, before + 2);
                            }
                            // Never a writer on an ingest removed under it.
                            Err(e) => assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}"),
                        }
                    } else {
                        match store.abort("churn") {
                            Ok(()) => {}
                            Err(e) => assert!(
                                matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Unavailable),
                                "{e}"
                            ),
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn a_lock_taken_on_a_removed_ingest_is_not_held() {
    // Writer A opens the lock file, then stalls before flock; meanwhile the ingest is
    // aborted and writer B creates it anew. A must not get the new ingest.
    let (_tmp, store) = store();
    drop(store.writer("stale", None).unwrap());
    let dir = store.root().join("ingest").join(ingest::dir_name("stale"));
    let stale = ingest::open_lock(&dir, true).unwrap().unwrap();
    store.abort("stale").unwrap();
    let b = store.writer("stale", None).unwrap();
    assert!(matches!(
        ingest::lock_opened(&dir, stale).unwrap(),
        ingest::Locked::Gone
    ));
    drop(b);
    // Same when the ingest is simply gone.
    let stale = ingest::open_lock(&dir, false).unwrap().unwrap();
    store.abort("stale").unwrap();
    assert!(matches!(
        ingest::lock_opened(&dir, stale).unwrap(),
        ingest::Locked::Gone
    ));
    assert!(ingest::open_lock(&dir, false).unwrap().is_none());
}

#[test]
fn list_delete_and_info() {
    let (_tmp, store) = store();
    let a = put(&store, "a", b"aaa").digest().clone();
    let b = put(&store, "b", b"bbbb").digest().clone();
    let mut want = vec![(a.clone(), 3), (b.clone(), 4)];
    want.sort();
    let got: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|i| (i.digest, i.size))
        .collect();
    assert_eq!(got, want);

    let mut reader = store.open(&a).unwrap();
    store.delete(&a).unwrap();
    let mut kept = String::new();
    reader.read_to_string(&mut kept).unwrap();
    assert_eq!(kept, "aaa", "an open reader keeps reading a deleted blob");

    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.list().unwrap()[0].digest, b);
    for e in [
        store.delete(&a).unwrap_err(),
        store.info(&a).unwrap_err(),
        store.open(&a).map(|_| ()).unwrap_err(),
        store.verify(&a).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains(a.as_str()), "{e}");
    }
}

#[test]
fn ingests_status_and_abort() {
    let (_tmp, store) = store();
    let exp = expected(b"0123456789");
    let mut w1 = store.writer("one", Some(exp.clone())).unwrap();
    w1.write_all(b"0123").unwrap();
    let mut w2 = store.writer("two", None).unwrap();
    w2.write_all(b"xy").unwrap();
    drop(w2);

    let all = store.ingests().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].reference, "one");
    assert_eq!(all[0].offset, 4);
    assert_eq!(all[0].total, Some(10));
    assert_eq!(all[0].expected.as_ref(), Some(&exp.digest));
    assert!(all[0].started_at <= all[0].updated_at);
    assert_eq!(all[0], w1.status());
    assert_eq!(all[1].reference, "two");
    assert_eq!(all[1].offset, 2);
    assert_eq!(all[1].total, None);
    assert_eq!(all[1].expected, None);

    let e = store.abort("one").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "live writer: {e}");
    assert_eq!(store.status("one").unwrap().offset, 4);
    drop(w1);
    store.abort("one").unwrap();
    store.abort("two").unwrap();
    assert!(store.ingests().unwrap().is_empty());
    assert!(ingest_entries(&store).is_empty());
    for e in [
        store.abort("one").unwrap_err(),
        store.status("two").unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
    // An aborted ref starts afresh.
    assert_eq!(store.writer("one", None).unwrap().offset(), 0);
}

#[test]
fn committing_an_existing_blob_is_idempotent() {
    let (_tmp, store) = store();
    let first = put(&store, "first", b"same bytes");
    assert!(first.created());
    let second = put(&store, "second", b"same bytes");
    assert_eq!(second, Committed::AlreadyExisted(first.digest().clone()));
    assert_eq!(blob_files(&store).len(), 1);
    assert_eq!(read_all(&store, first.digest()), b"same bytes");
    assert!(ingest_entries(&store).is_empty());

    // Asking to write a blob the store has is answered up front.
    let e = store
        .writer("third", Some(expected(b"same bytes")))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(e.to_string().contains(first.digest().as_str()), "{e}");
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn refs_cannot_escape_the_ingest_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("content");
    let store = LocalStore::open(&root).unwrap();
    let refs = [
        "../../escape",
        "/etc/passwd",
        "a/b/../c",
        "..",
        ".",
        ".trash-x",
        "with\nnewline",
    ];
    for r in refs {
        let mut w = store.writer(r, None).unwrap();
        w.write_all(r.as_bytes()).unwrap();
    }
    assert_eq!(tree(tmp.path()).first(), Some(&PathBuf::from("content")));
    assert!(
        tree(tmp.path()).iter().all(|p| p.starts_with("content")),
        "{:?}",
        tree(tmp.path())
    );
    let names: Vec<_> = fs::read_dir(root.join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), refs.len());
    for name in names {
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
    }
    let mut got: Vec<_> = store
        .ingests()
        .unwrap()
        .into_iter()
        .map(|s| s.reference)
        .collect();
    got.sort();
    let mut want: Vec<_> = refs.iter().map(|r| r.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "refs are stored, not derived from paths");
    for r in refs {
        store.abort(r).unwrap();
    }
    assert!(ingest_entries(&store).is_empty());

    for bad in [String::new(), "x".repeat(MAX_REF_LEN + 1)] {
        let e = store.writer(&bad, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}

#[test]
fn verify_detects_corruption() {
    let (_tmp, store) = store();
    let c = put(&store, "v", b"pristine");
    store.verify(c.digest()).unwrap();
    let path = store.blob_path(c.digest());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"tampered").unwrap();
    let e = store.verify(c.digest()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(e.to_string().contains(c.digest().as_str()), "{e}");
    assert!(
        e.to_string()
            .contains(Digest::of_bytes(b"tampered").as_str()),
        "{e}"
    );
}

#[test]
fn open_cleans_crash_leftovers_and_keeps_interrupted_writes() {
    let (_tmp, store) = store();
    let mut w = store.writer("interrupted", None).unwrap();
    w.write_all(b"partial").unwrap();
    drop(w);
    let ingest = store.root().join("ingest");
    // A crash while deleting an ingest, and one while creating one.
    fs::create_dir_all(ingest.join(".trash-1-2-3/sub")).unwrap();
    fs::write(ingest.join(".trash-1-2-3/sub/data"), b"x").unwrap();
    let unset = ingest.join(Digest::of_bytes(b"never set up").hex());
    fs::create_dir(&unset).unwrap();
    fs::write(unset.join("lock"), b"").unwrap();

    let store = LocalStore::open(store.root()).unwrap();
    let left: Vec<_> = fs::read_dir(&ingest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        left,
        vec![Digest::of_bytes(b"interrupted").hex().to_string()]
    );
    assert_eq!(store.status("interrupted").unwrap().offset, 7);
    assert!(blob_files(&store).is_empty());
}

#[test]
fn traits_are_object_safe_and_narrow() {
    fn read_only(p: &dyn Provider, d: &Digest) -> u64 {
        p.info(d).unwrap().size
    }
    fn ingest_only(i: &dyn Ingester) -> Writer {
        i.writer("narrow", None).unwrap()
    }
    fn full(_: &dyn Store) {}
    let (_tmp, store) = store();
    let mut w = ingest_only(&store);
    w.write_all(b"narrow").unwrap();
    let c = w.commit(None, None).unwrap();
    assert_eq!(read_only(&store, c.digest()), 6);
    full(&store);
}
