"""Careline's entry points: `bootstrap()` assembles the gateway; `careline` (cli.py) runs it.

The top of the import graph: it may import every other package; nothing imports it.
"""
