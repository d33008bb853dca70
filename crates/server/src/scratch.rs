//! A PostgreSQL database of its own for one test, on the cluster `SC_TEST_DATABASE_URL` names
//! (scripts/postgres.sh starts one): created empty, dropped with it. Unset, tests use SQLite.

use crate::conn::Store;
use crate::Error;

/// The variable naming the test cluster, as a libpq key=value string (`host=/tmp/x user=y`).
pub const ENV: &str = "SC_TEST_DATABASE_URL";

/// A database created for one test; dropped (its connections ended) when this is.
#[derive(Debug)]
pub struct Scratch {
    admin: String,
    name: String,
    url: String,
}

impl Scratch {
    /// A fresh database on the test cluster; `None` when [`ENV`] is unset.
    ///
    /// # Errors
    /// The cluster is unreachable or refused.
    pub fn from_env() -> Option<Result<Self, Error>> {
        let admin = std::env::var(ENV).ok().filter(|u| !u.is_empty())?;
        Some(Self::on(&admin))
    }

    /// A fresh database on the cluster whose key=value connection string is `admin`.
    ///
    /// # Errors
    /// The cluster is unreachable or refused.
    pub fn on(admin: &str) -> Result<Self, Error> {
        let admin = admin.to_owned();
        let mut id = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| Error::Crypto("random".into()))?;
        let name = format!("sc_test_{}", hex::encode(id));
        Self::admin(&admin, &format!("CREATE DATABASE {name}"))?;
        // Later keys win in a libpq key=value string.
        let url = format!("{admin} dbname={name}");
        Ok(Scratch { admin, name, url })
    }

    fn admin(admin: &str, sql: &str) -> Result<(), Error> {
        let store = Store::postgres(admin, 1, crate::keys::ServerKeys::random()?)?;
        store.conn().execute_batch(sql)?;
        Ok(())
    }

    /// Its connection string.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = Self::admin(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            tracing::warn!(error = %e, database = %self.name, "dropping a test database");
        }
    }
}

/// A store for a test: a scratch PostgreSQL database when [`ENV`] is set (kept alive by the
/// returned [`Scratch`]), else in-memory SQLite; random keys either way.
///
/// # Errors
/// The database could not be made.
pub fn test_store() -> Result<(Store, Option<Scratch>), Error> {
    test_store_with(&crate::keys::ServerKeys::random()?)
}

/// As [`test_store`], with the server keys `keys` (a second instance shares the first's).
///
/// # Errors
/// The database could not be made.
pub fn test_store_with(keys: &crate::keys::ServerKeys) -> Result<(Store, Option<Scratch>), Error> {
    match Scratch::from_env() {
        Some(scratch) => {
            let scratch = scratch?;
            let store = crate::db::open_postgres(scratch.url(), 8, keys)?;
            Ok((store, Some(scratch)))
        }
        None => {
            let conn = rusqlite::Connection::open_in_memory().map_err(crate::store::Error::from)?;
            Ok((crate::db::open_sqlite_conn(conn, keys)?, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_decisions_one_after_another_reuse_the_pool() {
        let (store, _scratch) = test_store().expect("store");
        for i in 0..200i64 {
            let c = store.conn();
            let n: i64 = c.query_row("SELECT ?1 + 1", crate::params![i], |r| r.get(0)).expect("query");
            assert_eq!(n, i + 1);
        }
    }
}
