//! Integration tests of the call engine: real devices where this machine has them, and bad
//! signalling from the other side.

mod devices;
mod signalling;
