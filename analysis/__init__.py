"""Tables and plots from cosim trace directories; reads files only, never the engine."""
