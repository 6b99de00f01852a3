"""Ad attribute names the frontend reads: one place for every spelling.

The names are GlideinWMS's and HTCondor's own. ClassAd attribute names are
case-insensitive; these are the spellings gwms writes, and readers compare case-blind.

Glidein slot ads (``MyType = "Machine"``) must carry the identity of the glidein they
belong to, published by the glidein from what the factory and the frontend passed it:
``GLIDEIN_Factory``, ``GLIDEIN_Name``, ``GLIDEIN_Entry_Name`` (together the entry's
request name ``entry@glidein@factory``), ``GLIDECLIENT_Name`` (``frontend.group`` that
asked for it) and ``GLIDECLIENT_ReqNode`` (the WMS collector the request went through).
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- glidein slot ads
GLIDEIN_FACTORY: Final = "GLIDEIN_Factory"
GLIDEIN_NAME: Final = "GLIDEIN_Name"
GLIDEIN_ENTRY_NAME: Final = "GLIDEIN_Entry_Name"
GLIDECLIENT_NAME: Final = "GLIDECLIENT_Name"
GLIDECLIENT_REQ_NODE: Final = "GLIDECLIENT_ReqNode"
GLIDEIN_CREDENTIAL_ID: Final = "GLIDEIN_CredentialIdentifier"
IS_MONITOR_VM: Final = "IS_MONITOR_VM"

# slot state (HTCondor's)
NAME: Final = "Name"
STATE: Final = "State"
ACTIVITY: Final = "Activity"
CPUS: Final = "Cpus"
MEMORY: Final = "Memory"
PARTITIONABLE_SLOT: Final = "PartitionableSlot"
DYNAMIC_SLOT: Final = "DynamicSlot"
STATE_UNCLAIMED: Final = "Unclaimed"
STATE_CLAIMED: Final = "Claimed"
ACTIVITY_IDLE: Final = "Idle"
RUNNING_ACTIVITIES: Final = frozenset({"Busy", "Retiring"})
#: States of a slot that cannot run jobs (the glidein failed validation or drains).
FAILED_STATES: Final = frozenset({"Owner", "Drained"})

# ---------------------------------------------------------------- job ads
JOB_STATUS: Final = "JobStatus"
ENTERED_CURRENT_STATUS: Final = "EnteredCurrentStatus"
REQUEST_CPUS: Final = "RequestCpus"
REMOTE_HOST: Final = "RemoteHost"
JOB_IDLE: Final = 1
JOB_RUNNING: Final = 2

# ---------------------------------------------------------------- schedd ads
SCHEDD_MAX_JOBS_RUNNING: Final = "MaxJobsRunning"
SCHEDD_TOTAL_RUNNING_JOBS: Final = "TotalRunningJobs"
SCHEDD_TOTAL_SCHEDULER_JOBS_RUNNING: Final = "TotalSchedulerJobsRunning"
SCHEDD_TRANSFER_QUEUE_MAX_UPLOADING: Final = "TransferQueueMaxUploading"
SCHEDD_TRANSFER_QUEUE_NUM_UPLOADING: Final = "TransferQueueNumUploading"
SCHEDD_CURB_MATCHMAKING: Final = "CurbMatchmaking"

# ---------------------------------------------------------------- factory entry ads
#: Prefix of the parameters a frontend may override (``GlideinParamX`` -> params["X"]).
ENTRY_PARAM_PREFIX: Final = "GlideinParam"
#: Prefix of the factory's monitoring values (``GlideinMonitorX`` -> monitor["X"]).
ENTRY_MONITOR_PREFIX: Final = "GlideinMonitor"
GLIDEIN_CPUS: Final = "GLIDEIN_CPUS"
GLIDEIN_ESTIMATED_CPUS: Final = "GLIDEIN_ESTIMATED_CPUS"
GLIDEIN_NODES: Final = "GLIDEIN_NODES"
GLIDEIN_IN_DOWNTIME: Final = "GLIDEIN_In_Downtime"
GLIDEIN_TRUST_DOMAIN: Final = "GLIDEIN_TrustDomain"
GLIDEIN_AUTH_METHOD: Final = "GLIDEIN_SupportedAuthenticationMethod"
ENTRY_NAME: Final = "EntryName"

# ---------------------------------------------------------------- limits (glideresource)
#: The names recorded when a limit fires, as the original's glideresource ads show them
#: (``GlideClientLimit<name>``). Maxima stop the idle request; curbs halve it.
LIMIT_TOTAL_GLIDEINS_PER_ENTRY: Final = "TotalGlideinsPerEntry"
LIMIT_IDLE_GLIDEINS_PER_ENTRY: Final = "IdleGlideinsPerEntry"
LIMIT_TOTAL_GLIDEINS_PER_GROUP: Final = "TotalGlideinsPerGroup"
LIMIT_IDLE_GLIDEINS_PER_GROUP: Final = "IdleGlideinsPerGroup"
LIMIT_TOTAL_GLIDEINS_PER_FRONTEND: Final = "TotalGlideinsPerFrontend"
LIMIT_IDLE_GLIDEINS_PER_FRONTEND: Final = "IdleGlideinsPerFrontend"
LIMIT_TOTAL_GLIDEINS_GLOBAL: Final = "TotalGlideinsGlobal"
LIMIT_IDLE_GLIDEINS_GLOBAL: Final = "IdleGlideinsGlobal"
CURB_IDLE_GLIDEINS_PER_ENTRY: Final = "CurbIdleGlideinsPerEntry"
CURB_TOTAL_GLIDEINS_PER_GROUP: Final = "CurbTotalGlideinsPerGroup"
CURB_IDLE_GLIDEINS_PER_GROUP: Final = "CurbIdleGlideinsPerGroup"
CURB_TOTAL_GLIDEINS_PER_FRONTEND: Final = "CurbTotalGlideinsPerFrontend"
CURB_IDLE_GLIDEINS_PER_FRONTEND: Final = "CurbIdleGlideinsPerFrontend"
CURB_TOTAL_GLIDEINS_GLOBAL: Final = "CurbTotalGlideinsGlobal"
CURB_IDLE_GLIDEINS_GLOBAL: Final = "CurbIdleGlideinsGlobal"
#: gwms additions: the idle request was cut to idle_glideins_per_entry.max, and the max
#: run request was cut to running_glideins_per_entry.max (the original sends it uncut).
LIMIT_IDLE_REQUEST_PER_ENTRY: Final = "IdleRequestPerEntry"
LIMIT_MAX_RUN_PER_ENTRY: Final = "MaxRunPerEntry"
#: gwms addition: the entry (or the frontend) is in downtime, so nothing is requested.
LIMIT_DOWNTIME: Final = "Downtime"
