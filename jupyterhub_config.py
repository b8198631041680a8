# JupyterHub for a class running the clickstream lab on one Linux server (INSTRUCTOR.md,
# "A class on one server"; tests/test_installed.py starts a real hub from this very file).
#
# One shared environment holds JupyterHub, JupyterLab and the lab (non-editable), readable by
# every student; the hub runs from it, as root, and starts each student's JupyterLab as that
# Unix user (LocalProcessSpawner) in ~/clickstream-lab, where the notebooks are copied on the
# first start and where the run records appear (runs/). Students sign in with their Unix
# password (PAM).
#
# Settings from the environment (all optional except CLICKLAB_STUDENTS):
#   CLICKLAB_STUDENTS       comma-separated Unix user names allowed to sign in
#   CLICKLAB_ADMINS         comma-separated admin user names (the instructor)
#   CLICKLAB_HUB_STATE      folder for the hub's database and cookie secret (default
#                           /srv/clicklab-hub; root only)
#   CLICKLAB_HUB_PORT       the public port (default 8000; put TLS in front of it, or set
#                           c.JupyterHub.ssl_key/ssl_cert, before students sign in over a network)
#   CLICKLAB_HUB_API_PORT   the hub's internal port (default 8081); the proxy's API is one above
#   CLICKLAB_HUB_TOKEN      a token for the "clicklab-admin" service (scripts that start and
#                           check students' servers through the REST API, as the test does)
#   CLICKLAB_KERNEL_IDLE_MINUTES
#                           shut down a notebook kernel after this many minutes without
#                           activity (default 60; 0: never)
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub's config loader provides it)

ENV_BIN = Path(sys.prefix) / "bin"  # the shared environment the hub runs from
STATE = Path(os.environ.get("CLICKLAB_HUB_STATE", "/srv/clicklab-hub"))
STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
PORT = int(os.environ.get("CLICKLAB_HUB_PORT", "8000"))
API_PORT = int(os.environ.get("CLICKLAB_HUB_API_PORT", "8081"))


def _names(var):
    return {n.strip() for n in os.environ.get(var, "").split(",") if n.strip()}


c.JupyterHub.bind_url = f"http://:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{API_PORT}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{API_PORT + 1}"
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")

c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = _names("CLICKLAB_STUDENTS")
c.Authenticator.admin_users = _names("CLICKLAB_ADMINS")

# Each student's JupyterLab, as that user, from the shared environment. The lab's notebooks
# are copied into ~/clickstream-lab on the first start (a student's edits are never
# overwritten), and JupyterLab opens there: notebooks, and the run records in runs/.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ["sh", "-c", f'"{ENV_BIN}/clicklab" notebooks "$HOME/clickstream-lab" '
                 f'&& exec "{ENV_BIN}/jupyterhub-singleuser" "$@"', "clicklab-singleuser"]
c.Spawner.notebook_dir = "~/clickstream-lab"
c.Spawner.default_url = "/lab"
# the environment's commands (clicklab, python -m labhelpers) in students' terminals
c.Spawner.environment = {"PATH": f"{ENV_BIN}:/usr/local/bin:/usr/bin:/bin"}
# JupyterLab keeps a kernel running for every notebook opened, and each holds its memory until
# it is shut down (INSTRUCTOR.md, "Open kernels"). The notebooks say to shut each one down; as
# a backstop the server shuts down a kernel idle for an hour, open tab or not (one running a
# cell or updating a live plot is not idle). Its notebook then only needs its cells run again.
IDLE_MINUTES = int(os.environ.get("CLICKLAB_KERNEL_IDLE_MINUTES", "60"))
if IDLE_MINUTES > 0:
    c.Spawner.args = [f"--MappingKernelManager.cull_idle_timeout={IDLE_MINUTES * 60}",
                      "--MappingKernelManager.cull_interval=60",
                      "--MappingKernelManager.cull_connected=True"]
# a class starts at once on a loaded server: give JupyterLab time to come up
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180

if os.environ.get("CLICKLAB_HUB_TOKEN"):
    c.JupyterHub.services = [{"name": "clicklab-admin",
                              "api_token": os.environ["CLICKLAB_HUB_TOKEN"]}]
    c.JupyterHub.load_roles = [{
        "name": "clicklab-admin",
        "scopes": ["admin:users", "admin:servers", "access:servers", "list:users"],
        "services": ["clicklab-admin"],
    }]
