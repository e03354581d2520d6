"""Comparisons at equal budget: co-learning against FedAvg, pooled-data (vanilla) training and
an ensemble of local models, over one seed or several; and the runs of an output-dir, listed
and shown round by round (``colearn runs``, ``colearn show``)."""
