"""The web console: server-rendered pages for cooperatives, buyers, finance staff and
certifiers, in Spanish and English, over the same GraphQL API as every other client.
"""
