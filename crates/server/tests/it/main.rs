//! The care server's integration tests, one module per behaviour, all through `app()` without a
//! socket (tower's `oneshot`).

#![allow(unreachable_pub, reason = "support modules share items across the test binary")]

mod activation_refusals;
mod admin_web;
mod audit_chain;
mod bounded_work;
mod brick;
mod care_pathway;
mod concurrency;
mod database_tls;
mod enrolment;
mod lockout;
mod secrets_at_rest;
mod session_life;
mod shared_rooms;
mod sign_in_abuse;
mod staff_life;
mod support;
