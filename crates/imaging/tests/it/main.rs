//! sc-imaging's integration tests: decoding the pydicom wheel's test files (real CT, MR in several
//! transfer syntaxes, JPEG, RLE, JPEG 2000, multi-frame, and its broken ones), window/level
//! arithmetic on objects built here, and robustness against damaged input.

#![allow(unreachable_pub, reason = "support modules share items across the test binary")]

mod cine;
mod decode;
mod deflate;
mod measure;
mod robustness;
mod share;
mod support;
mod window;
