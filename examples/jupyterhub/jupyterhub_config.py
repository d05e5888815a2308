# JupyterHub for a team on one pai_lab: every user's single-user server loads pai_lab over ONE store
# (a database every server reaches) and ONE Dask cluster, so the team shares workspaces, labeling tasks,
# jobs and services, and each user is the member the Hub says they are (docs/jupyterhub.md).
#
#     jupyterhub -f examples/jupyterhub/jupyterhub_config.py
#
# The settings come from the environment of the hub so the same file serves a deployment and the test
# that proves it (tests/e2e/test_jupyterhub.py):
#
#   PAI_LAB_TEAM_ROOT     the team's folder: pai_lab's root (its state folder .pai_lab/ and the data
#                         members register), readable by every user's server
#   PAI_LAB_HOMES         where each user's home folder is made: <PAI_LAB_HOMES>/<username>
#   PAI_LAB_DATABASE_URL  the shared store. A team uses PostgreSQL
#                         (postgresql+psycopg://pai:secret@db.example/pai_lab, the `postgres` extra);
#                         a SQLite file in the team folder works for a few users on one machine
#   PAI_LAB_DASK_SCHEDULER  the shared Dask cluster every job's ranks run on (tcp://host:8786)
#   PAI_LAB_OWNER         the Hub user who owns the control plane (the `default` workspace's Owner)
#   PAI_LAB_HUB_USERS     the Hub users allowed in, comma separated (the owner among them)
#   PAI_LAB_HUB_PASSWORD  the one password of the DummyAuthenticator (for trying it out and for the
#                         test; put your own authenticator in its place, below)
import os

c = get_config()  # noqa: F821 - given by JupyterHub when it reads this file

team_root = os.environ.get("PAI_LAB_TEAM_ROOT", "/srv/pai_lab/team")
homes = os.environ.get("PAI_LAB_HOMES", "/srv/pai_lab/home")
database_url = os.environ.get("PAI_LAB_DATABASE_URL", f"sqlite:///{team_root}/.pai_lab/pai.db")
dask_scheduler = os.environ.get("PAI_LAB_DASK_SCHEDULER", "")
owner = os.environ.get("PAI_LAB_OWNER", "admin")
users = {u.strip() for u in os.environ.get("PAI_LAB_HUB_USERS", owner).split(",") if u.strip()}

# Who the users are. The Hub's user name is the pai_lab member name: the single-user server asks the Hub
# who each request is (its OAuth cookie or a Hub API token) and pai_lab takes that name.
c.JupyterHub.authenticator_class = "dummy"  # replace: "github", "ldapauthenticator.LDAPAuthenticator", ...
c.DummyAuthenticator.password = os.environ.get("PAI_LAB_HUB_PASSWORD", "")
c.Authenticator.allowed_users = users
c.Authenticator.admin_users = {owner}

# Where their servers run: local processes with a home folder each. "simple" runs every server as the
# hub's own OS user; LocalProcessSpawner (needs root and one system user a person) or a container
# spawner keep users' files apart as well.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(homes, "{username}")
c.Spawner.default_url = "/lab"

# pai_lab in every server, the same everywhere. On the command line, so a user's own Jupyter config
# files cannot change them (the command line wins over config files).
c.Spawner.args = [
    f"--PaiLabApp.root_dir={team_root}",
    f"--PaiLabApp.database_url={database_url}",
    f"--PaiLabApp.owner={owner}",
]
if dask_scheduler:
    c.Spawner.args.append(f"--TrainingManager.dask_scheduler_address={dask_scheduler}")
if os.geteuid() == 0:  # a hub in a container running as root starts its servers as root too
    c.Spawner.args.append("--ServerApp.allow_root=True")
# Importing JupyterLab and pai_lab takes a while on a busy machine.
c.Spawner.start_timeout = 180
# A single-user server without a terminal only asks to confirm on SIGINT; SIGTERM, which stops it,
# follows after 1 s instead of the default 10 on every server stop and at the hub's shutdown.
c.Spawner.interrupt_timeout = 1
c.Spawner.http_timeout = 180
