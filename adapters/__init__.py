"""Bridges between dlbench and the outside world: datasets, export, tracking.

Installed as ``dlbench.adapters``; always import it under that name.
"""
