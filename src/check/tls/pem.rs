//! Reading PEM material the way BoringSSL does when Envoy builds a TLS
//! context: which blocks it reads, which it skips, and what it refuses.
//! Blocks come from x509-parser's PEM reader, certificates from its X.509
//! parser, and keys are read as DER structures (PKCS#8, PKCS#1, SEC1).
//! Whatever cannot be judged (encrypted keys, unknown algorithms) is
//! reported as unknown, never as an error.

use super::strict;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::ber::BerObjectContent;
use x509_parser::der_parser::der::{DerObject, parse_der};
use x509_parser::error::PEMError;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey;

const CERTIFICATE: &str = "CERTIFICATE";
const OLD_CERTIFICATE: &str = "X509 CERTIFICATE";
const TRUSTED_CERTIFICATE: &str = "TRUSTED CERTIFICATE";
const CRL: &str = "X509 CRL";

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
/// The curves BoringSSL loads certificates for: P-256, P-384, P-521.
const SUPPORTED_CURVES: [&str; 3] = ["1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.132.0.35"];

/// Every PEM block of `data`, or `None` when a block is corrupt (bad
/// base64, no END line). BoringSSL decodes every block it passes, whatever
/// its label, and skips lines that only look like a BEGIN line.
fn blocks(data: &[u8]) -> Option<Vec<Pem>> {
    let mut found = Vec::new();
    for block in Pem::iter_from_buffer(data) {
        match block {
            Ok(pem) => found.push(pem),
            Err(PEMError::InvalidHeader) => {}
            Err(_) => return None,
        }
    }
    Some(found)
}

/// The leaf's public key, as far as the checks need it.
#[derive(Debug, PartialEq)]
pub enum KeyType {
    /// RSA: modulus and exponent, without leading zeros.
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    /// EC: the curve's OID, the encoded point and (for a private key)
    /// the scalar.
    Ec {
        curve: Option<String>,
        point: Option<Vec<u8>>,
        scalar: Option<Vec<u8>>,
    },
    /// Ed25519 (no comparison of the key itself).
    Ed25519,
    /// Anything else: not compared.
    Other,
}

/// What a loaded leaf certificate tells the checks.
pub struct Leaf {
    /// Its public key.
    pub key: KeyType,
    /// The RSA modulus size in bits (0 for other keys).
    pub rsa_bits: usize,
    /// The subject's first commonName: `Some(empty)` when present but empty.
    pub common_name: Option<Vec<u8>>,
    /// How many DNS, IP and URI subject alternative names it has; `None`
    /// when the extension cannot be read (then nothing is said).
    pub names: Option<usize>,
}

/// Why a certificate chain does not load.
pub enum ChainError {
    /// No certificate block at all.
    NoCertificate,
    /// A block is corrupt or a certificate does not parse.
    Corrupt,
    /// The leaf's EC key is on a curve BoringSSL does not load.
    UnsupportedCurve(String),
}

/// Loads `certificate_chain` like `PEM_read_bio_X509_AUX` then
/// `PEM_read_bio_X509` to the end: the first certificate block is the leaf,
/// every later CERTIFICATE block must parse too.
pub fn chain(data: &[u8]) -> Result<Leaf, ChainError> {
    let blocks = blocks(data).ok_or(ChainError::Corrupt)?;
    let is_leaf_label = |l: &str| [CERTIFICATE, OLD_CERTIFICATE, TRUSTED_CERTIFICATE].contains(&l);
    let first = blocks
        .iter()
        .position(|b| is_leaf_label(&b.label))
        .ok_or(ChainError::NoCertificate)?;
    let rest_parse = blocks[first + 1..]
        .iter()
        .filter(|b| b.label == CERTIFICATE || b.label == OLD_CERTIFICATE)
        .all(|b| certificate(b).is_some());
    let leaf = certificate(&blocks[first]).ok_or(ChainError::Corrupt)?;
    if !rest_parse {
        return Err(ChainError::Corrupt);
    }
    let spki = leaf.public_key();
    let key = spki_key(spki);
    // SSL_CTX_use_certificate parses the leaf's key; an EC key whose
    // parameters are no curve does not parse.
    if matches!(key, KeyType::Ec { .. }) && !strict::ec_parameters_parse(spki) {
        return Err(ChainError::Corrupt);
    }
    if let KeyType::Ec {
        curve: Some(curve), ..
    } = &key
        && !SUPPORTED_CURVES.contains(&curve.as_str())
    {
        return Err(ChainError::UnsupportedCurve(curve.clone()));
    }
    let rsa_bits = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
        _ => 0,
    };
    Ok(Leaf {
        key,
        rsa_bits,
        common_name: leaf
            .subject()
            .iter_common_name()
            .next()
            .map(|cn| cn.attr_value().data.to_vec()),
        names: names(&leaf),
    })
}

