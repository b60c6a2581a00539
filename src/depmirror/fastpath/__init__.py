"""The rollback's fast path: the runner switches a dependency over itself, in-process, in well under a second.

Same decision (`depmirror.rollback_flow`), same upstream templates (the nginx_upstream role's), same swap on
the load balancer (the collection's `nginx_swap` module_utils, sent over a warm SSH connection) and the same
events as `playbooks/rollback.yml`; read docs/rollback.md ("Fast path") for why and what differs.
"""
