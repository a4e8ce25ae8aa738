"""Sourcing commitments in the GraphQL schema: a buyer's promise to source gold, and progress."""
