"""The console's pages, one module per group of users: who may see them is declared where
their routes are (gateway/console/service.py); what they show comes from the GraphQL API.
"""
