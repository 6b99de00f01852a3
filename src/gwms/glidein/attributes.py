"""ClassAd attribute names and values the startd agent reads and writes: one place.

The names are HTCondor's (and GlideinWMS's), matched case-blind when read. This mirrors
the parts of ``gwms.pool.jobattrs`` the agent needs; ``glidein/`` may not import it (the
package ships alone as a zipapp). A unit test checks the two agree.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------- slot ads
MY_TYPE = "MyType"
TARGET_TYPE = "TargetType"
SLOT_MY_TYPE = "Machine"
JOB_MY_TYPE = "Job"
NAME = "Name"
MACHINE = "Machine"
STATE = "State"
ACTIVITY = "Activity"
CPUS = "Cpus"
MEMORY = "Memory"  # MiB
DISK = "Disk"  # KiB
GPUS = "Gpus"
TOTAL_CPUS = "TotalCpus"
TOTAL_MEMORY = "TotalMemory"
TOTAL_DISK = "TotalDisk"
TOTAL_GPUS = "TotalGpus"
TOTAL_SLOT_CPUS = "TotalSlotCpus"
TOTAL_SLOT_MEMORY = "TotalSlotMemory"
TOTAL_SLOT_DISK = "TotalSlotDisk"
TOTAL_SLOT_GPUS = "TotalSlotGpus"
OPSYS = "OpSys"
ARCH = "Arch"
START = "Start"
SLOT_ID = "SlotID"
SLOT_TYPE = "SlotType"
PARTITIONABLE_SLOT = "PartitionableSlot"
DYNAMIC_SLOT = "DynamicSlot"
PARENT_SLOT = "ParentSlotName"
STARTD_ID = "GwmsStartdId"
CLASSAD_LIFETIME = "ClassAdLifetime"
DAEMON_START_TIME = "DaemonStartTime"
MY_CURRENT_TIME = "MyCurrentTime"
JOB_STARTS = "JobStarts"
REMOTE_OWNER = "RemoteOwner"
REMOTE_USER = "RemoteUser"
JOB_ID = "JobId"
GLOBAL_JOB_ID = "GlobalJobId"
JOB_START = "JobStart"
IS_BLACK_HOLE = "IsBlackHole"
GLIDEIN_TO_RETIRE = "GLIDEIN_ToRetire"
GLIDEIN_TO_DIE = "GLIDEIN_ToDie"
#: The factory instance the glidein came from (published by the pilot, never set by the agent).
GLIDEIN_NAME = "GLIDEIN_Name"
#: The agent's own name (``--name``; the part after ``@`` in slot names). Not GLIDEIN_Name,
#: which is the factory instance name: ``entry@GLIDEIN_Name@GLIDEIN_Factory`` names the
#: entry a frontend asked.
STARTD_NAME = "GwmsStartdName"
GLIDEIN_BLACKHOLE_NUMJOBS = "GLIDEIN_BLACKHOLE_NUMJOBS"
GLIDEIN_BLACKHOLE_RATE = "GLIDEIN_BLACKHOLE_RATE"

#: The OpSys every slot advertises (the agent runs on Linux worker nodes).
OPSYS_LINUX = "LINUX"

# Slot states and activities (HTCondor's spelling).
STATE_UNCLAIMED = "Unclaimed"
STATE_CLAIMED = "Claimed"
STATE_DRAINED = "Drained"
ACTIVITY_IDLE = "Idle"
ACTIVITY_BUSY = "Busy"
ACTIVITY_RETIRING = "Retiring"

# ------------------------------------------------------------------------------ job ads
CLUSTER_ID = "ClusterId"
PROC_ID = "ProcId"
OWNER = "Owner"
USER = "User"
QDATE = "QDate"
CMD = "Cmd"
ARGS = "Args"
ARGUMENTS = "Arguments"
ENVIRONMENT = "Environment"
ENV = "Env"
IN = "In"
OUT = "Out"
ERR = "Err"
TRANSFER_OUTPUT = "TransferOutput"
TRANSFER_EXECUTABLE = "TransferExecutable"
SPOOLED_INPUT = "GwmsSpooledInput"
REQUEST_CPUS = "RequestCpus"
REQUEST_MEMORY = "RequestMemory"  # MiB
REQUEST_DISK = "RequestDisk"  # KiB
REQUEST_GPUS = "RequestGpus"
MAX_WALL_TIME = "MaxWallTime"
JOB_MAX_WALL_TIME = "JobMaxWallTime"
JOB_MAX_VACATE_TIME = "JobMaxVacateTime"

# Defaults of a job that sets no request (HTCondor's, as the schedd's submit uses).
DEFAULT_REQUEST_CPUS = 1
DEFAULT_REQUEST_MEMORY_MB = 128
DEFAULT_REQUEST_DISK_KB = 100 * 1024

# ---------------------------------------------------------------------- hold reason codes
#: HTCondor's HoldReasonCode values the starter uses.
HOLD_FAILED_TO_CREATE_PROCESS = 6
HOLD_UNABLE_TO_OPEN_OUTPUT = 7
HOLD_UNABLE_TO_OPEN_INPUT = 8
HOLD_TRANSFER_OUTPUT_ERROR = 12
HOLD_TRANSFER_INPUT_ERROR = 13
HOLD_JOB_OUT_OF_RESOURCES = 34
HOLD_JOB_EXECUTE_EXCEEDED = 47
