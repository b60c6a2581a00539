"""Doors onto the library other than the Ansible collection: each drives the same decisions and renders the
collection's own templates, so that switching door changes no file on any host."""
