#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_key_agent
short_description: Start or stop a memory-only key agent, so that a play derives the repository key once
version_added: 0.2.0
description:
  - Opening an encrypted repository derives its key from the passphrase (scrypt, about a second of CPU on purpose).
    A play of many tasks pays it in every task. With an agent, the first task that opens the repository gives the
    key to the agent and the others ask the agent instead (option O(key_agent) of every module, or the environment
    variable E(BLOCKVAULT_KEY_AGENT)).
  - O(state=present) starts an agent on the host the task runs on (the proxy) and returns its socket. The agent, like
    ssh-agent, holds keys in memory only, never writes them anywhere, answers only processes of its own user on a
    socket in a directory only that user can enter, refuses core dumps and ptrace, and exits after O(ttl) seconds, after
    O(idle_timeout) seconds without a request, or when stopped. A key from the agent is used only if it authenticates
    the repository's configuration.
  - O(state=absent) stops the agent at O(socket); its keys die with it. Stop it at the end of the play (in an
    C(always) section).
  - With O(stop_with_play), the agent also stops by itself once the C(ansible-playbook) process that started it has
    ended, so that a play killed before its C(always) section (an AWX job cancelled or timed out) leaves no agent
    behind. The role C(blockvault.vsphere.vm_backup) starts its agent so.
author:
  - blockvault.vsphere contributors (@blockvault)
extends_documentation_fragment:
  - blockvault.vsphere.repository
  - blockvault.vsphere.vsphere
  - blockvault.vsphere.vddk
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Says whether an agent would be started or stopped.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  state:
    description:
      - V(present) starts an agent unless the one at O(socket) is running; V(absent) stops the one at O(socket).
    type: str
    choices: [present, absent]
    default: present
  socket:
    description:
      - The agent's socket, as a previous run of this module returned it. Required with O(state=absent).
    type: path
  ttl:
    description:
      - Seconds the agent lives at most.
    type: int
    default: 14400
  idle_timeout:
    description:
      - Seconds without a request after which the agent exits.
    type: int
    default: 3600
  stop_with_play:
    description:
      - Stop the agent once the C(ansible-playbook) process that runs this task has ended (checked every second).
      - Only where that process runs on the same machine as the module (a local connection, the usual proxy set-up);
        elsewhere (a module run over SSH) only O(ttl), O(idle_timeout) and O(state=absent) end it, and
        RV(stops_with_play) says V(false).
      - Leave it off for an agent that later plays use.
    type: bool
    default: false
seealso:
  - module: blockvault.vsphere.vm_backup
"""

EXAMPLES = r"""
- name: Back up many VMs, deriving the repository key once
  hosts: proxy
  module_defaults:
    group/blockvault.vsphere.vsphere:
      repository: /srv/backups/vsphere
      passphrase: "{{ repository_passphrase }}"
  tasks:
    - name: Start the key agent
      blockvault.vsphere.backup_key_agent:
        ttl: 7200
        stop_with_play: true
      register: agent

    - name: Back up, asking the agent for the key
      block:
        - name: Back up each VM
          blockvault.vsphere.vm_backup:
            name: "{{ item }}"
            key_agent: "{{ agent.socket }}"
          loop: "{{ vms }}"
      always:
        - name: Stop the key agent
          blockvault.vsphere.backup_key_agent:
            state: absent
            socket: "{{ agent.socket }}"
"""

RETURN = r"""
socket:
  description:
    - The agent's Unix socket; give it as O(key_agent) to the other modules.
    - A new agent's socket is in a fresh directory under C($XDG_RUNTIME_DIR), or under the temporary directory when
      that is not set or too deep for a Unix socket path (107 bytes).
  returned: success
  type: str
  sample: /run/user/0/blockvault-agent-3k1x9q2a/agent.sock
running:
  description: Whether the agent runs after the task.
  returned: success
  type: bool
  sample: true
pid:
  description: The agent's process id.
  returned: when running
  type: int
  sample: 48211
expires:
  description: When the agent exits at the latest, UTC ISO-8601.
  returned: when running
  type: str
  sample: "2026-12-04T18:20:37Z"
stops_with_play:
  description: Whether the agent stops by itself when the play's C(ansible-playbook) process ends (O(stop_with_play)).
  returned: when this task started the agent
  type: bool
  sample: true
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import key_agent as ops_key_agent


def manage(bv):
    params = bv.params
    if params["state"] == "absent":
        return ops_key_agent.stop_agent(socket_path=params["socket"], check=bv.check_mode)
    return ops_key_agent.start_agent(socket_path=params["socket"], ttl=params["ttl"], idle=params["idle_timeout"],
                                     check=bv.check_mode, stop_with_play=params["stop_with_play"])


def main():
    argument_spec = dict(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        socket=dict(type="path"),
        ttl=dict(type="int", default=14400),
        idle_timeout=dict(type="int", default=3600),
        stop_with_play=dict(type="bool", default=False),
    )
    bv = BlockvaultModule(argument_spec, required_if=[["state", "absent", ["socket"]]])
    bv.run(manage)


if __name__ == "__main__":
    main()
