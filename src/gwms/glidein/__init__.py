"""gwms.glidein: everything that runs on the worker node.

The startd agent (:mod:`gwms.glidein.startd`) and its starter run inside every glidein.
This package uses only the Python standard library and runs on Python >= 3.9: it is
shipped to worker nodes as a zipapp (``gwms startd zipapp OUT.pyz``) and must import
nothing from ``gwms`` outside ``gwms.glidein``.
"""
