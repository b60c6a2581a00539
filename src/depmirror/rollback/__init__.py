"""Switchover and failback: the pure decision (`decide`), the flow the playbooks and the fast path share
(`flow`), the traffic check, and the runner's in-process fast path (`switchover` over `remote` SSH, the
`nginx` release and `redis_state` promotion; docs/rollback.md, "Fast path")."""
