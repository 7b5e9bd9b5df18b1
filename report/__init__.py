"""Self-contained HTML report of gradient inversion attacks against federated learning defenses."""
