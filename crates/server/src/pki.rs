//! The server's keys: a private CA (pinned by laptops), the TLS leaf it issues, and the Ed25519
//! command-signing key. Created once by `init`, loaded at start.

use crate::Error;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

const CA_CERT: &str = "ca.crt.pem";
const CA_KEY: &str = "ca.key.pem";
const TLS_CERT: &str = "server.crt.pem";
const TLS_KEY: &str = "server.key.pem";
const COMMAND_KEY: &str = "command.key.der";

/// The loaded keys.
pub struct Pki {
    /// The CA certificate (DER) that laptops pin.
    pub ca_der: Vec<u8>,
    /// TLS chain: leaf, then CA (the laptop's enrolment bootstrap looks for the CA in the chain).
    pub chain: Vec<CertificateDer<'static>>,
    /// TLS leaf key.
    pub key: PrivateKeyDer<'static>,
    /// The command-signing key.
    pub command_key: std::sync::Arc<Ed25519KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pki(..)")
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(Error::io(format!("creating {}", path.display())))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(Error::io(format!("writing {}", path.display())))
}

fn rc(e: rcgen::Error) -> Error {
    Error::Crypto(format!("certificate: {e}"))
}

/// The CA's own parameters: what it was made with and what it signs as (its name).
fn ca_params() -> Result<CertificateParams, Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca_params.distinguished_name.push(DnType::CommonName, "SecureConsult care server CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(ca_params)
}

/// A TLS certificate for a relay (coturn's `--cert`, with `--pkey`) valid for `names`, issued by
/// the CA in `dir`: the laptops trust a `turns:` relay as they trust this server, by the pinned
/// CA and nothing else. Returns (chain PEM: the leaf, then the CA; key PEM).
pub fn relay_cert(dir: &Path, names: &[String]) -> Result<(String, String), Error> {
    let key_path = dir.join(CA_KEY);
    let ca_pem =
        std::fs::read_to_string(key_path.as_path()).map_err(Error::io(format!("reading {}", key_path.display())))?;
    let ca_key = KeyPair::from_pem(&ca_pem).map_err(rc)?;
    let ca_cert_path = dir.join(CA_CERT);
    let ca_cert =
        std::fs::read_to_string(&ca_cert_path).map_err(Error::io(format!("reading {}", ca_cert_path.display())))?;
    if names.is_empty() {
        return Err(Error::Config("a relay certificate needs the relay's host name or address".into()));
    }
    // The laptops trust anything this CA issued for the name they connect to: a relay's key
    // (held by coturn's user) must not also pass for this server's.
    let server = read_cert(&dir.join(TLS_CERT))?;
    let server =
        webpki::EndEntityCert::try_from(&server).map_err(|e| Error::Crypto(format!("server certificate: {e}")))?;
    for name in names {
        let parsed = rustls_pki_types::ServerName::try_from(name.as_str())
            .map_err(|_| Error::Config(format!("{name:?} is not a host name or address")))?;
        if server.verify_is_valid_for_subject_name(&parsed).is_ok() {
            return Err(Error::Config(format!(
                "{name:?} is the care server's own name: give the relay a name of its own (the laptops would take its certificate for the server's)"
            )));
        }
    }
    let leaf_key = KeyPair::generate().map_err(rc)?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(rc)?;
    leaf.distinguished_name.push(DnType::CommonName, "SecureConsult TURN relay");
    let issuer = Issuer::new(ca_params()?, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(rc)?;
    Ok((format!("{}{ca_cert}", leaf_cert.pem()), leaf_key.serialize_pem()))
}

/// Writes a relay's certificate (`relay.crt.pem`) and key (`relay.key.pem`, 0600) into `out`.
pub fn write_relay_cert(dir: &Path, names: &[String], out: &Path) -> Result<(), Error> {
    let (chain, key) = relay_cert(dir, names)?;
    std::fs::create_dir_all(out).map_err(Error::io(format!("creating {}", out.display())))?;
    write_private(&out.join("relay.key.pem"), key.as_bytes())?;
    write_private(&out.join("relay.crt.pem"), chain.as_bytes())?;
    Ok(())
}

/// Creates the CA, TLS leaf (valid for `names`) and command key in `dir` (0700), unless they
/// exist; the server secret comes with the first `server_keys`.
pub fn init(dir: &Path, names: &[String]) -> Result<(), Error> {
    private_dir(dir)?;
    if dir.join(CA_CERT).exists() {
        return Ok(());
    }
    let ca_key = KeyPair::generate().map_err(rc)?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rc)?;

    let leaf_key = KeyPair::generate().map_err(rc)?;
    let mut leaf_params = CertificateParams::new(names.to_vec()).map_err(rc)?;
    leaf_params.distinguished_name.push(DnType::CommonName, "SecureConsult care server");
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(rc)?;

    let rng = ring::rand::SystemRandom::new();
    let command = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| Error::Crypto("command key".into()))?;

    write_private(&dir.join(CA_KEY), ca_key.serialize_pem().as_bytes())?;
    write_private(&dir.join(TLS_KEY), leaf_key.serialize_pem().as_bytes())?;
    write_private(&dir.join(COMMAND_KEY), command.as_ref())?;
    write_private(&dir.join(TLS_CERT), leaf_cert.pem().as_bytes())?;
    // The CA certificate goes last: its presence marks a complete init.
    write_private(&dir.join(CA_CERT), ca_cert.pem().as_bytes())?;
    Ok(())
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, Error> {
    CertificateDer::from_pem_file(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// The server secret's file: 32 random bytes, 0600, beside the other keys and never in the
/// database (`crate::keys` derives the audit and seal keys from it).
pub const SERVER_KEY: &str = "server.key";

/// The server's keys from `dir`, its secret made on first use (a server set up before there was
/// one gets it here; `db::open` then links the audit chain and seals the TOTP seeds under it).
pub fn server_keys(dir: &Path) -> Result<crate::keys::ServerKeys, Error> {
    let path = dir.join(SERVER_KEY);
    let secret: [u8; 32] = match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| Error::Config(format!("{}: not a 32-byte key", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                .map_err(|_| Error::Crypto("random server key".into()))?;
            write_private(&path, &secret)?;
            secret
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
    };
    crate::keys::ServerKeys::derive(&secret)
}

/// Makes `dir` (the server's data directory) if needed and closes it to everyone but the
/// server's own user (0700): it holds the keys and the database.
pub fn private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::io(format!("closing {}", dir.display())))?;
    }
    Ok(())
}

