"""Model builders: the base causal LM (bootstrapped or loaded)."""
