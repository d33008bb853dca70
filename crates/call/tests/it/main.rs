//! Integration tests of the call engine: real devices where this machine has them, bad
//! signalling from the other side, and the consultation's rules on simulated time.

mod devices;
mod lifecycle;
mod rules;
mod signalling;
