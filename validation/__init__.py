"""Hardware and published-data validation of the performance model."""
