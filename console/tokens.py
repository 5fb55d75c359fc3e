"""API tokens for ``/api/v1``: created, shown once, stored hashed, expiring, revocable.

A token is ``cst_<id>_<secret>``.  The store keeps the id and the SHA-256 of
the whole token (the secret has 256 bits, so a plain hash is enough; no
password stretching needed).  A token carries roles, a subset of its
owner's, and optionally agencies, a subset of its owner's scope.  At each
request the token acts as its owner *as they are now*, narrowed to the
token: roles the owner lost are gone from the token too, and a disabled
owner's tokens stop working.  Creation and revocation are audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from console import auth
from console.services import InvalidInput, NotAuthenticated, PermissionDenied
from store.base import Store
from store.errors import NotFound
from store.models import ApiToken, User

PREFIX = "cst_"
MAX_DAYS = 366
DEFAULT_DAYS = 90
#: Record a use at most this often (a write per API request would slow every call down).
TOUCH_INTERVAL = timedelta(seconds=60)

_FORMAT = re.compile(r"cst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"\S(?:.{0,78}\S)?")


@dataclass(frozen=True)
class NewToken:
    """A token just created: ``secret`` is the full token, shown to its creator once and never stored."""

    token: ApiToken
    secret: str


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(
    store: Store,
    actor: User,
    owner: User,
    name: str,
    roles: Iterable[str],
    agencies: Iterable[str] = (),
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
) -> NewToken:
    """A new token of ``owner`` created by ``actor`` (the owner or an admin); roles and agencies within the owner's."""
    if actor.username != owner.username and "admin" not in actor.roles:
        raise PermissionDenied("only admins create tokens for other users")
    if not _NAME.fullmatch(name):
        raise InvalidInput("name", "give the token a name (1-80 characters, no line breaks)")
    wanted = auth.check_roles(roles)
    if "admin" not in owner.roles:
        extra = [role for role in wanted if role not in owner.roles]
        if extra:
            raise InvalidInput("roles", f"{owner.username} does not have the role {', '.join(extra)}")
    scope = auth.check_agencies(agencies, wanted)
    owner_scope = auth.agency_scope(owner)
    if owner_scope is not None:
        outside = [agency for agency in scope if agency not in owner_scope]
        if outside:
            raise InvalidInput("agencies", f"{owner.username} does not see the agency {', '.join(outside)}")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInput("days", f"a token lives 1 to {MAX_DAYS} days")
    created = now or datetime.now(UTC)
    token_id = secrets.token_hex(8)
    raw = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        id=token_id,
        name=name,
        owner=owner.username,
        token_hash=token_hash(raw),
        roles=wanted,
        agencies=scope,
        created=created,
        expires=created + timedelta(days=days),
    )
    store.put_api_token(token)
    store.audit(actor.username, "token.create", f"token:{token_id}",
                {"owner": owner.username, "name": name, "roles": list(wanted), "agencies": list(scope),
                 "expires": token.expires.isoformat() if token.expires else None})  # fmt: skip
    return NewToken(token, raw)


def revoke_token(store: Store, actor: User, token_id: str, now: datetime | None = None) -> ApiToken:
    """Revoke a token (its owner or an admin); revoking twice keeps the first time."""
    token = store.get_api_token(token_id)
    if token.owner != actor.username and "admin" not in actor.roles:
        raise NotFound("api token", token_id)  # other users' tokens are not even visible
    if token.revoked is not None:
        return token
    revoked = replace(token, revoked=now or datetime.now(UTC))
    store.put_api_token(revoked)
    store.audit(actor.username, "token.revoke", f"token:{token_id}", {"owner": token.owner, "name": token.name})
    return revoked


def visible_tokens(store: Store, user: User) -> list[ApiToken]:
    """All tokens for admins, their own for everyone else."""
    return store.list_api_tokens(None if "admin" in user.roles else user.username)


def effective_user(owner: User, token: ApiToken) -> User:
    """The owner as the token lets them act: roles and agencies narrowed to the token's."""
    roles = token.roles if "admin" in owner.roles else tuple(r for r in token.roles if r in owner.roles)
    owner_scope = auth.agency_scope(owner)
    if token.agencies:
        agencies = tuple(a for a in token.agencies if owner_scope is None or a in owner_scope)
        if not agencies:
            raise NotAuthenticated("the API token's agencies are no longer in its owner's scope")
    else:
        agencies = owner_scope or ()
    if not roles:
        raise NotAuthenticated("the API token's owner no longer has any of its roles")
    return replace(owner, roles=roles, agencies=agencies if "admin" not in roles else ())


def authenticate(store: Store, raw: str, now: datetime | None = None) -> User:
    """The user a bearer token acts as; NotAuthenticated with the reason when it cannot be used."""
    match = _FORMAT.fullmatch(raw)
    if match is None:
        raise NotAuthenticated("the Authorization header does not hold a CitySOC API token (cst_...)")
    try:
        token = store.get_api_token(match.group(1))
    except NotFound:
        raise NotAuthenticated("unknown API token") from None
    if not hmac.compare_digest(token.token_hash, token_hash(raw)):
        raise NotAuthenticated("unknown API token")
    moment = now or datetime.now(UTC)
    if token.revoked is not None:
        raise NotAuthenticated(f"the API token {token.id} was revoked")
    if token.expires is not None and moment >= token.expires:
        raise NotAuthenticated(f"the API token {token.id} expired; create a new one")
    try:
        owner = store.get_user(token.owner)
    except NotFound:
        raise NotAuthenticated(f"the owner of API token {token.id} no longer exists") from None
    if owner.disabled:
        raise NotAuthenticated(f"the owner of API token {token.id} is disabled")
    user = effective_user(owner, token)
    if token.last_used is None or moment - token.last_used >= TOUCH_INTERVAL:
        store.touch_api_token(token.id, moment)
    return user
