//! SAML 2.0 sign-in, SP-initiated: an AuthnRequest by HTTP-Redirect, the IdP's
//! Response by HTTP-POST at our ACS. Signatures are verified by `samael` with
//! xmlsec against the certificates the admin configured (several during a key
//! rollover; never a certificate the response carries), with SHA-256 or stronger
//! only, and only the signed part of the document is read afterwards.
//! samael checks Destination, Issuer, Recipient, InResponseTo, NotBefore and
//! NotOnOrAfter; here we add: the document must hold exactly one assertion and no
//! comments (signature wrapping, NameID truncation), an Audience naming us is
//! required, unsolicited responses are refused, and the assertion id and lifetime
//! are returned so the caller can refuse replays (the used ids live in the database).
//!
//! The pending AuthnRequest travels sealed in a cookie of the browser that started
//! it ([`seal_pending`]): the response must answer that browser's own request, and
//! nothing is stored before a signed response comes back.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::EntityDescriptor;
use samael::schema::{Assertion, Response};
use samael::service_provider::{Error as SpError, ServiceProvider, ServiceProviderBuilder};
use time::OffsetDateTime;

pub const HTTP_REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const HTTP_POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";

/// A workspace's SAML settings and our own endpoints.
#[derive(Debug, Clone)]
pub struct SamlSettings {
    pub idp_entity_id: String,
    pub sso_url: String,
    /// The IdP's signing certificates, PEM blocks one after another (more than one
    /// while the IdP rolls its key over; a response signed by any of them verifies).
    pub certificate_pem: String,
    pub sp_entity_id: String,
    pub acs_url: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SamlError {
    #[error("The SAML settings are not usable: {0}")]
    Settings(String),
    #[error("The SAML response could not be read: {0}")]
    Malformed(String),
    #[error(
        "This SAML response does not answer a sign-in started here (unsolicited responses are refused)."
    )]
    Unsolicited,
    #[error(
        "This SAML response answers a sign-in that was not started in this browser, or that \
         expired. Start the sign-in again from this browser."
    )]
    OtherBrowser,
    #[error("The SAML response was not accepted: {0}")]
    Invalid(String),
    #[error("This SAML assertion was already used. Start the sign-in again.")]
    Replayed,
    #[error("The identity provider did not say who signed in (no NameID or email attribute).")]
    NoEmail,
}

/// The signature algorithms we accept: SHA-256 and stronger. SHA-1 (still offered
/// by some IdPs) allows forged signatures at a cost within reach.
const ALLOWED_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// What the IdP's metadata says: the three values a SAML set-up needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_url: String,
    pub certificate_pem: String,
}

/// Normalise a certificate given as PEM or bare base64 DER to PEM, checking it is
/// an X.509 certificate.
pub fn normalize_certificate(text: &str) -> Result<String, SamlError> {
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("-----"))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(&body)
        .map_err(|_| SamlError::Settings("the certificate is not PEM or base64".into()))?;
    openssl::x509::X509::from_der(&der)
        .map_err(|_| SamlError::Settings("the certificate is not an X.509 certificate".into()))?;
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in STANDARD.encode(&der).as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Ok(pem)
}

/// Normalise one or more certificates (PEM blocks one after another, or one bare
/// base64 DER) to PEM blocks, dropping repeats. Several are how an admin keeps
/// sign-in working while the IdP rolls its signing key over.
pub fn normalize_certificates(text: &str) -> Result<String, SamlError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    if text.contains(BEGIN) {
        let mut rest = text;
        while let Some(start) = rest.find(BEGIN) {
            let after = &rest[start + BEGIN.len()..];
            let end = after.find(END).ok_or_else(|| {
                SamlError::Settings("a certificate's PEM block is not closed".into())
            })?;
            blocks.push(normalize_certificate(&after[..end])?);
            rest = &after[end + END.len()..];
        }
    } else {
        blocks.push(normalize_certificate(text)?);
    }
    let mut out = String::new();
    for block in blocks {
        if !out.contains(&block) {
            out.push_str(&block);
        }
    }
    Ok(out)
}

