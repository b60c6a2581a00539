"""The planner: weights, replication factor and mode with hysteresis, placement, and the plan. Pure: it takes
the graph, the state and a health snapshot as plain values and returns a plan; it opens no store, no socket."""
