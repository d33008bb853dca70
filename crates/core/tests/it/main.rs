//! The kiosk core's integration tests, one module per behaviour.

mod lock_state;
mod module_graph;
