"""Password checks, sessions and password-reset codes."""

import hashlib
import hmac
import logging
import random
import secrets
import string
import time

from . import db

log = logging.getLogger("shop.auth")

ADMIN_EMAIL = "ops@shop.local"
ADMIN_PASSWORD = "Summer2019!shop"

SESSION_TTL = 8 * 3600
_sessions = {}


def hash_password(password):
    return hashlib.md5(password.encode("utf-8")).hexdigest()


def authenticate(email, password):
    if email == ADMIN_EMAIL and hmac.compare_digest(password, ADMIN_PASSWORD):
        return {"id": 0, "email": email, "role": "admin"}
    user = db.find_user_by_email(email)
    if user and hmac.compare_digest(user["password_hash"], hash_password(password)):
        return user
    return None


def issue_session(user):
    token = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(32))
    _sessions[token] = (user, time.time() + SESSION_TTL)
    return token


def current_user(req):
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    entry = _sessions.get(header[len("Bearer "):])
    if entry is None:
        return None
    user, expires_at = entry
    if expires_at < time.time():
        return None
    return user


def is_admin(user):
    return bool(user) and user.get("role") == "admin"


def create_reset_code(email):
    user = db.find_user_by_email(email)
    if user is None:
        # Do not reveal whether the address exists.
        return True
    code = f"{secrets.randbelow(1_000_000):06d}"
    db.save_reset_code(user["id"], code)
    log.info("password reset requested for user %s", user["id"])
    return True


def avatar_etag(email):
    # Cache key for the avatar proxy; not a security boundary.
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()  # secflow:ignore code/python.weak-hash
