"""Attribute names of the ads factories and frontends exchange through the WMS collector.

One place for these spellings (GlideinWMS's where it has one). ClassAd attribute names
are case-insensitive; code that reads ads looks them up case-insensitively.

``glideclient`` (frontend -> factory, one per entry x credential)::

    Name                     <credential id>_<entry@instance@factory>@<client name>
    ReqGlidein               entry@instance@factory      the entry asked for
    ClientName               <frontend>.<group>          the client
    ReqCredentialId          the credential's id         (default "default")
    ReqIdleGlideins          glideins to keep idle
    ReqMaxGlideins           most glideins idle + running
    ReqRemoveExcess          NO | WAIT | IDLE | ALL
    ReqRemoveExcessMargin    removal starts above request + margin
    ReqIdleLifetime          seconds a glidein may wait at the site (0: no limit)
    ReqPubKeyID              the factory key id the session key was wrapped for
    ReqEncKeyCode            the session key, wrapped (SessionKey.wrapped)
    ReqEncIdentity           sealed: the frontend's identity (== AuthenticatedIdentity)
    GlideinParam<Name>       clear parameters for the glidein (override entry defaults)
    ReqGlideinPublish        comma-separated names of GlideinParam values the glidein
                             publishes in its slot ads (the frontend's glidein_publish)
    GlideinEncParam<Name>    sealed parameters: SecurityName, SecurityClass (required),
                             and secrets for the glidein (e.g. GLIDEIN_Token, the pool token)

Sealed values are :meth:`gwms.security.hybrid.SessionKey.seal` results with the
associated data :func:`gwms.factory.requests.sealed_aad` (the ad's Name and the
attribute's name), so a value cannot be moved to another ad or attribute.
"""

from __future__ import annotations

# ---------------------------------------------------------------- common
MY_TYPE = "MyType"
NAME = "Name"
AUTHENTICATED_IDENTITY = "AuthenticatedIdentity"
CLASSAD_LIFETIME = "ClassAdLifetime"

TYPE_GLIDEFACTORY = "glidefactory"
TYPE_GLIDEFACTORY_GLOBAL = "glidefactoryglobal"
TYPE_GLIDEFACTORY_CLIENT = "glidefactoryclient"
TYPE_GLIDECLIENT = "glideclient"

# ---------------------------------------------------------------- factory ads
FACTORY_NAME = "FactoryName"
GLIDEIN_NAME = "GlideinName"
ENTRY_NAME = "EntryName"
FACTORY_URL = "FactoryURL"
GLIDEIN_WEB_URL = "GlideinWebURL"
GLIDEIN_WMS_VERSION = "GlideinWMSVersion"
PUB_KEY_ID = "PubKeyID"
PUB_KEY_TYPE = "PubKeyType"
PUB_KEY_VALUE = "PubKeyValue"
PUB_KEY_TYPE_VALUE = "RSA-OAEP-SHA256+AES-256-GCM"
IN_DOWNTIME = "GLIDEIN_In_Downtime"
ENTRY_PAUSED = "GlideinEntryPaused"
ENTRY_PAUSED_REASON = "GlideinEntryPausedReason"
ENTRY_PAUSED_UNTIL = "GlideinEntryPausedUntil"
BACKEND = "GlideinGridType"
ALLOWED_FRONTENDS = "GlideinAllowedFrontends"
SUPPORTED_SECURITY_CLASSES = "GlideinSupportedSecurityClasses"

PARAM_PREFIX = "GlideinParam"
ENC_PARAM_PREFIX = "GlideinEncParam"
CONFIG_PREFIX = "GlideinConfig"
MONITOR_PREFIX = "GlideinMonitor"

CONFIG_ENTRY_MAX_GLIDEINS = "GlideinConfigPerEntryMaxGlideins"
CONFIG_ENTRY_MAX_IDLE = "GlideinConfigPerEntryMaxIdle"
CONFIG_ENTRY_MAX_HELD = "GlideinConfigPerEntryMaxHeld"
CONFIG_FRONTEND_MAX_GLIDEINS = "GlideinConfigDefaultPerFrontendMaxGlideins"
CONFIG_FRONTEND_MAX_IDLE = "GlideinConfigDefaultPerFrontendMaxIdle"
CONFIG_FRONTEND_MAX_HELD = "GlideinConfigDefaultPerFrontendMaxHeld"
CONFIG_MAX_SUBMITS = "GlideinConfigMaxSubmitsPerCycle"
CONFIG_MAX_REMOVALS = "GlideinConfigMaxRemovalsPerCycle"
CONFIG_MAX_RELEASES = "GlideinConfigMaxReleasesPerCycle"

# GlideinMonitor<...> of the entry ad and the client ads
MON_IDLE = "StatusIdle"
MON_UNSUBMITTED = "StatusUnsubmitted"
MON_PENDING = "StatusPending"
MON_STAGING = "StatusStageIn"
MON_RUNNING = "StatusRunning"
MON_HELD = "StatusHeld"
MON_TOTAL = "StatusTotal"
MON_REQ_IDLE = "RequestedIdle"
MON_REQ_MAX = "RequestedMaxGlideins"
MON_LIMITED_BY = "LimitedBy"
MON_CLIENTS = "Clients"

# glidefactoryclient
REQ_CLIENT_NAME = "ReqClientName"
REQ_CLIENT_REQ_NAME = "ReqClientReqName"
REQ_CREDENTIAL_ID = "ReqCredentialId"
FRONTEND_NAME = "FrontendName"
SECURITY_CLASS = "SecurityClass"

# ---------------------------------------------------------------- glideclient
REQ_GLIDEIN = "ReqGlidein"
CLIENT_NAME = "ClientName"
REQ_IDLE_GLIDEINS = "ReqIdleGlideins"
REQ_MAX_GLIDEINS = "ReqMaxGlideins"
REQ_REMOVE_EXCESS = "ReqRemoveExcess"
REQ_REMOVE_EXCESS_MARGIN = "ReqRemoveExcessMargin"
REQ_IDLE_LIFETIME = "ReqIdleLifetime"
REQ_PUB_KEY_ID = "ReqPubKeyID"
REQ_ENC_KEY_CODE = "ReqEncKeyCode"
REQ_ENC_IDENTITY = "ReqEncIdentity"
REQ_GLIDEIN_PUBLISH = "ReqGlideinPublish"

#: Parameters (sealed or clear) the glideins need from the frontend: the user pool's
#: collector and the pool token (READ, ADVERTISE_STARTD) they join it with.
PARAM_GLIDEIN_COLLECTOR = "GLIDEIN_Collector"
PARAM_GLIDEIN_TOKEN = "GLIDEIN_Token"

#: Names (after ``GlideinEncParam``) of the sealed parameters every request carries.
ENC_SECURITY_NAME = "SecurityName"
ENC_SECURITY_CLASS = "SecurityClass"
