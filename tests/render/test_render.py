"""Render every role for platforms that cannot boot on the build machine.

Molecule proves the roles on Debian 12 and 13. Ubuntu and EL hosts cannot be
started there, so their code paths are exercised from synthetic (hand-written) facts: each
role's OS variables are resolved the way tasks/variables.yml resolves them,
and every template is rendered by Ansible itself with undefined variables
treated as errors. Roles and templates are discovered, so new ones are
covered without editing this file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jinja2
import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ROLES_DIR = REPO / "ansible_collections/procurement/ops/roles"
FACTS = {path.stem: json.loads(path.read_text()) for path in sorted((HERE / "facts").glob("*.json"))}
ROLES = sorted(path for path in ROLES_DIR.iterdir() if (path / "tasks").is_dir()) if ROLES_DIR.is_dir() else []
# Roles that change hosts; topology only decides values, the same on every platform.
HOST_ROLES = [role for role in ROLES if role.name != "topology"]
VAULT_REFERENCE = re.compile(r"\bvault_[A-Za-z0-9_]+")
GROUP_REFERENCE = re.compile(r"groups(?:\[['\"]([\w-]+)['\"]\]|\.([A-Za-z_]\w*))")
RENDER_PREFIX = "Render "
# The bundle's groups, which the topology role reads.
TIERS = ("web", "app", "db", "db_replica", "cache", "monitoring", "backup")
THROWAWAY = {"str": "render-test-value", "raw": "render-test-value", "path": "/srv/render-test", "int": 1}


def role_templates(role: Path) -> list[str]:
    base = role / "templates"
    return sorted(str(path.relative_to(base)) for path in base.rglob("*.j2")) if base.is_dir() else []


def task_list(tasks: list) -> list[dict]:
    """Flatten blocks so that every task of a task file is visited."""
    flat = []
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        nested = [task[key] for key in ("block", "rescue", "always") if key in task]
        flat.extend(t for part in nested for t in task_list(part)) if nested else flat.append(task)
    return flat


def template_tasks(role: Path) -> list[dict]:
    """How the role's own tasks render templates: src, loop, loop variable and task vars.

    Templates that no task names are rendered once on their own, so a new
    template is covered before the task that uses it is written.
    """
    found = []
    for task_file in sorted((role / "tasks").rglob("*.yml")):
        for task in task_list(yaml.safe_load(task_file.read_text())):
            args = next((task[key] for key in ("ansible.builtin.template", "template") if key in task), None)
            if not isinstance(args, dict) or "src" not in args:
                continue
            loop = task.get("loop", task.get("with_items"))
            found.append(
                {
                    "src": str(args["src"]),
                    "loop": loop,
                    "loop_var": (task.get("loop_control") or {}).get("loop_var", "item"),
                    "vars": task.get("vars") or {},
                }
            )
    named = {Path(entry["src"]).as_posix() for entry in found}
    found += [
        {"src": name, "loop": None, "loop_var": "item", "vars": {}}
        for name in role_templates(role)
        if name not in named
    ]
    return found


def role_render_tasks(role: Path) -> list[dict]:
    """The tasks that load one role's variables and render its templates."""
    steps: list[dict] = []
    if (role / "tasks" / "variables.yml").is_file():
        steps.append(
            {
                "name": f"Load the variables of {role.name}",
                "ansible.builtin.include_role": {
                    "name": f"procurement.ops.{role.name}",
                    "tasks_from": "variables.yml",
                    "public": True,
                },
            }
        )
    for entry in template_tasks(role):
        # The template lookup renders on the controller with the same templar,
        # variables and ansible_managed as the template action, without
        # starting a module per file; the text comes back in the task result.
        task = {
            "name": f"{RENDER_PREFIX}{role.name}/templates/{entry['src']}",
            "ansible.builtin.debug": {"msg": "{{ lookup('ansible.builtin.template', render_src) }}"},
            "vars": {**entry["vars"], "render_src": f"{role}/templates/{entry['src']}"},
            "ignore_errors": True,
        }
        if entry["loop"] is not None:
            task["loop"] = entry["loop"]
            task["loop_control"] = {"loop_var": entry["loop_var"]}
        steps.append(task)
    rescue = [
        {
            "name": f"Note that {role.name} could not be loaded",
            "ansible.builtin.debug": {"msg": "see the failure above"},
        }
    ]
    return [{"name": f"Render {role.name}", "block": steps, "rescue": rescue}] if steps else []