fn certificate_base64(pem: &str) -> String {
    pem.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

/// The base64 DER of each certificate in `pem` (one or more PEM blocks).
fn certificates_base64(pem: &str) -> Vec<String> {
    pem.split("-----END CERTIFICATE-----")
        .map(certificate_base64)
        .filter(|b| !b.is_empty())
        .collect()
}

/// Read an IdP's metadata document: its entity id, HTTP-Redirect SSO URL and
/// signing certificates (all of them: an IdP rolling its key over publishes both).
pub fn parse_idp_metadata(xml: &str) -> Result<IdpMetadata, SamlError> {
    let md: EntityDescriptor = xml
        .parse()
        .map_err(|e| SamlError::Settings(format!("the metadata could not be read: {e}")))?;
    let entity_id = md
        .entity_id
        .clone()
        .ok_or_else(|| SamlError::Settings("the metadata has no entityID".into()))?;
    let idp = md
        .idp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .ok_or_else(|| SamlError::Settings("the metadata has no IDPSSODescriptor".into()))?;
    let sso_url = idp
        .single_sign_on_services
        .iter()
        .find(|e| e.binding == HTTP_REDIRECT_BINDING)
        .map(|e| e.location.clone())
        .ok_or_else(|| {
            SamlError::Settings("the metadata has no HTTP-Redirect SingleSignOnService".into())
        })?;
    let mut certificate_pem = String::new();
    for cert in idp
        .key_descriptors
        .iter()
        .filter(|k| {
            k.key_use
                .as_deref()
                .is_none_or(|u| u.is_empty() || u == "signing")
        })
        .filter_map(|k| k.key_info.x509_data.as_ref())
        .flat_map(|x| x.certificates.iter())
    {
        let pem = normalize_certificate(cert)?;
        if !certificate_pem.contains(&pem) {
            certificate_pem.push_str(&pem);
        }
    }
    if certificate_pem.is_empty() {
        return Err(SamlError::Settings(
            "the metadata has no signing certificate".into(),
        ));
    }
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        certificate_pem,
    })
}

/// Check the settings an admin gives before storing them.
pub fn check_settings(
    entity_id: &str,
    sso_url: &str,
    certificate: &str,
) -> Result<IdpMetadata, SamlError> {
    let entity_id = entity_id.trim();
    if entity_id.is_empty() {
        return Err(SamlError::Settings("the IdP entity id is empty".into()));
    }
    let url = url::Url::parse(sso_url.trim())
        .map_err(|e| SamlError::Settings(format!("the SSO URL '{sso_url}': {e}")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(SamlError::Settings("the SSO URL must be http(s)".into()));
    }
    Ok(IdpMetadata {
        entity_id: entity_id.to_owned(),
        sso_url: url.to_string(),
        certificate_pem: normalize_certificates(certificate)?,
    })
}

fn service_provider(s: &SamlSettings) -> Result<ServiceProvider, SamlError> {
    // The IdP as samael wants it: a metadata document with the trusted
    // certificates (escaped values, so nothing the admin typed can add elements).
    let esc = |v: &str| {
        v.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let keys: String = certificates_base64(&s.certificate_pem)
        .iter()
        .map(|cert| {
            format!(
                r#"<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
                esc(cert)
            )
        })
        .collect();
    let xml = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}<md:SingleSignOnService Binding="{HTTP_REDIRECT_BINDING}" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
        entity = esc(&s.idp_entity_id),
        sso = esc(&s.sso_url),
    );
    let idp: EntityDescriptor = xml
        .parse()
        .map_err(|e| SamlError::Settings(format!("IdP settings: {e}")))?;
    ServiceProviderBuilder::default()
        .entity_id(Some(s.sp_entity_id.clone()))
        .metadata_url(Some(s.sp_entity_id.clone()))
        .acs_url(Some(s.acs_url.clone()))
        .slo_url(None::<String>)
        .idp_metadata(idp)
        .authn_name_id_format(Some(NAMEID_EMAIL.to_owned()))
        .allow_idp_initiated(false)
        .allowed_signature_algorithms(Some(ALLOWED_ALGORITHMS.to_vec()))
        .max_clock_skew(chrono::Duration::seconds(super::CLOCK_SKEW_SECS))
        .max_issue_delay(chrono::Duration::seconds(300))
        .build()
        .map_err(|e| SamlError::Settings(e.to_string()))
}

