"""A real JupyterHub for the classroom tests and the load run: the hub (as root), the pure-Python
configurable-http-proxy, the dummy authenticator, LocalProcessSpawner (each student's server runs
as that user), and a service token to drive it through the REST API — then cells run in a
student's kernel over the kernel's websocket, as the browser does."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import requests

BIN = os.path.dirname(sys.executable)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.command = ["{bin}/configurable-http-proxy"]
c.JupyterHub.db_url = "sqlite:///{dir}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{dir}/cookie_secret"
c.JupyterHub.pid_file = "{dir}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = set({users!r})
c.JupyterHub.services = [{{"name": "classroom-test", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "classroom-test", "services": ["classroom-test"],
    "scopes": ["admin:users", "admin:servers", "servers", "access:servers"]}}]
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.active_server_limit = 0
c.Spawner.cmd = ["{bin}/jupyterhub-singleuser"]
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.environment = {{"PATH": "{bin}:/usr/bin:/bin"}}
c.JupyterHub.cleanup_servers = True
"""


class Hub:
    """`config`: more jupyterhub_config.py lines, after the ones above (another spawner...)."""

    def __init__(self, users, workdir, config=""):
        self.users, self.dir, self.extra = list(users), workdir, config
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.hub_port, self.proxy_api = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout=120):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.dir, "jupyterhub_config.py"), "w") as f:
            f.write(CONFIG.format(port=self.port, hub_port=self.hub_port, proxy_api=self.proxy_api,
                                  bin=BIN, dir=self.dir, users=self.users, token=self.token))
            f.write(self.extra)
        self.launch([f"{BIN}/jupyterhub", "-f", os.path.join(self.dir, "jupyterhub_config.py")])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited():
                raise RuntimeError(f"jupyterhub exited ({self.exited()}): {self.logs()[-3000:]}")
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"jupyterhub did not answer in {timeout}s: {self.logs()[-3000:]}")

    def launch(self, argv):
        """Start the hub (as root, output in hub.log); exited() says why it stopped, or ""."""
        self.log = open(os.path.join(self.dir, "hub.log"), "wb")
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def exited(self):
        return "" if self.proc.poll() is None else f"status {self.proc.returncode}"

    def terminate(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)      # the hub stops its proxy (and servers: cleanup_servers)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def logs(self):
        with open(os.path.join(self.dir, "hub.log"), errors="replace") as f:
            return f.read()

    def api(self, method, path, tries=6, **kw):
        """One REST call; a busy hub (429, or 503 from the proxy) is asked again, as a student
        reloads the page."""
        for i in range(tries):
            r = requests.request(method, f"{self.url}/hub/api{path}", timeout=120,
                                 headers={"Authorization": f"token {self.token}"}, **kw)
            if r.status_code not in (429, 503) or i == tries - 1:
                break
            time.sleep(float(r.headers.get("Retry-After") or 2 ** i))
        r.raise_for_status()
        return r.json() if r.content else None

    def start_server(self, user, timeout=180):
        """POST the server, then wait until the hub says it is ready."""
        self.api("POST", f"/users/{user}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = (self.api("GET", f"/users/{user}").get("servers") or {}).get("")
            if server and server.get("ready"):
                return server
            time.sleep(0.3)
        raise RuntimeError(f"{user}'s server is not ready after {timeout}s: {self.logs()[-3000:]}")

    def stop_server(self, user, timeout=60):
        self.api("DELETE", f"/users/{user}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not (self.api("GET", f"/users/{user}").get("servers") or {}):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{user}'s server did not stop in {timeout}s")

    def kernel(self, user, timeout=60):
        return Kernel(self, user, timeout)

    def stop(self):
        self.terminate()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Kernel:
    """A kernel in a student's server, driven over its /channels websocket."""

    def __init__(self, hub, user, timeout=60):
        import websocket
        self.hub, self.user = hub, user
        base = f"{hub.url}/user/{user}/api/kernels"
        headers = {"Authorization": f"token {hub.token}"}
        r = requests.post(base, json={"name": "python3"}, headers=headers, timeout=timeout)
        r.raise_for_status()
        self.id = r.json()["id"]
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{hub.port}/user/{user}/api/kernels/{self.id}/channels?session_id={self.session}",
            header=[f"Authorization: token {hub.token}"], timeout=120)

    def execute(self, code, timeout=120):
        """Run code; (stdout, stderr, error or None) once the kernel is idle again."""
        msg_id = uuid.uuid4().hex
        self.ws.settimeout(timeout)
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": self.user, "session": self.session,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        out, err, error = [], [], None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = json.loads(self.ws.recv())
            if (m.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind, content = m["header"]["msg_type"], m["content"]
            if kind == "stream":
                (out if content["name"] == "stdout" else err).append(content["text"])
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out), "".join(err), error
        raise TimeoutError(f"{self.user}: no answer to {code[:40]!r} in {timeout}s")

    def close(self):
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 — the server may be gone already
            pass


# ---- what the tests check about students ------------------------------------------------------

def processes_of(uid):
    out = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and os.stat(f"/proc/{p}").st_uid == uid:
                out.append(int(p))
        except OSError:
            pass
    return out


def describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[:2]
        return f"{cmd or '?'} (state {state[0]}, parent {state[1]})"
    except OSError:
        return "gone"


def wait_until_gone(*uids, timeout=30):
    """{pid: what it is} of the processes these users still have after `timeout` s (none: {})."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(processes_of(u) for u in uids):
        time.sleep(0.2)
    return {p: describe(p) for u in uids for p in processes_of(u)}


def reach_for(kernel, root, name, pid):
    """From a student's kernel, try another student's containers (state dir `root`, container
    `name` with init `pid`): {'mine': its own containers, 'list'/'delete': mrunc's stderr,
    'kill': os.kill's error}."""
    mrunc = os.path.join(BIN, "mrunc")
    out, err, error = kernel.execute(
        "import os, subprocess, json\nfrom mrunc import notebook\n"
        "def err(*a):\n    return subprocess.run([" + repr(mrunc) + ", '--root', " + repr(root) + ", *a],"
        " capture_output=True, text=True).stderr\n"
        "try:\n    os.kill(" + str(pid) + ", 9)\n    k = 'killed'\nexcept OSError as e:\n    k = e.strerror\n"
        "print(json.dumps({'mine': [r['name'] for r in notebook.sandbox().ps()], 'list': err('list'),"
        " 'delete': err('delete', '-f', " + repr(name) + "), 'kill': k}))")
    assert error is None, (err, error)
    return json.loads(out.splitlines()[-1])