/// A certificate block parsed as d2i_X509 parses it: x509-parser's parse,
/// plus the names BoringSSL reads in full where x509-parser is lenient.
fn certificate<'a>(block: &'a Pem) -> Option<X509Certificate<'a>> {
    let cert = block.parse_x509().ok()?;
    strict::names_parse(&cert).then_some(cert)
}

/// The number of DNS, IP and URI names in the subjectAltName extension.
fn names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<usize> {
    const DNS: u32 = 2;
    const URI: u32 = 6;
    const IP: u32 = 7;
    let san = cert.subject_alternative_name().ok()?;
    Some(san.map_or(0, |san| {
        san.value
            .general_names
            .iter()
            .filter(|n| match n {
                GeneralName::DNSName(_) | GeneralName::URI(_) | GeneralName::IPAddress(_) => true,
                GeneralName::Invalid(tag, _) => [DNS, URI, IP].contains(&tag.0),
                _ => false,
            })
            .count()
    }))
}

fn spki_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> KeyType {
    match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_RSA => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => KeyType::Rsa {
                modulus: unsigned(rsa.modulus),
                exponent: unsigned(rsa.exponent),
            },
            _ => KeyType::Other,
        },
        OID_EC => KeyType::Ec {
            curve: spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.clone().oid().ok())
                .map(|oid| oid.to_id_string()),
            point: Some(spki.subject_public_key.data.to_vec()),
            scalar: None,
        },
        OID_ED25519 => KeyType::Ed25519,
        _ => KeyType::Other,
    }
}

/// A big-endian integer without its leading zero bytes.
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// The outcome of reading `private_key`.
pub enum PrivateKey {
    /// A key whose public half is known (as far as the type allows).
    Key(KeyType),
    /// A key that cannot be judged (encrypted, or an unfamiliar algorithm).
    Unknown,
    /// No private-key block.
    Missing,
    /// The first private-key block does not decode.
    Corrupt,
    /// The key decodes but its values do not fit together (an EC scalar
    /// out of range or not matching its public point; RSA values that do
    /// not multiply out).
    Inconsistent,
    /// A PKCS#8 key of an algorithm BoringSSL does not know (its OID).
    UnsupportedAlgorithm(String),
}

/// Why a key structure is refused.
enum KeyError {
    Corrupt,
    Inconsistent,
    UnsupportedAlgorithm(String),
}

/// Reads `private_key` like `PEM_read_bio_PrivateKey`: the first block with
/// a private-key label is the key; blocks before it must decode.
pub fn private_key(data: &[u8]) -> PrivateKey {
    // Traditional encrypted PEM keys carry headers the PEM reader does not parse.
    if data.windows(10).any(|w| w == b"Proc-Type:") {
        return PrivateKey::Unknown;
    }
    let mut found = None;
    for block in Pem::iter_from_buffer(data) {
        match block {
            Ok(pem) if is_key_label(&pem.label) => {
                found = Some(pem);
                break;
            }
            Ok(_) | Err(PEMError::InvalidHeader) => {}
            Err(_) => return PrivateKey::Corrupt,
        }
    }
    let Some(pem) = found else {
        return PrivateKey::Missing;
    };
    let parsed = match pem.label.as_str() {
        "ENCRYPTED PRIVATE KEY" => return PrivateKey::Unknown,
        "RSA PRIVATE KEY" => rsa_private(&pem.contents),
        "EC PRIVATE KEY" => ec_private(&pem.contents, None),
        _ => pkcs8(&pem.contents),
    };
    match parsed {
        Ok(KeyType::Other) => PrivateKey::Unknown,
        Ok(key) => PrivateKey::Key(key),
        Err(KeyError::Corrupt) => PrivateKey::Corrupt,
        Err(KeyError::Inconsistent) => PrivateKey::Inconsistent,
        Err(KeyError::UnsupportedAlgorithm(oid)) => PrivateKey::UnsupportedAlgorithm(oid),
    }
}

