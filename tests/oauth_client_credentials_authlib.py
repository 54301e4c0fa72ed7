#!/usr/bin/env python3
"""Drive Rollcall's client credentials grant (RFC 6749 section 4.4) with authlib, a
client we did not write: a workspace client's own access token, by HTTP Basic and by
form fields, scope narrowing, the SCIM API with the token, introspection and
revocation. Exit code 0 means every step behaved; anything else prints what went wrong.

    oauth_client_credentials_authlib.py --base http://localhost:8080 \
        --client-id ID --client-secret SECRET --workspace acme
"""

import argparse
import sys

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def step(message):
    print(f"ok: {message}")


def scim_status(base, token):
    return requests.get(f"{base}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}).status_code


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--workspace", required=True)
    a = ap.parse_args()
    base = a.base.rstrip("/")

    meta = requests.get(f"{base}/.well-known/oauth-authorization-server").json()
    check("client_credentials" in meta["grant_types_supported"], f"grant not advertised: {meta}")
    step("metadata lists client_credentials")

    tokens = {}
    for method in ("client_secret_basic", "client_secret_post"):
        client = OAuth2Session(
            client_id=a.client_id,
            client_secret=a.client_secret,
            token_endpoint_auth_method=method,
        )
        token = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        check(token["token_type"] == "Bearer", f"{method}: token_type {token['token_type']!r}")
        check(token["access_token"].startswith("rc_at_"), f"{method}: access token prefix")
        check("refresh_token" not in token, f"{method}: a refresh token was issued: {token}")
        check(token["scope"] == "scim:read scim:write", f"{method}: scope {token['scope']!r}")
        check(scim_status(base, token["access_token"]) == 200, f"{method}: the token does not work on SCIM")
        tokens[method] = token
        step(f"token by {method}")

    client = OAuth2Session(client_id=a.client_id, client_secret=a.client_secret, scope="scim:read")
    narrowed = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    check(narrowed["scope"] == "scim:read", f"narrowed scope {narrowed['scope']!r}")
    r = requests.post(
        f"{base}/scim/v2/Users",
        headers={"Authorization": f"Bearer {narrowed['access_token']}"},
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ro@example.com"},
    )
    check(r.status_code == 403, f"a scim:read token wrote: {r.status_code}")
    step("scope narrowed to what was asked")

    wrong = OAuth2Session(client_id=a.client_id, client_secret="rc_cs_wrong")
    try:
        wrong.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        fail("a wrong secret was accepted")
    except OAuthError as e:
        check(e.error == "invalid_client", f"wrong secret answered {e.error}")
    step("wrong secret refused with invalid_client")

    client = OAuth2Session(client_id=a.client_id, client_secret=a.client_secret)
    info = client.introspect_token(meta["introspection_endpoint"], token=tokens["client_secret_basic"]["access_token"]).json()
    check(info.get("active") is True, f"introspection: {info}")
    check(info.get("client_id") == a.client_id, f"introspection client_id: {info}")
    check(info.get("sub") == a.client_id, f"introspection sub: {info}")
    check(info.get("workspace") == a.workspace, f"introspection workspace: {info}")
    step("introspection")

    resp = client.revoke_token(meta["revocation_endpoint"], token=tokens["client_secret_basic"]["access_token"])
    check(resp.status_code == 200, f"revocation answered {resp.status_code}")
    check(scim_status(base, tokens["client_secret_basic"]["access_token"]) == 401, "a revoked token still works")
    check(scim_status(base, tokens["client_secret_post"]["access_token"]) == 200, "revoking one token ended another")
    step("revocation")
    print("authlib client credentials passed")


if __name__ == "__main__":
    main()
