"""Code every Veta service shares: value types, the event envelope, messaging and persistence.

Kept small on purpose: anything only one service uses lives in that service.
"""
