#!/usr/bin/env python3
"""Drive Rollcall's OAuth2 authorization server with authlib, a client we did not write.

It reads the RFC 8414 metadata, builds the authorization URL with PKCE (S256),
follows the pages as a browser would (workspace subdomain, password sign-in,
consent), then uses authlib to exchange the code, refresh, introspect and revoke.
Exit code 0 means every step behaved; anything else prints what went wrong.

    oauth_client_authlib.py --base http://localhost:8080 --client-id ID \
        [--client-secret SECRET] --workspace acme --email E --password P \
        --redirect-uri http://localhost:9999/callback
"""

import argparse
import html
import re
import socket
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

# Workspaces live on *.localhost: resolve those to loopback as browsers do.
_getaddrinfo = socket.getaddrinfo


def _loopback_getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_getaddrinfo


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def step(message):
    print(f"ok: {message}")


def field(page, name):
    """The value of <input name="NAME" value="..."> in an HTML page."""
    for tag in re.findall(r"<input[^>]*>", page):
        if f'name="{name}"' in tag:
            m = re.search(r'value="([^"]*)"', tag)
            if m:
                return html.unescape(m.group(1))
    fail(f"no form field {name!r} in page:\n{page[:2000]}")


def expect(response, status, what):
    if response.status_code != status:
        fail(f"{what}: expected {status}, got {response.status_code}: {response.text[:1000]}")
    return response


