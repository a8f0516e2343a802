"""Stop early, and say how to fix it, when a Vault file is read without a password.

Without this plugin Ansible fails while loading the inventory with
"Attempting to decrypt but no vault secrets found", which names neither the
file nor the fix. This plugin runs before host_group_vars (ansible.cfg lists
it first in vars_plugins_enabled) and, when no Vault password was given,
looks for encrypted files among the group_vars and host_vars that
host_group_vars is about to read.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.inventory.group import InventoryObjectType
from ansible.plugins.vars import BaseVarsPlugin

DOCUMENTATION = """
    name: vault_password
    short_description: Name the encrypted file and the fix when no Vault password was given
    description:
      - Fails before the inventory's variables are read when a group_vars or
        host_vars file is encrypted with Ansible Vault and the run has no Vault
        password; the message names the file and the ways to give one.
    options:
      stage:
        ini:
          - key: stage
            section: vars_vault_password
        env:
          - name: ANSIBLE_VARS_PLUGIN_STAGE
"""

VAULT_HEADER = b"$ANSIBLE_VAULT;"
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")


def _encrypted(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(len(VAULT_HEADER)) == VAULT_HEADER
    except OSError:
        return False


def _vars_files(base):
    """The files host_group_vars would read for one entity below base."""
    for extension in VARS_EXTENSIONS:
        candidate = base + extension
        if os.path.isfile(candidate):
            yield candidate
    if os.path.isdir(base):
        for root, dirs, files in os.walk(base, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and name.endswith(VARS_EXTENSIONS[1:]):
                    yield os.path.join(root, name)


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = True
    is_stateless = True

    def get_vars(self, loader, path, entities, cache=True):
        super().get_vars(loader, path, entities)
        vault = getattr(loader, "_vault", None)
        if vault is None or vault.secrets:
            return {}
        for entity in entities if isinstance(entities, list) else [entities]:
            folder = "host_vars" if entity.base_type is InventoryObjectType.HOST else "group_vars"
            for candidate in _vars_files(os.path.join(path, folder, entity.name)):
                if _encrypted(candidate):
                    raise AnsibleError(_message(os.path.relpath(candidate)))
        return {}


def _message(path):
    return (
        f"{path} is encrypted with Ansible Vault and this run has no Vault password. "
        "Give it one of two ways: add --ask-vault-pass to type it, or "
        "--vault-password-file FILE (or export ANSIBLE_VAULT_PASSWORD_FILE=FILE) "
        "to read it from a file outside the repository. The sandbox's throwaway "
        "password is inventory/sandbox/vault-password.txt."
    )
