"""docker/nginx.conf for real: Debian's nginx in front of two authsvc processes on
loopback runs the whole flow, and authsvc sees the client address nginx forwarded.
docker/compose.yaml is checked for what the deployment relies on (and by `docker
compose config` where the compose client exists)."""

from __future__ import annotations

import http.client
import http.server
import json
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import yaml

from tests.e2e.processes import ServiceProcess, free_port, wait_for_port
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import LOGIN, LOGOUT, ME, PASSWORD, REFRESH, REGISTER, SESSIONS, new_email

DOCKER = Path(__file__).resolve().parents[2] / "docker"
CLIENT_ADDRESS = "127.0.0.5"  # the test's requests leave from here; nginx is on 127.0.0.1
APP_ORIGIN = "https://app.example.com"  # a page on another origin (CORS_ORIGINS)


def nginx_config(
    tmp_path: Path, listen: int, upstreams: list[int], echo_port: int | None = None
) -> Path:
    """docker/nginx.conf with its listen port and upstream servers (authsvc's, and the
    example service behind forward-auth) pointed at loopback, and its files kept in
    ``tmp_path``: nothing else of it is changed."""
    config = (DOCKER / "nginx.conf").read_text()
    servers = "\n".join(f"        server 127.0.0.1:{port};" for port in upstreams)
    config, count = re.subn(r"^\s*server authsvc:3000[^\n]*$", servers, config, flags=re.M)
    assert count == 1
    echo = f"server 127.0.0.1:{echo_port or free_port()};"
    config, count = re.subn(r"server echo:80;", echo, config)
    assert count == 1
    config = config.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    config = config.replace("worker_processes auto;", (
        f"worker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;"
    ))  # fmt: skip
    assert "/var/log/nginx/access.log" in config
    config = config.replace("/var/log/nginx/access.log", f"{tmp_path}/access.log")
    path = tmp_path / "nginx.conf"
    path.write_text(config)
    return path


