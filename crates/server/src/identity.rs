//! Which certificate a TLS client is shown. Two identities on one socket: the staff pages' host
//! names (consultant, IT, team), asked for by SNI, get the chain the operator supplies (from a
//! hospital or public CA, which browsers already trust); everything else (the laptops, which
//! connect by the enrolled address and pin the private CA) gets the private CA's leaf. A laptop
//! sent to a page host name sees the operator's chain and refuses it: its pin is its only trust.

use crate::config::PagesTls;
use crate::Error;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Which identity a handshake gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The operator's chain, for the staff pages.
    Pages,
    /// The private CA's leaf, pinned by the laptops.
    Private,
}

/// The identity for a client that asked for `sni` (none: an address, or no SNI at all), when
/// the pages answer to `page_names`. Names compare without case, as DNS names do.
pub fn choose(sni: Option<&str>, page_names: &[String]) -> Identity {
    match sni {
        Some(name) if page_names.iter().any(|p| p.eq_ignore_ascii_case(name)) => Identity::Pages,
        _ => Identity::Private,
    }
}

/// The resolver rustls asks on each handshake.
#[derive(Debug)]
pub struct Resolver {
    private: Arc<CertifiedKey>,
    pages: Option<(Arc<CertifiedKey>, Vec<String>)>,
}

fn certified(
    provider: &rustls::crypto::CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, Error> {
    let signer = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| Error::Config(format!("a TLS key rustls cannot use: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

impl Resolver {
    /// The private identity (`chain`, `key`) and, when configured, the operator's for the pages.
    pub fn new(
        provider: &rustls::crypto::CryptoProvider,
        chain: Vec<CertificateDer<'static>>,
        key: &PrivateKeyDer<'static>,
        pages: Option<&PagesTls>,
    ) -> Result<Self, Error> {
        let private = certified(provider, chain, key)?;
        let pages = match pages {
            None => None,
            Some(p) => {
                if p.names.is_empty() {
                    return Err(Error::Config("pages_tls.names: name the host names the pages are served on".into()));
                }
                let chain = CertificateDer::pem_file_iter(&p.cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| Error::Config(format!("pages_tls.cert {}: {e}", p.cert.display())))?;
                if chain.is_empty() {
                    return Err(Error::Config(format!("pages_tls.cert {}: no certificate in it", p.cert.display())));
                }
                let key = PrivateKeyDer::from_pem_file(&p.key)
                    .map_err(|e| Error::Config(format!("pages_tls.key {}: {e}", p.key.display())))?;
                let certified = certified(provider, chain, &key)?;
                // A key that does not match its certificate would fail every browser's handshake.
                certified
                    .keys_match()
                    .map_err(|e| Error::Config(format!("pages_tls: the key is not the certificate's: {e}")))?;
                Some((certified, p.names.clone()))
            }
        };
        Ok(Resolver { private, pages })
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match &self.pages {
            Some((pages, names)) if choose(hello.server_name(), names) == Identity::Pages => Some(Arc::clone(pages)),
            _ => Some(Arc::clone(&self.private)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_get_the_operators_chain_and_everything_else_the_private_one() {
        let names = vec!["consult.example.nhs.uk".to_owned()];
        assert_eq!(choose(Some("consult.example.nhs.uk"), &names), Identity::Pages);
        assert_eq!(choose(Some("CONSULT.Example.NHS.uk"), &names), Identity::Pages);
        assert_eq!(choose(Some("care.internal"), &names), Identity::Private);
        assert_eq!(choose(None, &names), Identity::Private, "a laptop connecting by address sends no name");
        assert_eq!(choose(Some("consult.example.nhs.uk"), &[]), Identity::Private);
    }
}
