//! BIND key files, the two kinds `nsupdate -k` reads: a `key "name" { algorithm …; secret
//! "…"; };` clause (from `tsig-keygen` or named.conf), and `dnssec-keygen`'s
//! `K<name>.+<alg>+<id>.private`.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;

use crate::names;
use crate::tsig::{Algorithm, Key};

pub fn decode_secret(s: &str) -> Result<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .context("the secret is not valid base64")?;
    ensure!(!secret.is_empty(), "the secret is empty");
    Ok(secret)
}

/// A key name as TSIG compares it: lower case, no trailing dot.
pub fn key_name(s: &str) -> Result<String> {
    Ok(names::absolute(s)?.trim_end_matches('.').to_string())
}

/// Reads a key file; `want` picks one key by name when the file holds several.
pub fn load(path: &Path, want: Option<&str>) -> Result<Key> {
    parse(&crate::files::read(path)?.text, path, want)
}

/// A key file's text; `path` gives the key name of a `dnssec-keygen` file.
pub fn parse(text: &str, path: &Path, want: Option<&str>) -> Result<Key> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if text.trim_start().starts_with("Private-key-format:") {
        parse_private(text, file_name, want)
    } else {
        parse_clauses(text, want)
    }
}

fn parse_private(text: &str, file_name: &str, want: Option<&str>) -> Result<Key> {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(str::trim))
            .with_context(|| format!("no '{k}' line"))
    };
    let alg_no = field("Algorithm:")?;
    let n: u16 = alg_no
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("bad 'Algorithm:' line '{alg_no}'"))?;
    let algorithm = Algorithm::from_private_key_number(n)
        .with_context(|| format!("algorithm {n} is not an HMAC (TSIG) algorithm"))?;
    // The key name is only in the file name: K<name>.+<alg>+<id>.private.
    let from_file = file_name
        .strip_prefix('K')
        .and_then(|rest| rest.split_once(".+"))
        .map(|(name, _)| name);
    let name = match (want, from_file) {
        (Some(w), _) => w,
        (None, Some(f)) => f,
        (None, None) => {
            bail!("cannot tell the key name from the file name; set `tsig.name`")
        }
    };
    Ok(Key {
        name: key_name(name)?,
        algorithm,
        secret: decode_secret(field("Key:")?)?,
        fudge: 300,
    })
}

/// Splits named.conf syntax into words, strings and punctuation, dropping comments.
fn tokens(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                loop {
                    let c = chars.next().context("unterminated /* comment")?;
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next().context("unterminated string")? {
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(format!("\"{s}"));
            }
            '{' | '}' | ';' => out.push(c.to_string()),
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};\"".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn unquote(t: &str) -> &str {
    t.strip_prefix('"').unwrap_or(t)
}

fn parse_clauses(text: &str, want: Option<&str>) -> Result<Key> {
    let toks = tokens(text)?;
    let mut keys = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i] != "key" {
            i += 1;
            continue;
        }
        let name = toks.get(i + 1).context("`key` without a name")?;
        ensure!(
            toks.get(i + 2).map(String::as_str) == Some("{"),
            "expected '{{' after key {name}"
        );
        i += 3;
        let (mut alg, mut secret) = (None, None);
        while toks.get(i).map(String::as_str) != Some("}") {
            let stmt = toks.get(i).context("unterminated key clause")?;
            let val = toks.get(i + 1).context("unterminated key clause")?;
            match stmt.as_str() {
                "algorithm" => alg = Some(unquote(val).to_string()),
                "secret" => secret = Some(unquote(val).to_string()),
                other => bail!("unknown statement '{other}' in key {}", unquote(name)),
            }
            ensure!(
                toks.get(i + 2).map(String::as_str) == Some(";"),
                "expected ';' after {stmt} in key {}",
                unquote(name)
            );
            i += 3;
        }
        i += 1;
        let name = unquote(name);
        keys.push(Key {
            name: key_name(name)?,
            algorithm: alg
                .with_context(|| format!("key {name} has no algorithm"))?
                .parse()?,
            secret: decode_secret(&secret.with_context(|| format!("key {name} has no secret"))?)
                .with_context(|| format!("key {name}"))?,
            fudge: 300,
        });
    }
    match want {
        Some(w) => {
            let w = key_name(w)?;
            keys.into_iter()
                .find(|k| k.name == w)
                .with_context(|| format!("no key named '{w}' in the file"))
        }
        None => {
            ensure!(
                keys.len() <= 1,
                "the file holds several keys; set `tsig.name`"
            );
            keys.pop().context("no `key` clause in the file")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsig_keygen_output() {
        let k = parse_clauses(
            "key \"DDNS-Key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n",
            None,
        )
        .unwrap();
        assert_eq!(k.name, "ddns-key");
        assert_eq!(k.algorithm, Algorithm::HmacSha256);
        assert_eq!(k.secret, b"secret");
    }

    #[test]
    fn several_keys_with_comments() {
        let text = r#"
// two keys
key a. { algorithm "hmac-md5"; secret "YQ=="; }; # first
/* second */ key "b" { secret "Yg=="; algorithm hmac-sha1; };
"#;
        assert!(
            parse_clauses(text, None)
                .unwrap_err()
                .to_string()
                .contains("several keys")
        );
        let b = parse_clauses(text, Some("B")).unwrap();
        assert_eq!((b.name.as_str(), b.algorithm), ("b", Algorithm::HmacSha1));
        let a = parse_clauses(text, Some("a")).unwrap();
        assert_eq!((a.secret, a.algorithm), (b"a".to_vec(), Algorithm::HmacMd5));
        assert!(parse_clauses(text, Some("c")).is_err());
    }

    #[test]
    fn dnssec_keygen_private_file() {
        let text =
            "Private-key-format: v1.3\nAlgorithm: 165 (HMAC_SHA512)\nKey: c2VjcmV0\nBits: AAA=\n";
        let k = parse_private(text, "Kddns.example.+165+12345.private", None).unwrap();
        assert_eq!(k.name, "ddns.example");
        assert_eq!(k.algorithm, Algorithm::HmacSha512);
        assert_eq!(k.secret, b"secret");
        let e = parse_private(
            "Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\n",
            "Kx.+008+1.private",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not an HMAC"), "{e}");
    }

    #[test]
    fn broken_files() {
        assert!(parse_clauses("key \"k\" { algorithm hmac-sha256; };", None).is_err());
        assert!(
            parse_clauses(
                "key \"k\" { algorithm hmac-sha256 secret \"YQ==\"; };",
                None
            )
            .is_err()
        );
        assert!(
            parse_clauses("", None)
                .unwrap_err()
                .to_string()
                .contains("no `key`")
        );
        assert!(parse_clauses("key \"k\" { secret \"unterminated", None).is_err());
    }
}