/// A fresh AuthnRequest id (XML ids must not start with a digit).
pub fn new_request_id() -> String {
    format!("_rc{}", uuid::Uuid::new_v4().simple())
}

/// How long an AuthnRequest may wait for its answer.
pub const PENDING_TTL_SECS: i64 = 600;
/// A longer `next` is dropped (the member lands on the workspace home): the sealed
/// request must fit in a cookie, which browsers cap at about 4 KB.
const MAX_NEXT_LEN: usize = 2000;

/// An AuthnRequest waiting for its answer, kept by the browser that started it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub id: String,
    /// Where to go after sign-in (already checked to stay on the workspace).
    pub next: String,
    /// Unix time after which the request is not answered any more.
    pub expires: i64,
}

impl Pending {
    pub fn new(id: String, next: String, now_unix: i64) -> Pending {
        let next = if next.len() > MAX_NEXT_LEN {
            "/".to_owned()
        } else {
            next
        };
        Pending {
            id,
            next,
            expires: now_unix + PENDING_TTL_SECS,
        }
    }
}

fn pending_context(workspace_id: i64) -> String {
    format!("saml_pending:{workspace_id}")
}

/// `pending` sealed with the server key for a cookie: the browser holds it but can
/// neither read nor change it, and it opens only for this workspace. Holding it is
/// what binds the response to the browser that started the sign-in.
pub fn seal_pending(key: &super::ServerKey, workspace_id: i64, pending: &Pending) -> String {
    let plain = serde_json::to_vec(pending).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(key.seal(&pending_context(workspace_id), &plain))
}

/// The pending request in a cookie value, if it was sealed here for this workspace
/// and has not expired.
pub fn open_pending(
    key: &super::ServerKey,
    workspace_id: i64,
    cookie: &str,
    now_unix: i64,
) -> Option<Pending> {
    let sealed = URL_SAFE_NO_PAD.decode(cookie.trim()).ok()?;
    let plain = key.open(&pending_context(workspace_id), &sealed).ok()?;
    let pending: Pending = serde_json::from_slice(&plain).ok()?;
    (pending.expires > now_unix).then_some(pending)
}

/// Whether the response's InResponseTo names the browser's pending request.
pub fn answers(pending: &Pending, claimed_request_id: &str) -> bool {
    crate::secrets::constant_time_eq(pending.id.as_bytes(), claimed_request_id.as_bytes())
}

/// The IdP URL that carries our AuthnRequest `id` (HTTP-Redirect binding).
pub fn authn_request_url(s: &SamlSettings, id: &str) -> Result<url::Url, SamlError> {
    let sp = service_provider(s)?;
    let mut request = sp
        .make_authentication_request(&s.sso_url)
        .map_err(|e| SamlError::Settings(e.to_string()))?;
    request.id = id.to_owned();
    request
        .redirect("")
        .map_err(|e| SamlError::Settings(e.to_string()))?
        .ok_or_else(|| SamlError::Settings("no SSO URL".into()))
}

/// Our SP metadata, for IdPs that import it.
pub fn sp_metadata(s: &SamlSettings) -> Result<String, SamlError> {
    let sp = service_provider(s)?;
    let md = sp
        .metadata()
        .map_err(|e| SamlError::Settings(e.to_string()))?;
    use samael::traits::ToXml;
    md.to_string()
        .map_err(|e| SamlError::Settings(e.to_string()))
}

