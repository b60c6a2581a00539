# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_release
short_description: Write an nginx release, check it with nginx -t, swap it in and reload, in one call
version_added: 0.1.0
description:
  - The hot path of M(depmirror.mirroring.nginx_upstream)'s C(swap) entry point, used by a rollback, where
    every SSH round trip counts. Everything happens on the load balancer in one module call.
  - Writes the release files into O(release), writes the new main configuration beside O(nginx_conf), checks
    it with O(validate) and only then renames it over O(nginx_conf) (atomic). A rejected configuration leaves
    the live one untouched, removes the release directory if this call created it, and fails.
  - Reloads O(service) (or starts it when it is not running). If that fails, the last good configuration
    O(last_good) is put back and reloaded, and the module fails saying so. After a good reload, the served
    configuration becomes the last good one.
  - Nothing is written when O(nginx_conf) already has O(content) and every release file is in place.
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - depmirror.mirroring.attributes
  - depmirror.mirroring.requirements.NGINX_TARGET
attributes:
  check_mode:
    support: full
    details: Writes, checks and reloads nothing; reports whether the configuration would change.
  diff_mode:
    support: full
    details: The main configuration before and after.
  idempotent:
    support: full
  action:
    support: none
options:
  release:
    description: The release directory the files go into (created with its parents).
    type: path
    required: true
  files:
    description: File name (inside O(release)) to content.
    type: dict
    default: {}
  content:
    description: The new main nginx configuration, which includes the release files.
    type: str
    required: true
  nginx_conf:
    description: The live main nginx configuration file.
    type: path
    default: /etc/nginx/nginx.conf
  last_good:
    description: Where the configuration nginx last reloaded with successfully is kept.
    type: path
    required: true
  service:
    description: The systemd unit of nginx.
    type: str
    default: nginx
  validate:
    description: The check command; C(%s) is the path of the new main configuration.
    type: str
    default: nginx -t -q -c %s
"""

EXAMPLES = r"""
---
- name: Swap in the upstreams of a rollback
  depmirror.mirroring.nginx_release:
    release: /etc/nginx/depmirror/releases/3f2a9c0d1e4b
    files:
      http.conf: "{{ lookup('ansible.builtin.template', 'http.conf.j2') }}"
      stream.conf: "{{ lookup('ansible.builtin.template', 'stream.conf.j2') }}"
    content: "{{ lookup('ansible.builtin.template', 'nginx.conf.j2') }}"
    last_good: /etc/nginx/depmirror/last-good.conf
"""

RETURN = r"""
release:
  description: The release directory now live.
  returned: always
  type: str
reloaded:
  description: Whether nginx was reloaded (or started) with the new configuration.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.depmirror.mirroring.plugins.module_utils.nginx_swap import SwapError, swap_release


def main():
    module = AnsibleModule(
        argument_spec={
            "release": {"type": "path", "required": True},
            "files": {"type": "dict", "default": {}},
            "content": {"type": "str", "required": True},
            "nginx_conf": {"type": "path", "default": "/etc/nginx/nginx.conf"},
            "last_good": {"type": "path", "required": True},
            "service": {"type": "str", "default": "nginx"},
            "validate": {"type": "str", "default": "nginx -t -q -c %s"},
        },
        supports_check_mode=True,
    )

    def run(argv):
        if argv[0] == "systemctl":
            argv = [module.get_bin_path("systemctl", required=True)] + argv[1:]
        return module.run_command(argv)

    try:
        result = swap_release(module.params, run, check_mode=module.check_mode, diff=module._diff)
    except SwapError as error:
        module.fail_json(msg=error.msg, **error.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
