"""The htcondor wheel's ``classad2`` module, loaded the way gwms needs it.

classad2 only knows HTCondor's extra ClassAd functions (``stringListMember``,
``stringListIMember``, ...) once the ``htcondor2`` module has registered them;
without it they evaluate to ``error``. Importing this module does both, so every
classad2 evaluation in gwms sees the same function set as HTCondor daemons.
"""

from __future__ import annotations

import classad2
import htcondor2  # noqa: F401  (registers HTCondor's ClassAd functions with classad2)

ClassAd = classad2.ClassAd
ExprTree = classad2.ExprTree
NativeValue = classad2.Value

_HOLDER = "gwms_expr"


def native_expr(text: str) -> classad2.ExprTree:
    """Build a classad2 ExprTree from expression text already checked by gwms's parser.

    The text is wrapped in a one-attribute ad with a newline before the closing
    bracket, so a trailing ``//`` comment cannot swallow it.
    """
    holder = classad2.ClassAd(f"[{_HOLDER} = {text}\n]")
    return holder.lookup(_HOLDER)


def native_ad(text: str) -> classad2.ClassAd:
    """Build a classad2 ClassAd from new-syntax text already checked by gwms's parser."""
    return classad2.ClassAd(text)
