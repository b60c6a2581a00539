"""Views of a plan for the doors: the inventory document, what each VM runs, and the nginx upstreams. Pure."""
