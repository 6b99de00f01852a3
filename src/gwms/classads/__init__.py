"""ClassAds for gwms: parse, convert, evaluate, match and cluster ads.

A small model over the htcondor wheel's ``classad2`` (the real ClassAd
language). Services keep ads in JSON form (docs/contracts.md): literal values as
JSON values (``null`` is ``undefined``), expressions as ``"/Expr(<text>)/"``.

* :func:`parse_ad`, :func:`parse_expr` - text to JSON form / :class:`Expr`;
  malformed text raises :class:`ClassAdSyntaxError` with the offending position.
* :func:`ad_to_json`, :func:`ad_from_json` - classad2 ``ClassAd`` <-> JSON form.
* :func:`evaluate` - MY/TARGET evaluation, returning Python values or
  :data:`UNDEFINED` / :data:`ERROR`.
* :func:`compile_constraint` - a fast :class:`Predicate` for queries and matching.
* :func:`symmetric_match`, :func:`rank` - job/slot matchmaking.
* :func:`significant_attributes`, :func:`autocluster_signature` - autoclusters.
* :func:`external_refs`, :func:`target_refs`, :func:`my_refs`, :func:`references`.
"""

from gwms.classads.autocluster import (
    REQUEST_ATTRIBUTES,
    autocluster_signature,
    significant_attributes,
)
from gwms.classads.constraint import Predicate, compile_constraint
from gwms.classads.errors import ClassAdError, ClassAdSyntaxError, ClassAdValueError
from gwms.classads.expr import Expr, evaluate, evaluate_native, parse_expr
from gwms.classads.jsonform import ad_from_json, ad_to_json, parse_ad, unparse_ad
from gwms.classads.match import job_accepts, rank, slot_accepts, symmetric_match
from gwms.classads.refs import References, external_refs, my_refs, references, target_refs
from gwms.classads.values import ERROR, UNDEFINED, expr_string, expr_text, is_expr_string

__all__ = [
    "ERROR",
    "REQUEST_ATTRIBUTES",
    "UNDEFINED",
    "ClassAdError",
    "ClassAdSyntaxError",
    "ClassAdValueError",
    "Expr",
    "Predicate",
    "References",
    "ad_from_json",
    "ad_to_json",
    "autocluster_signature",
    "compile_constraint",
    "evaluate",
    "evaluate_native",
    "expr_string",
    "expr_text",
    "external_refs",
    "is_expr_string",
    "job_accepts",
    "my_refs",
    "parse_ad",
    "parse_expr",
    "rank",
    "references",
    "significant_attributes",
    "slot_accepts",
    "symmetric_match",
    "target_refs",
    "unparse_ad",
]
