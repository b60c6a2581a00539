"""The fleet as it runs now: the one owner of reading and recording the applied plan, the primaries and the
events a playbook records. Everything here talks to the store."""
