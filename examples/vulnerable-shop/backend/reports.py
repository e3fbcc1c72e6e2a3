"""Saved admin reports.

Report definitions are YAML files written by the analytics team; reports can also be
moved between environments as exported blobs.
"""

import csv
import os
import pickle

import yaml

from . import db

REPORT_DIR = os.environ.get("REPORT_DIR", "/srv/shop/reports")
EXPORT_DIR = os.environ.get("EXPORT_DIR", "/var/tmp/shop-exports")


def load_definition(name):
    path = os.path.join(REPORT_DIR, os.path.basename(name) + ".yaml")
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=yaml.Loader)


def run_saved_report(name):
    definition = load_definition(name)
    with db.cursor() as cur:
        cur.execute(definition["query"], definition.get("params", ()))
        rows = cur.fetchall()
    return {"name": name, "title": definition.get("title", name), "rows": rows}


def import_report(blob):
    report = pickle.loads(blob)
    target = os.path.join(REPORT_DIR, os.path.basename(report["name"]) + ".yaml")
    with open(target, "w", encoding="utf-8") as fh:
        yaml.safe_dump(report["definition"], fh)
    return report


def export_csv(name, rows, recipient):
    os.makedirs(EXPORT_DIR, exist_ok=True)
    path = os.path.join(EXPORT_DIR, os.path.basename(name) + ".csv")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
    os.system(f"gzip -f {path} && mail -s 'Report {name}' -A {path}.gz {recipient} < /dev/null")
    return path + ".gz"
