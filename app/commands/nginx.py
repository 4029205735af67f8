"""nginx as ``rpcviz cluster up``'s balancer: find the binary, read how it was built, write its config.

The config keeps nginx to one directory: pid file, lock file, error log and every temp path live
under ``prefix`` (``nginx -p PREFIX -c PREFIX/nginx.conf -e stderr``), so running it touches no file
of the machine's nginx. ``stream`` is the L4 balancer (a pod per TCP connection, as kube-proxy or an
NLB); ``http`` + ``grpc_pass`` is the L7 one (a pod per request, as Envoy or Linkerd).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from app.commands.errors import CliError
from transport import Address

#: Where Debian and most distributions put nginx when /usr/sbin is not on a user's PATH.
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin")
#: ``listen ... http2`` gave way to ``http2 on;`` in 1.25.1.
HTTP2_ON = (1, 25, 1)
#: ``-e stderr`` (the error log used before the config is read) exists since 1.19.5.
ERROR_LOG_FLAG = (1, 19, 5)
#: The http modules that have a temp path of their own (compiled in unless ``--without-http_X_module``).
_TEMP_PATHS = {
    "proxy": "proxy_temp_path",
    "fastcgi": "fastcgi_temp_path",
    "uwsgi": "uwsgi_temp_path",
    "scgi": "scgi_temp_path",
}


@dataclass(frozen=True, slots=True)
class NginxBuild:
    """What ``nginx -V`` says about one binary."""

    binary: str
    version: tuple[int, int, int]
    #: ``--with-stream``: "static", "dynamic" (needs load_module) or None (no stream module).
    stream: str | None
    http2: bool
    modules_path: str
    #: The http modules with a temp path that were compiled out.
    without: frozenset[str]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def find_nginx(binary: str | None) -> str:
    """The nginx binary to run: ``binary`` if given, else nginx on PATH or in an sbin directory."""
    if binary is not None:
        found = shutil.which(binary)
        if found is None:
            raise CliError(f"nginx not found at {binary!r}")
        return found
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    found = shutil.which("nginx", path=path)
    if found is None:
        raise CliError("nginx is not installed (Debian: apt-get install nginx-full); or use --balancer builtin")
    return found


def parse_build(binary: str, text: str) -> NginxBuild:
    """``nginx -V`` output -> NginxBuild; CliError if it does not look like nginx."""
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise CliError(f"{binary} does not say which nginx it is (nginx -V)")
    major, minor, patch = (int(part) for part in match.groups())
    stream = None
    if "--with-stream=dynamic" in text:
        stream = "dynamic"
    elif re.search(r"--with-stream(\s|$)", text):
        stream = "static"
    modules = re.search(r"--modules-path=(\S+)", text)
    prefix = re.search(r"--prefix=(\S+)", text)
    modules_path = (
        modules.group(1) if modules else str(Path(prefix.group(1) if prefix else "/usr/local/nginx") / "modules")
    )
    without = frozenset(name for name in _TEMP_PATHS if f"--without-http_{name}_module" in text)
    return NginxBuild(binary, (major, minor, patch), stream, "--with-http_v2_module" in text, modules_path, without)


async def probe(binary: str | None) -> NginxBuild:
    """Find nginx and read its build (``nginx -V`` prints to stderr)."""
    found = find_nginx(binary)
    try:
        proc = await asyncio.create_subprocess_exec(
            found, "-V", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, TimeoutError) as exc:
        raise CliError(f"cannot run {found} -V: {exc}") from None
    return parse_build(found, out.decode(errors="replace"))


def command(build: NginxBuild, prefix: Path) -> list[str]:
    """The command line running nginx in the foreground on the config under ``prefix``."""
    argv = [build.binary, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf")]
    if build.version >= ERROR_LOG_FLAG:
        argv += ["-e", "stderr"]  # else nginx opens its compiled-in error log before it reads ours
    return argv


def config(
    build: NginxBuild, l7: bool, listen: Address, pods: list[Address], strategy: str, grace: float, prefix: Path
) -> str:
    """nginx.conf for an L4 (``stream``) or L7 (``grpc_pass``) balancer over ``pods``; CliError if
    this nginx lacks the module it needs."""
    if not l7 and build.stream is None:
        raise CliError(f"{build.binary} {build.version_text} has no stream module (Debian: nginx-full)")
    if l7 and not build.http2:
        raise CliError(f"{build.binary} {build.version_text} has no HTTP/2 module, which grpc_pass needs")
    lines = [f"# Written by rpcviz cluster up. Every file nginx writes is under {prefix}."]
    if not l7 and build.stream == "dynamic":
        lines.append(f"load_module {build.modules_path}/ngx_stream_module.so;")
    lines += [
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        f"pid {prefix}/nginx.pid;",
        f"lock_file {prefix}/nginx.lock;",
        f"error_log {prefix}/error.log notice;",
        # a graceful stop (SIGQUIT) waits for open connections this long, then closes them
        f"worker_shutdown_timeout {max(1, round(grace * 1000))}ms;",
        "events { worker_connections 1024; }",
    ]
    upstream = ["    upstream pods {"]
    if strategy == "random":
        upstream.append("        random;")
    upstream += [f"        server {pod};" for pod in pods]
    if l7:
        upstream.append("        keepalive 16;")  # reuse upstream connections (one call at a time each)
    upstream.append("    }")
    if not l7:
        lines += [
            "stream {",
            *upstream,
            "    server {",
            f"        listen {listen};",
            "        proxy_connect_timeout 2s;",
            "        proxy_pass pods;",
            "    }",
            "}",
        ]
    else:
        http2 = build.version >= HTTP2_ON
        temp = [f"    client_body_temp_path {prefix}/client_body;"]
        temp += [
            f"    {directive} {prefix}/{name};" for name, directive in _TEMP_PATHS.items() if name not in build.without
        ]
        lines += [
            "http {",
            "    access_log off;",
            *temp,
            *upstream,
            "    server {",
            f"        listen {listen};" if http2 else f"        listen {listen} http2;",
            *(["        http2 on;"] if http2 else []),
            "        location / {",
            "            grpc_pass grpc://pods;",
            "        }",
            "    }",
            "}",
        ]
    return "\n".join(lines) + "\n"
