"""Operational Readiness Review generated from the synthesized app: `python -m opex_cdk.orr` (make orr)."""

from opex_cdk.orr.evaluator import Answer, evaluate, load_checklist, to_json
from opex_cdk.orr.render import custom_lens, html_page, markdown

__all__ = ["Answer", "custom_lens", "evaluate", "html_page", "load_checklist", "markdown", "to_json"]
