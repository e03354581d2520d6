"""The wire keys of co-learning, defined once: what the server sends and the sites reply.

Server -> site, every training round, in the ``ConfigRecord`` ``"config"``:

=================  =====  ========================================================
key                type   meaning
=================  =====  ========================================================
``server-round``   int    the round, counted from 1 (added by Flower's strategies)
``local-epochs``   int    epochs this round (ILE)
``lr-schedule``    str    the LR cycle's shape this round (CLR)
``lr-max``         float  top of this round's cycle
``lr-min``         float  bottom of this round's cycle
=================  =====  ========================================================

Site -> server: the model as ``ArrayRecord`` ``"arrays"`` and a ``MetricRecord``
``"metrics"`` with at least ``num-examples`` (the averaging weight) and ``train-loss``; sites
running ``colearn_fl.client_app`` add ``epochs-run``, ``lr-first`` and ``lr-last`` (what they
did) and the per-epoch series ``epoch-*`` (lists: the curves). FedProx adds
``proximal-mu`` (float) to the server's config.
"""

from __future__ import annotations

SERVER_ROUND = "server-round"
LOCAL_EPOCHS = "local-epochs"
LR_SCHEDULE = "lr-schedule"
LR_MAX = "lr-max"
LR_MIN = "lr-min"
SCHEDULE_KEYS = (LOCAL_EPOCHS, LR_SCHEDULE, LR_MAX, LR_MIN)  # what co-learning adds per round
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"

# What a site did in a training round (site -> server, in its metrics): recorded per site in
# the history, never averaged. A site that does not report them did not follow the schedule.
EPOCHS_RUN = "epochs-run"
LR_FIRST = "lr-first"  # the LR of the round's first optimizer step
LR_LAST = "lr-last"  # the LR of its last step
# Per local epoch (site -> server, lists with one value per epoch): ``epoch-train-loss``,
# ``epoch-lr`` (the LR at the epoch's end) and ``epoch-<name>`` for each metric the site's
# module logged in validation. Recorded per site in the history, never averaged.
EPOCH_PREFIX = "epoch-"

# Flower's FedProx sends its proximal weight under this key; colearn-fl's sites honour it.
PROXIMAL_MU = "proximal-mu"

# Flower message types of the two extra rounds co-learning may run (``<category>.<action>``):
# the SWA model's normalisation statistics recomputed over each site's training data, and the
# LR range test before round 1 (``lr-max='auto'``). Sites answer them in ClientApp query
# functions of those action names; replies carry ``num-examples`` like training replies.
BN_REFRESH = "query.bn_refresh"
LR_FIND = "query.lr_find"
LR_SUGGESTED = "lr-suggested"  # lr_find reply: the LR finder's suggestion
LR_DIVERGED = "lr-diverged"  # lr_find reply: the lowest LR at which the loss diverged
# lr_find instruction (server -> site, in its ConfigRecord): the LRs the range test sweeps
# (exponentially, one per step) and how many steps it takes.
LR_FIND_MIN = "lr-find-min"
LR_FIND_MAX = "lr-find-max"
LR_FIND_STEPS = "lr-find-steps"
# Before round 1 the server asks every connected site to open its data (``query.data_check``);
# a site replies with its sizes, or with the error its data gave (stops the run at once).
DATA_CHECK = "query.data_check"
TRAIN_EXAMPLES = "train-examples"
SITE_NAME = "site-name"  # data check reply (ConfigRecord "site"): how the site calls itself
TRAIN_UNSIZED = "train-unsized"  # data check reply: training data without a length
VAL_EXAMPLES = "val-examples"
