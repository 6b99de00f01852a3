"""``gwms status``: the ads in the pool's collector, as ``condor_status`` shows them."""

from __future__ import annotations

import click

from gwms.errors import UsageError
from gwms.cli.jobs import pool_option, print_json_or_autoformat, render_table


@click.command("status")
@click.argument("words", nargs=-1)
@pool_option
@click.option("-schedd", "--schedd", "kind", flag_value="Scheduler", help="Schedd ads.")
@click.option("-any", "--any", "kind", flag_value="*", help="Ads of every type.")
@click.option("-type", "--type", "kind", default="Machine", show_default=True, metavar="MYTYPE",
              help="Ads of this MyType (Machine, Scheduler, glidefactory, glideclient, ...).")
@click.option("-wms", "--wms", is_flag=True, help="Ask the WMS collector instead of the user pool's.")
@click.option("-constraint", "--constraint", default=None, metavar="EXPR", help="A ClassAd constraint.")
@click.option("-af", "--af", "autoformat", multiple=True, metavar="ATTR", help="Print these attributes.")
@click.option("-json", "--json", "as_json", is_flag=True, help="Print the ads as JSON.")
def status(words: tuple[str, ...], pool: str | None, kind: str, wms: bool, constraint: str | None,
           autoformat: tuple[str, ...], as_json: bool) -> None:
    """List ads in the collector (condor_status): slots by default. After -af, WORDS
    are more attribute names (gwms status -af Name State Cpus)."""
    if words and not autoformat:
        raise UsageError(f"unexpected argument {words[0]!r}; attributes to print go after -af")
    autoformat = tuple(autoformat) + tuple(words)
    from gwms.pool.clientfile import load_client_file
    from gwms.pool.collector.client import CollectorClient

    info = load_client_file(pool)
    url = info.wms_collector if wms and info.wms_collector else info.collector
    my_type = None if kind == "*" else kind
    with CollectorClient(url, token=info.token, verify=info.ca_file or True) as client:
        ads = client.query(my_type, constraint, projection=list(autoformat) or None)
    ads.sort(key=lambda a: (str(a.get("MyType", "")), str(a.get("Name", ""))))
    if print_json_or_autoformat(ads, autoformat, as_json):
        return
    if my_type == "Machine":
        rows = [[str(a.get("Name", "")), str(a.get("OpSys", "")), str(a.get("Arch", "")),
                 str(a.get("State", "")), str(a.get("Activity", "")), str(a.get("Cpus", "")),
                 str(a.get("Memory", "")), str(a.get("GLIDEIN_Site", ""))] for a in ads]
        click.echo(render_table(["Name", "OpSys", "Arch", "State", "Activity", "Cpus", "Mem", "Site"], rows))
        states: dict[str, int] = {}
        for a in ads:
            states[str(a.get("State", "?"))] = states.get(str(a.get("State", "?")), 0) + 1
        click.echo("")
        click.echo(f"Total {len(ads)} slots: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    elif my_type == "Scheduler":
        rows = [[str(a.get("Name", "")), str(a.get("Machine", "")), str(a.get("TotalRunningJobs", 0)),
                 str(a.get("TotalIdleJobs", 0)), str(a.get("TotalHeldJobs", 0))] for a in ads]
        click.echo(render_table(["Name", "Machine", "RunningJobs", "IdleJobs", "HeldJobs"], rows))
    else:
        rows = [[str(a.get("MyType", "")), str(a.get("Name", "")),
                 str(a.get("AuthenticatedIdentity", ""))] for a in ads]
        click.echo(render_table(["MyType", "Name", "AuthenticatedIdentity"], rows))
