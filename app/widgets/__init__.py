"""One widget per module; each renders what the cluster's view reports, nothing more."""
