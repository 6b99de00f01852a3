"""Throughput of gwms.security: token issue/verify, hybrid envelopes, session seal/open.

Writes benchmarks/results/security.json and prints a one-line summary. Each measurement runs
a fixed number of operations (bounded in time too) in one thread, so figures are per core.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

from gwms.security import scopes
from gwms.security.hybrid import Decryptor, RsaKeyPair, SessionKey, encrypt, open_session
from gwms.security.tokens import TokenVerifier, generate_signing_key, issue_token

RESULTS = Path(__file__).with_name("results") / "security.json"


def rate(fn: Callable[[int], object], count: int, max_seconds: float = 10.0) -> float:
    """Operations per second of ``fn(i)`` over up to ``count`` calls (stops after max_seconds)."""
    done = 0
    start = time.perf_counter()
    while done < count:
        fn(done)
        done += 1
        if time.perf_counter() - start > max_seconds:
            break
    return done / (time.perf_counter() - start)


def main() -> None:
    """Run every measurement and write the JSON results."""
    key = generate_signing_key("POOL")
    verifier = TokenVerifier(key, "pool.bench")
    glidein_scopes = sorted(scopes.GLIDEIN_SCOPES)
    tokens = [
        issue_token(key, issuer="pool.bench", subject=f"glidein{i}@site", scopes=glidein_scopes)
        for i in range(1000)
    ]
    results: dict[str, float] = {}
    results["token_issue_per_s"] = rate(
        lambda i: issue_token(
            key, issuer="pool.bench", subject="glidein@site", scopes=glidein_scopes
        ),
        5000,
    )
    results["token_verify_per_s"] = rate(
        lambda i: verifier.verify(tokens[i % 1000], [scopes.ADVERTISE_STARTD]), 10000
    )

    t0 = time.perf_counter()
    pair = RsaKeyPair.generate("factory1")  # 3072 bits, the default
    results["rsa3072_generate_s"] = time.perf_counter() - t0
    decryptor = Decryptor(pair)
    payload = b"x" * 4096  # a credential-sized value
    envelopes = [encrypt(pair.public_pem, pair.kid, payload, b"ad") for _ in range(200)]
    results["envelope_encrypt_per_s"] = rate(
        lambda i: encrypt(pair.public_key, pair.kid, payload, b"ad"), 2000
    )
    results["envelope_decrypt_per_s"] = rate(
        lambda i: decryptor.decrypt(envelopes[i % 200], b"ad"), 1000
    )
    session = SessionKey(pair.public_key, pair.kid)
    sealed = [session.seal(payload, b"ad") for _ in range(200)]
    opened = open_session(decryptor, session.wrapped)
    results["session_seal_4k_per_s"] = rate(lambda i: session.seal(payload, b"ad"), 20000)
    results["session_open_4k_per_s"] = rate(lambda i: opened.open(sealed[i % 200], b"ad"), 20000)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "security",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": {k: round(v, 4) for k, v in results.items()},
            },
            indent=2,
        )
        + "\n"
    )
    r = results
    print(
        f"security: token issue {r['token_issue_per_s']:,.0f}/s, "
        f"verify {r['token_verify_per_s']:,.0f}/s; "
        f"envelope (RSA-3072) encrypt {r['envelope_encrypt_per_s']:,.0f}/s, "
        f"decrypt {r['envelope_decrypt_per_s']:,.0f}/s; session seal "
        f"{r['session_seal_4k_per_s']:,.0f}/s, open {r['session_open_4k_per_s']:,.0f}/s (4 KiB)"
    )


if __name__ == "__main__":
    main()
