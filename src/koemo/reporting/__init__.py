"""Reporting: result tables and figures, the paper's numbers, statistics, the notebooks'
shared start and `koemo reproduce`, and plan summaries."""
