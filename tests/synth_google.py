"""What Google answers Gemini CLI signed in with Google (auth type `oauth-personal`, Gemini Code
Assist), for the stand-in (tests/synth.py): the sign-in and set-up calls, which are not
billable, and the envelope of Code Assist's model calls.

Gemini CLI 0.61.0 with cached credentials (`~/.gemini/oauth_creds.json`) starts like this
(its bundle: packages/core/src/code_assist/oauth2.ts `initOauthClient`, setup.ts
`_doSetupUser`, server.ts `CodeAssistServer`; google-auth-library's `OAuth2Client`):

  POST oauth2.googleapis.com/token        refresh, when the cached access token has expired
                                          (form body, grant_type=refresh_token)
  POST oauth2.googleapis.com/tokeninfo    the token's `scope` (a string) and `expires_in`
  GET  www.googleapis.com/oauth2/v2/userinfo   the account's email, when none is cached
  POST cloudcode-pa.googleapis.com/v1internal:loadCodeAssist   the user's tier and project: a
                                          user with no `currentTier` is onboarded next
  POST .../v1internal:onboardUser         a long-running operation; `done` with the project
  POST .../v1internal:listExperiments, :retrieveUserQuota, :fetchAdminControls,
       :recordCodeAssistMetrics     bookkeeping, minimal valid answers
       (:countTokens as synth answers every countTokens)

and then its model calls, `POST .../v1internal:generateContent` and
`:streamGenerateContent?alt=sse`, the model in the body's top-level `model`, each answer object
a Gemini response wrapped as `{"response": {...}, "traceId": ...}` (see `code_assist`).
"""

from __future__ import annotations

import re

CODE_ASSIST = "cloudcode-pa.googleapis.com"
PROJECT = "standin-project-4711"
EMAIL = "standin@example.com"
SCOPE = ("https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email "
         "https://www.googleapis.com/auth/userinfo.profile openid")
FREE_TIER = {"id": "free-tier", "name": "Gemini Code Assist for individuals", "isDefault": True,
             "description": "stand-in", "userDefinedCloudaicompanionProject": False}
MODEL_CALL = re.compile(r"^/v1internal:(generateContent|streamGenerateContent)$")
"""Code Assist's model calls: the method right under the host, after the API version."""

_STARTUP: dict[tuple[str, str, str], dict] = {
    ("POST", "oauth2.googleapis.com", "/token"): {
        "access_token": "ya29.standin-refreshed", "expires_in": 3599, "scope": SCOPE, "token_type": "Bearer"},
    ("POST", "oauth2.googleapis.com", "/tokeninfo"): {
        "azp": "standin.apps.googleusercontent.com", "aud": "standin.apps.googleusercontent.com",
        "sub": "1000000000000000000001", "scope": SCOPE, "expires_in": 3599, "email": EMAIL,
        "email_verified": "true", "access_type": "offline"},
    ("GET", "www.googleapis.com", "/oauth2/v2/userinfo"): {
        "id": "1000000000000000000001", "email": EMAIL, "verified_email": True},
    # Not onboarded yet: no currentTier, so Gemini CLI onboards to the default (free) tier.
    ("POST", "cloudcode-pa.googleapis.com", "/v1internal:loadCodeAssist"): {"allowedTiers": [FREE_TIER]},
    ("POST", "cloudcode-pa.googleapis.com", "/v1internal:onboardUser"): {
        "name": "operations/standin-onboard", "done": True,
        "response": {"@type": "type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse",
                     "cloudaicompanionProject": {"id": PROJECT, "name": PROJECT}}},
    ("POST", "cloudcode-pa.googleapis.com", "/v1internal:listExperiments"): {"experimentIds": [], "flags": []},
    ("POST", "cloudcode-pa.googleapis.com", "/v1internal:retrieveUserQuota"): {"buckets": []},
    ("POST", "cloudcode-pa.googleapis.com", "/v1internal:fetchAdminControls"): {},
    ("POST", "cloudcode-pa.googleapis.com", "/v1internal:recordCodeAssistMetrics"): {},
}


def startup(method: str, host: str, path: str) -> dict | None:
    """The JSON answer to one of the sign-in and set-up calls above, or None for any other."""
    return _STARTUP.get((method, host.split(":")[0], path))


def code_assist(objects: list[dict], n: int) -> list[dict]:
    """Gemini response objects in Code Assist's envelope (server.ts `CaGenerateContentResponse`)."""
    return [{"response": obj, "traceId": f"standin-trace-{n}"} for obj in objects]
