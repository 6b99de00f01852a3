"""Job and slot ad attribute names and status codes: one place for every spelling.

The names are HTCondor's own, so people who know HTCondor read gwms ads without
translation. ClassAd attribute names are case-insensitive; these constants give the
canonical spelling that gwms writes. Compare names case-blind (``name.lower()``).

This is a flat module of constants (no logic beyond two small lookup tables), imported
by the submit language, the schedd queue, the negotiator and the startd agent.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------------------
# Identity and bookkeeping
# --------------------------------------------------------------------------------------
CLUSTER_ID: Final = "ClusterId"
PROC_ID: Final = "ProcId"
GLOBAL_JOB_ID: Final = "GlobalJobId"
OWNER: Final = "Owner"
QDATE: Final = "QDate"
ENTERED_CURRENT_STATUS: Final = "EnteredCurrentStatus"
JOB_STATUS: Final = "JobStatus"
LAST_JOB_STATUS: Final = "LastJobStatus"
JOB_UNIVERSE: Final = "JobUniverse"
JOB_PRIO: Final = "JobPrio"
JOB_BATCH_NAME: Final = "JobBatchName"
MY_TYPE: Final = "MyType"
TARGET_TYPE: Final = "TargetType"

# --------------------------------------------------------------------------------------
# JobStatus codes (HTCondor's numbering)
# --------------------------------------------------------------------------------------
IDLE: Final = 1
RUNNING: Final = 2
REMOVED: Final = 3
COMPLETED: Final = 4
HELD: Final = 5
TRANSFERRING_OUTPUT: Final = 6
SUSPENDED: Final = 7

#: JobStatus code -> the name condor_q shows.
JOB_STATUS_NAMES: Final[dict[int, str]] = {
    IDLE: "Idle",
    RUNNING: "Running",
    REMOVED: "Removed",
    COMPLETED: "Completed",
    HELD: "Held",
    TRANSFERRING_OUTPUT: "Transferring Output",
    SUSPENDED: "Suspended",
}

#: JobStatus code -> condor_q's one-letter short form.
JOB_STATUS_LETTERS: Final[dict[int, str]] = {
    IDLE: "I",
    RUNNING: "R",
    REMOVED: "X",
    COMPLETED: "C",
    HELD: "H",
    TRANSFERRING_OUTPUT: ">",
    SUSPENDED: "S",
}

# --------------------------------------------------------------------------------------
# JobUniverse codes (only vanilla is supported by gwms)
# --------------------------------------------------------------------------------------
VANILLA: Final = 5

# --------------------------------------------------------------------------------------
# Resources requested by the job
# --------------------------------------------------------------------------------------
REQUEST_CPUS: Final = "RequestCpus"
REQUEST_MEMORY: Final = "RequestMemory"  # MiB
REQUEST_DISK: Final = "RequestDisk"  # KiB
REQUEST_GPUS: Final = "RequestGpus"

# --------------------------------------------------------------------------------------
# Matchmaking
# --------------------------------------------------------------------------------------
REQUIREMENTS: Final = "Requirements"
RANK: Final = "Rank"

# --------------------------------------------------------------------------------------
# What to run and where
# --------------------------------------------------------------------------------------
CMD: Final = "Cmd"
ARGS: Final = "Args"  # old (V1) argument syntax
ARGUMENTS: Final = "Arguments"  # new (V2) argument syntax
ENVIRONMENT: Final = "Environment"  # new (V2) environment syntax
ENV: Final = "Env"  # old (V1) environment syntax
GET_ENV: Final = "GetEnv"
IWD: Final = "Iwd"
IN: Final = "In"
OUT: Final = "Out"
ERR: Final = "Err"
USER_LOG: Final = "UserLog"
TRANSFER_INPUT: Final = "TransferInput"
TRANSFER_OUTPUT: Final = "TransferOutput"
TRANSFER_EXECUTABLE: Final = "TransferExecutable"
TRANSFER_OUTPUT_REMAPS: Final = "TransferOutputRemaps"
SHOULD_TRANSFER_FILES: Final = "ShouldTransferFiles"
WHEN_TO_TRANSFER_OUTPUT: Final = "WhenToTransferOutput"

# --------------------------------------------------------------------------------------
# Accounting
# --------------------------------------------------------------------------------------
ACCOUNTING_GROUP: Final = "AccountingGroup"
ACCT_GROUP: Final = "AcctGroup"
ACCT_GROUP_USER: Final = "AcctGroupUser"

# --------------------------------------------------------------------------------------
# Policy expressions
# --------------------------------------------------------------------------------------
PERIODIC_HOLD: Final = "PeriodicHold"
PERIODIC_RELEASE: Final = "PeriodicRelease"
PERIODIC_REMOVE: Final = "PeriodicRemove"
ON_EXIT_HOLD: Final = "OnExitHold"
ON_EXIT_REMOVE: Final = "OnExitRemove"
MAX_RETRIES: Final = "MaxRetries"

# --------------------------------------------------------------------------------------
# Hold / release / remove bookkeeping
# --------------------------------------------------------------------------------------
HOLD_REASON: Final = "HoldReason"
HOLD_REASON_CODE: Final = "HoldReasonCode"
HOLD_REASON_SUB_CODE: Final = "HoldReasonSubCode"
RELEASE_REASON: Final = "ReleaseReason"
REMOVE_REASON: Final = "RemoveReason"

#: HoldReasonCode for a job submitted with ``hold = true`` (HTCondor's SubmittedOnHold).
HOLD_CODE_SUBMITTED_ON_HOLD: Final = 15
#: HoldReasonCode for a hold by the user (condor_hold; HTCondor's UserRequest).
HOLD_CODE_USER_REQUEST: Final = 1
#: HoldReasonCode for a hold by the job's periodic_hold expression (JobPolicy).
HOLD_CODE_JOB_POLICY: Final = 3

# --------------------------------------------------------------------------------------
# Execution results and history
# --------------------------------------------------------------------------------------
EXIT_CODE: Final = "ExitCode"
EXIT_BY_SIGNAL: Final = "ExitBySignal"
EXIT_SIGNAL: Final = "ExitSignal"
NUM_JOB_STARTS: Final = "NumJobStarts"
REMOTE_HOST: Final = "RemoteHost"
COMPLETION_DATE: Final = "CompletionDate"
JOB_START_DATE: Final = "JobStartDate"
JOB_CURRENT_START_DATE: Final = "JobCurrentStartDate"
REMOTE_WALL_CLOCK_TIME: Final = "RemoteWallClockTime"
REMOTE_USER_CPU: Final = "RemoteUserCpu"
IMAGE_SIZE: Final = "ImageSize"  # KiB
MEMORY_USAGE: Final = "MemoryUsage"  # MiB
DISK_USAGE: Final = "DiskUsage"  # KiB

# --------------------------------------------------------------------------------------
# Slot (machine) ad attributes
# --------------------------------------------------------------------------------------
NAME: Final = "Name"
STATE: Final = "State"
ACTIVITY: Final = "Activity"
CPUS: Final = "Cpus"
MEMORY: Final = "Memory"  # MiB
DISK: Final = "Disk"  # KiB
GPUS: Final = "Gpus"
OPSYS: Final = "OpSys"
ARCH: Final = "Arch"
START: Final = "Start"

#: MyType of a job ad and of a slot ad.
JOB_MY_TYPE: Final = "Job"
SLOT_MY_TYPE: Final = "Machine"
