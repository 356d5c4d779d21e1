"""DoReMi domain reweighting for the pretraining mixture (Xie et al. 2023): domains (domains.py), the group-DRO
weight update (dro.py), per-example reconstruction losses (losses.py), `robolearn pretrain reweight`
(reweight.py). See docs/pretraining.md, "Domain reweighting (DoReMi)"."""
