"""Evaluation protocols (video, schedules, latency, trade-off), the commands built on them
(``commands/``) and their reporting (``reporting.py``)."""
