//! The audit log is hash-chained: editing, deleting or reordering a row is detected and the first
//! broken link is named.

use crate::support::Harness;
use sc_server::audit::{self, Entry};

fn logged(n: usize) -> Harness {
    let h = Harness::new();
    for i in 0..n {
        let entry = Entry { event: "test", outcome: "ok", detail: Some(format!("row {i}")), ..Default::default() };
        audit::record(&h.state.db(), h.now() + i as i64, &entry).expect("record");
    }
    h
}

fn broken_at(h: &Harness) -> Option<i64> {
    audit::verify(&h.state.db()).expect("verify").err().map(|b| b.id)
}

#[test]
fn an_intact_chain_verifies() {
    let h = logged(5);
    let v = audit::verify(&h.state.db()).expect("verify").expect("intact");
    assert_eq!(v.rows, 5);
    assert_ne!(v.head, audit::GENESIS);
}

#[test]
fn an_edited_row_is_named() {
    let h = logged(5);
    h.state.db().execute("UPDATE audit SET detail = 'nothing to see' WHERE id = 3", []).expect("edit");
    assert_eq!(broken_at(&h), Some(3));
    let h = logged(5);
    h.state.db().execute("UPDATE audit SET at = at + 1 WHERE id = 2", []).expect("edit");
    assert_eq!(broken_at(&h), Some(2));
}

#[test]
fn a_deleted_row_is_found_at_the_gap() {
    let h = logged(5);
    h.state.db().execute("DELETE FROM audit WHERE id = 2", []).expect("delete");
    assert_eq!(broken_at(&h), Some(3));
}

#[test]
fn reordered_rows_are_found() {
    let h = logged(5);
    // Swap rows 2 and 4 (ids stay in order, contents move).
    let c = h.state.db();
    c.execute_batch("UPDATE audit SET id = -2 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 4; UPDATE audit SET id = 4 WHERE id = -2;").expect("swap");
    drop(c);
    assert_eq!(broken_at(&h), Some(2));
}

#[test]
fn issue_13_an_edit_with_every_link_recomputed_without_the_key_is_found() {
    // An editor with the database but not the audit key rewrites row 2 and recomputes every
    // link from there on, as the unkeyed chain would have let them.
    let h = logged(4);
    let c = h.state.db();
    c.execute("UPDATE audit SET detail = 'forged' WHERE id = 2", []).expect("edit");
    let mut prev: Vec<u8> = c.query_row("SELECT hash FROM audit WHERE id = 1", [], |r| r.get(0)).expect("prev");
    for row in audit::tail(&c, 10).expect("tail").into_iter().filter(|r| r.id >= 2) {
        let hash = row.unkeyed_hash(&prev).to_vec();
        c.execute("UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3", sc_server::params![prev, hash, row.id])
            .expect("relink");
        prev = hash;
    }
    drop(c);
    assert_eq!(broken_at(&h), Some(2));
}