def required_options(role: Path) -> dict:
    """Throwaway values for the options a role requires and has no default for."""
    spec_file = role / "meta" / "argument_specs.yml"
    if not spec_file.is_file():
        return {}
    spec = yaml.safe_load(spec_file.read_text()) or {}
    options = ((spec.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    values = {}
    for name, option in options.items():
        if option.get("required") and "default" not in option:
            kind = option.get("type", "str")
            values[name] = THROWAWAY.get(kind, {"list": [], "dict": {}, "bool": False}.get(kind, "render-test-value"))
    return values


def group_vars_files() -> list[Path]:
    """The plain (not Vault-encrypted) files of the shared settings (group_vars/all)."""
    directory = REPO / "group_vars" / "all"
    files = sorted(directory.glob("*.yml")) if directory.is_dir() else []
    return [path for path in files if not path.read_text().startswith("$ANSIBLE_VAULT")]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """Run the render playbook once for every platform; return per-host failures."""
    work = tmp_path_factory.mktemp("render")
    # Lowest precedence first: throwaway secrets, then the repository's
    # group_vars/all (which may point at them), then the roles' own values.
    throwaway = yaml.safe_load((HERE / "vars.yml").read_text()) or {}
    for role in ROLES:
        throwaway = {**required_options(role), **throwaway}
    for path in group_vars_files():
        for name in VAULT_REFERENCE.findall(path.read_text()):
            throwaway.setdefault(name, f"render-test-{name}")
    inventory = work / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    for path in group_vars_files():
        (inventory / "group_vars" / "all" / path.name).write_text(path.read_text())
    hosts = {
        f"render-{platform}": {"render_facts_file": str(HERE / "facts" / f"{platform}.json")} for platform in FACTS
    }
    host_vars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **throwaway}
    # Every host plays every role (an all-in-one server), so each group the
    # variables ask about exists and holds the host itself.
    sources = [*group_vars_files(), *(path for role in ROLES for path in role.rglob("*.y*ml"))]
    groups = {name for path in sources for match in GROUP_REFERENCE.findall(path.read_text()) for name in match if name}
    groups |= set(TIERS)
    # Every platform's host is in every group but backup, so the db group has several: the Patroni layout,
    # beside which the topology refuses a backup host among the members (the backup group is one more host of
    # its own) and any db_replica host (a group left over from the replica layout, which is gone).
    platform_hosts = list(hosts)
    hosts["render-backup"] = {"render_facts_file": str(HERE / "facts" / "debian12.json")}
    members = {"db_replica": [], "db": platform_hosts, "backup": ["render-backup"]}
    children = {
        name: {"hosts": dict.fromkeys(members.get(name, list(hosts)), {})}
        for name in sorted(groups - {"all", "ungrouped"})
    }
    inventory_data = {"all": {"hosts": hosts, "vars": host_vars, "children": children}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(inventory_data))

    render_tasks = []
    for role in ROLES:
        task_file = work / f"render-{role.name}.yml"
        task_file.write_text(yaml.safe_dump(role_render_tasks(role), sort_keys=False))
        render_tasks.append(str(task_file))
    (work / "extra.json").write_text(json.dumps({"render_tasks": render_tasks}))
    (work / "ansible.cfg").write_text(
        textwrap.dedent(
            f"""\
            [defaults]
            collections_path = {REPO}:{REPO / "collections"}:~/.ansible/collections:/usr/share/ansible/collections
            gathering = explicit
            inject_facts_as_vars = false
            fact_caching = memory
            stdout_callback = ansible.builtin.json
            forks = {len(hosts)}
            retry_files_enabled = false
            host_key_checking = false
            """
        )
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    playbook = Path(sys.executable).parent / "ansible-playbook"
    result = subprocess.run(
        [str(playbook), "-i", str(inventory), "-e", f"@{work / 'extra.json'}", str(HERE / "render.yml")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(result.stdout[result.stdout.index("{") :])
    except ValueError:
        pytest.fail(
            f"ansible-playbook did not report (rc {result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    failures: dict[str, list[str]] = {host: [] for host in hosts}
    rendered_texts: dict[str, dict[str, list[str]]] = {host: {} for host in hosts}
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for host, outcome in task.get("hosts", {}).items():
                for item in outcome.get("results", [outcome]):
                    name = task["task"]["name"]
                    if name.startswith(RENDER_PREFIX) and not item.get("failed") and not item.get("skipped"):
                        texts = rendered_texts[host].setdefault(name.removeprefix(RENDER_PREFIX), [])
                        texts.append(item.get("msg", ""))
                    if item.get("failed"):
                        label = item.get("item", "")
                        label = label.get("name", label) if isinstance(label, dict) else label
                        failures[host].append(f"{task['task']['name']} {label}: {item.get('msg', item)}".strip())
    for host, stats in report.get("stats", {}).items():
        if stats.get("unreachable"):
            failures[host].append("host unreachable")
    return {"failures": failures, "texts": rendered_texts}


@pytest.mark.parametrize("platform", sorted(FACTS))
def test_every_template_renders_without_undefined_variables(rendered, platform):
    host = f"render-{platform}"
    failures = rendered["failures"][host]
    assert not failures, f"{platform}:\n" + "\n".join(failures)
    texts = rendered["texts"][host]
    for role in ROLES:
        for template in role_templates(role):
            assert texts.get(f"{role.name}/templates/{template}"), f"{role.name}/{template} was not rendered"


@pytest.mark.parametrize("platform", sorted(FACTS))
def test_base_logrotate_renders_the_manual_log_directory(rendered, platform):
    texts = rendered["texts"][f"render-{platform}"].get("base/templates/logrotate.j2")
    assert texts, f"base/templates/logrotate.j2 did not render for {platform}"
    text = texts[0]
    assert text.startswith("#\n# Ansible managed")
    assert "/var/log/procurement/*.log {" in text
    assert "su procurement procurement" in text


def include_vars_candidates(role: Path) -> list[list[str]]:
    """Each include_vars of tasks/variables.yml as the list of files it may load.

    A first_found lookup contributes its ``files`` list (given inline or in
    the task's vars); a plain include_vars contributes its one file.
    """
    tasks = yaml.safe_load((role / "tasks" / "variables.yml").read_text()) or []
    found = []
    for task in tasks:
        action = next((task[key] for key in ("ansible.builtin.include_vars", "include_vars") if key in task), None)
        if action is None:
            continue
        source = action.get("file", action.get("name")) if isinstance(action, dict) else action
        if "first_found" in str(source):
            # A lookup with skip: true is optional (a release file that may be absent).
            lists = [
                v["files"]
                for v in (task.get("vars") or {}).values()
                if isinstance(v, dict) and "files" in v and not v.get("skip")
            ]
            lists += [v for v in (task.get("vars") or {}).values() if isinstance(v, list)]
            inline = re.search(r"first_found['\"],\s*(\[.*\])", str(source))
            if inline:
                lists.append(yaml.safe_load(inline.group(1)))
            found.extend(lists)
        else:
            found.append([str(source)])
    return found


@pytest.mark.parametrize("platform", sorted(FACTS))
@pytest.mark.parametrize("role", HOST_ROLES, ids=lambda role: role.name)
def test_os_variables_file_exists_for_platform(role, platform):
    variables = role / "tasks" / "variables.yml"
    assert variables.is_file(), f"{role.name} has no tasks/variables.yml"
    facts = FACTS[platform]
    context = {**facts, "ansible_facts": {key.removeprefix("ansible_"): value for key, value in facts.items()}}
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    candidate_lists = include_vars_candidates(role)
    assert candidate_lists, f"{role.name}: tasks/variables.yml includes no variables file"
    for candidates in candidate_lists:
        names = [environment.from_string(name).render(context) for name in candidates]
        existing = [name for name in names if (role / "vars" / Path(name).name).is_file()]
        assert existing, f"{role.name}: none of {names} exists in vars/ for {platform}"


@pytest.mark.parametrize(
    ("platform", "first_kex"),
    [
        ("debian12", "sntrup761x25519-sha512@openssh.com"),
        ("debian13", "mlkem768x25519-sha256"),
        ("ubuntu2004", "curve25519-sha256"),
        ("ubuntu2204", "sntrup761x25519-sha512@openssh.com"),
        ("ubuntu2404", "sntrup761x25519-sha512@openssh.com"),
        ("rhel8", "curve25519-sha256"),
        ("rocky9", "sntrup761x25519-sha512@openssh.com"),
    ],
)
def test_hardening_sshd_config_offers_only_what_the_release_knows(rendered, platform, first_kex):
    texts = rendered["texts"][f"render-{platform}"].get("hardening/templates/sshd_config.j2")
    assert texts, f"hardening/templates/sshd_config.j2 did not render for {platform}"
    settings = dict(line.split(" ", 1) for line in texts[0].splitlines() if line and not line.startswith("#"))
    assert settings["KexAlgorithms"].split(",")[0] == first_kex
    assert settings["PermitRootLogin"] == "no"
    assert settings["PasswordAuthentication"] == "no"
    assert settings["AuthenticationMethods"] == "publickey"
    assert settings["AllowGroups"] == "ssh-users"
    assert "cbc" not in settings["Ciphers"]
    # Drop-ins come last, so cloud-init's cannot turn password login back on.
    assert texts[0].rstrip().endswith("Include /etc/ssh/sshd_config.d/*.conf")


@pytest.mark.parametrize(
    ("platform", "origin"),
    [
        ("debian12", "origin=Debian,codename=${distro_codename}-security,label=Debian-Security"),
        ("ubuntu2004", "origin=Ubuntu,archive=${distro_codename}-security,label=Ubuntu"),
        ("ubuntu2404", "origin=Ubuntu,archive=${distro_codename}-security,label=Ubuntu"),
    ],
)
def test_hardening_unattended_upgrades_take_security_updates_only(rendered, platform, origin):
    texts = rendered["texts"][f"render-{platform}"].get("hardening/templates/52procurement-unattended-upgrades.j2")
    assert texts, f"52procurement-unattended-upgrades.j2 did not render for {platform}"
    text = texts[0]
    assert text.startswith("//")
    assert "#clear Unattended-Upgrade::Origins-Pattern;" in text
    assert f'"{origin}";' in text
    patterns = re.findall(r'^\s+"(origin=[^"]+)";', text, re.M)
    assert patterns and all("security" in p.lower() for p in patterns), patterns


@pytest.mark.parametrize("platform", ["rhel8", "rocky9"])
def test_hardening_uses_dnf_automatic_on_el(platform):
    facts = FACTS[platform]
    family = yaml.safe_load((REPO / "roles/hardening/vars" / f"{facts['ansible_os_family']}.yml").read_text())
    assert family["__hardening_auto_updates_tool"] == "dnf-automatic"
    assert (REPO / "roles/hardening/tasks/updates-dnf-automatic.yml").is_file()
    release = REPO / "roles/hardening/vars" / f"RedHat-{facts['ansible_distribution_major_version']}.yml"
    # EL 8 passes crypto-policy algorithms on sshd's command line; the role opts out there only.
    optout = (yaml.safe_load(release.read_text()) or {}).get("__hardening_ssh_crypto_policy_optout", False)
    assert optout == (facts["ansible_distribution_major_version"] == "8")


# EL 8's python3 is 3.6; the shim must run the manual's line there in the release's own interpreter.
OLD_PYTHONS = sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob("versions/3.6.*/bin/python3.6"))
MANUAL_VALIDATE = "from config_manager import ConfigManager; print(ConfigManager().validate())"
RELEASE_MODULE = """\
import sys


class ConfigManager:
    def validate(self):
        return ["checked by Python %d.%d" % sys.version_info[:2]]
"""


def test_the_manuals_config_line_runs_under_el8s_python_in_the_release_interpreter(rendered, tmp_path):
    texts = rendered["texts"]["render-rhel8"].get("app/templates/shim.py.j2", [])
    shim = next((text for text in texts if "from procurement.config_manager import" in text), None)
    assert shim, "app/templates/shim.py.j2 did not render config_manager.py for rhel8"
    assert OLD_PYTHONS, "CPython 3.6 (EL 8's python3) is not installed under pyenv"
    release = tmp_path / "releases" / "1.0"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(release / "venv")], check=True)
    (site_packages,) = (release / "venv" / "lib").glob("python3.*/site-packages")
    (site_packages / "procurement").mkdir()
    (site_packages / "procurement" / "__init__.py").write_text("")
    (site_packages / "procurement" / "config_manager.py").write_text(RELEASE_MODULE)
    (tmp_path / "current").symlink_to(release)
    (tmp_path / "config_manager.py").write_text(shim)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PROCUREMENT_", "VIRTUAL_ENV"))
    }

    def manual_line():
        return subprocess.run(
            [str(OLD_PYTHONS[-1]), "-c", MANUAL_VALIDATE], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    ran = manual_line()
    release_python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert (ran.returncode, ran.stdout) == (0, f"['checked by Python {release_python}']\n"), ran.stderr
    # Without the release's interpreter the line says what is missing instead of looping.
    (release / "venv" / "bin" / "python").unlink()
    ran = manual_line()
    assert ran.returncode != 0
    assert "is not installed for Python 3.6" in ran.stderr, ran.stderr


@pytest.mark.parametrize(
    ("platform", "python", "version"),
    [
        ("debian12", "/usr/bin/python3", "3.11"),
        ("debian13", "/usr/bin/python3", "3.13"),
        ("ubuntu2004", "/usr/bin/python3.9", "3.9"),
        ("ubuntu2204", "/usr/bin/python3", "3.10"),
        ("ubuntu2404", "/usr/bin/python3", "3.12"),
        ("rhel8", "/usr/bin/python3.11", "3.11"),
        ("rocky9", "/usr/bin/python3", "3.9"),
    ],
)
def test_releases_are_built_from_a_python_the_app_supports(platform, python, version):
    """Each platform's release interpreter, from its own archive: python3 where it is 3.9 or newer."""
    app = ROLES_DIR / "app"
    facts = FACTS[platform]
    assert facts["ansible_python"]["version"]["major"] == 3
    platform_python = "{major}.{minor}".format(**facts["ansible_python"]["version"])
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    (candidates,) = include_vars_candidates(app)
    context = {"ansible_facts": {key.removeprefix("ansible_"): value for key, value in facts.items()}}
    names = [environment.from_string(name).render(context) for name in candidates]
    chosen = next(app / "vars" / name for name in names if (app / "vars" / name).is_file())
    variables = yaml.safe_load(chosen.read_text())
    assert variables["__app_python"] == python, chosen.name
    if python == "/usr/bin/python3":
        assert platform_python == version, f"{platform}'s python3 is {platform_python}"
    else:
        assert any(package.startswith(f"python{version}") for package in variables["__app_packages"])
    requires = re.search(r'requires-python = ">=(\d+)\.(\d+)', (REPO / "app" / "pyproject.toml").read_text())
    assert tuple(map(int, version.split("."))) >= tuple(map(int, requires.groups()))


def test_el8_installs_nginx_from_a_stream_the_manual_accepts():
    """The manual asks for nginx 1.18 or later; EL 8's default stream is 1.14."""
    nginx = ROLES_DIR / "nginx"
    stream = yaml.safe_load((nginx / "defaults" / "main.yml").read_text())["nginx_el8_module_stream"]
    spec = yaml.safe_load((nginx / "meta" / "argument_specs.yml").read_text())
    choices = spec["argument_specs"]["main"]["options"]["nginx_el8_module_stream"]["choices"]
    assert stream in choices
    assert all(tuple(map(int, choice.split("."))) >= (1, 20) for choice in choices)
    tasks = task_list(yaml.safe_load((nginx / "tasks" / "install.yml").read_text()))
    enable, install = tasks[0], tasks[1]
    assert enable["ansible.builtin.dnf"]["name"] == "@nginx:{{ nginx_el8_module_stream }}/common"
    assert "ansible_facts['distribution_major_version'] == '8'" in enable["when"]
    assert install["ansible.builtin.package"]["name"] == "{{ __nginx_packages }}"
