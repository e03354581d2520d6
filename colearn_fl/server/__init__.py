"""The server side: the ServerApp, the strategy built from the run config, the checks before
round 1, central evaluation, and what every round leaves behind (history, plots, checkpoint).
Never imports the site side."""
