//! Per-test laptop profiles: a temporary data directory and its keystore entry, removed afterwards.

use sc_core::keystore::Keystore;
use sc_core::record::DataDir;
use sc_e2e::CareServer;

pub struct Laptop {
    pub dir: tempfile::TempDir,
    pub data: DataDir,
    pub keystore: Keystore,
}

impl Laptop {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(dir.path()).expect("data dir");
        let keystore = tokio::task::spawn_blocking(Keystore::secret_service)
            .await
            .expect("join")
            .expect("the Secret Service keystore must run for these tests (scripts/test.sh starts one)");
        Laptop { dir, data, keystore }
    }

    pub async fn enrol(&self, server: &CareServer, prison: &str) -> sc_core::record::EnrolmentRecord {
        let token = server.token(prison).parse().expect("token");
        sc_core::enrol::enrol(&self.data, &self.keystore, &server.url, &token).await.expect("enrol")
    }

    pub fn kiosk(&self) -> sc_core::Kiosk {
        sc_core::Kiosk::open(self.dir.path(), Keystore::secret_service).expect("kiosk")
    }
}

impl Drop for Laptop {
    fn drop(&mut self) {
        let _ = self.keystore.delete(&self.data.profile_id());
    }
}

pub fn creds(username: &str, password: &str, code: String) -> sc_core::activate::Credentials {
    sc_core::activate::Credentials { username: username.into(), password: password.to_owned().into(), totp: code }
}