/// Loads the keys from `dir`.
pub fn load(dir: &Path) -> Result<Pki, Error> {
    let ca = read_cert(&dir.join(CA_CERT))?;
    let leaf = read_cert(&dir.join(TLS_CERT))?;
    let key_path = dir.join(TLS_KEY);
    let key =
        PrivateKeyDer::from_pem_file(&key_path).map_err(|e| Error::Config(format!("{}: {e}", key_path.display())))?;
    let cmd_path = dir.join(COMMAND_KEY);
    let cmd = std::fs::read(&cmd_path).map_err(Error::io(format!("reading {}", cmd_path.display())))?;
    let command_key =
        Ed25519KeyPair::from_pkcs8(&cmd).map_err(|_| Error::Config(format!("{}: not a key", cmd_path.display())))?;
    Ok(Pki { ca_der: ca.to_vec(), chain: vec![leaf, ca], key, command_key: std::sync::Arc::new(command_key) })
}

impl Pki {
    /// The command-signing public key.
    pub fn command_public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.command_key.public_key().as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls_pki_types::{ServerName, UnixTime};

    fn verify(chain_pem: &str, ca: &CertificateDer<'static>, name: &str) -> Result<(), rustls::Error> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<_, _>>().expect("PEM");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).expect("root");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .expect("verifier");
        let name = ServerName::try_from(name.to_owned()).expect("name");
        verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now()).map(|_| ())
    }

    /// Issue #17: a relay's certificate is issued by the CA the laptops pin, for the relay's name
    /// only; a second `init`'s CA does not vouch for it.
    #[test]
    fn issue_17_a_relay_certificate_is_trusted_by_the_pin_for_its_name_only() {
        let dir = tempfile::tempdir().expect("dir");
        init(dir.path(), &["care.example".into(), "10.9.0.9".into()]).expect("init");
        for own in ["care.example", "10.9.0.9"] {
            let refused = write_relay_cert(dir.path(), &[own.into()], &dir.path().join("own")).expect_err(own);
            assert!(refused.to_string().contains("own name"), "{refused}");
        }
        let ca = read_cert(&dir.path().join(CA_CERT)).expect("CA");
        let out = dir.path().join("relay");
        write_relay_cert(dir.path(), &["10.9.0.1".into(), "relay.example".into()], &out).expect("issued");
        let chain = std::fs::read_to_string(out.join("relay.crt.pem")).expect("chain");
        assert!(PrivateKeyDer::from_pem_file(out.join("relay.key.pem")).is_ok(), "a usable key");
        verify(&chain, &ca, "10.9.0.1").expect("trusted by address");
        verify(&chain, &ca, "relay.example").expect("trusted by name");
        assert!(verify(&chain, &ca, "care.example").is_err(), "not the care server's name");
        let other = tempfile::tempdir().expect("dir");
        init(other.path(), &[]).expect("init");
        let other_ca = read_cert(&other.path().join(CA_CERT)).expect("CA");
        assert!(verify(&chain, &other_ca, "relay.example").is_err(), "another CA");
        assert!(write_relay_cert(dir.path(), &[], &dir.path().join("none")).is_err(), "no name");
        assert!(write_relay_cert(dir.path(), &["x".into()], &out).is_err(), "an existing key is not overwritten");
    }
}
