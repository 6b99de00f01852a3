"""What ``gwms up`` starts: the services' order and command lines (log server, indexer,
web UI), the factory's ``log_server`` section, and the supervisor's services without a URL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gwms.embedded.supervisor import ServiceSpec, ServiceStartError, Supervisor
from gwms.embedded.up import SERVICES, UpOptions, log_push_url, plan_services, url_lines
from gwms.embedded.upconfig import LOG_PUSH_INTERVAL, write_factory_config
from gwms.factory.config import FactoryConfig
from gwms.security.layout import init_security


def test_services_start_in_order_and_the_web_ui_mounts_the_monitor(tmp_path: Path) -> None:
    init_security(tmp_path)
    ports = {name: 40000 + i for i, name in enumerate(SERVICES)}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    opts = UpOptions(data=tmp_path)
    planned = plan_services(opts, ports, urls)
    names = [name for name, _make in planned]
    assert names == ["collector", "wms", "schedd", "negotiator", "factory", "logs", "indexer", "frontend", "web"]
    # before the factory wrote its public key, the log server would take no pushes
    assert "--push-key" not in dict(planned)["logs"]().argv
    (tmp_path / "factory" / "keys").mkdir(parents=True)
    (tmp_path / "factory" / "keys" / "gwms-up-v1.pub.pem").write_text("(the factory writes it)")
    specs = {name: make() for name, make in planned}
    # the log server accepts pushes signed by the factory's key, for the URL the factory hands out
    logs = list(specs["logs"].argv)
    push = log_push_url(opts, ports)
    assert push == f"http://127.0.0.1:{ports['logs']}/v1/push"
    assert logs[logs.index("--push-url") + 1] == push
    assert logs[logs.index("--push-key") + 1] == str(tmp_path / "factory" / "keys")
    assert logs[logs.index("--data") + 1] == str(tmp_path / "monitor")
    # the indexer follows the factory's log tree (its client/ made for it) and listens on nothing
    indexer = specs["indexer"]
    assert not indexer.announces
    argv = list(indexer.argv)
    assert "--follow" in argv and argv[argv.index("--source") + 1] == str(tmp_path / "factory" / "logs")
    assert (tmp_path / "factory" / "logs" / "client").is_dir()
    # the web UI gets every service's URL and the monitor's data
    web = list(specs["web"].argv)
    assert web[web.index("--port") + 1] == str(ports["web"])
    assert web[web.index("--monitor-data") + 1] == str(tmp_path / "monitor")
    for flag, name in (("--collector", "collector"), ("--schedd", "schedd"), ("--factory", "factory"),
                       ("--frontend", "frontend"), ("--negotiator", "negotiator"), ("--wms", "wms")):
        assert web[web.index(flag) + 1] == urls[name]
    # the generated factory config names the log server; every service keeps history on disk
    factory = FactoryConfig.model_validate_json(_yaml_to_json(tmp_path / "factory" / "factory.yaml"))
    assert factory.log_server is not None and factory.log_server.url == push
    assert factory.log_server.interval_s == LOG_PUSH_INTERVAL
    assert all((s.env or {}).get("GWMS_HISTORY_DIR") for s in specs.values())


def test_tls_pools_push_over_https_with_the_pool_ca(tmp_path: Path) -> None:
    path = write_factory_config(tmp_path, {"wms": "https://127.0.0.1:2"}, "dom",
                                log_push_url="https://127.0.0.1:3/v1/push", log_ca_file="/x/ca.pem")
    cfg = FactoryConfig.model_validate_json(_yaml_to_json(path))
    assert cfg.log_server is not None
    assert (cfg.log_server.url, cfg.log_server.ca_file) == ("https://127.0.0.1:3/v1/push", "/x/ca.pem")
    # without a log server URL, no log_server section (glideins push nothing)
    path = write_factory_config(tmp_path, {"wms": "http://127.0.0.1:2"}, "dom")
    assert FactoryConfig.model_validate_json(_yaml_to_json(path)).log_server is None
    assert log_push_url(UpOptions(data=tmp_path, tls=True), {"logs": 9}) == "https://127.0.0.1:9/v1/push"


def test_url_lines_put_the_web_ui_first_and_skip_services_without_a_url() -> None:
    lines = url_lines({"collector": "http://c", "web": "http://w", "logs": "http://l", "indexer": ""})
    assert lines[0].split() == ["web", "UI", "http://w"]
    assert lines[-1].split() == ["log", "server", "http://l"]
    assert len(lines) == 3


def test_a_service_without_a_url_is_started_when_it_stays_alive(tmp_path: Path) -> None:
    sup = Supervisor(on_event=lambda _m: None)
    try:
        url = sup.start(ServiceSpec("quiet", [sys.executable, "-c", "import time; time.sleep(30)"],
                                    tmp_path / "quiet.log", announces=False, settle=0.3))
        assert url == ""
        assert sup.children["quiet"].proc is not None and sup.children["quiet"].proc.poll() is None
        with pytest.raises(ServiceStartError, match="exited with code 3"):
            sup.start(ServiceSpec("dies", [sys.executable, "-c", "import sys; sys.exit(3)"],
                                  tmp_path / "dies.log", announces=False, settle=5))
    finally:
        sup.stop(timeout=5)
    assert sup.children["quiet"].proc is not None and sup.children["quiet"].proc.poll() is not None


def _yaml_to_json(path: Path) -> str:
    import json

    import yaml

    return json.dumps(yaml.safe_load(path.read_text()), default=str)
