"""Comparisons at equal budget: co-learning against FedAvg, pooled-data (vanilla) training and
an ensemble of local models, over one seed or several."""
