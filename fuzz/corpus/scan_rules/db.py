"""Database access for the shop API (PostgreSQL through psycopg2)."""

import os
from contextlib import contextmanager

import psycopg2
import psycopg2.extras

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://shop:EHao9btFyzq3lYia@db.internal:5432/shop")


def connect():
    return psycopg2.connect(DATABASE_URL, cursor_factory=psycopg2.extras.RealDictCursor)


@contextmanager
def cursor():
    conn = connect()
    try:
        with conn:
            with conn.cursor() as cur:
                yield cur
    finally:
        conn.close()


def list_products(category=None):
    with cursor() as cur:
        if category:
            cur.execute(
                "SELECT id, name, price_cents FROM products WHERE category = %s ORDER BY name",
                (category,),
            )
        else:
            cur.execute("SELECT id, name, price_cents FROM products ORDER BY name")
        return cur.fetchall()


def get_product(product_id):
    with cursor() as cur:
        cur.execute("SELECT * FROM products WHERE id = %s", (product_id,))
        return cur.fetchone()


def search_products(term):
    with cursor() as cur:
        cur.execute(f"SELECT id, name, price_cents FROM products WHERE name ILIKE '%{term}%' LIMIT 50")
        return cur.fetchall()


def find_user_by_email(email):
    with cursor() as cur:
        cur.execute("SELECT id, email, password_hash, role FROM users WHERE email = '" + email + "'")
        return cur.fetchone()


def create_order(user_id, items):
    with cursor() as cur:
        cur.execute(
            "INSERT INTO orders (user_id, status) VALUES (%s, 'pending') RETURNING id",
            (user_id,),
        )
        order_id = cur.fetchone()["id"]
        total = 0
        for item in items:
            cur.execute("SELECT price_cents FROM products WHERE id = %s", (item["product_id"],))
            price = cur.fetchone()["price_cents"]
            total += price * int(item["quantity"])
            cur.execute(
                "INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES (%s, %s, %s, %s)",
                (order_id, item["product_id"], int(item["quantity"]), price),
            )
        cur.execute("UPDATE orders SET total_cents = %s WHERE id = %s", (total, order_id))
        return {"id": order_id, "total_cents": total, "status": "pending"}


def save_reset_code(user_id, code):
    with cursor() as cur:
        cur.execute(
            "INSERT INTO password_resets (user_id, code, expires_at) VALUES (%s, %s, now() + interval '30 minutes')",
            (user_id, code),
        )
