"""The nginx config ``cluster up`` writes (pure functions: no nginx needed): the module it loads,
the http2 spelling of its version, and every file it writes under the temp dir."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.commands.errors import CliError
from app.commands.nginx import command, config, parse_build
from transport import Address

DEBIAN_12 = (
    "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.11\nconfigure arguments: --prefix=/usr/share/nginx "
    "--conf-path=/etc/nginx/nginx.conf --error-log-path=stderr --pid-path=/run/nginx.pid "
    "--modules-path=/usr/lib/nginx/modules --with-http_v2_module --with-stream=dynamic --with-threads"
)
NGINX_ORG = (
    "nginx version: nginx/1.27.3\nconfigure arguments: --prefix=/etc/nginx --error-log-path=/var/log/nginx/error.log "
    "--with-http_v2_module --with-stream --without-http_uwsgi_module --without-http_scgi_module"
)
PODS = [Address("127.0.0.11", 50051), Address("127.0.0.12", 50051)]
VIP = Address("127.0.0.1", 50050)
PREFIX = Path("/tmp/rpcviz-cluster-x")


def test_parse_build_reads_version_modules_and_what_is_compiled_out() -> None:
    debian = parse_build("/usr/sbin/nginx", DEBIAN_12)
    assert (debian.version, debian.stream, debian.http2) == ((1, 22, 1), "dynamic", True)
    assert debian.modules_path == "/usr/lib/nginx/modules"
    org = parse_build("/usr/sbin/nginx", NGINX_ORG)
    assert (org.version, org.stream, org.modules_path) == ((1, 27, 3), "static", "/etc/nginx/modules")
    assert org.without == {"uwsgi", "scgi"}
    with pytest.raises(CliError, match="does not say which nginx"):
        parse_build("/bin/true", "")


def test_stream_config_loads_the_dynamic_module_and_lists_every_pod() -> None:
    text = config(parse_build("nginx", DEBIAN_12), False, VIP, PODS, "round_robin", 2.0, PREFIX)
    assert "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" in text
    assert "server 127.0.0.11:50051;" in text and "server 127.0.0.12:50051;" in text
    assert "listen 127.0.0.1:50050;" in text and "random;" not in text
    assert "worker_shutdown_timeout 2000ms;" in text
    static = config(parse_build("nginx", NGINX_ORG), False, VIP, PODS, "random", 0.0, PREFIX)
    assert "load_module" not in static and "random;" in static
    assert "worker_shutdown_timeout 1ms;" in static  # 0 would mean "wait for ever"


def test_grpc_pass_config_spells_http2_for_the_version() -> None:
    old = config(parse_build("nginx", DEBIAN_12), True, VIP, PODS, "round_robin", 2.0, PREFIX)
    assert "listen 127.0.0.1:50050 http2;" in old and "http2 on;" not in old
    assert "grpc_pass grpc://pods;" in old and "load_module" not in old
    new = config(parse_build("nginx", NGINX_ORG), True, VIP, PODS, "round_robin", 2.0, PREFIX)
    assert "listen 127.0.0.1:50050;" in new and "http2 on;" in new
    assert "uwsgi_temp_path" not in new  # compiled out: the directive would not parse


@pytest.mark.parametrize("l7", [False, True])
def test_every_path_nginx_writes_is_under_the_prefix(l7: bool) -> None:
    for build in (parse_build("nginx", DEBIAN_12), parse_build("nginx", NGINX_ORG)):
        text = config(build, l7, VIP, PODS, "round_robin", 2.0, PREFIX)
        written = re.findall(r"^\s*(?:pid|lock_file|error_log|\w+_temp_path) ([^\s;]+)", text, re.MULTILINE)
        assert len(written) == (8 - len(build.without) if l7 else 3), text
        assert all(path.startswith(f"{PREFIX}/") for path in written), written
        assert re.search(r"^\s*access_log off;", text, re.MULTILINE) or not l7


def test_command_sends_the_early_error_log_to_stderr_from_1_19_5() -> None:
    argv = command(parse_build("/usr/sbin/nginx", DEBIAN_12), PREFIX)
    assert argv == ["/usr/sbin/nginx", "-p", f"{PREFIX}/", "-c", f"{PREFIX}/nginx.conf", "-e", "stderr"]
    old = parse_build("/usr/sbin/nginx", DEBIAN_12.replace("1.22.1", "1.18.0"))
    assert "-e" not in command(old, PREFIX)
