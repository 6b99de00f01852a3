"""Names the collector reads, stamps or routes on: ad attributes and ad types (MyType).

One place for these spellings; ClassAd attribute names and MyType values are compared
case-insensitively, so code compares lower-cased forms.
"""

from __future__ import annotations

# Attributes every stored ad has or may have.
ATTR_MY_TYPE = "MyType"
ATTR_NAME = "Name"
ATTR_AUTHENTICATED_IDENTITY = "AuthenticatedIdentity"
ATTR_LAST_HEARD_FROM = "LastHeardFrom"
ATTR_CLASSAD_LIFETIME = "ClassAdLifetime"

# Ad types (MyType values) of the user pool.
TYPE_MACHINE = "Machine"
TYPE_SLOT = "Slot"
TYPE_SCHEDULER = "Scheduler"
TYPE_SUBMITTER = "Submitter"
TYPE_NEGOTIATOR = "Negotiator"
TYPE_ACCOUNTING = "Accounting"
TYPE_DAEMON_MASTER = "DaemonMaster"
TYPE_COLLECTOR = "Collector"

# Ad types of the WMS collector (factory and frontend).
TYPE_GLIDEFACTORY = "glidefactory"
TYPE_GLIDEFACTORY_GLOBAL = "glidefactoryglobal"
TYPE_GLIDEFACTORY_CLIENT = "glidefactoryclient"
TYPE_GLIDECLIENT = "glideclient"
TYPE_GLIDECLIENT_GLOBAL = "glideclientglobal"
TYPE_GLIDERESOURCE = "glideresource"
