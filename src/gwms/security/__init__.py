"""gwms.security: pool tokens, hybrid encryption, the local CA, identities.

- :mod:`gwms.security.scopes` — authorization scopes; ADMINISTRATOR implies all.
- :mod:`gwms.security.tokens` — HS256 pool tokens: signing keys, issue, verify.
- :mod:`gwms.security.hybrid` — RSA-OAEP-SHA256 + AES-256-GCM envelopes, session keys,
  a decryptor with key rotation grace.
- :mod:`gwms.security.ca` — a local CA, service certificates, ssl contexts.
- :mod:`gwms.security.identity` — ``user@domain`` identities.
- :mod:`gwms.security.keyfiles` — 0600 secret files, key ids.
- :mod:`gwms.security.layout` — the security directory that ``gwms security init`` makes.
"""
