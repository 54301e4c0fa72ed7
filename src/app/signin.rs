//! Signing a member in to a workspace: by password (with the failure limits and the
//! timing defence), or through the workspace's identity provider once it has vouched
//! for an account (finding, linking or creating the member). The session itself is
//! the HTTP layer's business: these return the member to sign in.

use crate::app::admin;
use crate::config::Limits;
use crate::domain::{Email, Role};
use crate::secrets;
use crate::store::members::{self, Member};
use crate::store::rate_limits::{self, Limit, Verdict};
use crate::store::sso::SsoRow;
use crate::store::workspaces::Workspace;
use crate::store::{Db, StoreError};

/// How a workspace's members may sign in, as the sign-in page offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods {
    /// The password form is shown.
    pub password: bool,
    /// Sign-in through the workspace's identity provider is set up.
    pub sso: bool,
}

/// The ways the workspace's sign-in page offers.
pub async fn methods(db: &Db, workspace: &Workspace) -> Result<Methods, StoreError> {
    let row = crate::store::sso::get(db, workspace.id).await?;
    Ok(methods_of(workspace, &row))
}

fn methods_of(workspace: &Workspace, row: &SsoRow) -> Methods {
    Methods {
        password: crate::sso::password_form_shown(workspace.password_signin, row),
        sso: crate::sso::active_protocol(row).is_some(),
    }
}

// ---------------------------------------------------------------------------
// By password

/// A password sign-in attempt as the form sent it.
#[derive(Debug, Clone)]
pub struct PasswordAttempt<'a> {
    /// The email as typed.
    pub email: &'a str,
    pub password: String,
    /// The caller's address, for the per-address limit.
    pub address: &'a str,
}

/// Why a password sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("Password sign-in is turned off for this workspace.")]
    PasswordsOff,
    /// Too many failures for this account or from this address.
    #[error("too many attempts; wait a little and try again")]
    TooManyRequests { retry_after_secs: u64 },
    /// Unknown email, wrong password, deactivated member, or a member who may not
    /// use a password while SSO is on: one answer for all, so it tells nothing.
    /// `sso`: the workspace offers SSO instead.
    #[error("That email and password do not match an active member of this workspace.")]
    NoMatch { sso: bool },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Failed password sign-ins are counted per account and per address over this window.
pub const WINDOW_SECS: u32 = 15 * 60;

/// Check a password sign-in; the member to sign in.
pub async fn by_password(
    db: &Db,
    limits: &Limits,
    workspace: &Workspace,
    attempt: PasswordAttempt<'_>,
) -> Result<Member, PasswordError> {
    let sso_row = crate::store::sso::get(db, workspace.id).await?;
    let offered = methods_of(workspace, &sso_row);
    if !offered.password {
        return Err(PasswordError::PasswordsOff);
    }
    let email = attempt.email.trim();
    // Unknown emails are counted like known ones, so the limit says nothing about
    // who has an account.
    let windows = [
        (
            format!(
                "signin:account:{}:{}",
                workspace.id,
                crate::domain::fold_case(email)
            ),
            limits.signin_failures_per_account,
        ),
        (
            format!("signin:addr:{}", attempt.address),
            limits.signin_failures_per_address,
        ),
    ];
    // Count the attempt before checking the password, so concurrent attempts
    // cannot all pass a limit that none of them has recorded yet; a sign-in that
    // succeeds is refunded (the limits count failures).
    let mut counted = Vec::with_capacity(windows.len());
    for (key, max) in &windows {
        let limit = Limit {
            max: *max,
            window_secs: WINDOW_SECS,
        };
        let c = rate_limits::count(db, key, limit).await?;
        if let Verdict::Limited { retry_after_secs } = c.verdict {
            return Err(PasswordError::TooManyRequests { retry_after_secs });
        }
        counted.push(c);
    }
    let found = members::credentials(db, workspace.id, email).await?;
    // With SSO on, only the break-glass admin (or everyone, if the admin kept
    // passwords on) may use one; others fail like a wrong password, so the answer
    // does not tell who the break-glass account is.
    let (member, hash) = match found {
        Some((m, h))
            if m.active
                && crate::sso::password_allowed(
                    workspace.password_signin,
                    &sso_row,
                    &m.user_name,
                    m.role == Role::Admin,
                ) =>
        {
            (Some(m), h)
        }
        _ => (None, None),
    };
    // Always verify (against a dummy hash when there is nothing to check) so the
    // answer takes as long for unknown emails as for wrong passwords.
    let ok = secrets::verify_password(attempt.password, hash).await;
    let Some(member) = member.filter(|_| ok) else {
        return Err(PasswordError::NoMatch { sso: offered.sso });
    };
    for c in &counted {
        rate_limits::refund(db, c).await?;
    }
    Ok(member)
}

