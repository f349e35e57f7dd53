"""Outputs of ``solve``: the plan document (JSON, schema ``his-opt/plan/1``) and the Excel report.

Both are built from one plan document, so they always agree, and both are written atomically.
"""

from ._compare import baseline_line, lead_percent, reason_summary
from ._excel import (
    SHEET_COLUMNS,
    SHEETS,
    key_figures,
    quality_curves,
    read_report_table,
    report_tables,
    write_excel_report,
    write_workbook,
)
from ._plan_json import build_plan_document, plan_json_text, write_plan_json
from ._schema import PLAN_JSON_SCHEMA, PLAN_SCHEMA_ID, plan_schema_path, validate_plan
from ._write import write_reports

__all__ = [
    "PLAN_JSON_SCHEMA",
    "PLAN_SCHEMA_ID",
    "SHEETS",
    "SHEET_COLUMNS",
    "baseline_line",
    "build_plan_document",
    "key_figures",
    "lead_percent",
    "plan_json_text",
    "plan_schema_path",
    "quality_curves",
    "read_report_table",
    "reason_summary",
    "report_tables",
    "validate_plan",
    "write_excel_report",
    "write_plan_json",
    "write_reports",
    "write_workbook",
]
