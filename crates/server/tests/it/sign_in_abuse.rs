//! Issue #13, fix 1: one credential check for every channel. Nobody can lock an account out from
//! a channel that does not admit its role; parallel attempts cannot pass a lock-out; a success
//! keeps the back-off; each source is rate limited; Argon2 runs in bounded pools.

use crate::support::{Harness, PASSWORD};
use axum::http::StatusCode;
use sc_server::config::ServerConfig;
use sc_server::signin::Channel;
use serde_json::json;

fn web_login(user: &str, password: &str, code: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "username": user, "password": password, "code": code })).expect("json")
}

#[tokio::test]
async fn issue_13_anonymous_tries_with_a_nurse_s_name_on_the_web_pages_lock_nobody_out() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    let unknown = h.post("/consult/login", web_login("nobody.x", "wrong password!!", "000000")).await;
    for path in ["/consult/login", "/admin/login"] {
        for i in 1..=6 {
            let answer = h.post(path, web_login("nurse.a", "wrong password!!", "000000")).await;
            assert_eq!(answer, unknown, "{path} try {i}: a nurse's name is answered as an unknown one");
        }
    }
    let rows = h.audit_rows();
    let tries: Vec<_> = rows.iter().filter(|r| r.event.ends_with("_login")).collect();
    assert_eq!(tries.len(), 12);
    assert!(
        tries.iter().all(|r| r.reason.as_deref() == Some("wrong_role") && r.detail.is_none()),
        "audited as a wrong role, nothing locked: {tries:?}"
    );
    assert_eq!(h.state.tally.pending("consultant_login", "unknown_staff"), 1, "a made-up name is only counted");
    // The nurse was not locked out: she activates at once.
    let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), h.now());
    let (status, reply) = h.post("/v1/activate", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
}

#[tokio::test]
async fn issue_13_a_consultant_s_name_at_a_laptop_counts_against_the_laptop_only() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("dr.b", "consultant", None);
    let laptop = h.enrol("HMP Alpha").await;
    for _ in 0..4 {
        let (body, _) = laptop.activation("dr.b", "wrong password!!", "000000", h.now());
        assert_eq!(h.post("/v1/activate", body).await.0, StatusCode::FORBIDDEN);
    }
    // The consultant can still sign in on her own page.
    h.sign_in("/consult/login", "dr.b", &secret).await.expect("the consultant was not locked out");
}

/// Twenty wrong passwords at once, from one laptop or on one web page: only the first five are
/// checked; the rest meet the lock-out those five caused, and the back-off moves one step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_parallel_attempts_cannot_pass_a_lock_out() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    h.add_staff("dr.b", "consultant", None);
    let laptop = h.enrol("HMP Alpha").await;
    let bodies: Vec<Vec<u8>> =
        (0..20).map(|_| laptop.activation("nurse.a", "wrong password!!", "000000", h.now()).0).collect();
    let answers = futures_util::future::join_all(bodies.into_iter().map(|b| h.post("/v1/activate", b))).await;
    let web = (0..20).map(|_| h.post("/consult/login", web_login("dr.b", "wrong password!!", "000000")));
    let web_answers = futures_util::future::join_all(web).await;
    // A second laptop guessing twenty names at once meets its own device lock-out the same way.
    let guesser = h.enrol("HMP Alpha").await;
    let bodies: Vec<Vec<u8>> =
        (0..20).map(|i| guesser.activation(&format!("guess{i}"), "wrong password!!", "000000", h.now()).0).collect();
    let guesses = futures_util::future::join_all(bodies.into_iter().map(|b| h.post("/v1/activate", b))).await;
    let rows = h.audit_rows();
    let guessed = rows.iter().filter(|r| r.reason.as_deref() == Some("unknown_staff")).count();
    assert_eq!(guessed, 5, "names tried before the device's lock-out held: {guesses:?}");
    for (event, answers) in [("activate", &answers), ("consultant_login", &web_answers)] {
        let checked = rows.iter().filter(|r| r.event == event && r.reason.as_deref() == Some("bad_password")).count();
        assert_eq!(checked, 5, "{event}: passwords checked before the lock-out held: {rows:?}");
        let locked = answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).count();
        assert_eq!(locked, 15, "{event}: {answers:?}");
        assert!(
            answers.iter().all(|(_, b)| b["retry_after_secs"].as_u64().is_none_or(|s| s <= 300)),
            "one lock-out, not four escalating ones: {answers:?}"
        );
    }
}