// ---------------------------------------------------------------------------
// Through the workspace's identity provider

/// Who the IdP says signed in.
#[derive(Debug, Clone, Copy)]
pub struct IdpAccount<'a> {
    /// The OIDC issuer or the SAML IdP entity id, as configured.
    pub issuer: &'a str,
    /// The account's lasting id at the IdP (OIDC `sub`, SAML NameID); None when the
    /// IdP gave none (a transient NameID).
    pub subject: Option<&'a str>,
    /// A verified email (OIDC checks `email_verified`; SAML's is what the IdP signed).
    pub email: &'a str,
}

/// Why an account the IdP vouched for cannot sign in.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// No member matches, and the workspace does not create members on first sign-in.
    #[error("the account is not a member of the workspace")]
    NotAMember,
    #[error("the member is deactivated")]
    Deactivated,
    /// The member with this email is linked to another account of this IdP.
    #[error("the member is linked to a different account at the identity provider")]
    LinkedElsewhere,
    /// A member would be created, but the IdP's email address is not valid.
    #[error("the identity provider's email address is not valid")]
    InvalidEmail,
    #[error("the member created for this account cannot be found")]
    Vanished,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The IdP vouched for `account`: the member to sign in (active).
pub async fn by_sso(
    db: &Db,
    workspace: &Workspace,
    settings: &SsoRow,
    account: &IdpAccount<'_>,
) -> Result<Member, SsoError> {
    let member = find_member(db, workspace, settings, account).await?;
    if !member.active {
        return Err(SsoError::Deactivated);
    }
    Ok(member)
}

