"""The pyinfra frontend: adjust, rollback and failback over pyinfra instead of ansible-playbook.

Same plan (`fleet.planning`), same inventory document (`views.inventory`), same decisions (`rollback.flow`),
same templates (the roles' `templates/*.j2`, rendered with the role defaults), same nginx swap
(`plugins/module_utils/nginx_swap.py`) and the same records in the store (`fleet.applied`,
`fleet.rollback_history`). Only the transport differs: pyinfra operations over SSH (docs/pyinfra.md).

Run it as `depmirror pyinfra ...`: pyinfra needs gevent's monkey patching before anything opens a socket, so
the command runs in a process of its own (`python -m depmirror.frontends.pyinfra`).
"""