fn is_key_label(label: &str) -> bool {
    [
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ]
    .contains(&label)
}

/// The items of a DER SEQUENCE.
fn sequence(der: &[u8]) -> Option<Vec<DerObject<'_>>> {
    match parse_der(der).ok()?.1.content {
        BerObjectContent::Sequence(items) => Some(items),
        _ => None,
    }
}

fn integer<'a>(item: Option<&DerObject<'a>>) -> Option<&'a [u8]> {
    match item?.content {
        BerObjectContent::Integer(i) => Some(i),
        _ => None,
    }
}

/// PKCS#1 RSAPrivateKey: version, n, e, d, p, q, dp, dq, qinv, whose
/// values must fit together (RSA_parse_private_key runs RSA_check_key).
fn rsa_private(der: &[u8]) -> Result<KeyType, KeyError> {
    let items = sequence(der).ok_or(KeyError::Corrupt)?;
    let int = |i: usize| integer(items.get(i)).ok_or(KeyError::Corrupt);
    if items.len() < 9 || (0..9).any(|i| int(i).is_err()) {
        return Err(KeyError::Corrupt);
    }
    let (modulus, exponent) = (unsigned(int(1)?), unsigned(int(2)?));
    let shape = strict::RsaShape {
        modulus: &modulus,
        exponent: &exponent,
        p: &unsigned(int(4)?),
        q: &unsigned(int(5)?),
    };
    if strict::rsa_inconsistent(der, &shape) {
        return Err(KeyError::Inconsistent);
    }
    Ok(KeyType::Rsa { modulus, exponent })
}

/// SEC1 ECPrivateKey as EC_KEY_parse_private_key reads it: version 1, the
/// scalar, then optionally [0] the curve and [1] the public point, in
/// that order and nothing else (DECODE_ERROR otherwise); then the scalar
/// must fit the point (INVALID_PRIVATE_KEY). `curve` is the curve given
/// outside (PKCS#8).
fn ec_private(der: &[u8], curve: Option<String>) -> Result<KeyType, KeyError> {
    let items = sequence(der).ok_or(KeyError::Corrupt)?;
    if integer(items.first()) != Some(&[1][..]) {
        return Err(KeyError::Corrupt);
    }
    let BerObjectContent::OctetString(scalar) = items.get(1).ok_or(KeyError::Corrupt)?.content
    else {
        return Err(KeyError::Corrupt);
    };
    let mut key_curve = curve;
    let mut point = None;
    let mut last_tag = None;
    for item in &items[2..] {
        let BerObjectContent::Unknown(any) = &item.content else {
            return Err(KeyError::Corrupt);
        };
        let tag = any.tag().0;
        if tag > 1 || last_tag.is_some_and(|last| last >= tag) {
            return Err(KeyError::Corrupt);
        }
        last_tag = Some(tag);
        let inner = parse_der(any.data).map_err(|_| KeyError::Corrupt)?.1;
        match (tag, inner.content) {
            (0, BerObjectContent::OID(oid)) => key_curve = Some(oid.to_id_string()),
            (1, BerObjectContent::BitString(_, bits)) => point = Some(bits.data.to_vec()),
            _ => {}
        }
    }
    if let (Some(curve), Some(point)) = (&key_curve, &point)
        && strict::ec_inconsistent(der, curve, scalar, point)
    {
        return Err(KeyError::Inconsistent);
    }
    Ok(KeyType::Ec {
        curve: key_curve,
        point,
        scalar: Some(scalar.to_vec()),
    })
}

/// The PKCS#8 algorithms BoringSSL may know besides RSA, EC and Ed25519
/// (RSA-PSS, DSA, X25519, ML-DSA): not judged. Any other OID is refused by
/// EVP_parse_private_key (UNSUPPORTED_ALGORITHM).
const OTHER_KNOWN_ALGORITHMS: [&str; 6] = [
    "1.2.840.113549.1.1.10",
    "1.2.840.10040.4.1",
    "1.3.101.110",
    "2.16.840.1.101.3.4.3.17",
    "2.16.840.1.101.3.4.3.18",
    "2.16.840.1.101.3.4.3.19",
];

