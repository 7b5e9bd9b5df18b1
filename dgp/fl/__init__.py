"""Federated training under a defense: the round loop, its FedSGD and FedAvg users, and
error feedback. Above the core and the defenses; below the jobs."""
