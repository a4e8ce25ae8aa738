"""Veta's GraphQL gateway: one endpoint over the four services, with authentication and roles."""
