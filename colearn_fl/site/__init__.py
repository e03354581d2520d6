"""The site side: the ClientApp, its handlers and what runs next to a site's data (DP
clipping, the SWA statistics refresh, the LR range test); Lightning callbacks in
``callbacks/``."""
