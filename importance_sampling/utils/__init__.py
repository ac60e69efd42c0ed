"""Internal helpers of the importance sampling library."""
