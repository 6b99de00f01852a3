"""Entry point of the ``gwms`` command.

Sub-command groups live in their own modules and are imported only when used, so
``gwms --help`` stays fast. Errors a user can cause are printed as one line
(``error: ...``) with a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from gwms import __version__
from gwms.errors import GwmsError

# name -> (module, attribute, one-line help). One place that lists every command.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "collector": ("gwms.cli.collector", "collector", "The collector: ad store and message board."),
    "schedd": ("gwms.cli.schedd", "schedd", "The schedd: the durable job queue."),
    "negotiator": ("gwms.cli.negotiator", "negotiator", "The negotiator: matchmaking and fair share."),
    "startd": ("gwms.cli.startd", "startd", "The startd agent that runs inside every glidein."),
    "factory": ("gwms.cli.factory", "factory", "The glidein factory: entries, limits, pilots."),
    "frontend": ("gwms.cli.frontend", "frontend", "The frontend: turns idle jobs into glidein requests."),
    "logs": ("gwms.cli.logs", "logs", "The log monitor: index, anonymize, search glidein logs."),
    "web": ("gwms.cli.web", "web", "The web UI: dashboards for pool, factory, frontend, logs."),
    "up": ("gwms.cli.up", "up", "Start the whole system on this machine, until Ctrl-C or `gwms down`."),
    "down": ("gwms.cli.up", "down", "Stop the `gwms up` running on DIR (its services stop cleanly)."),
    "demo": ("gwms.cli.up", "demo", "Start gwms up, run the sample workload live, then show where to look."),
    "submit": ("gwms.cli.jobs", "submit", "Queue the jobs of an HTCondor submit description file."),
    "q": ("gwms.cli.jobs", "q", "List queued jobs (condor_q)."),
    "rm": ("gwms.cli.jobs", "rm", "Remove jobs (condor_rm): IDS are CLUSTER or CLUSTER.PROC."),
    "hold": ("gwms.cli.jobs", "hold", "Put jobs on hold (condor_hold): IDS are CLUSTER or CLUSTER.PROC."),
    "release": ("gwms.cli.jobs", "release", "Release held jobs (condor_release): IDS are CLUSTER or CLUSTER.PROC."),
    "qedit": ("gwms.cli.jobs", "qedit", "Set ATTR of a job (or all jobs of a cluster) to VALUE (condor_qedit)."),
    "history": ("gwms.cli.jobs", "history", "Completed and removed jobs, the most recent first (condor_history)."),
    "transfer-data": ("gwms.cli.jobs", "transfer_data", "Download the output files of finished jobs (condor_transfer_data)."),
    "job": ("gwms.cli.jobmon", "job", "Look into your running job: ps, top, ls, cat, tail, bt."),
    "status": ("gwms.cli.status", "status", "List ads in the collector (condor_status): slots by default."),
    "userprio": ("gwms.cli.negotiator", "userprio", "Show fair-share usage and priorities of submitters (condor_userprio)."),
    "security": ("gwms.cli.security", "security", "Keys, certificates and tokens."),
    "config": ("gwms.cli.config", "config", "Check and convert configuration files."),
    "simulate": ("gwms.cli.simulate", "simulate", "Run the real frontend and factory against simulated sites in virtual time."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            return cmd
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        return getattr(module, spec[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, COMMANDS[name][2]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gwms")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """gwms: pilot-based workload management (the GlideinWMS design).

    A factory submits pilot jobs (glideins) to sites; a frontend asks factories for as
    many glideins as the users' idle jobs justify; each glidein starts a startd agent
    that joins the user pool and runs jobs; the log monitor indexes and anonymizes the
    glideins' logs. Every service is a sub-command group below.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:  # one line per HTTP request is noise for a person at a terminal
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> Any:
    """Run the command line; never let a user's mistake end in a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        return cli.main(args=args, prog_name="gwms", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GwmsError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
