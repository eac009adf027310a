"""The daemon: wiring, the engine thread, state stores, leader election."""
