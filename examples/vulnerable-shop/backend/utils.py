"""Small helpers shared by the API modules.

Everything here is deliberately boring: identifiers come from the OS CSPRNG, digests are
SHA-256, configuration is read with yaml.safe_load, credentials come from the environment,
and subprocesses get a fixed argument list without a shell.
"""

import hashlib
import hmac
import os
import secrets
import subprocess

import requests
import yaml
from flask import jsonify


def new_request_id():
    return secrets.token_urlsafe(16)


def new_csrf_token():
    return secrets.token_urlsafe(32)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


def load_feature_flags(path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def db_settings():
    return {
        "host": os.environ.get("DB_HOST", "db.internal"),
        "user": os.environ.get("DB_USER", "shop"),
        "password": os.environ["DB_PASSWORD"],
    }


def smtp_settings():
    password = os.environ.get("SMTP_PASSWORD")
    if not password:
        raise RuntimeError("SMTP_PASSWORD is not set")
    return {"host": os.environ.get("SMTP_HOST", "smtp.internal"), "user": "orders", "password": password}


def fetch_exchange_rates(url):
    resp = requests.get(url, timeout=5, verify=True)
    resp.raise_for_status()
    return resp.json()


def build_revision():
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def order_count_for(cur, user_id):
    cur.execute("SELECT count(*) AS n FROM orders WHERE user_id = %s", (user_id,))
    return cur.fetchone()["n"]


def require_fields(body, *names):
    """Return the first missing field name, or None when all are present."""
    if not isinstance(body, dict):
        return names[0] if names else None
    for name in names:
        if body.get(name) in (None, ""):
            return name
    return None


def json_error(message, status):
    return jsonify({"error": message, "status": status}), status