#[test]
fn issue_13_a_checkpoint_catches_truncation_and_rewriting_and_only_ours_count() {
    let h = logged(6);
    let (key, public) = (h.state.command_key.clone(), h.state.command_public);
    let signed = audit::checkpoint(&h.state.db(), &key, h.now()).expect("db").expect("intact");
    let holds = audit::check_checkpoint(&h.state.db(), &signed, &public).expect("db");
    assert_eq!(holds.map(|cp| (cp.last_id, cp.rows)), Ok((6, 6)));
    // Another server's key, or an edited checkpoint: not ours.
    let other = crate::support::command_key();
    let other_public: [u8; 32] = ring::signature::KeyPair::public_key(&*other).as_ref().try_into().expect("32");
    assert_eq!(
        audit::check_checkpoint(&h.state.db(), &signed, &other_public).expect("db"),
        Err(audit::CheckpointMismatch::NotOurs)
    );
    let mut edited = signed.clone();
    edited.payload.0 =
        String::from_utf8(edited.payload.0.clone()).expect("json").replace("\"rows\":6", "\"rows\":9").into_bytes();
    assert_eq!(
        audit::check_checkpoint(&h.state.db(), &edited, &public).expect("db"),
        Err(audit::CheckpointMismatch::NotOurs)
    );
    // More rows since: still holds. The newest rows removed: the chain alone verifies, the
    // checkpoint does not.
    audit::record(&h.state.db(), h.now(), &Entry { event: "test", outcome: "ok", ..Default::default() })
        .expect("record");
    assert!(audit::check_checkpoint(&h.state.db(), &signed, &public).expect("db").is_ok());
    h.state.db().execute("DELETE FROM audit WHERE id >= 5", []).expect("truncate");
    assert_eq!(broken_at(&h), None, "what is left still chains");
    assert_eq!(
        audit::check_checkpoint(&h.state.db(), &signed, &public).expect("db"),
        Err(audit::CheckpointMismatch::Truncated(6))
    );
    // A log rewritten up to the checkpoint's row (by someone holding the key) differs there.
    let h = logged(6);
    let signed = audit::checkpoint(&h.state.db(), &key, h.now()).expect("db").expect("intact");
    h.state.db().execute("UPDATE audit SET hash = ?1 WHERE id = 6", [vec![0u8; 32]]).expect("rewrite");
    assert_eq!(
        audit::check_checkpoint(&h.state.db(), &signed, &public).expect("db"),
        Err(audit::CheckpointMismatch::Rewritten(6))
    );
}

/// A database from before the key: its unkeyed chain is checked whole, then linked under the key
/// once; a broken one is refused with the row named, not laundered.
#[test]
fn issue_13_an_older_unkeyed_chain_is_checked_then_linked_under_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("care.sqlite");
    let make_v1 = |edit: bool| {
        let _ = std::fs::remove_file(&path);
        let store = sc_server::db::open(&path, &sc_server::keys::ServerKeys::random().expect("keys")).expect("db");
        let c = store.conn();
        for i in 0..4 {
            let entry = Entry { event: "test", outcome: "ok", detail: Some(format!("row {i}")), ..Default::default() };
            audit::record(&c, 1_800_000_000 + i, &entry).expect("record");
        }
        // As the previous version wrote it: SHA-256 links, no scheme recorded.
        let mut prev = audit::GENESIS.to_vec();
        for row in audit::tail(&c, 10).expect("tail") {
            let hash = row.unkeyed_hash(&prev).to_vec();
            c.execute(
                "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
                sc_server::params![prev, hash, row.id],
            )
            .expect("v1 link");
            prev = hash;
        }
        c.execute("DROP TABLE audit_meta", []).expect("as before");
        if edit {
            c.execute("UPDATE audit SET detail = 'forged' WHERE id = 3", []).expect("edit");
        }
    };
    make_v1(false);
    let key = sc_server::keys::ServerKeys::random().expect("keys");
    let store = sc_server::db::open(&path, &key).expect("an intact older chain opens");
    let c = store.conn();
    let v = audit::verify(&c).expect("db").expect("linked under the key");
    assert_eq!(v.rows, 4);
    drop(c);
    assert!(
        audit::verify(
            &sc_server::db::open(&path, &sc_server::keys::ServerKeys::random().expect("keys")).expect("db").conn()
        )
        .expect("db")
        .is_err(),
        "under another key the chain does not verify"
    );
    make_v1(true);
    let e = sc_server::db::open(&path, &key).expect_err("a broken older chain is refused");
    assert!(e.to_string().contains("broken at row 3"), "{e}");
}

#[test]
fn issue_13_the_database_and_keys_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("care-data");
    sc_server::pki::init(&data, &["localhost".into()]).expect("init");
    let key = sc_server::pki::server_keys(&data).expect("server keys");
    drop(sc_server::db::open(&data.join("care.sqlite"), &key).expect("db"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for entry in std::fs::read_dir(&data).expect("list") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert!(data.join(sc_server::pki::SERVER_KEY).exists());
}
