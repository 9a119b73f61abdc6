"""Reporting: declared metrics, statistics as pure functions, the summary tables and the pictures."""
