//! The server's store: the storage facade (crate::store) carrying the server's keys
//! (crate::keys), which sealing and the audit chain's links use.

use crate::keys::ServerKeys;

/// The server's database.
pub type Store = crate::store::Store<ServerKeys>;

/// One decision's connection to it.
pub type Conn<'a> = crate::store::Conn<'a, ServerKeys>;
