"""Scoring web services: Azure ML's ``score.py`` contract (``init()``, ``run(raw_data)``)."""
