"""Small-scale reproductions of the paper's claims (issue 7); `python experiments/run_all.py` reruns them."""
