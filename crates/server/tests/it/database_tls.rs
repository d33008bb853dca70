//! Issue #17: the care server reaches a PostgreSQL on another machine only over TLS, verified
//! against the CA the operator gives (`[database] ca`). The test command's cluster also listens
//! on loopback TCP for TLS only (scripts/postgres.sh: SC_TEST_DATABASE_TLS_URL and
//! SC_TEST_DATABASE_CA); without it (the SQLite pass) there is nothing to connect to.

use sc_server::conn::Store;
use sc_server::keys::ServerKeys;

/// The TLS connection string and the CA's PEM, when the test command's cluster is up.
fn cluster() -> Option<(String, Vec<u8>)> {
    let url = std::env::var("SC_TEST_DATABASE_TLS_URL").ok()?;
    let ca = std::fs::read(std::env::var("SC_TEST_DATABASE_CA").ok()?).expect("the cluster's CA");
    Some((url, ca))
}

fn keys() -> ServerKeys {
    ServerKeys::random().expect("keys")
}

#[test]
fn issue_17_with_the_databases_ca_the_connection_is_tls_and_without_it_is_refused() {
    let Some((url, ca)) = cluster() else { return };
    let store = Store::postgres_with(&url, 2, Some(&ca), keys()).expect("connected over TLS");
    let tls: bool = store
        .conn()
        .query_row("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", [], |r| r.get(0))
        .expect("pg_stat_ssl");
    assert!(tls, "the session is encrypted");
    // A whole server's store (its schema made over TLS) and the instances' bus, which rides a
    // session of its own: over TLS too.
    let scratch = sc_server::scratch::Scratch::from_env().expect("the cluster").expect("a scratch database");
    let name = scratch.url().split_whitespace().find_map(|kv| kv.strip_prefix("dbname=")).expect("its name");
    let store = sc_server::db::open_postgres_with(&format!("{url} dbname={name}"), 2, Some(&ca), &keys())
        .expect("the server's store over TLS");
    assert!(sc_server::bus::hub(&std::sync::Arc::new(store), Box::new(|| ())).is_ok(), "the rooms' bus over TLS");

    // The same server in the clear: this cluster refuses it, as a remote one should be.
    let plain = Store::postgres(&url, 2, keys()).expect_err("plain TCP is refused");
    assert!(plain.to_string().contains("no encryption"), "{plain}");
}

#[test]
fn issue_17_a_database_whose_certificate_another_ca_signed_is_refused() {
    let Some((url, _)) = cluster() else { return };
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("another CA");
    let e = Store::postgres_with(&url, 2, Some(other.cert.pem().as_bytes()), keys()).expect_err("an unknown issuer");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
}

#[test]
fn issue_17_a_remote_database_is_allowed_only_with_a_ca() {
    let e = Store::postgres("host=db.example.org dbname=care", 2, keys()).expect_err("no TLS");
    assert!(e.to_string().contains("database CA"), "{e}");
    let e = Store::postgres_with("host=127.0.0.1 dbname=care", 2, Some(b"not a certificate"), keys())
        .expect_err("a CA file with no certificate");
    assert!(e.to_string().contains("database CA"), "{e}");
}
