"""Cost: prices, token estimates, the estimate of a job, the model table and its lifecycle."""
