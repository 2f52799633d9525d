//! The TLS settings of `etcds://`: the CA that signed the members' certificates, and the
//! client certificate and key etcd's `--client-cert-auth` asks for, named in one small file
//! per node, `/etc/netconf/store.toml` (or the file `NETCONF_STORE_CONFIG` names):
//!
//! ```toml
//! ca = "/etc/netconf/etcd-ca.pem"
//! cert = "/etc/netconf/etcd-client.pem"
//! key = "/etc/netconf/etcd-client.key"
//! ```
//!
//! A file rather than options: every tool that opens the store (the five gnt-* commands,
//! shell completion, snf-ifup) finds the same settings without a flag of its own, as etcd's
//! own settings live in /etc/default/etcd. `cert` and `key` go together; without them no
//! client certificate is offered (for an etcd without `--client-cert-auth`).
//!
//! Every file is distrusted: opened without blocking (a FIFO is refused, not waited on),
//! only a regular file (a symbolic link is followed, as certbot's and Debian's
//! /etc/ssl/certs links are, and the file it leads to is checked), of bounded size; the key
//! must be readable by its owner alone and owned by root or the user running the tool. The
//! certificates and key are then checked by rustls itself (parsable, the key matching the
//! certificate), since ureq would panic on what rustls refuses.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::libc;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, TlsProvider};

/// Where the settings are when `NETCONF_STORE_CONFIG` names no other file.
pub const DEFAULT_SETTINGS: &str = "/etc/netconf/store.toml";
/// The variable naming another settings file.
pub const SETTINGS_VAR: &str = "NETCONF_STORE_CONFIG";

/// The settings file is a few lines.
const MAX_SETTINGS_LEN: u64 = 64 << 10;
/// A CA bundle or certificate chain; Debian's whole ca-certificates bundle is about 220 KB.
const MAX_PEM_LEN: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    ca: PathBuf,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// The settings file this process uses.
pub fn settings_path() -> PathBuf {
    match std::env::var_os(SETTINGS_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SETTINGS),
    }
}

/// The TLS configuration of ureq for `etcds://`, from the settings file; an error naming
/// the file and what is wrong with it.
pub fn load() -> Result<TlsConfig, String> {
    load_from(&settings_path())
}

/// [`load`] from `path`.
pub fn load_from(path: &Path) -> Result<TlsConfig, String> {
    let shown = path.display();
    let text = match read_capped(path, MAX_SETTINGS_LEN) {
        Ok((bytes, _)) => String::from_utf8(bytes).map_err(|_| format!("{shown}: not UTF-8"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{shown}: not found; etcds:// needs the CA (ca = \"/path\") and the client certificate and key (cert, key) in it (see netconf-store(7))"
            ));
        }
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    let s: Settings = toml::from_str(&text).map_err(|e| format!("{shown}: {}", e.message()))?;
    for (what, p) in [
        ("ca", Some(&s.ca)),
        ("cert", s.cert.as_ref()),
        ("key", s.key.as_ref()),
    ] {
        if let Some(p) = p
            && !p.is_absolute()
        {
            return Err(format!(
                "{shown}: {what} = \"{}\": must be an absolute path",
                p.display()
            ));
        }
    }
    // ring, which rustls deprecates for lacking post-quantum key exchange: aws-lc-rs would
    // need cmake to build, and etcd 3.4 (Go 1.19) offers no such exchange anyway.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = certificates(&s.ca)?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _) =
        store.add_parsable_certificates(roots.iter().map(|c| CertificateDer::from(c.der())));
    if added == 0 {
        return Err(format!(
            "{}: no usable CA certificate in it",
            s.ca.display()
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(store);
    let client = match (&s.cert, &s.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let (k, der) = private_key(key)?;
            // What ureq will build from them, checked here (it would panic): a key
            // rustls cannot use, or one that does not belong to the certificate.
            builder
                .with_client_auth_cert(
                    chain
                        .iter()
                        .map(|c| CertificateDer::from(c.der()).into_owned())
                        .collect(),
                    der,
                )
                .map_err(|e| {
                    format!(
                        "{} and {}: not a usable certificate and key: {e}",
                        cert.display(),
                        key.display()
                    )
                })?;
            Some(ClientCert::new_with_certs(&chain, k))
        }
        (None, None) => None,
        _ => {
            return Err(format!(
                "{shown}: cert and key go together: give both or neither"
            ));
        }
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(RootCerts::new_with_certs(&roots))
        .client_cert(client)
        .build())
}

/// Every PEM certificate in `path`; an error if there is none.
fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let shown = path.display();
    let (pem, _) = read_capped(path, MAX_PEM_LEN).map_err(|e| format!("{shown}: {e}"))?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("{shown}: not PEM: {e}")),
        }
    }
    if out.is_empty() {
        return Err(format!("{shown}: no PEM certificate in it"));
    }
    Ok(out)
}

