"""The durable engine: durable functions, the running task's context, its journal of steps, and replay."""
