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
fn a_recomputed_hash_without_the_link_is_still_found() {
    // An editor who recomputes the edited row's own hash still breaks the next row's link.
    let h = logged(4);
    let c = h.state.db();
    c.execute("UPDATE audit SET detail = 'forged' WHERE id = 2", []).expect("edit");
    let prev: Vec<u8> = c.query_row("SELECT hash FROM audit WHERE id = 1", [], |r| r.get(0)).expect("prev");
    let row = audit::tail(&c, 10).expect("tail").into_iter().find(|r| r.id == 2).expect("row 2");
    c.execute("UPDATE audit SET hash = ?1 WHERE id = 2", [row.hash(&prev).to_vec()]).expect("rehash");
    drop(c);
    assert_eq!(broken_at(&h), Some(3));
}