/// The one private key in `path`, which its owner alone may read: for ureq, and for rustls
/// to check.
fn private_key(path: &Path) -> Result<(PrivateKey<'static>, PrivateKeyDer<'static>), String> {
    let shown = path.display();
    let (pem, meta) = read_capped(path, MAX_PEM_LEN).map_err(|e| format!("{shown}: {e}"))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown}: the private key is open to group or others (mode {mode:04o}); refusing to use it: chmod 600 it"
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "{shown}: the private key belongs to user {} (neither root nor this user, {me}); refusing to use it",
            meta.uid()
        ));
    }
    let mut keys = 0;
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::PrivateKey(_)) => keys += 1,
            Ok(_) => {}
            Err(e) => return Err(format!("{shown}: not PEM: {e}")),
        }
    }
    match keys {
        1 => {}
        0 => return Err(format!("{shown}: no PEM private key in it")),
        n => return Err(format!("{shown}: {n} private keys in it; give one")),
    }
    let bad = |e: &dyn std::fmt::Display| format!("{shown}: not a usable private key: {e}");
    let k = PrivateKey::from_pem(&pem).map_err(|e| bad(&e))?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(&e))?;
    Ok((k, der))
}

/// The bytes of the regular file at `path` (a symbolic link followed), at most `max`, and
/// its metadata; opening never waits on a FIFO.
fn read_capped(path: &Path, max: u64) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "not a regular file but {}",
            crate::config::store::kind_of(&meta)
        )));
    }
    if meta.len() > max {
        return Err(std::io::Error::other(format!(
            "{} bytes, too large (at most {max})",
            meta.len()
        )));
    }
    let mut v = Vec::new();
    f.take(max + 1).read_to_end(&mut v)?;
    if v.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "grew beyond {max} bytes while read"
        )));
    }
    Ok((v, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn err(path: &Path) -> String {
        match load_from(path) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_settings_files_are_refused_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("absent.toml");
        assert!(err(&missing).contains("absent.toml: not found"));
        let fifo = d.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(err(&fifo).contains("fifo.toml: not a regular file but a FIFO"));
        assert!(err(d.path()).contains("not a regular file but a directory"));
        let big = write(d.path(), "big.toml", &"#".repeat(70_000), 0o644);
        assert!(err(&big).contains("too large"));
        let unknown = write(d.path(), "u.toml", "ca = \"/x\"\nkeyfile = \"/y\"\n", 0o644);
        assert!(err(&unknown).contains("keyfile"), "{}", err(&unknown));
        let rel = write(d.path(), "r.toml", "ca = \"ca.pem\"\n", 0o644);
        assert!(err(&rel).contains("ca = \"ca.pem\": must be an absolute path"));
        let ca = write(d.path(), "ca.pem", "not a certificate\n", 0o644);
        let s = write(
            d.path(),
            "s.toml",
            &format!("ca = \"{}\"\n", ca.display()),
            0o644,
        );
        assert!(
            err(&s).contains("ca.pem: no PEM certificate"),
            "{}",
            err(&s)
        );
    }

    #[test]
    fn a_key_open_to_others_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let key = write(
            d.path(),
            "k.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            0o644,
        );
        let e = private_key(&key).err().unwrap();
        assert!(
            e.contains("k.pem: the private key is open to group or others (mode 0644)"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(private_key(&key).err().unwrap().contains("mode 0640"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(private_key(&key).is_ok());
        // Through a symbolic link the file it leads to is checked.
        let link = d.path().join("link.pem");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(private_key(&link).is_ok());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(private_key(&link).err().unwrap().contains("mode 0604"));
        // Another user's key (only root can hand one over).
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
            let e = private_key(&key).err().unwrap();
            assert!(e.contains("belongs to user 65534"), "{e}");
        }
    }
}
