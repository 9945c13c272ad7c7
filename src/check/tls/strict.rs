//! What BoringSSL refuses in material that x509-parser and our DER
//! reading let through: names whose strings do not decode, EC keys whose
//! parameters are no curve, and private keys whose values do not fit
//! together. The key checks are ring's (through rustls), used only for key
//! shapes where ring and BoringSSL accept the same keys, so that ring's
//! own limits never become a lint error.

use rustls::crypto::ring::sign::{RsaSigningKey, any_ecdsa_type};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivateSec1KeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::der::der_read_element_header;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

/// P-256 and P-384: the curves ring checks keys of, with their scalar size.
const RING_CURVES: [(&str, usize); 2] = [("1.2.840.10045.3.1.7", 32), ("1.3.132.0.34", 48)];

/// Does BoringSSL's d2i_X509 take the names of `cert`? It reads every
/// RDN (x509-parser stops at the first one it cannot read and keeps the
/// rest unread) and converts every string to UTF-8 (x509_name_canon in
/// crypto/x509/x_name.c), which fails on a string that does not decode.
pub fn names_parse(cert: &X509Certificate<'_>) -> bool {
    [cert.issuer(), cert.subject()].iter().all(|name| {
        name_complete(name)
            && name
                .iter_attributes()
                .all(|a| string_decodes(a.attr_value()))
    })
}

/// Did x509-parser read the whole Name? Its raw bytes then hold the full
/// element the header announces.
fn name_complete(name: &X509Name<'_>) -> bool {
    let raw = name.as_raw();
    match der_read_element_header(raw) {
        Ok((rest, header)) => header
            .length()
            .definite()
            .is_ok_and(|len| rest.len() == len),
        Err(_) => false,
    }
}

/// Does a name's string decode as BoringSSL decodes it? UTF8String,
/// BMPString (UCS-2) and UniversalString (UCS-4) are decoded; the other
/// string types are taken byte by byte, so they always do.
fn string_decodes(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> bool {
    const UTF8: u32 = 12;
    const UNIVERSAL: u32 = 28;
    const BMP: u32 = 30;
    let data = value.data;
    let units = |size: usize| -> Option<Vec<u32>> {
        data.len().is_multiple_of(size).then(|| {
            data.chunks(size)
                .map(|c| c.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
                .collect()
        })
    };
    let code_points = match value.tag().0 {
        UTF8 => std::str::from_utf8(data)
            .ok()
            .map(|s| s.chars().map(u32::from).collect()),
        BMP => units(2),
        UNIVERSAL => units(4),
        _ => return true,
    };
    code_points.is_some_and(|cps| cps.into_iter().all(valid_code_point))
}

/// BoringSSL's is_valid_code_point (crypto/bytestring/unicode.c): no
/// surrogates, no noncharacters, nothing past U+10FFFF.
pub(super) fn valid_code_point(c: u32) -> bool {
    c <= 0x10ffff
        && !(0xd800..=0xdfff).contains(&c)
        && !(0xfdd0..=0xfdef).contains(&c)
        && c & 0xfffe != 0xfffe
}

/// Are an EC key's parameters a curve BoringSSL can read? They are a
/// named curve (an OID) or, rarely, explicit parameters (a SEQUENCE,
/// not judged here); anything else fails EC_KEY_parse_parameters, so the
/// certificate's key does not parse and SSL_CTX_use_certificate fails.
pub fn ec_parameters_parse(spki: &SubjectPublicKeyInfo<'_>) -> bool {
    const OID: u32 = 6;
    const SEQUENCE: u32 = 16;
    spki.algorithm
        .parameters
        .as_ref()
        .is_some_and(|p| [OID, SEQUENCE].contains(&p.tag().0))
}

/// Is the SEC1 ECPrivateKey `der` (scalar `scalar`, public point `point`,
/// on `curve`) inconsistent, as EC_KEY_check_key finds when BoringSSL
/// parses it (INVALID_PRIVATE_KEY)? ring checks the scalar is in range
/// and the point is its public key. Only asked where ring reads what
/// BoringSSL reads: P-256 or P-384, a full-length scalar (ring refuses
/// short ones) and an uncompressed point (ring compares the point in
/// that form, and requires it to be there).
pub fn ec_inconsistent(der: &[u8], curve: &str, scalar: &[u8], point: &[u8]) -> bool {
    let Some(&(_, size)) = RING_CURVES.iter().find(|(oid, _)| *oid == curve) else {
        return false;
    };
    let judged = scalar.len() == size && point.len() == 1 + 2 * size && point[0] == 4;
    judged && any_ecdsa_type(&PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))).is_err()
}

/// Is `scalar` not the private key of `point` on `curve`? Asked for an EC
/// key that carries no public point, with the certificate's point: the
/// two are put into one SEC1 ECPrivateKey for ring to check.
pub fn ec_pair_inconsistent(curve: &str, scalar: &[u8], point: &[u8]) -> bool {
    let mut bits = vec![0];
    bits.extend_from_slice(point);
    let fields = [
        tlv(0x02, &[1]),
        tlv(0x04, scalar),
        tlv(0xa1, &tlv(0x03, &bits)),
    ]
    .concat();
    ec_inconsistent(&tlv(0x30, &fields), curve, scalar, point)
}

/// One DER element: tag, definite length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    let size: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.push(0x80 | size.len() as u8);
        out.extend_from_slice(&size);
    }
    out.extend_from_slice(content);
    out
}

/// The parts of a PKCS#1 RSAPrivateKey that decide whether ring reads it
/// like BoringSSL does, as unsigned big-endian integers.
pub struct RsaShape<'a> {
    pub modulus: &'a [u8],
    pub exponent: &'a [u8],
    pub p: &'a [u8],
    pub q: &'a [u8],
}

/// Is the PKCS#1 RSAPrivateKey `der` inconsistent (n is not p*q, or the
/// CRT values do not fit), as RSA_check_key finds when BoringSSL parses
/// it? Only asked for the shape ring takes: a 2048-, 3072- or 4096-bit
/// modulus with primes of half its size and 65537 <= e < 2^33 (BoringSSL
/// takes other sizes and small exponents, ring does not).
pub fn rsa_inconsistent(der: &[u8], shape: &RsaShape<'_>) -> bool {
    let bits = bit_length(shape.modulus);
    let e = shape.exponent.iter().fold(0u64, |v, &b| {
        v.saturating_mul(256).saturating_add(u64::from(b))
    });
    let judged = [2048, 3072, 4096].contains(&bits)
        && bit_length(shape.p) == bits / 2
        && bit_length(shape.q) == bits / 2
        && (65537..1 << 33).contains(&e);
    judged && RsaSigningKey::new(&PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))).is_err()
}

/// The bit length of an unsigned big-endian integer without leading zeros.
fn bit_length(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |&b| n.len() * 8 - b.leading_zeros() as usize)
}
