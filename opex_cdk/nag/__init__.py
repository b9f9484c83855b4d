"""Compliance at synth time: rule-pack wiring and the one way to acknowledge a finding."""

from opex_cdk.nag.acknowledgments import Acknowledged, acknowledge, acknowledgments_in
from opex_cdk.nag.packs import apply_nag_packs, nag_packs_for

__all__ = ["Acknowledged", "acknowledge", "acknowledgments_in", "apply_nag_packs", "nag_packs_for"]
