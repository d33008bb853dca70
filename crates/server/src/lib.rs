//! The care server: the healthcare team's side of enrolment and activation, its admin operations,
//! and the audit log. `app(state)` is the whole HTTP surface, testable without a socket.
#![forbid(unsafe_code)]

pub mod activation;
pub mod admin;
pub mod admin_staff;
pub mod admin_web;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bookings;
pub mod bus;
pub mod calls;
pub mod config;
pub mod conn;
pub mod consult_notes;
pub mod db;
pub mod device;
pub mod enrolment;
mod error;
pub mod fhir;
pub mod hub;
pub mod identity;
pub mod keys;
pub mod kiosk_api;
pub mod limits;
pub mod notes;
pub mod pki;
pub mod posture;
pub mod rooms;
pub mod scratch;
pub mod serve;
pub mod sessions;
pub mod signal;
pub mod signin;
pub mod staff;
pub mod state;
pub mod store;
pub mod tally;
pub mod team_web;
pub mod turn;
pub mod web;

pub use app::app;
pub use error::Error;
pub use state::AppState;
