"""Anonymization of glidein logs: find identifying values, replace them reversibly or not.

The pieces, each usable alone:

- :mod:`.entities`: :func:`discover` (names known only from context) and
  :class:`EntityScanner` (every IP, host, user, DN, e-mail, secret ... in a text).
- :mod:`.cryptopan`: :class:`CryptoPAn`, prefix-preserving address encryption.
- :mod:`.tokens`: :class:`TokenCodec`, AES-SIV tokens shaped like what they replace.
- :mod:`.pseudonym`: :class:`Pseudonymizer`, keyed HMAC pseudonyms (irreversible).
- :mod:`.keys`: key directories (0600 files, key ids, rotation): :func:`init_keys`,
  :func:`rotate_keys`, :func:`load_keys`, :class:`KeyRing`.
- :mod:`.policy`: :class:`AnonymizationPolicy` (per kind: keep, pseudonymize, truncate,
  redact; allow-lists), loaded from YAML with :func:`load_policy`.
- :mod:`.engine`: :class:`Anonymizer` and :class:`Deanonymizer` for texts, ``.err``
  files with their sections, and whole jobs.

Typical use::

    keys = load_keys("/etc/gwms/anon-keys")
    anon = Anonymizer(keys, load_policy("anonymization.yaml"), mode="reversible")
    result = anon.anonymize_job(out_bytes, err_bytes)
    original = Deanonymizer(keys).deanonymize_job(result.out, result.err)
"""

from gwms.monitor.anonymize.cryptopan import CryptoPAn
from gwms.monitor.anonymize.engine import REDACTED, Anonymizer, Deanonymizer, JobResult
from gwms.monitor.anonymize.entities import ENTITY_KINDS, Discovered, EntityScanner, discover
from gwms.monitor.anonymize.keys import (
    AnonKey,
    AnonKeyError,
    KeyRing,
    init_keys,
    load_keys,
    rotate_keys,
)
from gwms.monitor.anonymize.policy import Action, AnonymizationPolicy, load_policy
from gwms.monitor.anonymize.pseudonym import Pseudonymizer
from gwms.monitor.anonymize.tokens import TokenCodec

__all__ = [
    "ENTITY_KINDS",
    "REDACTED",
    "Action",
    "AnonKey",
    "AnonKeyError",
    "AnonymizationPolicy",
    "Anonymizer",
    "CryptoPAn",
    "Deanonymizer",
    "Discovered",
    "EntityScanner",
    "JobResult",
    "KeyRing",
    "Pseudonymizer",
    "TokenCodec",
    "discover",
    "init_keys",
    "load_keys",
    "load_policy",
    "rotate_keys",
]
