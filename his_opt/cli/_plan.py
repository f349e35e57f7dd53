"""``his-opt validate PLAN.json`` and ``his-opt schema plan``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_schema_parser", "add_validate_parser", "schema_main", "validate_main"]


def add_validate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``validate``."""
    parser = subparsers.add_parser(
        "validate",
        help="check a plan JSON against its schema and rules (x + y + z = T, membership, ids)",
        description="Check PLAN (schema his-opt/plan/1; '-' reads stdin) with the validator "
        "solve and generate use: the JSON Schema plus the cross-field rules. Exit 0 if valid, "
        "2 with one line naming the file, row and field otherwise.",
    )
    parser.add_argument("plan", help="plan JSON ('-': stdin)")
    parser.set_defaults(func=validate_main)
    return parser


def validate_main(args: argparse.Namespace) -> int:
    """Validate one plan; print a one-line verdict."""
    from ..plan import load_plan_document

    doc = load_plan_document(args.plan)
    print(f"{args.plan}: valid {doc['schema']} plan ({len(doc['users'])} users, "
          f"{len(doc['groups'])} groups)")
    return 0


def add_schema_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``schema``."""
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of a file format (plan)",
        description="Print the shipped JSON Schema (draft 2020-12) of a his-opt file format.",
    )
    parser.add_argument("format", choices=("plan",), help="which format")
    parser.set_defaults(func=schema_main)
    return parser


def schema_main(args: argparse.Namespace) -> int:
    """Write the schema file's text to stdout, byte for byte."""
    from ..plan import plan_schema_path

    sys.stdout.write(plan_schema_path().read_text(encoding="utf-8"))
    return 0
