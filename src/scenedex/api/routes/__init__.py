"""One router per resource: admin jobs, the owner's videos and search, health."""
