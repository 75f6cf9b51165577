"""Cost: the price catalog, meters, attribution, budgets, trade-offs, right-sizing and retention."""
