"""Throughput of glidein log anonymization (gwms.monitor.anonymize) on generated logs.

Writes benchmarks/results/anonymize.json and prints a one-line summary.

What is measured, per core (CPU time of this one process, so other work on the shared
machine disturbs the figures less than wall-clock time would):

- ``anonymize_job`` on whole jobs (``.out`` + ``.err``: split, decode every section,
  learn names, find and replace entities, re-encode each section in its own format), in
  the reversible and the irreversible mode;
- ``deanonymize_job`` on the reversible results;
- decoding alone (``split_err``);
- the cryptography alone: Crypto-PAn (uncached and cached), AES-SIV tokens, HMAC pseudonyms.

Throughput is given in MB of *decoded text* per second (the ``.out``, the plain ``.err``
and the decompressed sections: what the scanner reads; the 20 MB/s target is about
this), and in MB of files as stored (sections are gzip + base64, about 8x smaller).
Two corpora: "realistic" (most daemon-log lines hold no identifying value, job ads
mostly plain attributes) and "dense" (far more addresses and names per line).
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from pathlib import Path

from gwms.monitor.anonymize.cryptopan import CryptoPAn
from gwms.monitor.anonymize.engine import Anonymizer, Deanonymizer
from gwms.monitor.anonymize.entities import EntityScanner, discover
from gwms.monitor.anonymize.keys import KeyRing
from gwms.monitor.anonymize.pseudonym import Pseudonymizer
from gwms.monitor.anonymize.tokens import TokenCodec
from gwms.monitor.samples import make_job, make_world
from gwms.monitor.sections import split_err, text_of

RESULTS = Path(__file__).with_name("results") / "anonymize.json"
JOBS = int(os.environ.get("BENCH_ANON_JOBS", "16"))
LINES = int(os.environ.get("BENCH_ANON_LINES", "1500"))


def cpu(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    """The least CPU time of ``repeat`` runs of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def corpus(dull: float, seed: int) -> tuple[list, int, int, int]:
    """Generated jobs, their decoded size, their file size and their number of entities."""
    world = make_world(seed)
    jobs = [make_job(world, seed * 1000 + i, lines=LINES, dull=dull) for i in range(JOBS)]
    decoded = files = entities = 0
    for job in jobs:
        files += len(job.out.encode()) + len(job.err.encode())
        err = split_err(job.err)
        texts = [job.out, *err.parts] + [text_of(m.data) for s in err.sections for m in s.members]
        decoded += sum(len(t) for t in texts)
        scanner = EntityScanner(discover("\n".join(texts)).literals())
        entities += sum(len(scanner.scan(t)) for t in texts)
    return [(j.out.encode(), j.err.encode()) for j in jobs], decoded, files, entities


def measure(name: str, dull: float, keys: KeyRing) -> dict[str, float]:
    """Anonymize, de-anonymize and decode one corpus; rates in MB/s and jobs/s."""
    jobs, decoded, files, entities = corpus(dull, seed=7 if name == "realistic" else 8)
    out: dict[str, float] = {
        "jobs": len(jobs),
        "decoded_mb": round(decoded / 1e6, 2),
        "files_mb": round(files / 1e6, 2),
        "entities_per_decoded_mb": round(entities / (decoded / 1e6)),
    }
    reversible_results = []
    for mode in ("reversible", "irreversible"):
        anon = Anonymizer(keys, mode=mode)  # type: ignore[arg-type]
        anon.anonymize_job(*jobs[0])  # warm the caches and the regex compiler
        results: list = []

        def run(anon: Anonymizer = anon, results: list = results) -> None:
            results.clear()
            results.extend(anon.anonymize_job(o, e) for o, e in jobs)

        seconds = cpu(run)
        out[f"{mode}_decoded_mb_s"] = round(decoded / 1e6 / seconds, 1)
        out[f"{mode}_files_mb_s"] = round(files / 1e6 / seconds, 2)
        out[f"{mode}_jobs_s"] = round(len(jobs) / seconds, 1)
        if mode == "reversible":
            reversible_results = list(results)
    de = Deanonymizer(keys)
    seconds = cpu(lambda: [de.deanonymize_job(r.out, r.err) for r in reversible_results])
    out["deanonymize_decoded_mb_s"] = round(decoded / 1e6 / seconds, 1)
    seconds = cpu(lambda: [split_err(e) for _, e in jobs])
    out["decode_files_mb_s"] = round(files / 1e6 / seconds, 1)
    out["decode_decoded_mb_s"] = round(decoded / 1e6 / seconds, 1)
    return out


def crypto_rates(keys: KeyRing) -> dict[str, float]:
    """Operations per second of the cryptography alone."""
    rng = random.Random(1)
    cpan = CryptoPAn(keys.current.cryptopan_key, cache_size=1 << 20)
    addrs = [rng.getrandbits(32) for _ in range(20000)]
    seconds = cpu(
        lambda: [CryptoPAn(keys.current.cryptopan_key).encrypt_int(a, 32) for a in addrs[:3000]], 1
    )
    rates = {"cryptopan_ipv4_uncached_per_s": round(3000 / seconds)}
    for a in addrs:
        cpan.encrypt_int(a, 32)
    seconds = cpu(lambda: [cpan.encrypt_int(a, 32) for a in addrs])
    rates["cryptopan_ipv4_cached_per_s"] = round(len(addrs) / seconds)
    v6 = [rng.getrandbits(128) for _ in range(1000)]
    seconds = cpu(
        lambda: [CryptoPAn(keys.current.cryptopan_key).encrypt_int(a, 128) for a in v6], 1
    )
    rates["cryptopan_ipv6_uncached_per_s"] = round(len(v6) / seconds)
    codec = TokenCodec(keys)
    names = [f"wn{i:05d}.example.edu" for i in range(5000)]
    seconds = cpu(lambda: [codec.seal("host", n) for n in names])
    rates["siv_tokens_per_s"] = round(len(names) / seconds)
    pseudo = Pseudonymizer(keys.current.hmac_key("public"))
    seconds = cpu(lambda: [pseudo.pseudonym("host", n) for n in names])
    rates["hmac_pseudonyms_per_s"] = round(len(names) / seconds)
    return rates


def main() -> None:
    """Run every measurement, write the JSON results and print one line."""
    keys = KeyRing.from_secret(bytes(range(32)), "k1")
    results = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "note": "CPU time of one process (per core); MB of decoded text unless named files_mb",
        "target_decoded_mb_s": 20,
        "realistic": measure("realistic", 0.85, keys),
        "dense": measure("dense", 0.5, keys),
        "crypto": crypto_rates(keys),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    r, d = results["realistic"], results["dense"]
    print(
        f"anonymize per core, realistic logs ({r['entities_per_decoded_mb']} entities/MB): "
        f"reversible {r['reversible_decoded_mb_s']} MB/s, irreversible {r['irreversible_decoded_mb_s']} MB/s "
        f"of decoded text ({r['reversible_jobs_s']}/{r['irreversible_jobs_s']} jobs/s, "
        f"{r['reversible_files_mb_s']}/{r['irreversible_files_mb_s']} MB/s of files); "
        f"dense ({d['entities_per_decoded_mb']}/MB): {d['reversible_decoded_mb_s']}/{d['irreversible_decoded_mb_s']} MB/s; "
        f"deanonymize {r['deanonymize_decoded_mb_s']} MB/s; decode {r['decode_files_mb_s']} MB/s of .err; "
        f"Crypto-PAn {results['crypto']['cryptopan_ipv4_uncached_per_s']}/s uncached"
    )


if __name__ == "__main__":
    main()