/// Our SP metadata without an IdP configured yet (the values are ours alone).
pub fn sp_metadata_xml(sp_entity_id: &str, acs_url: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;")
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>{NAMEID_EMAIL}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{HTTP_POST_BINDING}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = esc(sp_entity_id),
        acs = esc(acs_url),
    )
}

/// The `SAMLResponse` form field, decoded to XML.
pub fn decode_response(saml_response: &str) -> Result<String, SamlError> {
    let cleaned: String = saml_response
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = STANDARD
        .decode(cleaned)
        .map_err(|_| SamlError::Malformed("SAMLResponse is not base64".into()))?;
    String::from_utf8(bytes).map_err(|_| SamlError::Malformed("SAMLResponse is not UTF-8".into()))
}

/// Rules on the raw document, before any signature work: no comments, CDATA
/// sections, document type declarations or processing instructions (the signature's
/// canonical form drops comments, so `admin@x.test<!---->.evil.test` would verify
/// while a reader may stop at the comment), and exactly one assertion (a second one,
/// or the signed one moved under an unsigned envelope, is signature wrapping).
///
/// A lexical scan is enough: in well-formed XML a `<` outside comments and CDATA,
/// which are refused at their first `<`, always starts markup (attribute values and
/// text cannot hold one), and a document that is not well-formed fails to parse
/// later anyway.
pub fn check_shape(xml: &str) -> Result<(), SamlError> {
    let body = xml.trim_start_matches('\u{feff}').trim_start();
    let start = xml.len() - body.len();
    let mut assertions = 0;
    for (at, _) in xml.match_indices('<') {
        let tag = &xml[at + 1..];
        if tag.starts_with('!') {
            return Err(SamlError::Invalid(
                "it contains comments, CDATA sections or a document type declaration, which \
                 its signature does not cover"
                    .into(),
            ));
        }
        if let Some(pi) = tag.strip_prefix('?') {
            let declaration = at == start
                && pi.starts_with("xml")
                && pi[3..].starts_with(|c: char| c.is_whitespace() || c == '?');
            if declaration {
                continue;
            }
            return Err(SamlError::Invalid(
                "it contains processing instructions".into(),
            ));
        }
        if tag.starts_with('/') {
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .next()
            .unwrap_or_default();
        let local = name.rsplit(':').next().unwrap_or_default();
        if local == "Assertion" || local == "EncryptedAssertion" {
            assertions += 1;
        }
    }
    if assertions != 1 {
        return Err(SamlError::Invalid(
            "a SAML response must hold exactly one assertion".into(),
        ));
    }
    Ok(())
}

/// The request a response claims to answer, read before verification only to know
/// which pending request to check it against. No InResponseTo: unsolicited.
pub fn claimed_request_id(xml: &str) -> Result<String, SamlError> {
    let response: Response = xml.parse().map_err(|e| {
        tracing::info!(detail = %e, "SAML response unreadable");
        SamlError::Malformed("it is not a SAML Response".into())
    })?;
    response
        .in_response_to
        .filter(|id| !id.is_empty())
        .ok_or(SamlError::Unsolicited)
}

/// A verified sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub assertion_id: String,
    pub email: String,
    /// The NameID, which links the IdP account to a member after the first sign-in;
    /// None when it is transient (a new value at each sign-in says nothing lasting).
    pub subject: Option<String>,
    /// Until when the assertion id must be remembered to refuse a replay.
    pub remember_until: OffsetDateTime,
}

const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];

/// Verify `xml` answers our request `request_id`: signature against the configured
/// certificate, then the conditions; and say who signed in.
pub fn verify_response(
    s: &SamlSettings,
    xml: &str,
    request_id: &str,
) -> Result<Verified, SamlError> {
    check_shape(xml)?;
    let sp = service_provider(s)?;
    let assertion = sp
        .parse_xml_response(xml, Some(&[request_id]))
        .map_err(|e| {
            // The detail can quote the response; it goes to the log only.
            tracing::info!(detail = %e, "SAML response refused");
            SamlError::Invalid(refusal(&e).into())
        })?;
    check_assertion(&assertion, s, chrono::Utc::now())
}

