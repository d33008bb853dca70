//! End-to-end tests on real parts: the care server on loopback TLS, the Secret Service keystore
//! (gnome-keyring under dbus-run-session), and the kiosk window under Xvfb. One module per behaviour.

#![allow(unreachable_pub, reason = "support modules share items across the test binary")]

mod accessibility;
mod activation;
mod admin_cli;
mod authz_matrix;
mod brick;
mod call;
mod care_pathway;
mod clinical_safety;
mod config_crash;
mod demo;
mod faults;
mod frame_sizes;
mod house_rules;
mod installer;
mod instances;
mod keyboard;
mod keystore;
mod kiosk_keyring;
mod kiosk_session;
mod link;
mod lock_from_any_thread;
mod lockdown;
mod log_secrets;
mod operator_tls;
mod pinning;
mod posture;
mod reference;
mod shaped_call;
mod share;
mod share_window;
mod signalling;
mod support;
mod turn_relay;
mod turn_tls;
mod window;
mod windows_policy;
