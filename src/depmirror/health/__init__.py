"""Health from Prometheus: PromQL per instance, a score 0..1, a multi-sample verdict, zone and system health.

Read docs/health.md for the formula, the verdict rules and what `unknown` means.
"""
