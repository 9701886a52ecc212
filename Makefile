# batchbald-repro. `make test` and `make reproduce-figures` set everything up on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= auto
DATA ?= data
JOBS ?=
TABLE1 ?=
ARGS ?=
RUNS ?= results/runs

.PHONY: install data test run benchmark benchmark-full figures reproduce-figures campaign campaign-stop replay replay-acquisition wandb-sync dashboard \
	device-wheels device-check device-import slurm-start slurm-stop verify clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Copies/links the datasets into $(DATA) from ../shared/data (offline) or downloads them (online).
data: install
	$(PY) scripts/prepare_data.py --root $(DATA)

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

run: install
	$(PY) experiments/run.py $(ARGS)

benchmark: install
	$(PY) -m pip install -q -e '.[bench]' || echo "peers not installable: benchmark runs ours alone"
	$(PY) scripts/benchmark_acquisition.py
	$(PY) scripts/benchmark_loop.py --scoring-only

benchmark-full: install
	$(PY) -m pip install -q -e '.[bench]' || echo "peers not installable: benchmark runs ours alone"
	$(PY) scripts/benchmark_acquisition.py --full
	$(PY) scripts/benchmark_loop.py

# Figures, tables and a report for the runs under $(RUNS) (results/runs -> results/; any other sweep -> <RUNS>/report).
figures: install
	$(PY) scripts/prepare_data.py --root $(DATA) || echo "figures: no EMNIST data, fig12 (examples) is skipped"
	$(PY) scripts/make_figures.py --runs $(RUNS) --data-root $(DATA)

reproduce-figures: install data
	$(PY) scripts/reproduce.py --profile $(PROFILE) $(if $(JOBS),--jobs $(JOBS),) --data-root $(DATA) $(if $(TABLE1),--table1,) \
		$(if $(BASELINES),--baselines,) $(if $(SEEDS),--seeds $(SEEDS),)

# The paper-scale Repeated MNIST campaign (issue 27, then Fig 10's last two groups: BALD with 1 repetition and
# BatchBALD with 4), niced, in two chains of one job each (one a core, so neither core
# idles at the tail of a group), logged to logs/campaign-<date>-{a,b}.log; each chain keeps the issue's order (the
# BALD-family groups first). Finished runs are skipped, unfinished ones resume (from checkpoint.pt, or on a fresh clone
# from rounds.csv). Commits nothing. Stop: `make campaign-stop`, then commit every run's rounds.csv and run.json and
# run `make figures`. Groups without --seeds run the profile's seeds (configs/profile/paper.yaml).
CAMPAIGN := $(PY) scripts/reproduce.py --profile paper --jobs 1 --threads 1 --data-root $(DATA) --no-figures
CAMPAIGN_A := $(CAMPAIGN) --experiments rmnist_rep0_bald rmnist_rep4_bald && \
	$(CAMPAIGN) --experiments rmnist_var_ratios --seeds 211889 332929 424817 && \
	$(CAMPAIGN) --experiments rmnist_rep2_bald --seeds 887341 920641 && \
	$(CAMPAIGN) --experiments rmnist_rep1_bald
CAMPAIGN_B := $(CAMPAIGN) --experiments rmnist_random rmnist_mean_std --seeds 211889 332929 424817 && \
	$(CAMPAIGN) --experiments rmnist_batchbald --seeds 887341 920641 && \
	$(CAMPAIGN) --experiments rmnist_rep4_batchbald
campaign: install data
	mkdir -p logs
	stamp=$$(date -u +%Y%m%d-%H%M); \
	nice -n 10 sh -c '$(CAMPAIGN_A)' > logs/campaign-$$stamp-a.log 2>&1 & \
	nice -n 10 sh -c '$(CAMPAIGN_B)' > logs/campaign-$$stamp-b.log 2>&1 & \
	wait

# Stops the campaign: its chains and every paper-profile run, matched by command line (so also paper runs started by
# hand, e.g. from a git worktree), then the loky and wandb workers by name (they outlive their parent otherwise;
# those of any other run on the box go too).
PAPER_RUNS := [e]xperiments/run.py -m .*profile=paper
campaign-stop:
	-pkill -f '[s]cripts/reproduce.py --profile paper'
	-pkill -f '$(PAPER_RUNS)'
	-pkill -f '[l]oky'
	-pkill -f '[w]andb-(core|symon)'
	@sleep 2; if pgrep -f '$(PAPER_RUNS)' >/dev/null; then echo "campaign-stop: paper-profile runs still alive"; exit 1; fi

# Rerun the first rounds of a committed run and check they are identical (RUN=<run dir>, ROUNDS=3).
verify: install data
	$(PY) scripts/verify.py $(if $(RUN),--run $(RUN),) --rounds $(or $(ROUNDS),3) --data-root $(DATA)

# Retrain on the paper's logged labelled sets (../shared/paper/official_logs or $$BATCHBALD_OFFICIAL_LOGS) and compare.
replay: install data
	$(PY) scripts/replay.py --jobs $(or $(JOBS),2) --data-root $(DATA) $(ARGS)
	$(PY) scripts/replay.py --report

# One step from the paper's logged state: our acquisition against the logged batch (results/fidelity/acquisition/).
replay-acquisition: install data
	$(PY) scripts/replay_acquisition.py --data-root $(DATA) $(ARGS)
	$(PY) scripts/replay_acquisition.py --report

# Upload every offline wandb run under $(RUNS) once (needs `wandb login` and network).
wandb-sync: install
	$(PY) scripts/wandb_sync.py --runs $(RUNS)

# Terminal dashboard over the local (offline) wandb runs under $(RUNS): wandb's LEET, no login needed. LEET reads one
# wandb directory, so .dashboard/ links every run's offline-run-* directory into one.
dashboard: install
	rm -rf .dashboard && mkdir .dashboard
	find $(abspath $(RUNS)) -type d -name 'offline-run-*' -path '*/wandb/*' -exec ln -s {} .dashboard/ \;
	$(VENV)/bin/wandb leet .dashboard

# The GPU check (README "GPU check"): wheels made here, the check run on a lent GPU machine as one command.
device-wheels: install
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py --abi none \
		--platform any -d .whl hydra-core==1.3.8 omegaconf==2.3.1 hydra-joblib-launcher==1.2.0
	$(PY) -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3

device-check:
	bash scripts/device_check.sh

# Here, after a device check: FROM=<the folder its files came back to> (runs -> results/runs, checkpoints -> device-runs).
device-import: install
	$(PY) scripts/device_import.py $(FROM)

# A single-node SLURM cluster on this machine (root + apt-get; README "SLURM").
slurm-start:
	bash scripts/slurm_cluster.sh start

slurm-stop:
	bash scripts/slurm_cluster.sh stop

clean:
	rm -rf outputs multirun .pytest_cache