/// What a page may say about samael's refusal: a fixed text per kind, never the
/// values the response carried.
fn refusal(e: &SpError) -> &'static str {
    match e {
        SpError::FailedToValidateSignature => {
            "the response or its assertion must be signed by the configured IdP certificate, \
             with SHA-256 or stronger"
        }
        SpError::DestinationValidationError { .. } => {
            "the response's destination is not this workspace's ACS URL"
        }
        SpError::AssertionRecipientMismatch { .. } => {
            "the assertion's Recipient is not this workspace's ACS URL"
        }
        SpError::AssertionIssuerMismatch { .. } | SpError::ResponseIssuerMismatch { .. } => {
            "the Issuer is not the configured IdP entity id"
        }
        SpError::AssertionConditionAudienceRestrictionFailed { .. } => {
            "the assertion's Audience is not this workspace"
        }
        SpError::AssertionExpired { .. }
        | SpError::ResponseExpired { .. }
        | SpError::AssertionConditionExpired { .. }
        | SpError::AssertionSubjectConfirmationExpired { .. } => {
            "the assertion has expired; sign in again (or check the clocks)"
        }
        SpError::AssertionConditionExpiredBefore { .. }
        | SpError::AssertionSubjectConfirmationExpiredBefore { .. } => {
            "the assertion is not valid until later; check the clocks"
        }
        SpError::AssertionInResponseToInvalid { .. }
        | SpError::ResponseInResponseToInvalid { .. } => "it answers another sign-in request",
        SpError::ResponseBadStatusCode { .. } => "the identity provider says the sign-in failed",
        SpError::AssertionBearerSubjectConfirmationMissing
        | SpError::AssertionSubjectConfirmationMissing => {
            "the assertion has no bearer subject confirmation"
        }
        SpError::EncryptedAssertionsNotYetSupported
        | SpError::MissingPrivateKeySP
        | SpError::EncryptedAssertionInvalid
        | SpError::FailedToDecryptAssertion => {
            "encrypted assertions are not supported; turn assertion encryption off at the IdP"
        }
        _ => "it could not be read as a signed SAML response",
    }
}