#[tokio::test]
async fn issue_13_a_success_does_not_erase_the_back_off() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("dr.b", "consultant", None);
    let mut lengths = Vec::new();
    for _round in 0..2 {
        for _ in 0..5 {
            h.post("/consult/login", web_login("dr.b", "wrong password!!", "000000")).await;
        }
        let (status, reply) = h.post("/consult/login", web_login("dr.b", "wrong password!!", "000000")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{reply}");
        let secs = reply["retry_after_secs"].as_i64().expect("retry");
        lengths.push(secs);
        h.advance(secs + 1);
        // The owner signs in between the guessing runs.
        h.sign_in("/consult/login", "dr.b", &secret).await.expect("signed in after the lock-out");
    }
    assert_eq!(lengths, vec![300, 600], "the second lock-out is longer despite the success between");
    // A day after the last lock-out ended, the back-off starts again.
    h.advance(24 * 3600 + 601);
    for _ in 0..5 {
        h.post("/consult/login", web_login("dr.b", "wrong password!!", "000000")).await;
    }
    let (_, reply) = h.post("/consult/login", web_login("dr.b", "wrong password!!", "000000")).await;
    assert_eq!(reply["retry_after_secs"], 300);
}

#[tokio::test]
async fn issue_13_each_source_is_rate_limited_on_every_sign_in_route() {
    let h = Harness::with_config(ServerConfig::default());
    h.add_prison("HMP Alpha");
    let laptop = h.enrol("HMP Alpha").await;
    let burst = ServerConfig::default().sign_in.burst;
    // Unknown names: no account is locked, only the rate limit can answer 429.
    for i in 0..burst {
        let path = ["/consult/login", "/admin/login"][i as usize % 2];
        let (status, ..) = h.post_from("192.0.2.7", path, web_login(&format!("guess{i}"), "password!!", "0")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "try {i} is within the burst");
    }
    let busy = |(status, retry, reply): (StatusCode, Option<String>, serde_json::Value), what: &str| {
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{what}: {reply}");
        assert_eq!(reply["error"], "busy");
        let secs = reply["retry_after_secs"].as_u64().expect("a wait");
        assert!((1..=6).contains(&secs), "10 a minute: {secs}");
        assert_eq!(retry, Some(secs.to_string()), "and the Retry-After header");
    };
    busy(h.post_from("192.0.2.7", "/consult/login", web_login("g", "p", "0")).await, "the web pages");
    // Activation has a budget of its own (a prison's laptops share its address). Stale requests
    // are refused without counting against the laptop, so only the limit can answer 429.
    let stale = || laptop.activation("someone", "password!!", "000000", h.now() - 600).0;
    for i in 0..ServerConfig::default().sign_in.laptop_burst {
        let (status, _, reply) = h.post_from("192.0.2.7", "/v1/activate", stale()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "activation {i} is within its own burst: {reply}");
    }
    busy(h.post_from("192.0.2.7", "/v1/activate", stale()).await, "activation");
    // Another source is not affected, nor are the routes that take no password.
    let (status, ..) = h.post_from("192.0.2.8", "/consult/login", web_login("g", "p", "0")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, ..) = h.post_from("192.0.2.7", "/v1/device/poll", b"{}".to_vec()).await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// With every web-page password check slot taken (a flood), an activation still goes through,
/// and the next web sign-in waits for a slot instead of hashing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_flood_on_the_web_pages_cannot_starve_activations() {
    let mut config = ServerConfig::default();
    config.sign_in.burst = 10_000;
    config.sign_in.laptop_burst = 10_000;
    config.sign_in.hash_checks = 2;
    let h = Harness::with_config(config);
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    let pools = h.state.hash_pools.clone();
    let held = (pools.acquire(Channel::ConsultantPage).await, pools.acquire(Channel::AdminPage).await);
    assert_eq!(pools.available(Channel::ConsultantPage), 0);
    let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), h.now());
    let (status, reply) = h.post("/v1/activate", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let waiting = h.post("/consult/login", web_login("dr.x", "password!!", "000000"));
    let waited = tokio::time::timeout(std::time::Duration::from_millis(500), waiting).await;
    assert!(waited.is_err(), "the web sign-in waited for a slot: {waited:?}");
    drop(held);
    let (status, _) = h.post("/consult/login", web_login("dr.x", "password!!", "000000")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "and went ahead once one was free");
}
