"""Guardrails: checks of a text in its context (`base.Guardrail` → `base.Verdict`), built-ins one per module.

This layer sits beside providers and cache: it knows core types only, never HTTP, the pipeline or wire shapes.
"""
