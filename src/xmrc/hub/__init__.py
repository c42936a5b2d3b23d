"""Around the models and the machines: fetching and pinning weights, packaged weights, the test server,
GPU locks, what jobs ask a scheduler for."""
