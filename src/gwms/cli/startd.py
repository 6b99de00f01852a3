"""The ``gwms startd`` command group.

Only option parsing lives here: the agent is :mod:`gwms.glidein.startd` (standard
library only, also shipped as a zipapp). ``run`` takes the options of
:data:`gwms.glidein.options.OPTIONS`, the same table the zipapp's argparse uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gwms.errors import GwmsError
from gwms.glidein import options as O


class StartdOptionError(GwmsError):
    """A ``gwms startd`` option that is not usable."""


@click.group(name="startd")
def startd() -> None:
    """The startd agent that runs inside every glidein.

    Advertises slots to the collector, claims matched jobs over outbound
    connections only, and runs them with its starter.
    """


def _click_option(opt: O.Opt) -> Any:
    kw: dict[str, Any] = {"help": opt.help, "required": opt.required}
    if opt.metavar:
        kw["metavar"] = opt.metavar
    if opt.kind == O.FLAG:
        return click.option(opt.flag, opt.dest, is_flag=True, default=False, help=opt.help)
    if opt.kind == O.MULTI:
        return click.option(opt.flag, opt.dest, multiple=True, **kw)
    kinds = {O.INT: int, O.FLOAT: float, O.STR: str, O.PATH: click.Path(path_type=str)}
    return click.option(opt.flag, opt.dest, type=kinds[opt.kind], default=None, **kw)


def _run(**values: Any) -> None:
    """Run the startd agent until it retires (SIGTERM drains, a second one vacates).

    Resource amounts are totals for the glidein; static slots share them evenly.
    """
    from gwms.glidein.config import build_config
    from gwms.glidein.errors import StartdError
    from gwms.glidein.startd import run_agent

    echo = bool(values.pop("echo", False))
    values["attrs"] = list(values.get("attrs") or ())
    try:
        config = build_config(**values, echo=echo)
    except StartdError as exc:
        raise StartdOptionError(str(exc)) from None
    code = run_agent(config)
    if code:
        raise click.exceptions.Exit(code)


def _build_run() -> click.Command:
    fn: Any = _run
    fn = click.option("--echo", is_flag=True, default=False, help="also print StartdLog lines on stderr")(fn)
    for opt in reversed(O.OPTIONS):
        fn = _click_option(opt)(fn)
    return click.command(name="run")(fn)


startd.add_command(_build_run())


@startd.command(name="zipapp")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def zipapp_cmd(out: Path) -> None:
    """Build OUT (e.g. gwms-startd.pyz): the agent as one file for worker nodes.

    Run it with `python3 OUT run --collector URL --token FILE ...` (Python >= 3.9,
    nothing else needed).
    """
    from gwms.glidein.zipbuild import build_zipapp

    try:
        path = build_zipapp(out)
    except OSError as exc:
        raise StartdOptionError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {path} ({path.stat().st_size} bytes)")
