//! TLS and mutual TLS on the gRPC port, with certificates made in the test
//! (rcgen): a client that trusts the CA gets through; with mTLS, only one
//! presenting a certificate from the client CA does.

mod common;

use common::Daemon;
use common::policies::SLOTS as POLICY;
use common::requests::acquire;
use prescient::proto::Decision;
use prescient::proto::admission_client::AdmissionClient;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        Self { ca, ca_key }
    }

    /// (certificate PEM, key PEM) for `names`, signed by this CA.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.ca, &self.ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn connect(
    d: &Daemon,
    tls: ClientTlsConfig,
) -> Result<AdmissionClient<Channel>, tonic::transport::Error> {
    let channel = Channel::from_shared(format!("https://localhost:{}", d.grpc.port()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(AdmissionClient::new(channel))
}

/// Whether a client with `tls` is turned away, at the handshake or at its
/// first call.
async fn refused(d: &Daemon, tls: ClientTlsConfig) -> bool {
    match connect(d, tls).await {
        Err(_) => true,
        Ok(mut c) => take_slot(&mut c).await.is_err(),
    }
}

/// One slot for `web`: the decision, or the status if the call failed.
async fn take_slot(c: &mut AdmissionClient<Channel>) -> Result<Decision, tonic::Status> {
    let r = c.acquire(acquire("web", "slots", 1)).await?;
    Ok(r.into_inner().decision())
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = pki.issue(&["localhost"]);
    let d = Daemon::start(
        POLICY,
        &[
            (
                "PRESCIENT_TLS__CERT_FILE",
                &write(dir.path(), "server.pem", &cert),
            ),
            (
                "PRESCIENT_TLS__KEY_FILE",
                &write(dir.path(), "server.key", &key),
            ),
        ],
    );
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.ca.pem()))
        .domain_name("localhost");
    let mut c = connect(&d, tls)
        .await
        .expect("a client trusting the CA connects");
    assert_eq!(take_slot(&mut c).await.unwrap(), Decision::Granted);
    // Plaintext against the TLS port gets no answer.
    let mut plain = d.client().await;
    assert!(take_slot(&mut plain).await.is_err());
    // A client trusting another CA refuses the server.
    let other = Pki::new();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(other.ca.pem()))
        .domain_name("localhost");
    assert!(
        refused(&d, tls).await,
        "a server the client cannot verify must be refused"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new();
    let clients = Pki::new();
    let (cert, key) = servers.issue(&["localhost"]);
    let d = Daemon::start(
        POLICY,
        &[
            (
                "PRESCIENT_TLS__CERT_FILE",
                &write(dir.path(), "server.pem", &cert),
            ),
            (
                "PRESCIENT_TLS__KEY_FILE",
                &write(dir.path(), "server.key", &key),
            ),
            (
                "PRESCIENT_TLS__CLIENT_CA_FILE",
                &write(dir.path(), "clients.pem", &clients.ca.pem()),
            ),
        ],
    );
    let base = || {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(servers.ca.pem()))
            .domain_name("localhost")
    };
    // Without a client certificate: refused.
    assert!(
        refused(&d, base()).await,
        "no client certificate must be refused"
    );
    // With one from another CA: refused.
    let (stranger_cert, stranger_key) = servers.issue(&["stranger"]);
    let stranger = base().identity(Identity::from_pem(stranger_cert, stranger_key));
    assert!(
        refused(&d, stranger).await,
        "a certificate from another CA must be refused"
    );
    // With one from the client CA: served.
    let (client_cert, client_key) = clients.issue(&["web-api"]);
    let mut c = connect(
        &d,
        base().identity(Identity::from_pem(client_cert, client_key)),
    )
    .await
    .expect("a client with a certificate from the client CA connects");
    assert_eq!(take_slot(&mut c).await.unwrap(), Decision::Granted);
    let log = d.log.lock().unwrap().join("\n");
    assert!(
        log.contains("gRPC over TLS") && log.contains("mutual=true"),
        "{log}"
    );
}
