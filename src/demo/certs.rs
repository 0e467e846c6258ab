//! Throwaway certificates for the demo and tests, made with `rcgen`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// Paths of a generated CA and leaf.
#[derive(Debug, Clone)]
pub struct GeneratedCerts {
    /// The CA certificate clients trust (`curl --cacert`).
    pub ca: PathBuf,
    /// The leaf certificate chain baton serves (leaf, then CA).
    pub cert: PathBuf,
    /// The leaf's PKCS#8 private key.
    pub key: PathBuf,
}

/// Generates an ECDSA P-256 CA and a leaf for `names` and `ips`, writes
/// them into `dir` as `ca.pem`, `cert.pem`, `key.pem` (key mode 0600).
pub fn generate(dir: &Path, names: &[&str], ips: &[IpAddr]) -> Result<GeneratedCerts, String> {
    let err = |e: rcgen::Error| format!("certificate generation failed: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "baton demo CA (throwaway)");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;

    let mut leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map_err(err)?;
    leaf.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("baton"));
    for ip in ips {
        leaf.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(err)?;

    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = GeneratedCerts { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    let write = |p: &Path, s: &str| std::fs::write(p, s).map_err(|e| format!("cannot write {}: {e}", p.display()));
    write(&out.ca, &ca_cert.pem())?;
    write(&out.cert, &format!("{}{}", leaf_cert.pem(), ca_cert.pem()))?;
    write(&out.key, &leaf_key.serialize_pem())?;
    set_private(&out.key);
    Ok(out)
}

fn set_private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_pem_chain_and_key() {
        let dir = std::env::temp_dir().join(format!("baton-certs-test-{}", std::process::id()));
        let g = generate(&dir, &["baton.test"], &["198.18.0.2".parse().unwrap()]).unwrap();
        let chain = std::fs::read_to_string(&g.cert).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        let key = std::fs::read_to_string(&g.key).unwrap();
        assert!(key.contains("BEGIN PRIVATE KEY"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
