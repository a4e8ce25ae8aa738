"""Veta's command line and the embedded default that runs the whole system in one process."""
