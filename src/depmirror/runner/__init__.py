"""The alert-driven runner: Alertmanager webhook -> durable queue -> rollback playbook or AWX job."""
