"""Flow control (docs/flow-control.md): concurrency per key, debounce and shared rate limits,
each built on Temporal workflows: a coordinator workflow per key holds the places and the
queue, and runs ask it for a place and hand it back by signal."""
