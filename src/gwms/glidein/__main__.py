"""``python3 -m gwms.glidein run ...``: the startd agent's command line."""

from gwms.glidein.startd import main_exit

main_exit()