/// The checks samael leaves optional: an Audience naming us must be present; the
/// subject must say who signed in. Pure, so it is tested on its own.
pub fn check_assertion(
    assertion: &Assertion,
    s: &SamlSettings,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Verified, SamlError> {
    let conditions = assertion
        .conditions
        .as_ref()
        .ok_or_else(|| SamlError::Invalid("the assertion has no Conditions".into()))?;
    let ours = conditions
        .audience_restrictions
        .iter()
        .flatten()
        .any(|r| r.audience.iter().any(|a| a == &s.sp_entity_id));
    if !ours {
        return Err(SamlError::Invalid(format!(
            "the assertion's Audience is not {}",
            s.sp_entity_id
        )));
    }
    let email = email_of(assertion).ok_or(SamlError::NoEmail)?;
    let name_id = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .filter(|n| !n.value.trim().is_empty())
        .ok_or(SamlError::NoEmail)?;
    let subject = match name_id.format.as_deref() {
        Some(NAMEID_TRANSIENT) => None,
        // Email NameIDs may come back in another case; they are the same account.
        Some(NAMEID_EMAIL) => Some(crate::domain::fold_case(name_id.value.trim())),
        _ => Some(name_id.value.trim().to_owned()),
    };
    // Remember the id until nothing could accept the assertion any more.
    let until = conditions
        .not_on_or_after
        .unwrap_or(now + chrono::Duration::minutes(10))
        .max(now)
        + chrono::Duration::seconds(super::CLOCK_SKEW_SECS + 60);
    let remember_until = OffsetDateTime::from_unix_timestamp(until.timestamp())
        .unwrap_or_else(|_| OffsetDateTime::now_utc() + time::Duration::hours(1));
    if assertion.id.is_empty() {
        return Err(SamlError::Invalid("the assertion has no ID".into()));
    }
    Ok(Verified {
        assertion_id: assertion.id.clone(),
        email,
        subject,
        remember_until,
    })
}

/// An email attribute, else a NameID that is an email address.
fn email_of(assertion: &Assertion) -> Option<String> {
    let attr = assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|st| st.attributes.iter())
        .find(|a| {
            [a.name.as_deref(), a.friendly_name.as_deref()]
                .into_iter()
                .flatten()
                .any(|n| EMAIL_ATTRIBUTES.iter().any(|e| e.eq_ignore_ascii_case(n)))
        })
        .and_then(|a| a.values.iter().find_map(|v| v.value.clone()))
        .map(|v| v.trim().to_owned())
        .filter(|v| v.contains('@'));
    attr.or_else(|| {
        assertion
            .subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .map(|n| n.value.trim().to_owned())
            .filter(|v| v.contains('@'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate, made with openssl (which samael already links).
    pub(crate) fn test_cert() -> String {
        use openssl::asn1::Asn1Time;
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::x509::{X509, X509NameBuilder};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "idp.test").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        String::from_utf8(b.build().to_pem().unwrap()).unwrap()
    }

    fn settings() -> SamlSettings {
        SamlSettings {
            idp_entity_id: "https://idp.test/entity".into(),
            sso_url: "https://idp.test/sso".into(),
            certificate_pem: test_cert(),
            sp_entity_id: "http://acme.localhost/sso/saml/metadata".into(),
            acs_url: "http://acme.localhost/sso/saml/acs".into(),
        }
    }

    #[test]
    fn certificates_normalise_from_pem_or_base64() {
        let pem = test_cert();
        let bare = certificate_base64(&pem);
        assert_eq!(
            normalize_certificate(&pem).unwrap(),
            normalize_certificate(&bare).unwrap()
        );
        assert!(normalize_certificate("not a cert").is_err());
        assert!(normalize_certificate("aGVsbG8=").is_err());
    }

    #[test]
    fn metadata_gives_entity_sso_url_and_certificate() {
        let pem = test_cert();
        let xml = format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.test/e">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="{HTTP_POST_BINDING}" Location="https://idp.test/post"/>
    <md:SingleSignOnService Binding="{HTTP_REDIRECT_BINDING}" Location="https://idp.test/redirect"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#,
            certificate_base64(&pem)
        );
        let md = parse_idp_metadata(&xml).unwrap();
        assert_eq!(md.entity_id, "https://idp.test/e");
        assert_eq!(md.sso_url, "https://idp.test/redirect");
        assert_eq!(md.certificate_pem, normalize_certificate(&pem).unwrap());
        assert!(parse_idp_metadata("<nope/>").is_err());
    }

    #[test]
    fn several_certificates_are_kept_in_order_without_repeats() {
        let (a, b) = (test_cert(), test_cert());
        let both = normalize_certificates(&format!("{a}\n{b}{a}")).unwrap();
        assert_eq!(
            both,
            format!(
                "{}{}",
                normalize_certificate(&a).unwrap(),
                normalize_certificate(&b).unwrap()
            )
        );
        assert_eq!(certificates_base64(&both).len(), 2);
        // One bare base64 certificate still works; junk between blocks does not.
        let bare = certificate_base64(&a);
        assert_eq!(
            normalize_certificates(&bare).unwrap(),
            normalize_certificate(&a).unwrap()
        );
        assert!(normalize_certificates(&format!("{a}-----BEGIN CERTIFICATE-----\nAAAA")).is_err());
        assert!(
            normalize_certificates(
                "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----"
            )
            .is_err()
        );
        // Each one goes into the IdP description samael verifies against.
        let mut s = settings();
        s.certificate_pem = both;
        let sp = service_provider(&s).unwrap();
        assert_eq!(sp.idp_signing_certs().unwrap().unwrap().len(), 2);
        assert_eq!(
            sp.allowed_signature_algorithms.as_deref(),
            Some(ALLOWED_ALGORITHMS)
        );
    }

    #[test]
    fn metadata_with_two_signing_keys_gives_both() {
        let (a, b) = (test_cert(), test_cert());
        let key = |use_: &str, pem: &str| {
            format!(
                r#"<md:KeyDescriptor{use_}><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
                certificate_base64(pem)
            )
        };
        let enc = test_cert();
        let xml = format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.test/e">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    {}{}{}
    <md:SingleSignOnService Binding="{HTTP_REDIRECT_BINDING}" Location="https://idp.test/redirect"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#,
            key(r#" use="signing""#, &a),
            key(r#" use="encryption""#, &enc),
            key("", &b),
        );
        let md = parse_idp_metadata(&xml).unwrap();
        assert_eq!(
            md.certificate_pem,
            format!(
                "{}{}",
                normalize_certificate(&a).unwrap(),
                normalize_certificate(&b).unwrap()
            )
        );
    }

    #[test]
    fn shape_rules_refuse_comments_and_wrapping() {
        let ok = r#"<?xml version="1.0"?><samlp:Response xmlns:samlp="p"><saml:Assertion xmlns:saml="a"><saml:NameID>a@b.c</saml:NameID></saml:Assertion></samlp:Response>"#;
        assert_eq!(check_shape(ok), Ok(()));
        assert_eq!(
            check_shape(&ok.replacen("<?xml version=\"1.0\"?>", "\u{feff} ", 1)),
            Ok(())
        );
        let refused = |xml: &str| match check_shape(xml) {
            Err(SamlError::Invalid(m)) => m,
            other => panic!("{xml}: {other:?}"),
        };
        for evil in [
            ok.replace("a@b.c", "a@b.c<!---->.evil"),
            ok.replace("a@b.c", "a@b.c<![CDATA[]]>.evil"),
            format!("<!DOCTYPE r [<!ENTITY e \"x\">]>{ok}"),
        ] {
            assert!(refused(&evil).contains("comments"), "{evil}");
        }
        assert!(refused(&ok.replace("a@b.c", "a@b.c<?pi x?>")).contains("processing"));
        // A declaration is allowed only where it belongs, at the start.
        assert!(refused(&format!("<a/>{ok}")).contains("processing"));
        let assertion =
            r#"<saml:Assertion xmlns:saml="a"><saml:NameID>x@y.z</saml:NameID></saml:Assertion>"#;
        for evil in [
            ok.replace(
                "</samlp:Response>",
                &format!("{assertion}</samlp:Response>"),
            ),
            ok.replace(
                "<saml:NameID>",
                &format!("<saml:Advice>{assertion}</saml:Advice><saml:NameID>"),
            ),
            ok.replace(
                "<saml:Assertion xmlns:saml=\"a\">",
                "<x:Assertion xmlns:x=\"a\">",
            )
            .replace("</saml:Assertion>", "</x:Assertion><Assertion/>"),
            ok.replace(
                "</samlp:Response>",
                "<saml:EncryptedAssertion/></samlp:Response>",
            ),
            r#"<samlp:Response xmlns:samlp="p"/>"#.to_owned(),
        ] {
            assert!(refused(&evil).contains("exactly one assertion"), "{evil}");
        }
    }

    #[test]
    fn pending_requests_open_only_here_for_their_workspace_until_they_expire() {
        let key = super::super::ServerKey::from_bytes(&[3; 32]);
        let p = Pending::new("_rc1".into(), "/members".into(), 1_000);
        assert_eq!(p.expires, 1_000 + PENDING_TTL_SECS);
        let sealed = seal_pending(&key, 7, &p);
        assert!(!sealed.contains("members") && !sealed.contains(';') && !sealed.contains('='));
        assert_eq!(open_pending(&key, 7, &sealed, 1_001), Some(p.clone()));
        assert_eq!(
            open_pending(&key, 8, &sealed, 1_001),
            None,
            "another workspace"
        );
        assert_eq!(open_pending(&key, 7, &sealed, p.expires), None, "expired");
        let other = super::super::ServerKey::from_bytes(&[4; 32]);
        assert_eq!(open_pending(&other, 7, &sealed, 1_001), None, "another key");
        let mut tampered = sealed.clone().into_bytes();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(open_pending(&key, 7, &tampered, 1_001), None);
        assert_eq!(open_pending(&key, 7, "not base64!", 1_001), None);
        assert!(answers(&p, "_rc1"));
        assert!(!answers(&p, "_rc2") && !answers(&p, "_rc"));
        // A `next` too long for a cookie is dropped.
        let long = Pending::new("_rc2".into(), format!("/{}", "a".repeat(5000)), 0);
        assert_eq!(long.next, "/");
        assert!(
            seal_pending(
                &key,
                7,
                &Pending::new("_rc3".into(), format!("/{}", "a".repeat(1999)), 0)
            )
            .len()
                < 3000
        );
    }

    #[test]
    fn authn_request_goes_by_redirect_with_our_id() {
        let s = settings();
        let url = authn_request_url(&s, "_rc123").unwrap();
        assert!(
            url.as_str()
                .starts_with("https://idp.test/sso?SAMLRequest=")
        );
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        let deflated = STANDARD.decode(&q["SAMLRequest"]).unwrap();
        let mut xml = String::new();
        use std::io::Read;
        flate2::read::DeflateDecoder::new(&deflated[..])
            .read_to_string(&mut xml)
            .unwrap();
        assert!(xml.contains("ID=\"_rc123\""), "{xml}");
        assert!(xml.contains(&s.acs_url), "{xml}");
        assert!(xml.contains(&s.sp_entity_id), "{xml}");
    }

    #[test]
    fn responses_without_in_response_to_are_unsolicited() {
        let xml = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0" IssueInstant="2024-01-01T00:00:00Z"></samlp:Response>"#;
        assert_eq!(claimed_request_id(xml), Err(SamlError::Unsolicited));
        let xml = xml.replace("ID=\"_r\"", "ID=\"_r\" InResponseTo=\"_rc1\"");
        assert_eq!(claimed_request_id(&xml).unwrap(), "_rc1");
        assert!(matches!(
            claimed_request_id("junk"),
            Err(SamlError::Malformed(_))
        ));
    }

    #[test]
    fn unsigned_responses_are_refused() {
        let s = settings();
        let now = chrono::Utc::now();
        let xml = format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" InResponseTo="_rc1" Version="2.0" IssueInstant="{now}" Destination="{acs}">
<saml:Issuer>{idp}</saml:Issuer>
<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
<saml:Assertion ID="_a" Version="2.0" IssueInstant="{now}"><saml:Issuer>{idp}</saml:Issuer>
<saml:Subject><saml:NameID>ann@acme.test</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="_rc1" Recipient="{acs}" NotOnOrAfter="{later}"/></saml:SubjectConfirmation></saml:Subject>
<saml:Conditions NotBefore="{now}" NotOnOrAfter="{later}"><saml:AudienceRestriction><saml:Audience>{sp}</saml:Audience></saml:AudienceRestriction></saml:Conditions>
</saml:Assertion></samlp:Response>"#,
            now = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            later = (now + chrono::Duration::minutes(5))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            acs = s.acs_url,
            idp = s.idp_entity_id,
            sp = s.sp_entity_id,
        );
        let err = verify_response(&s, &xml, "_rc1").unwrap_err();
        assert!(matches!(err, SamlError::Invalid(_)), "{err:?}");
        // The same document passes the non-signature checks: the refusal is the signature.
        let reader: Response = xml.parse().unwrap();
        let verified = check_assertion(reader.assertion.as_ref().unwrap(), &s, now).unwrap();
        assert_eq!(verified.email, "ann@acme.test");
        assert_eq!(verified.subject.as_deref(), Some("ann@acme.test"));
        let mut other = s.clone();
        other.sp_entity_id = "https://someone-else".into();
        assert!(check_assertion(reader.assertion.as_ref().unwrap(), &other, now).is_err());
    }
}