/// The member an IdP account signs in as. A linked account is its member, whatever
/// email the IdP says now; an unlinked one is matched by email (or created, when
/// allowed) only if that member is not linked to another account of this IdP, and
/// is then linked. So an IdP account whose email is changed to someone else's
/// cannot take that member over.
async fn find_member(
    db: &Db,
    ws: &Workspace,
    settings: &SsoRow,
    account: &IdpAccount<'_>,
) -> Result<Member, SsoError> {
    use crate::store::sso::{link, linked_member, member_is_linked};
    if let Some(subject) = account.subject
        && let Some(id) = linked_member(db, ws.id, account.issuer, subject).await?
    {
        return members::by_id(db, ws.id, id)
            .await?
            .ok_or(SsoError::NotAMember);
    }
    let member = match members::by_email(db, ws.id, account.email).await? {
        Some(m) => m,
        None if settings.auto_create => create_member(db, ws, account.email).await?,
        None => return Err(SsoError::NotAMember),
    };
    if member_is_linked(db, ws.id, account.issuer, member.id).await? {
        return Err(SsoError::LinkedElsewhere);
    }
    if let Some(subject) = account.subject
        && member.active
    {
        match link(db, ws.id, account.issuer, subject, member.id).await {
            Ok(()) => {}
            // A parallel first sign-in linked it a moment ago: fine if to this member.
            Err(StoreError::Conflict(_)) => {
                let linked = linked_member(db, ws.id, account.issuer, subject).await?;
                if linked != Some(member.id) {
                    return Err(SsoError::LinkedElsewhere);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(member)
}

/// A contributor for an account the IdP vouched for, on its first sign-in.
async fn create_member(db: &Db, ws: &Workspace, email: &str) -> Result<Member, SsoError> {
    let email = Email::parse(email).map_err(|_| SsoError::InvalidEmail)?;
    let data = admin::local_member(&email, Role::Contributor);
    match members::create(db, ws.id, &data, None).await {
        Ok(m) => Ok(m),
        // Created by a parallel sign-in a moment ago.
        Err(StoreError::Conflict(_)) => members::by_email(db, ws.id, email.as_str())
            .await?
            .ok_or(SsoError::Vanished),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    fn attempt<'a>(email: &'a str, password: &str) -> PasswordAttempt<'a> {
        PasswordAttempt {
            email,
            password: password.to_owned(),
            address: "192.0.2.1",
        }
    }

    #[tokio::test]
    async fn a_password_signs_in_its_member_and_nothing_else_does() {
        let db = testing::db().await;
        let limits = testing::config(|_| {}).limits;
        let acme = testing::workspace(&db, "acme").await;
        let ws = &acme.workspace;
        let pw = acme.admin_password.as_str();

        let member = by_password(&db, &limits, ws, attempt(" Admin@Acme.test ", pw))
            .await
            .expect("signed in");
        assert_eq!(member.id, acme.admin.id);

        for (email, password) in [
            ("admin@acme.test", "wrong password"),
            ("nobody@acme.test", pw),
        ] {
            let e = by_password(&db, &limits, ws, attempt(email, password))
                .await
                .unwrap_err();
            assert!(matches!(e, PasswordError::NoMatch { sso: false }), "{e:?}");
        }
        // A deactivated member, with the right password, fails the same way.
        let data = admin::local_member(&Email::parse("old@acme.test").unwrap(), Role::Viewer);
        let hash = secrets::hash_password("old-password".into()).await;
        let old = members::create(&db, ws.id, &data, Some(&hash))
            .await
            .unwrap();
        let mut off = data.clone();
        off.active = false;
        members::update(&db, ws.id, old.id, &off, None)
            .await
            .unwrap();
        let e = by_password(&db, &limits, ws, attempt("old@acme.test", "old-password"))
            .await
            .unwrap_err();
        assert!(matches!(e, PasswordError::NoMatch { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn failures_are_limited_and_a_success_is_refunded() {
        let db = testing::db().await;
        let limits = testing::config(|s| s.signin_failures_per_account = Some(2)).limits;
        let acme = testing::workspace(&db, "acme").await;
        let ws = &acme.workspace;
        let pw = acme.admin_password.as_str();
        let email = "admin@acme.test";

        let fail = || by_password(&db, &limits, ws, attempt(email, "wrong"));
        assert!(matches!(fail().await, Err(PasswordError::NoMatch { .. })));
        // A success does not count against the limit...
        by_password(&db, &limits, ws, attempt(email, pw))
            .await
            .expect("signed in");
        // ... so this is the second failure, still within it.
        assert!(matches!(fail().await, Err(PasswordError::NoMatch { .. })));
        // The third is over the limit, whatever the password (and whatever the case
        // of the email).
        let e = by_password(&db, &limits, ws, attempt("ADMIN@acme.test", pw))
            .await
            .unwrap_err();
        assert!(
            matches!(e, PasswordError::TooManyRequests { retry_after_secs } if retry_after_secs > 0),
            "{e:?}"
        );
        // Other accounts are not limited by it.
        let e = by_password(&db, &limits, ws, attempt("other@acme.test", "x"))
            .await
            .unwrap_err();
        assert!(matches!(e, PasswordError::NoMatch { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn passwords_turned_off_refuse_every_attempt() {
        let db = testing::db().await;
        let limits = testing::config(|_| {}).limits;
        let acme = testing::workspace(&db, "acme").await;
        admin::set_password_signin(&db, &acme.workspace, false)
            .await
            .unwrap();
        let sub = crate::domain::Subdomain::parse("acme").unwrap();
        let ws = admin::workspace(&db, &sub).await.unwrap();
        assert!(!methods(&db, &ws).await.unwrap().password);
        let e = by_password(
            &db,
            &limits,
            &ws,
            attempt("admin@acme.test", &acme.admin_password),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, PasswordError::PasswordsOff), "{e:?}");
    }

    const ISSUER: &str = "https://idp.example.com";

    fn account<'a>(subject: &'a str, email: &'a str) -> IdpAccount<'a> {
        IdpAccount {
            issuer: ISSUER,
            subject: Some(subject),
            email,
        }
    }

    #[tokio::test]
    async fn sso_finds_links_and_creates_members() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let ws = &acme.workspace;
        let mut settings = crate::store::sso::get(&db, ws.id).await.unwrap();

        // Unknown, and no creating: not a member.
        let e = by_sso(&db, ws, &settings, &account("sub-1", "new@acme.test"))
            .await
            .unwrap_err();
        assert!(matches!(e, SsoError::NotAMember), "{e:?}");

        // A known email: that member, linked to the account from now on.
        let admin = by_sso(&db, ws, &settings, &account("sub-admin", "admin@acme.test"))
            .await
            .unwrap();
        assert_eq!(admin.id, acme.admin.id);
        assert_eq!(
            crate::store::sso::linked_member(&db, ws.id, ISSUER, "sub-admin")
                .await
                .unwrap(),
            Some(acme.admin.id)
        );
        // The link decides, whatever email the IdP says later.
        let again = by_sso(
            &db,
            ws,
            &settings,
            &account("sub-admin", "renamed@acme.test"),
        )
        .await
        .unwrap();
        assert_eq!(again.id, acme.admin.id);
        // Another account of the IdP with the admin's email cannot take them over.
        let e = by_sso(&db, ws, &settings, &account("sub-other", "admin@acme.test"))
            .await
            .unwrap_err();
        assert!(matches!(e, SsoError::LinkedElsewhere), "{e:?}");

        // With creating on, a new contributor, linked.
        settings.auto_create = true;
        let created = by_sso(&db, ws, &settings, &account("sub-1", "new@acme.test"))
            .await
            .unwrap();
        assert_eq!(created.user_name, "new@acme.test");
        assert_eq!(created.role, Role::Contributor);
        assert!(created.active && !created.scim_managed);
        let found = members::by_email(&db, ws.id, "new@acme.test")
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(found.id, created.id);
        let again = by_sso(&db, ws, &settings, &account("sub-1", "new@acme.test"))
            .await
            .unwrap();
        assert_eq!(again.id, created.id);
        // An email that is not one cannot become a member.
        let e = by_sso(&db, ws, &settings, &account("sub-2", "not an email"))
            .await
            .unwrap_err();
        assert!(matches!(e, SsoError::InvalidEmail), "{e:?}");
    }

    #[tokio::test]
    async fn sso_refuses_deactivated_members() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let ws = &acme.workspace;
        let settings = crate::store::sso::get(&db, ws.id).await.unwrap();
        let m = testing::member(&db, ws, "gone@acme.test", Role::Viewer, None).await;
        let mut data = admin::local_member(&Email::parse("gone@acme.test").unwrap(), Role::Viewer);
        data.active = false;
        members::update(&db, ws.id, m.id, &data, None)
            .await
            .unwrap();
        let e = by_sso(&db, ws, &settings, &account("sub-gone", "gone@acme.test"))
            .await
            .unwrap_err();
        assert!(matches!(e, SsoError::Deactivated), "{e:?}");
    }
}
