//! SAML 2.0 sign-in, SP-initiated: an AuthnRequest by HTTP-Redirect, the IdP's
//! Response by HTTP-POST at our ACS. Signatures are verified by `samael` with
//! xmlsec against the one certificate the admin configured (never a certificate the
//! response carries), and only the signed part of the document is read afterwards.
//! samael checks Destination, Issuer, Recipient, InResponseTo, NotBefore and
//! NotOnOrAfter; here we add: an Audience naming us is required, unsolicited
//! responses are refused, and the assertion id and lifetime are returned so the
//! caller can refuse replays (the used ids live in the database).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::metadata::EntityDescriptor;
use samael::schema::{Assertion, Response};
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use time::OffsetDateTime;

pub const HTTP_REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const HTTP_POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// A workspace's SAML settings and our own endpoints.
#[derive(Debug, Clone)]
pub struct SamlSettings {
    pub idp_entity_id: String,
    pub sso_url: String,
    /// The IdP's signing certificate, PEM.
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
    #[error("The SAML response was not accepted: {0}")]
    Invalid(String),
    #[error("This SAML assertion was already used. Start the sign-in again.")]
    Replayed,
    #[error("The identity provider did not say who signed in (no NameID or email attribute).")]
    NoEmail,
}

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

fn certificate_base64(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

/// Read an IdP's metadata document: its entity id, HTTP-Redirect SSO URL and
/// signing certificate.
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
    let cert = idp
        .key_descriptors
        .iter()
        .filter(|k| {
            k.key_use
                .as_deref()
                .is_none_or(|u| u.is_empty() || u == "signing")
        })
        .filter_map(|k| k.key_info.x509_data.as_ref())
        .flat_map(|x| x.certificates.iter())
        .next()
        .ok_or_else(|| SamlError::Settings("the metadata has no signing certificate".into()))?;
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        certificate_pem: normalize_certificate(cert)?,
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
        certificate_pem: normalize_certificate(certificate)?,
    })
}

fn service_provider(s: &SamlSettings) -> Result<ServiceProvider, SamlError> {
    // The IdP as samael wants it: a metadata document with our one trusted
    // certificate (escaped values, so nothing the admin typed can add elements).
    let esc = |v: &str| {
        v.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let xml = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="{HTTP_REDIRECT_BINDING}" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
        entity = esc(&s.idp_entity_id),
        cert = esc(&certificate_base64(&s.certificate_pem)),
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
        .max_clock_skew(chrono::Duration::seconds(super::CLOCK_SKEW_SECS))
        .max_issue_delay(chrono::Duration::seconds(300))
        .build()
        .map_err(|e| SamlError::Settings(e.to_string()))
}

/// A fresh AuthnRequest id (XML ids must not start with a digit).
pub fn new_request_id() -> String {
    format!("_rc{}", uuid::Uuid::new_v4().simple())
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

/// The request a response claims to answer, read before verification only to know
/// which pending request to check it against. No InResponseTo: unsolicited.
pub fn claimed_request_id(xml: &str) -> Result<String, SamlError> {
    let response: Response = xml
        .parse()
        .map_err(|e| SamlError::Malformed(format!("not a SAML Response: {e}")))?;
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
    let sp = service_provider(s)?;
    let assertion = sp
        .parse_xml_response(xml, Some(&[request_id]))
        .map_err(|e| SamlError::Invalid(e.to_string()))?;
    check_assertion(&assertion, s, chrono::Utc::now())
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
        let mut other = s.clone();
        other.sp_entity_id = "https://someone-else".into();
        assert!(check_assertion(reader.assertion.as_ref().unwrap(), &other, now).is_err());
    }
}
