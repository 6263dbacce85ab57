"""Design-space search over embedding-bag kernel configurations (Optuna)."""
