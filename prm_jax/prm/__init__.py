"""Process reward model: automatic line labels (binary search, Monte Carlo, mutation), training
and scoring."""
