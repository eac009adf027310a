"""The pure core: facts in, actions out; never the clock, the network or the disk."""
