"""Primitives every layer shares, at the bottom of the import graph: identifiers, languages, local clock
times, the strict settings base model, secrets from the environment, and Careline's exception tree.

Nothing here imports another Careline package.
"""
