"""Lightning callbacks a site's Trainer runs with, one per module, each named for what it does.
"""
