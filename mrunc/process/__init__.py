"""The processes of a container's creation: protocol (the messages), parent (runtime side),
init (container side, the phases), foreground (`run` without -d)."""
