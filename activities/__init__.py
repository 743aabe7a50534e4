"""Every side effect the workflows need, as Temporal activities."""
