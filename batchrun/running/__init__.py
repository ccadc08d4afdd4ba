"""The runner: worker pool, rate limiter, retry policy and the clock they share."""
