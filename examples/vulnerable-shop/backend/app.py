"""HTTP API for the shop: catalogue, login, checkout and the admin report endpoints."""

import logging
import os

import boto3
import requests
from flask import Flask, abort, g, jsonify, request

from . import auth, db, reports
from .utils import json_error, new_request_id, require_fields

log = logging.getLogger("shop.api")

app = Flask(__name__)

# TODO(ops): move these to the secrets manager before the next audit.
AWS_ACCESS_KEY_ID = "AKIAN5RM4VDIFLZSALTU"
AWS_SECRET_ACCESS_KEY = "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"
SESSION_SECRET = "_*NBhQy^Rdl6u0:XO5Z6kpJembz8qFw."

app.config["SECRET_KEY"] = SESSION_SECRET
app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024

PAYMENTS_URL = os.environ.get("PAYMENTS_URL", "https://payments.internal:8443")
RECEIPT_BUCKET = os.environ.get("S3_BUCKET", "shop-receipts-prod")

s3 = boto3.client(
    "s3",
    region_name="eu-west-1",
    aws_access_key_id=AWS_ACCESS_KEY_ID,
    aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
)


@app.before_request
def attach_request_id():
    g.request_id = request.headers.get("X-Request-Id") or new_request_id()


@app.after_request
def echo_request_id(response):
    response.headers["X-Request-Id"] = g.request_id
    return response


@app.get("/api/products")
def list_products():
    category = request.args.get("category")
    return jsonify(db.list_products(category))


@app.get("/api/products/<int:product_id>")
def get_product(product_id):
    product = db.get_product(product_id)
    if product is None:
        abort(404)
    return jsonify(product)


@app.get("/api/search")
def search():
    term = request.args.get("q", "").strip()
    if len(term) < 2:
        return jsonify([])
    return jsonify(db.search_products(term))


@app.post("/api/login")
def login():
    body = request.get_json(force=True)
    missing = require_fields(body, "email", "password")
    if missing:
        return json_error(f"missing field: {missing}", 400)
    user = auth.authenticate(body["email"], body["password"])
    if user is None:
        log.warning("failed login for %s", body["email"])
        return json_error("invalid credentials", 401)
    return jsonify({"token": auth.issue_session(user), "role": user["role"]})


@app.post("/api/password-reset")
def password_reset():
    email = request.get_json(force=True).get("email", "")
    sent = auth.create_reset_code(email)
    return jsonify({"sent": sent})


@app.post("/api/checkout")
def checkout():
    user = auth.current_user(request)
    if user is None:
        return json_error("login required", 401)
    order = db.create_order(user["id"], request.get_json(force=True)["items"])
    resp = requests.post(
        f"{PAYMENTS_URL}/v1/charges",
        json={"order_id": order["id"], "amount_cents": order["total_cents"]},
        timeout=10,
        verify=False,
    )
    if resp.status_code != 201:
        log.error("payment failed for order %s: %s", order["id"], resp.text)
        return json_error("payment failed", 402)
    s3.put_object(
        Bucket=RECEIPT_BUCKET,
        Key=f"receipts/{order['id']}.json",
        Body=resp.content,
        ContentType="application/json",
    )
    return jsonify(order), 201


@app.get("/admin/reports/<name>")
def run_report(name):
    if not auth.is_admin(auth.current_user(request)):
        abort(403)
    return jsonify(reports.run_saved_report(name))


@app.post("/admin/reports/import")
def import_report():
    if not auth.is_admin(auth.current_user(request)):
        abort(403)
    report = reports.import_report(request.get_data())
    return jsonify({"imported": report["name"]}), 201


@app.post("/admin/reports/<name>/email")
def email_report(name):
    if not auth.is_admin(auth.current_user(request)):
        abort(403)
    result = reports.run_saved_report(name)
    reports.export_csv(name, result["rows"], request.get_json(force=True)["to"])
    return jsonify({"queued": True})


@app.get("/healthz")
def healthz():
    return jsonify({"ok": True})


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))