/// PKCS#8 PrivateKeyInfo: version, algorithm, the inner key. The version
/// must be 0 (DECODE_ERROR otherwise, before the algorithm is looked at):
/// BoringSSL reads no OneAsymmetricKey (version 1, RFC 5958) either
/// (EVP_PKEY_from_private_key_info in crypto/evp/evp_asn1.cc).
fn pkcs8(der: &[u8]) -> Result<KeyType, KeyError> {
    let items = sequence(der).ok_or(KeyError::Corrupt)?;
    if integer(items.first()) != Some(&[0][..]) {
        return Err(KeyError::Corrupt);
    }
    let BerObjectContent::Sequence(algorithm) = &items.get(1).ok_or(KeyError::Corrupt)?.content
    else {
        return Err(KeyError::Corrupt);
    };
    let Some(BerObjectContent::OID(oid)) = algorithm.first().map(|a| &a.content) else {
        return Err(KeyError::Corrupt);
    };
    let Some(BerObjectContent::OctetString(inner)) = items.get(2).map(|i| &i.content) else {
        return Err(KeyError::Corrupt);
    };
    match oid.to_id_string().as_str() {
        OID_RSA => rsa_private(inner),
        OID_EC => {
            let curve = match algorithm.get(1).map(|p| &p.content) {
                Some(BerObjectContent::OID(curve)) => Some(curve.to_id_string()),
                _ => None,
            };
            ec_private(inner, curve)
        }
        OID_ED25519 => Ok(KeyType::Ed25519),
        other if OTHER_KNOWN_ALGORITHMS.contains(&other) => Ok(KeyType::Other),
        other => Err(KeyError::UnsupportedAlgorithm(other.to_string())),
    }
}

/// Is `key` certainly not the private half of `leaf`? Unknown parts
/// (points in different encodings) never count as a mismatch. An EC key
/// without its public point gets it computed by BoringSSL, which must be
/// the leaf's (KEY_VALUES_MISMATCH otherwise): ring checks the scalar
/// against the leaf's point.
pub fn mismatch(leaf: &KeyType, key: &KeyType) -> bool {
    match (leaf, key) {
        (KeyType::Other, _) | (_, KeyType::Other) => false,
        (KeyType::Rsa { .. }, KeyType::Rsa { .. }) => leaf != key,
        (
            KeyType::Ec {
                curve: leaf_curve,
                point: leaf_point,
                ..
            },
            KeyType::Ec {
                curve,
                point,
                scalar,
            },
        ) => {
            if let (Some(leaf_curve), Some(leaf_point), None, Some(scalar)) =
                (leaf_curve, leaf_point, point, scalar)
                && curve.as_ref().is_none_or(|c| c == leaf_curve)
            {
                return strict::ec_pair_inconsistent(leaf_curve, scalar, leaf_point);
            }
            let curves_differ = matches!((leaf_curve, curve), (Some(a), Some(b)) if a != b);
            let points_differ = matches!((leaf_point, point),
                (Some(a), Some(b)) if a.first() == b.first() && a != b);
            curves_differ || points_differ
        }
        (KeyType::Ed25519, KeyType::Ed25519) => false,
        _ => true,
    }
}

/// Why `trusted_ca` does not load.
pub enum CaError {
    /// No certificate in it.
    NoCertificate,
    /// A block is corrupt, or a certificate or CRL in it does not parse.
    Corrupt,
}

/// Loads `trusted_ca` like `PEM_X509_INFO_read_bio`: every certificate and
/// CRL block must parse, and there must be at least one certificate.
pub fn trusted_ca(data: &[u8]) -> Result<(), CaError> {
    let blocks = blocks(data).ok_or(CaError::Corrupt)?;
    let mut certificates = 0;
    for block in &blocks {
        match block.label.as_str() {
            CERTIFICATE | OLD_CERTIFICATE | TRUSTED_CERTIFICATE => {
                certificate(block).ok_or(CaError::Corrupt)?;
                certificates += 1;
            }
            CRL => {
                x509_parser::parse_x509_crl(&block.contents).map_err(|_| CaError::Corrupt)?;
            }
            _ => {}
        }
    }
    if certificates == 0 {
        return Err(CaError::NoCertificate);
    }
    Ok(())
}

/// A readable name for a curve OID.
pub fn curve_name(oid: &str) -> &str {
    match oid {
        "1.3.132.0.10" => "secp256k1",
        "1.3.132.0.33" => "P-224",
        "1.2.840.10045.3.1.1" => "P-192",
        _ => oid,
    }
}
