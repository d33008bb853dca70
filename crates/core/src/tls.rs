//! TLS trust for the kiosk: only the care server's CA pinned at enrolment is a root.
//!
//! Before enrolment the laptop has no pin; the enrolment token carries the CA's SHA-256
//! fingerprint, so the first connection trusts exactly the CA with that fingerprint and no other.

use crate::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::{Arc, Mutex};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, Error> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|_| Error::Crypto("tls protocol versions"))
}

fn verifier_rooted_at(ca_der: &[u8]) -> Result<Arc<WebPkiServerVerifier>, Error> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|_| Error::Corrupt { what: "the pinned CA certificate", why: "not a usable trust anchor".into() })?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|_| Error::Crypto("tls verifier"))
}

/// A client config whose only trust anchor is the pinned CA: ordinary WebPKI checks (chain,
/// validity, host name), with nothing else trusted.
pub fn pinned(ca_der: &[u8]) -> Result<ClientConfig, Error> {
    let verifier = verifier_rooted_at(ca_der)?;
    Ok(builder()?.with_webpki_verifier(verifier).with_no_client_auth())
}

/// As [`pinned`], for a TURN relay over TLS (`turns:`): TLS 1.2 is allowed as well, as coturn
/// 4.6 (Debian's) offers no 1.3. rustls's 1.2 suites are all ECDHE with AEAD, and what the relay
/// carries is DTLS-SRTP already encrypted end to end; the trust is the same pinned CA.
pub fn pinned_relay(ca_der: &[u8]) -> Result<ClientConfig, Error> {
    let verifier = verifier_rooted_at(ca_der)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|_| Error::Crypto("tls protocol versions"))?
        .with_webpki_verifier(verifier)
        .with_no_client_auth())
}

/// SHA-256 of a certificate's DER, as the enrolment token carries it.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(der).into()
}

/// Verifies a server whose chain contains the CA with a known fingerprint, with full WebPKI checks
/// rooted at that CA, and remembers the CA so it can be pinned.
#[derive(Debug)]
struct FingerprintBootstrap {
    fingerprint: [u8; 32],
    found: Mutex<Option<Vec<u8>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for FingerprintBootstrap {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.fingerprint)
            .ok_or(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))?;
        let verifier = verifier_rooted_at(ca).map_err(|_| rustls::Error::General("bad pinned CA".into()))?;
        let verified = verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        if let Ok(mut slot) = self.found.lock() {
            *slot = Some(ca.to_vec());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The CA a bootstrap connection verified, once the handshake has happened.
#[derive(Debug, Clone)]
pub struct BootstrapPin(Arc<FingerprintBootstrap>);

impl BootstrapPin {
    /// The verified CA's DER, if a handshake succeeded.
    pub fn ca_der(&self) -> Option<Vec<u8>> {
        self.0.found.lock().ok().and_then(|s| s.clone())
    }
}

/// A client config for enrolment: trusts only a CA with `fingerprint` (from the token).
pub fn bootstrap(fingerprint: [u8; 32]) -> Result<(ClientConfig, BootstrapPin), Error> {
    let inner = Arc::new(FingerprintBootstrap { fingerprint, found: Mutex::new(None), provider: provider() });
    // rustls files every custom verifier under `dangerous()`; this one still verifies the whole
    // chain, host name and handshake signatures, rooted at the fingerprinted CA.
    let config = builder()?.dangerous().with_custom_certificate_verifier(inner.clone()).with_no_client_auth();
    Ok((config, BootstrapPin(inner)))
}