def token_active(client, meta, base, token, public):
    """Whether an access token still works. Introspection needs an authenticated
    client (RFC 7662 section 2.1), so a public client's token is tried on the SCIM
    API instead, and the public client's introspection must be refused."""
    if not public:
        return client.introspect_token(meta["introspection_endpoint"], token=token).json() != {"active": False}
    r = client.post(meta["introspection_endpoint"], data={"token": token, "client_id": client.client_id}, withhold_token=True)
    check(r.status_code == 401 and r.json().get("error") == "invalid_client", f"public introspection answered {r.status_code} {r.text}")
    r = requests.get(f"{base}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    check(r.status_code in (200, 401), f"SCIM answered {r.status_code}: {r.text[:300]}")
    return r.status_code == 200


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", default=None)
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--redirect-uri", required=True)
    a = ap.parse_args()
    base = a.base.rstrip("/")

    meta = expect(requests.get(f"{base}/.well-known/oauth-authorization-server"), 200, "metadata").json()
    check(meta["issuer"] == base, f"issuer {meta['issuer']!r} != {base!r}")
    check("S256" in meta["code_challenge_methods_supported"], "S256 not advertised")
    step("metadata")

    auth_method = "client_secret_basic" if a.client_secret else "none"
    public = a.client_secret is None
    if public:
        for key in ("introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"):
            check("none" not in meta[key], f"{key} offers 'none'")
    client = OAuth2Session(
        client_id=a.client_id,
        client_secret=a.client_secret,
        scope="scim:read scim:write",
        redirect_uri=a.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method=auth_method,
    )
    verifier = generate_token(64)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    check("code_challenge=" in url and "code_challenge_method=S256" in url, f"no PKCE in {url}")

    # The browser part, following the pages' own forms.
    browser = requests.Session()
    page = expect(browser.get(url, allow_redirects=False), 200, "authorize on the app host")
    request = field(page.text, "request")
    r = expect(
        browser.post(
            meta["authorization_endpoint"],
            data={"subdomain": "no-such-workspace", "request": request},
            allow_redirects=False,
        ),
        422,
        "unknown workspace",
    )
    r = expect(
        browser.post(
            meta["authorization_endpoint"],
            data={"subdomain": a.workspace, "request": request},
            allow_redirects=False,
        ),
        303,
        "workspace chosen",
    )
    on_workspace = r.headers["location"]
    check(urlparse(on_workspace).hostname.startswith(a.workspace + "."), f"not the workspace host: {on_workspace}")
    r = expect(browser.get(on_workspace, allow_redirects=False), 303, "sign-in first")
    signin_url = urljoin(on_workspace, r.headers["location"])
    page = expect(browser.get(signin_url, allow_redirects=False), 200, "sign-in page")
    r = expect(
        browser.post(
            urljoin(signin_url, "/signin"),
            data={
                "email": a.email,
                "password": a.password,
                "csrf": field(page.text, "csrf"),
                "next": field(page.text, "next"),
            },
            allow_redirects=False,
        ),
        303,
        "sign-in",
    )
    consent_url = urljoin(signin_url, r.headers["location"])
    page = expect(browser.get(consent_url, allow_redirects=False), 200, "consent page")
    check("Allow" in page.text and "Deny" in page.text, "consent page without Allow/Deny")
    check(page.headers.get("X-Frame-Options") == "DENY", "consent page may be framed")
    r = expect(
        browser.post(
            urljoin(consent_url, "/oauth2/authorize"),
            data={"csrf": field(page.text, "csrf"), "request": field(page.text, "request"), "decision": "allow"},
            allow_redirects=False,
        ),
        303,
        "allow",
    )
    callback = r.headers["location"]
    check(callback.startswith(a.redirect_uri + "?"), f"not sent back to the client: {callback}")
    params = parse_qs(urlparse(callback).query)
    check(params.get("iss") == [base], f"iss missing or wrong (RFC 9207): {callback}")
    check(params.get("state") == [state], "state not returned")
    step("authorization code received")

    # authlib from here on.
    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    check(token["token_type"] == "Bearer", f"token_type {token['token_type']!r}")
    check(token["access_token"].startswith("rc_at_"), "access token prefix")
    check(token.get("refresh_token", "").startswith("rc_rt_"), "no refresh token")
    check(token["scope"] == "scim:read scim:write", f"scope {token['scope']!r}")
    step("code exchanged with PKCE")

    # A second exchange of the same code fails, and ends the grant.
    replay = OAuth2Session(
        client_id=a.client_id, client_secret=a.client_secret,
        redirect_uri=a.redirect_uri, token_endpoint_auth_method=auth_method,
    )
    try:
        replay.fetch_token(meta["token_endpoint"], code=params["code"][0], code_verifier=verifier)
        fail("a replayed code was accepted")
    except OAuthError as e:
        check(e.error == "invalid_grant", f"replay answered {e.error}")
    check(not token_active(client, meta, base, token["access_token"], public), "the replay should have ended the grant")
    step("replayed code refused and its tokens revoked")

    # A fresh authorization for the rest: the browser is signed in now.
    verifier = generate_token(64)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    query = urlparse(url).query
    page = expect(browser.get(urljoin(consent_url, "/oauth2/authorize?" + query), allow_redirects=False), 200, "consent again")
    r = expect(
        browser.post(
            urljoin(consent_url, "/oauth2/authorize"),
            data={"csrf": field(page.text, "csrf"), "request": field(page.text, "request"), "decision": "allow"},
            allow_redirects=False,
        ),
        303,
        "allow again",
    )
    try:
        client.fetch_token(meta["token_endpoint"], authorization_response=r.headers["location"], code_verifier=generate_token(64))
        fail("a wrong code_verifier was accepted")
    except OAuthError as e:
        check(e.error == "invalid_grant", f"wrong verifier answered {e.error}")
    step("wrong PKCE verifier refused")

    verifier = generate_token(64)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    page = expect(browser.get(urljoin(consent_url, "/oauth2/authorize?" + urlparse(url).query), allow_redirects=False), 200, "consent")
    r = expect(
        browser.post(
            urljoin(consent_url, "/oauth2/authorize"),
            data={"csrf": field(page.text, "csrf"), "request": field(page.text, "request"), "decision": "allow"},
            allow_redirects=False,
        ),
        303,
        "allow",
    )
    token = client.fetch_token(meta["token_endpoint"], authorization_response=r.headers["location"], code_verifier=verifier)
    if public:
        check(token_active(client, meta, base, token["access_token"], public), "a fresh token does not work")
        step("public client: introspection refused, token works")
    else:
        info = client.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
        check(info.get("active") is True, f"introspection: {info}")
        check(info.get("workspace") == a.workspace, f"introspection workspace: {info}")
        check(info.get("client_id") == a.client_id, f"introspection client_id: {info}")
        check(info.get("iss") == base, f"introspection iss: {info}")
        step("introspection")

    refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    check(refreshed["access_token"] != token["access_token"], "refresh gave the same access token")
    check(refreshed["refresh_token"] != token["refresh_token"], "refresh token not rotated")
    step("refresh with rotation")

    narrowed = client.refresh_token(meta["token_endpoint"], refresh_token=refreshed["refresh_token"], scope="scim:read")
    check(narrowed["scope"] == "scim:read", f"narrowed scope {narrowed['scope']!r}")
    try:
        client.refresh_token(meta["token_endpoint"], refresh_token=narrowed["refresh_token"], scope="scim:read scim:write openid")
        fail("an unknown scope was accepted on refresh")
    except OAuthError as e:
        check(e.error == "invalid_scope", f"wider scope answered {e.error}")
    step("refresh narrows scope, refuses unknown scope")

    resp = client.revoke_token(meta["revocation_endpoint"], token=narrowed["refresh_token"], token_type_hint="refresh_token")
    if public:
        check(resp.status_code == 401, f"public revocation answered {resp.status_code}")
        check(token_active(client, meta, base, narrowed["access_token"], public), "a refused revocation ended the grant")
        step("public client: revocation refused (needs client authentication)")
        print("authlib flow passed")
        return
    check(resp.status_code == 200, f"revocation answered {resp.status_code}")
    check(not token_active(client, meta, base, narrowed["access_token"], public), "revoking the refresh token should end the grant")
    try:
        client.refresh_token(meta["token_endpoint"], refresh_token=narrowed["refresh_token"])
        fail("a revoked refresh token still refreshed")
    except OAuthError as e:
        check(e.error == "invalid_grant", f"revoked refresh answered {e.error}")
    resp = client.revoke_token(meta["revocation_endpoint"], token="rc_at_unknown")
    check(resp.status_code == 200, "revoking an unknown token must answer 200")
    step("revocation ends the grant")
    print("authlib flow passed")


if __name__ == "__main__":
    main()