def request(port: int, query: str, variables=None, token=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                      source_address=(CLIENT_ADDRESS, 0))  # fmt: skip
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"query": query, "variables": variables or {}})
    try:
        conn.request("POST", "/graphql", body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


class EchoServer:
    """compose.yaml's `echo` (traefik/whoami) in small: answers every request with the
    headers it received, as JSON, and keeps them."""

    def __init__(self) -> None:
        received: list[dict[str, str]] = []
        self.received = received

        class Echo(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                received.append(headers)
                body = json.dumps({"path": self.path, "headers": headers}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_DELETE = do_GET

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Deployment:
    """Two authsvc replicas (production, MariaDB + Redis) behind docker/nginx.conf."""

    env: dict[str, str]
    backends: list[ServiceProcess]
    listen: int
    echo: EchoServer


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, mysql_server, redis_server):
    """One deployment for the module (its start is the slow part). The rolling restart
    test, which replaces a replica, comes last."""
    tmp_path = tmp_path_factory.mktemp("nginx-deployment")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is needed: .ci/run installs it (nginx-light)"
    listen = free_port()
    env = production_env(mysql_server, redis_server)
    # PUBLIC_URL: nginx's address, which turns discovery on.
    env |= {
        "WORKERS": "1",
        "TRUSTED_PROXIES": "127.0.0.1",
        "CORS_ORIGINS": APP_ORIGIN,
        "PUBLIC_URL": f"http://127.0.0.1:{listen}",
    }
    migrate(tmp_path, env)
    backends = [ServiceProcess(tmp_path, env) for _ in range(2)]
    echo = EchoServer()
    config = nginx_config(tmp_path, listen, [b.port for b in backends], echo.port)
    command = [nginx, "-p", str(tmp_path), "-c", str(config), "-g", "daemon off;"]
    proxy = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(listen, 15, proxy)
        yield Deployment(env, backends, listen, echo)
    finally:
        echo.close()
        proxy.terminate()
        proxy.wait(10)
        for backend in backends:
            if backend.process.poll() is None:
                assert backend.terminate() == 0


def test_the_whole_flow_through_nginx(deployment):
    listen, backends = deployment.listen, deployment.backends
    email = new_email()
    _, body = request(listen, REGISTER, {"email": email, "password": PASSWORD})
    assert body["data"]["register"]["status"] == 201
    # A client that tries to pick its own address: nginx appends the real one.
    _, body = request(listen, LOGIN, {"email": email, "password": PASSWORD},
                      headers={"X-Forwarded-For": "6.6.6.6"})  # fmt: skip
    tokens = json.loads(body["data"]["login"]["payload"])
    _, body = request(listen, ME, token=tokens["access_token"])
    assert body["data"]["me"]["email"] == email
    _, body = request(listen, SESSIONS, token=tokens["access_token"])
    assert body["data"]["sessions"][0]["ip"] == CLIENT_ADDRESS
    _, body = request(listen, REFRESH, token=tokens["refresh_token"])
    assert body["data"]["refresh"]
    assert request(listen, LOGOUT, token=tokens["refresh_token"])[1] == {"data": {"logout": True}}
    _, body = request(listen, REFRESH, token=tokens["refresh_token"])
    assert body["errors"][0]["message"] == "Unauthorized"
    # Only the public endpoints are exposed.
    conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=10)
    for path, status in (("/healthz", 200), ("/.well-known/jwks.json", 200),
                         ("/.well-known/openid-configuration", 200),
                         ("/.well-known/oauth-authorization-server", 200),
                         ("/readyz", 404), ("/introspect", 404)):  # fmt: skip
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.status == status, path
    # A browser's CORS preflight passes through nginx to authsvc and back.
    conn.request("OPTIONS", "/graphql", headers={
        "Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    })  # fmt: skip
    response = conn.getresponse()
    response.read()
    assert response.status == 204
    assert response.getheader("Access-Control-Allow-Origin") == APP_ORIGIN
    assert "authorization" in response.getheader("Access-Control-Allow-Headers", "")
    conn.close()
    # Both replicas served: nginx spread the requests.
    served = [b.logs().count("authsvc.access") for b in backends]
    assert all(count > 0 for count in served), served


def get_api(
    port: int, headers: dict[str, str], method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = b'{"order": 7}' if method == "POST" else None
        conn.request(method, "/api/orders?id=7", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_forward_auth_guards_the_example_service(deployment):
    listen, echo = deployment.listen, deployment.echo
    email = new_email()
    request(listen, REGISTER, {"email": email, "password": PASSWORD})
    _, body = request(listen, LOGIN, {"email": email, "password": PASSWORD})
    tokens = json.loads(body["data"]["login"]["payload"])
    access = tokens["access_token"]
    claims = jwt.decode(access, options={"verify_signature": False})
    # A valid token reaches the service with the identity nginx copied from /auth, and
    # other proxies' identity names the client sent are dropped.
    spoofed = {"X_Auth_User_Id": "admin", "X-Forwarded-User": "admin",
               "Remote-User": "admin", "Remote-Groups": "admins", "X-WEBAUTH-USER": "admin",
               "X-Forwarded-Access-Token": "x", "X-User": "admin"}  # fmt: skip
    status, _, answer = get_api(listen, {"Authorization": f"Bearer {access}"} | spoofed)
    assert status == 200, answer
    seen = json.loads(answer)["headers"]
    assert seen["x-auth-user-id"] == seen["x-auth-request-user"] == claims["sub"]
    assert seen["x-auth-email"] == seen["x-auth-request-email"] == email
    assert seen["x-auth-session-id"] == claims["sid"]
    assert "x_auth_user_id" not in seen
    for name in ("x-forwarded-user", "remote-user", "remote-groups", "x-webauth-user",
                 "x-forwarded-access-token", "x-user"):  # fmt: skip
        assert name not in seen, name  # other proxies' identity names: dropped
    assert json.loads(answer)["path"] == "/api/orders?id=7"
    # An X-Auth-* header of the client's own never reaches it: /auth refuses the request.
    reached = len(echo.received)
    for name, value in (("X-Auth-User-Id", "admin"), ("X-Auth-Groups", "admins"),
                        ("x-auth-request-user", "admin")):  # fmt: skip
        status, _, _ = get_api(listen, {"Authorization": f"Bearer {access}", name: value})
        assert status == 403, name
    assert len(echo.received) == reached
    # nginx asks /auth the same way whatever the client's method.
    for method in ("POST", "DELETE"):
        status, _, answer = get_api(listen, {"Authorization": f"Bearer {access}"}, method)
        assert status == 200, (method, answer)
    # Forged, missing, and revoked tokens never reach it.
    forged = jwt.encode(claims, "another-secret-of-thirty-two-bytes!!", algorithm="HS256")
    reached = len(echo.received)
    status, headers, body = get_api(listen, {"Authorization": f"Bearer {forged}"} | spoofed)
    assert status == 401 and 'error="invalid_token"' in headers.get("WWW-Authenticate", ""), headers
    assert json.loads(body) == {"errors": [{"message": "Unauthorized"}]}
    assert headers["Cache-Control"] == "no-store"
    status, headers, _ = get_api(listen, spoofed)
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="authsvc"'
    request(listen, LOGOUT, token=tokens["refresh_token"])
    status, _, _ = get_api(listen, {"Authorization": f"Bearer {access}"})
    assert status == 401
    assert len(echo.received) == reached
    # The forward-auth endpoint itself is for nginx only.
    for path in ("/auth", "/_authsvc_auth"):
        conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=10)
        conn.request("GET", path, headers={"Authorization": f"Bearer {access}"})
        response = conn.getresponse()
        response.read()
        assert response.status == 404, path
        conn.close()


def test_compose_file_declares_the_deployment():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"mariadb", "redis", "migrate", "authsvc", "echo", "nginx"}
    assert services["authsvc"]["deploy"]["replicas"] == 2
    assert services["authsvc"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("mariadb", "redis", "nginx"):
        assert "healthcheck" in services[name], name
    text = (DOCKER / "compose.yaml").read_text() + (DOCKER / "Dockerfile").read_text()
    assert "SECRET=" not in text and "PASSWORD=" not in text  # no secret baked in
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile and "HEALTHCHECK" in dockerfile
    assert dockerfile.count("FROM ") == 2  # multi-stage
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        (DOCKER / "authsvc.env").touch()
        try:
            compose_file = str(DOCKER / "compose.yaml")
            result = subprocess.run(
                [docker, "compose", "-f", compose_file, "config", "--quiet"],
                capture_output=True, text=True,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
        finally:
            (DOCKER / "authsvc.env").unlink()


def test_rolling_restart_behind_nginx_loses_no_request(deployment, tmp_path):
    listen, backends = deployment.listen, deployment.backends
    ports = [b.port for b in backends]
    results: list[int] = []
    stop = threading.Event()

    def load() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=30)
        while not stop.is_set():
            try:
                conn.request("POST", "/graphql", body='{"query":"{ __typename }"}',
                             headers={"Content-Type": "application/json"})  # fmt: skip
                response = conn.getresponse()
                body = response.read()
                ok = response.status == 200 and b'"__typename":"Query"' in body
                results.append(200 if ok else response.status)
            except (OSError, http.client.HTTPException):
                results.append(-1)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=30)
        conn.close()

    try:
        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        assert backends[0].terminate() == 0  # the rolling restart of one replica
        time.sleep(0.5)
        backends[0] = ServiceProcess(tmp_path, deployment.env, port=ports[0])
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
    assert len(results) > 100
    assert [r for r in results if r != 200] == []  # not one request lost
